#!/usr/bin/env python3
"""`ksphost serve` as an interpreter developer uses it: clients stream checksummed lines
through the echo server while the plugin file is replaced and SIGHUP reloads `net`.

    check_serve_reload.py KSPHOST PLUGIN [OTHER_PLUGIN]

PLUGIN is ksp_net.so; OTHER_PLUGIN, if given, a build of it with another version string:
the swaps alternate between the two. Checked, in order, with serve started as a supervisor may start it (stdin closed):
  1. the server echoes; bad --port values are refused with a clear message; a line
     longer than linemax ends that connection at once; a reader of stderr that went away
     does not end serve;
  2. a broken file over the plugin: SIGHUP reports the failure, the old version serves on;
  3. SIGHUP with a good plugin reloads `net` live: every stream goes on intact through
     several swaps. If the plugin offers no handover the reload is the old way: the script
     checks that the message says why and that serve listens again, then exits 77 (SKIP);
  4. SIGTERM closes everything and serve exits 0.
"""
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

CLIENTS = 8
SWAPS = 6
TIMEOUT = 30.0


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


class Stream:
    """One client: a writer thread sends numbered lines, each with the CRC-32 of its text,
    and a reader thread checks that each comes back once, in order, unchanged."""

    def __init__(self, port, index):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.index = index
        self.sent = 0
        self.received = 0
        self.error = None
        self.stop = threading.Event()
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.writer.start()
        self.reader.start()

    @staticmethod
    def line(index, seq):
        text = "client %d line %d %s" % (index, seq, "x" * (seq % 97))
        return "%s %08x\n" % (text, zlib.crc32(text.encode()))

    def _write(self):
        try:
            while not self.stop.is_set():
                # Keep at most a few hundred lines in flight: the echo must keep up.
                if self.sent - self.received > 200:
                    time.sleep(0.001)
                    continue
                self.sock.sendall(self.line(self.index, self.sent).encode())
                self.sent += 1
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.error = self.error or "client %d write: %s" % (self.index, e)

    def _read(self):
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    got, buf = buf.split(b"\n", 1)
                    want = self.line(self.index, self.received)[:-1].encode()
                    if got != want:
                        self.error = "client %d line %d: got %r, want %r" % (self.index, self.received, got[:80],
                                                                               want[:80])
                        return
                    self.received += 1
            if buf:
                self.error = "client %d: %d bytes after the last newline" % (self.index, len(buf))
        except OSError as e:
            self.error = self.error or "client %d read: %s" % (self.index, e)

    def finish(self):
        """Stops writing, waits for every echo, and says what went wrong (None: nothing)."""
        self.stop.set()
        self.writer.join(TIMEOUT)
        self.reader.join(TIMEOUT)
        self.sock.close()
        if self.error:
            return self.error
        if self.reader.is_alive():
            return "client %d: echo stalled (%d of %d lines back)" % (self.index, self.received, self.sent)
        if self.received != self.sent:
            return "client %d: %d lines sent, %d echoed" % (self.index, self.sent, self.received)
        return None


