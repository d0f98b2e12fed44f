#!/usr/bin/env python3
"""The workloads of raw_c.c on CPython's `socket` module, on 127.0.0.1, server and
client in this process (threads). Prints "workload metric value" lines, like raw_c.

    python_bench.py pingpong SIZE COUNT
    python_bench.py udp_pingpong SIZE COUNT
    python_bench.py bulk TOTAL CHUNK
    python_bench.py lines COUNT
    python_bench.py accept COUNT
    python_bench.py fanin CONNS ROUNDS SIZE THREADS
    python_bench.py load COUNT          (`import socket` in COUNT fresh interpreters)

Every count printed is what the receiving side counted, not the parameter.
"""
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time

LOOPBACK = "127.0.0.1"


def listener(backlog):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(backlog)
    return sock


def recv_exact(sock, n):
    """n bytes from sock; fewer only at end of stream."""
    data = sock.recv(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = sock.recv(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class Thread(threading.Thread):
    """A thread that keeps the exception its target raised, for the joiner to re-raise."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self._body = target
        self.error = None

    def run(self):
        try:
            self._body()
        except BaseException as e:  # noqa: BLE001 - handed to the joiner
            self.error = e

    def finish(self):
        self.join()
        if self.error is not None:
            raise self.error


def pingpong(size, count):
    lsock = listener(16)

    def serve():
        conn, _ = lsock.accept()
        with conn:
            for _ in range(count):
                msg = recv_exact(conn, size)
                if len(msg) != size:
                    break
                conn.sendall(msg)

    server = Thread(serve)
    server.start()
    sock = socket.create_connection(lsock.getsockname())
    msg = b"p" * size
    back = 0
    t0 = time.perf_counter()
    for _ in range(count):
        sock.sendall(msg)
        back += len(recv_exact(sock, size))
    t = time.perf_counter() - t0
    sock.close()
    server.finish()
    lsock.close()
    print(f"pingpong_{size} rtt_us {t / count * 1e6:.3f}")
    print(f"pingpong_{size} bytes {back}")
    return back == size * count


def udp_pingpong(size, count):
    def bound():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        sock.settimeout(10)  # a datagram lost on loopback would hang the round trips
        return sock

    server_sock = bound()

    def serve():
        with server_sock:
            for _ in range(count):
                msg, peer = server_sock.recvfrom(size)
                server_sock.sendto(msg, peer)

    server = Thread(serve)
    server.start()
    sock = bound()
    sock.connect(server_sock.getsockname())
    msg = b"u" * size
    back = 0
    t0 = time.perf_counter()
    for _ in range(count):
        sock.send(msg)
        back += len(sock.recv(size))
    t = time.perf_counter() - t0
    server.finish()
    sock.close()
    print(f"udp_pingpong_{size} rtt_us {t / count * 1e6:.3f}")
    print(f"udp_pingpong_{size} bytes {back}")
    return back == size * count


def bulk(total, chunk):
    lsock = listener(16)
    received = 0

    def serve():
        nonlocal received
        conn, _ = lsock.accept()
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                received += len(data)

    server = Thread(serve)
    server.start()
    sock = socket.create_connection(lsock.getsockname())
    data = b"b" * chunk
    t0 = time.perf_counter()
    sent = 0
    while sent + chunk <= total:
        sock.sendall(data)
        sent += chunk
    if sent < total:
        sock.sendall(data[: total - sent])
    sock.close()
    server.finish()
    t = time.perf_counter() - t0
    lsock.close()
    print(f"bulk mib_per_s {received / t / (1024 * 1024):.1f}")
    print(f"bulk bytes {received}")
    return received == total


def lines(count):
    lsock = listener(16)
    data = b"".join(b"line %07d\n" % (i % 10000000) for i in range(count))
    got = 0
    payload = 0

    def serve():
        nonlocal got, payload
        conn, _ = lsock.accept()
        with conn, conn.makefile("rb") as f:
            n = total = 0
            line = b"\n"
            for line in f:  # each line keeps its b"\n"; count them afterwards
                n += 1
                total += len(line)
            newlines = n if line.endswith(b"\n") else n - 1
            got, payload = n, total - newlines

    server = Thread(serve)
    server.start()
    sock = socket.create_connection(lsock.getsockname())
    view = memoryview(data)
    t0 = time.perf_counter()
    for off in range(0, len(data), 65536):
        sock.sendall(view[off:off + 65536])
    sock.close()
    server.finish()
    t = time.perf_counter() - t0
    lsock.close()
    print(f"lines lines_per_s {got / t:.0f}")
    print(f"lines lines {got}")
    print(f"lines bytes {payload}")
    return got == count


def accept(count):
    lsock = listener(128)
    accepted = 0

    def serve():
        nonlocal accepted
        for _ in range(count):
            conn, _ = lsock.accept()
            accepted += 1
            conn.close()

    server = Thread(serve)
    server.start()
    addr = lsock.getsockname()
    t0 = time.perf_counter()
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.connect(addr)
        if sock.recv(1) != b"":  # the server closes its end
            raise RuntimeError("accept: expected end of stream")
        sock.close()
    server.finish()
    t = time.perf_counter() - t0
    lsock.close()
    print(f"accept conns_per_s {accepted / t:.0f}")
    print(f"accept conns {accepted}")
    return accepted == count


def fanin(conns, rounds, size, nthreads):
    """The server is one selectors loop echoing whatever arrives. Client thread k owns
    connections k, k+THREADS, ...: per round it sends a message on each, then reads each
    echo back and checks it."""
    lsock = listener(4096)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    stop = threading.Event()
    accepted = 0

    def serve():
        nonlocal accepted
        while not stop.is_set():
            for key, _ in sel.select(timeout=0.05):
                sock = key.fileobj
                if sock is lsock:
                    try:
                        conn, _ = lsock.accept()
                    except BlockingIOError:
                        continue
                    accepted += 1
                    sel.register(conn, selectors.EVENT_READ)
                    continue
                data = sock.recv(65536)
                if not data:
                    sel.unregister(sock)
                    sock.close()
                    continue
                sock.sendall(data)

    server = Thread(serve)
    server.start()
    addr = lsock.getsockname()
    clients = [socket.create_connection(addr) for _ in range(conns)]
    msgs = [(b"%08d" % i + b"x" * size)[:size] for i in range(conns)]
    verified = [0] * nthreads

    def client(k):
        mine = range(k, conns, nthreads)
        ok = 0
        for _ in range(rounds):
            for i in mine:
                clients[i].sendall(msgs[i])
            for i in mine:
                if recv_exact(clients[i], size) == msgs[i]:
                    ok += 1
        verified[k] = ok

    threads = [Thread(lambda k=k: client(k)) for k in range(nthreads)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.finish()
    t = time.perf_counter() - t0
    for sock in clients:
        sock.close()
    stop.set()
    server.finish()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    total = sum(verified)
    print(f"fanin msgs_per_s {total / t:.0f}")
    print(f"fanin msgs {total}")
    print(f"fanin conns {accepted}")
    return total == conns * rounds


def load(count):
    code = ("import time\nt0 = time.perf_counter()\nimport socket\n"
            "print((time.perf_counter() - t0) * 1e3)")
    times = []
    for _ in range(count):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        times.append(float(out.stdout))
    print(f"load import_ms {statistics.median(times):.3f}")
    print(f"load cycles {len(times)}")
    return len(times) == count


def main():
    usage = ("usage: python_bench.py pingpong SIZE COUNT | udp_pingpong SIZE COUNT | bulk TOTAL CHUNK |\n"
             "       lines COUNT | accept COUNT | fanin CONNS ROUNDS SIZE THREADS | load COUNT")
    workloads = {"pingpong": (pingpong, 2), "udp_pingpong": (udp_pingpong, 2), "bulk": (bulk, 2), "lines": (lines, 1),
                 "accept": (accept, 1), "fanin": (fanin, 4), "load": (load, 1)}
    if len(sys.argv) < 2 or sys.argv[1] not in workloads:
        sys.exit(usage)
    fn, nargs = workloads[sys.argv[1]]
    if len(sys.argv) != 2 + nargs:
        sys.exit(usage)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ok = fn(*(int(a) for a in sys.argv[2:]))
    sys.stdout.flush()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