class Server:
    def __init__(self, ksphost, plugin_dir, stderr=None, max_descriptors=None):
        self.err_path = os.path.join(plugin_dir, "serve.err")
        self.err = open(self.err_path, "w")
        env = dict(os.environ, KSPATH="")

        def start():
            os.close(0)
            if max_descriptors:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_descriptors, max_descriptors))

        self.proc = subprocess.Popen([ksphost, "-I", plugin_dir, "serve", "--port", "0"], cwd=plugin_dir, env=env,
                                     stdout=subprocess.PIPE, stderr=stderr or self.err, text=True,
                                     preexec_fn=start)
        first = self.proc.stdout.readline()
        m = re.search(r"echoing lines on 127\.0\.0\.1:(\d+) \(pid (\d+)\)", first)
        if not m:
            self.proc.kill()
            fail("serve's first line names no port: %r; stderr: %s" % (first, self.stderr()))
        self.port = int(m.group(1))
        if int(m.group(2)) != self.proc.pid:
            fail("serve's first line names pid %s, not %d" % (m.group(2), self.proc.pid))
        self.seen = 0  # stderr lines already looked at

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def signal_and_wait(self, sig, pattern):
        """Sends sig and returns the first new stderr line matching pattern."""
        self.proc.send_signal(sig)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            lines = self.stderr().splitlines()
            for i in range(self.seen, len(lines)):
                if re.search(pattern, lines[i]):
                    self.seen = i + 1
                    return lines[i]
            if self.proc.poll() is not None:
                fail("serve exited (%d) waiting for /%s/; stderr:\n%s" % (self.proc.returncode, pattern, self.stderr()))
            time.sleep(0.02)
        fail("no /%s/ on stderr within %gs; stderr:\n%s" % (pattern, TIMEOUT, self.stderr()))

    def stop(self):
        self.signal_and_wait(signal.SIGTERM, r"^serve: SIGTERM: stopping")
        try:
            rc = self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("serve did not exit within %gs of SIGTERM; stderr:\n%s" % (TIMEOUT, self.stderr()))
        if rc != 0:
            fail("serve exited %d after SIGTERM; stderr:\n%s" % (rc, self.stderr()))


def replace_file(source, dest):
    """Puts a copy of source at dest in one step, as a build tool installing it would."""
    tmp = dest + ".new"
    shutil.copyfile(source, tmp)
    os.replace(tmp, dest)


def echo_once(port, text):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(text.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return got.decode()
            got += chunk


def check_bad_ports(ksphost):
    for value, expected in [("x", "--port needs a number from 0 to 65535, not 'x'"),
                            ("65536", "not '65536'"), ("-1", "not '-1'")]:
        r = subprocess.run([ksphost, "serve", "--port", value], capture_output=True, text=True, timeout=TIMEOUT)
        if r.returncode != 2 or expected not in r.stderr:
            fail("serve --port %s: exit %d, stderr %r (wanted 2 and %r)" % (value, r.returncode, r.stderr, expected))
    r = subprocess.run([ksphost, "serve", "--port"], capture_output=True, text=True, timeout=TIMEOUT)
    if r.returncode != 2 or "--port needs a number after it" not in r.stderr:
        fail("serve --port alone: exit %d, stderr %r" % (r.returncode, r.stderr))


def check_line_over_linemax_ends_the_connection(port):
    """Without a newline within linemax (1 MiB by default) the connection is closed at
    once, not left open until another client connects."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(b"B" * (1024 * 1024 + 10))
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            fail("a line over linemax: the connection was still open after %gs" % TIMEOUT)


def check_a_gone_log_reader_does_not_end_serve(ksphost, plugin_dir):
    """`serve 2>&1 | tee log` with tee gone: the next log line must not kill serve (SIGPIPE)."""
    r, w = os.pipe()
    server = Server(ksphost, plugin_dir, stderr=w)
    os.close(w)
    os.close(r)
    try:
        server.proc.send_signal(signal.SIGHUP)  # logs a line or two
        time.sleep(0.5)
        if server.proc.poll() is not None:
            fail("serve ended (%d) writing its log to a pipe nobody reads" % server.proc.returncode)
        if echo_once(server.port, "still here") != "still here\n":
            fail("serve does not echo after its log reader went away")
        server.proc.terminate()
        if server.proc.wait(TIMEOUT) != 0:
            fail("serve exited %d after SIGTERM with its log reader gone" % server.proc.returncode)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def check_out_of_descriptors_neither_spins_nor_drops_clients(ksphost, plugin_dir):
    """At its descriptor limit serve cannot accept: the clients wait in the backlog and
    are served as others leave, and serve neither spins nor gives its port up."""
    server = Server(ksphost, plugin_dir, max_descriptors=16)
    clients = []
    try:
        for _ in range(12):
            clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT))
        time.sleep(1)
        failures = server.stderr().count("accept failed")
        if failures > 3:
            fail("out of descriptors, serve logged %d failed accepts in 1 s (it spins)" % failures)
        for i, c in enumerate(clients):  # each leaves once served, giving its descriptor back
            c.sendall(b"client %d\n" % i)
            got = b""
            try:
                while not got.endswith(b"\n"):
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except OSError as e:
                fail("client %d of 12, at serve's descriptor limit: %s; stderr:\n%s" % (i, e, server.stderr()))
            if got != b"client %d\n" % i:
                fail("client %d of 12, at serve's descriptor limit, got %r; stderr:\n%s" % (i, got, server.stderr()))
            c.close()
        server.stop()
    finally:
        for c in clients:
            c.close()
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def main():
    ksphost, plugin = os.path.realpath(sys.argv[1]), sys.argv[2]
    builds = [plugin] + [p for p in sys.argv[3:] if os.path.exists(p)]
    check_bad_ports(ksphost)

    with tempfile.TemporaryDirectory() as plugin_dir:
        dest = os.path.join(plugin_dir, "ksp_net.so")
        shutil.copyfile(plugin, dest)
        check_a_gone_log_reader_does_not_end_serve(ksphost, plugin_dir)
        check_out_of_descriptors_neither_spins_nor_drops_clients(ksphost, plugin_dir)
        server = Server(ksphost, plugin_dir)
        try:
            if echo_once(server.port, "hello, serve") != "hello, serve\n":
                fail("the first echo is wrong")
            check_line_over_linemax_ends_the_connection(server.port)
            streams = [Stream(server.port, i) for i in range(CLIENTS)]
            time.sleep(0.2)

            # A broken rebuild: the reload fails, naming the file, and nothing changes.
            with open(dest, "rb") as f:
                head = f.read(4096)
            with open(dest + ".new", "wb") as f:
                f.write(head)
            os.replace(dest + ".new", dest)
            line = server.signal_and_wait(signal.SIGHUP, r"^serve: (net reloaded|reload failed)")
            if "reload failed, the old version goes on serving" not in line or dest not in line:
                fail("a truncated plugin: wanted a failure naming %s, got: %s" % (dest, line))
            time.sleep(0.2)

            replace_file(plugin, dest)
            line = server.signal_and_wait(signal.SIGHUP, r"^serve: (net reloaded|reload failed)")
            if "net reloaded the old way" in line:
                if "handover" not in line:
                    fail("an old-way reload's message does not say why (no mention of the handover): " + line)
                for s in streams:
                    s.finish()  # their connections were closed: what they report is expected
                deadline = time.monotonic() + TIMEOUT
                while True:  # serve listens again once its accept has failed
                    try:
                        if echo_once(server.port, "after the old way") == "after the old way\n":
                            break
                    except OSError:
                        pass
                    if time.monotonic() > deadline:
                        fail("serve does not echo after an old-way reload; stderr:\n" + server.stderr())
                    time.sleep(0.05)
                server.stop()
                print("SKIP: this ksp_net.so offers no handover, so the live part cannot run: " + line)
                sys.exit(77)
            if "net reloaded live" not in line:
                fail("SIGHUP with a good plugin: " + line)

            for swap in range(SWAPS):
                replace_file(builds[(swap + 1) % len(builds)], dest)
                line = server.signal_and_wait(signal.SIGHUP, r"^serve: (net reloaded|reload failed)")
                if "net reloaded live" not in line:
                    fail("swap %d: %s" % (swap + 1, line))
                time.sleep(0.1)

            problems = [p for p in (s.finish() for s in streams) if p]
            if problems:
                fail("; ".join(problems) + "\nstderr:\n" + server.stderr())
            if echo_once(server.port, "after the swaps") != "after the swaps\n":
                fail("a new connection after the swaps is not echoed")
            total = sum(s.sent for s in streams)
            server.stop()
            print("ok: %d lines through %d connections, intact across %d live reloads (%d build(s))" %
                  (total, CLIENTS, SWAPS + 1, len(builds)))
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait()


if __name__ == "__main__":
    main()
