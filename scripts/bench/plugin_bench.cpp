// plugin_bench.cpp - the workloads of raw_c.c through the `net` plugin, imported by
// the reference host from a plugin directory and driven through the host ABI as an
// interpreter would: every socket is a net.SocketIO, every call goes through the host
// and each script thread is a host thread holding the interpreter lock (blocking calls
// release it). Prints "workload metric value" lines, like raw_c.
//
//   bench_plugin PLUGIN_DIR pingpong SIZE COUNT
//   bench_plugin PLUGIN_DIR udp_pingpong SIZE COUNT
//   bench_plugin PLUGIN_DIR bulk TOTAL CHUNK
//   bench_plugin PLUGIN_DIR lines COUNT
//   bench_plugin PLUGIN_DIR accept COUNT
//   bench_plugin PLUGIN_DIR fanin CONNS ROUNDS SIZE THREADS
//   bench_plugin PLUGIN_DIR idle CONNS
//   bench_plugin PLUGIN_DIR load COUNT
//
// Every count printed is what the receiving side counted, not the parameter.
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "refhost.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::Value;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// To the hard limit, or to `wanted` past it where the process may (as root).
void raise_fd_limit(rlim_t wanted = 0) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (wanted > rl.rlim_max) {
        rlimit more{wanted, wanted};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0) return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

// Runs `body` with the interpreter lock released (joining threads, sleeping).
void without_gil(Host &h, const std::function<void()> &body) {
    void *token = h.table()->release_lock();
    body();
    h.table()->acquire_lock(token);
}

// Script threads: each runs its body holding the interpreter lock. Bodies must capture
// values by reference only (a captured copy would be released without the lock).
class Threads {
public:
    explicit Threads(Host &h) : h_(h) {}
    ~Threads() { join_all(); }

    void spawn(std::function<void()> body) {
        threads_.emplace_back([this, body = std::move(body)] {
            Gil g(h_);
            try {
                body();
            } catch (const std::exception &e) {
                std::lock_guard lk(mu_);
                if (error_.empty()) error_ = e.what();
            }
        });
    }

    // Called with the lock held; gives it up while waiting.
    void join_all() {
        if (threads_.empty()) return;
        without_gil(h_, [&] {
            for (auto &t : threads_) t.join();
        });
        threads_.clear();
    }

    std::string error() {
        std::lock_guard lk(mu_);
        return error_;
    }

private:
    Host &h_;
    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::string error_;
};

struct Net {
    Host &h;
    Value net = h.import("net");
    Value SocketIO = h.getattr(net, "SocketIO");

    Value socket() { return h.call(SocketIO); }
    Value udp_socket() {
        return h.call(SocketIO, {h.getattr(h.getattr(net, "FK"), "INET4"), h.getattr(h.getattr(net, "SK"), "UDP")});
    }
    Value loopback(int64_t port) { return h.tuple({h.str("127.0.0.1"), h.integer(port)}); }

    Value listener(int64_t backlog) {
        Value l = socket();
        h.call_method(l, "bind", {loopback(0)});
        h.call_method(l, "listen", {h.integer(backlog)});
        return l;
    }
    int64_t port_of(const Value &s) { return h.to_int(h.getattr(s, "local_port")); }

    Value connect(int64_t port) {
        Value c = socket();
        h.call_method(c, "connect", {loopback(port)});
        return c;
    }
    Value accept(const Value &l) { return h.item(h.call_method(l, "accept"), 0); }

    // sock.read(n - got) until n bytes arrived; shorter only at end of stream.
    Value read_exact(const Value &sock, size_t n, const Value &n_value) {
        Value first = h.call_method(sock, "read", {n_value});
        size_t len = h.len(first);
        if (len == n || len == 0) return first;
        std::string acc = h.to_bytes(first);
        while (acc.size() < n) {
            Value more = h.call_method(sock, "read", {h.integer(static_cast<int64_t>(n - acc.size()))});
            if (h.len(more) == 0) break;
            acc += h.to_bytes(more);
        }
        return h.bytes(acc);
    }
};

// ---- pingpong: SIZE-byte messages echoed COUNT times over one connection ----

int pingpong(Host &h, size_t size, size_t count) {
    Net n{h};
    Value l = n.listener(16);
    int64_t port = n.port_of(l);
    Value size_v = h.integer(static_cast<int64_t>(size));
    Threads threads(h);
    threads.spawn([&] {
        Value conn = n.accept(l);
        for (size_t i = 0; i < count; ++i) {
            Value msg = n.read_exact(conn, size, size_v);
            if (h.len(msg) != size) break;
            h.call_method(conn, "write", {msg});
        }
        h.call_method(conn, "close");
    });
    Value c = n.connect(port);
    Value msg = h.bytes(std::string(size, 'p'));
    size_t back = 0;
    auto t0 = Clock::now();
    for (size_t i = 0; i < count; ++i) {
        h.call_method(c, "write", {msg});
        back += h.len(n.read_exact(c, size, size_v));
    }
    double t = seconds_since(t0);
    h.call_method(c, "close");
    threads.join_all();
    h.call_method(l, "close");
    if (!threads.error().empty()) throw std::runtime_error("server: " + threads.error());
    std::printf("pingpong_%zu rtt_us %.3f\n", size, t / static_cast<double>(count) * 1e6);
    std::printf("pingpong_%zu bytes %zu\n", size, back);
    return back == size * count ? 0 : 1;
}

// ---- udp_pingpong: one SIZE-byte datagram each way per round trip, COUNT times ----

int udp_pingpong(Host &h, size_t size, size_t count) {
    Net n{h};
    Value server = n.udp_socket();
    h.call_method(server, "bind", {n.loopback(0)});
    Value size_v = h.integer(static_cast<int64_t>(size));
    // No timeout, as C's blocking calls (bench.py's time limit ends a run that hangs).
    Threads threads(h);
    threads.spawn([&] {
        for (size_t i = 0; i < count; ++i) {
            Value got = h.call_method(server, "recvfrom", {size_v});
            h.call_method(server, "sendto", {h.item(got, 0), h.item(got, 1)});
        }
    });
    Value c = n.udp_socket();
    h.call_method(c, "bind", {n.loopback(0)});
    h.call_method(c, "connect", {n.loopback(n.port_of(server))});
    Value msg = h.bytes(std::string(size, 'u'));
    size_t back = 0;
    auto t0 = Clock::now();
    for (size_t i = 0; i < count; ++i) {
        h.call_method(c, "write", {msg});
        back += h.len(h.call_method(c, "read", {size_v}));
    }
    double t = seconds_since(t0);
    threads.join_all();
    h.call_method(c, "close");
    h.call_method(server, "close");
    if (!threads.error().empty()) throw std::runtime_error("server: " + threads.error());
    std::printf("udp_pingpong_%zu rtt_us %.3f\n", size, t / static_cast<double>(count) * 1e6);
    std::printf("udp_pingpong_%zu bytes %zu\n", size, back);
    return back == size * count ? 0 : 1;
}

// ---- bulk: TOTAL bytes in CHUNK-byte writes; the receiver counts ----

int bulk(Host &h, size_t total, size_t chunk) {
    Net n{h};
    Value l = n.listener(16);
    int64_t port = n.port_of(l);
    size_t received = 0;
    Threads threads(h);
    threads.spawn([&] {
        Value conn = n.accept(l);
        Value size = h.integer(65536);
        for (;;) {
            size_t len = h.len(h.call_method(conn, "read", {size}));
            if (len == 0) break;
            received += len;
        }
        h.call_method(conn, "close");
    });
    Value c = n.connect(port);
    Value data = h.bytes(std::string(chunk, 'b'));
    auto t0 = Clock::now();
    size_t sent = 0;
    for (; sent + chunk <= total; sent += chunk) h.call_method(c, "write", {data});
    if (sent < total) h.call_method(c, "write", {h.bytes(std::string(total - sent, 'b'))});
    h.call_method(c, "close");
    threads.join_all();
    double t = seconds_since(t0);
    h.call_method(l, "close");
    if (!threads.error().empty()) throw std::runtime_error("server: " + threads.error());
    if (received != total) std::fprintf(stderr, "bulk: received %zu of %zu bytes\n", received, total);
    std::printf("bulk mib_per_s %.1f\n", static_cast<double>(received) / t / (1024.0 * 1024.0));
    std::printf("bulk bytes %zu\n", received);
    return received == total ? 0 : 1;
}

// ---- lines: COUNT lines "line 0000000\n" written in 64 KiB slices, read by iteration ----

int lines(Host &h, size_t count) {
    Net n{h};
    Value l = n.listener(16);
    int64_t port = n.port_of(l);
    std::string data(count * 13 + 1, '\0');
    for (size_t i = 0; i < count; ++i) std::snprintf(&data[i * 13], 14, "line %07zu\n", i % 10000000);
    data.pop_back();
    std::vector<Value> slices;
    for (size_t off = 0; off < data.size(); off += 65536) {
        slices.push_back(h.bytes(std::string_view(data).substr(off, 65536)));
    }
    size_t got = 0, bytes = 0;
    Threads threads(h);
    threads.spawn([&] {
        Value conn = n.accept(l);
        Value it = h.iter(conn);
        while (Value line = h.next(it)) {
            ++got;
            bytes += h.len(line);
        }
        h.call_method(conn, "close");
    });
    Value c = n.connect(port);
    auto t0 = Clock::now();
    for (const Value &s : slices) h.call_method(c, "write", {s});
    h.call_method(c, "close");
    threads.join_all();
    double t = seconds_since(t0);
    h.call_method(l, "close");
    if (!threads.error().empty()) throw std::runtime_error("reader: " + threads.error());
    if (got != count) std::fprintf(stderr, "lines: received %zu of %zu lines\n", got, count);
    std::printf("lines lines_per_s %.0f\n", static_cast<double>(got) / t);
    std::printf("lines lines %zu\n", got);
    std::printf("lines bytes %zu\n", bytes);
    return got == count ? 0 : 1;
}

// ---- accept: connect, accept and close COUNT connections, one after another ----

int accept_bench(Host &h, size_t count) {
    Net n{h};
    Value l = n.listener(128);
    int64_t port = n.port_of(l);
    size_t accepted = 0;
    Threads threads(h);
    threads.spawn([&] {
        for (size_t i = 0; i < count; ++i) {
            Value s = n.accept(l);
            ++accepted;
            h.call_method(s, "close");
        }
    });
    auto t0 = Clock::now();
    for (size_t i = 0; i < count; ++i) {
        Value c = n.connect(port);
        // The server closes its end: read() to the end of the stream returns b"".
        if (h.len(h.call_method(c, "read")) != 0) throw std::runtime_error("accept: expected end of stream");
        h.call_method(c, "close");
    }
    threads.join_all();
    double t = seconds_since(t0);
    h.call_method(l, "close");
    if (!threads.error().empty()) throw std::runtime_error("server: " + threads.error());
    std::printf("accept conns_per_s %.0f\n", static_cast<double>(accepted) / t);
    std::printf("accept conns %zu\n", accepted);
    return accepted == count ? 0 : 1;
}

// ---- fan-in: CONNS connections, ROUNDS round trips each ----
// The blocking API needs a thread per blocked call, so the work is split between
// THREADS server threads and THREADS client threads: connection i belongs to server
// thread i % THREADS and client thread i % THREADS. Per round a client thread writes one
// message to each of its connections, then reads each echo back and checks it; its
// server thread reads each message and echoes it, in the same order. Every connection
// has a message in flight at once, and no thread waits on a peer that waits on it.

int fanin(Host &h, size_t conns, size_t rounds, size_t size, size_t nthreads) {
    Net n{h};
    Value l = n.listener(4096);
    int64_t port = n.port_of(l);
    std::vector<Value> clients, servers;
    clients.reserve(conns);
    servers.reserve(conns);
    for (size_t i = 0; i < conns; ++i) {
        clients.push_back(n.connect(port));
        servers.push_back(n.accept(l));  // the one pending connection: the pair matches
    }
    std::vector<std::string> texts(conns);
    std::vector<Value> msgs;
    msgs.reserve(conns);
    for (size_t i = 0; i < conns; ++i) {
        char head[32];
        std::snprintf(head, sizeof head, "%08zu", i);
        texts[i] = std::string(size, 'x');
        texts[i].replace(0, std::min(size, std::strlen(head)), head, std::min(size, std::strlen(head)));
        msgs.push_back(h.bytes(texts[i]));
    }
    Value size_v = h.integer(static_cast<int64_t>(size));
    std::vector<size_t> verified(nthreads, 0), served(nthreads, 0);
    Threads threads(h);
    auto t0 = Clock::now();
    for (size_t k = 0; k < nthreads; ++k) {
        threads.spawn([&, k] {
            for (size_t r = 0; r < rounds; ++r) {
                for (size_t i = k; i < conns; i += nthreads) {
                    Value msg = n.read_exact(servers[i], size, size_v);
                    if (h.len(msg) != size) return;
                    h.call_method(servers[i], "write", {msg});
                    ++served[k];
                }
            }
        });
        threads.spawn([&, k] {
            for (size_t r = 0; r < rounds; ++r) {
                for (size_t i = k; i < conns; i += nthreads) h.call_method(clients[i], "write", {msgs[i]});
                for (size_t i = k; i < conns; i += nthreads) {
                    Value back = n.read_exact(clients[i], size, size_v);
                    if (h.len(back) == size && h.to_bytes(back) == texts[i]) ++verified[k];
                }
            }
        });
    }
    threads.join_all();
    double t = seconds_since(t0);
    for (auto *side : {&clients, &servers}) {
        for (Value &s : *side) h.call_method(s, "close");
    }
    h.call_method(l, "close");
    if (!threads.error().empty()) throw std::runtime_error("fanin: " + threads.error());
    size_t total = 0;
    for (size_t v : verified) total += v;
    std::printf("fanin msgs_per_s %.0f\n", static_cast<double>(total) / t);
    std::printf("fanin msgs %zu\n", total);
    std::printf("fanin conns %zu\n", servers.size());
    return total == conns * rounds ? 0 : 1;
}

// ---- idle: user-space memory held per open, idle, accepted net.SocketIO ----
// The clients are raw sockets, so everything measured belongs to the accepted side:
// the host's instance, the plugin's socket and libuv's handle.

size_t heap_in_use() {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

size_t rss_bytes() {
    FILE *f = std::fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
        std::fclose(f);
    }
    return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

int raw_connect(int64_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) < 0) {
        throw std::runtime_error(std::string("idle: connect: ") + std::strerror(errno));
    }
    return fd;
}

int idle(Host &h, size_t conns) {
    Net n{h};
    Value l = n.listener(4096);
    int64_t port = n.port_of(l);
    std::vector<int> clients;
    std::vector<Value> servers;
    clients.reserve(conns + 8);
    servers.reserve(conns);
    // Warm up whatever grows once (the loop's tables, the first blocks of each size).
    for (int i = 0; i < 8; ++i) {
        clients.push_back(raw_connect(port));
        h.call_method(n.accept(l), "close");
    }
    without_gil(h, [] { std::this_thread::sleep_for(std::chrono::milliseconds(100)); });
    size_t heap0 = heap_in_use(), rss0 = rss_bytes();
    for (size_t i = 0; i < conns; ++i) {
        clients.push_back(raw_connect(port));
        servers.push_back(n.accept(l));
    }
    without_gil(h, [] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
    size_t heap1 = heap_in_use(), rss1 = rss_bytes();
    size_t open = 0;
    for (const Value &s : servers) {
        if (!h.to_bool(h.getattr(s, "closed")) && !h.is_none(h.getattr(s, "peer_port"))) ++open;
    }
    std::printf("idle heap_bytes_per_conn %.1f\n", (static_cast<double>(heap1) - static_cast<double>(heap0)) / conns);
    std::printf("idle rss_bytes_per_conn %.1f\n", (static_cast<double>(rss1) - static_cast<double>(rss0)) / conns);
    std::printf("idle conns %zu\n", open);
    for (Value &s : servers) h.call_method(s, "close");
    for (int fd : clients) ::close(fd);
    h.call_method(l, "close");
    return open == conns ? 0 : 1;
}

// ---- load: import (load + init), unload and reload of the module, COUNT times ----

int load(Host &h, size_t count) {
    auto ms = [](Clock::time_point t0) { return seconds_since(t0) * 1e3; };
    auto t0 = Clock::now();
    h.import("net");
    double first = ms(t0);
    h.unload("net");
    std::vector<double> imports, unloads, reloads;
    size_t cycles = 0;
    for (size_t i = 0; i < count; ++i) {
        t0 = Clock::now();
        Value m = h.import("net");
        imports.push_back(ms(t0));
        bool loaded = h.loaded_library_count() == 1 && static_cast<bool>(h.getattr(m, "SocketIO"));
        m = Value();
        t0 = Clock::now();
        h.unload("net");
        unloads.push_back(ms(t0));
        if (loaded && h.loaded_library_count() == 0) ++cycles;
    }
    h.import("net");
    for (size_t i = 0; i < count; ++i) {
        t0 = Clock::now();
        h.reload("net");
        reloads.push_back(ms(t0));
    }
    h.unload("net");
    std::printf("load import_first_ms %.3f\n", first);
    std::printf("load import_ms %.3f\n", median(imports));
    std::printf("load unload_ms %.3f\n", median(unloads));
    std::printf("load reload_ms %.3f\n", median(reloads));
    std::printf("load cycles %zu\n", cycles);
    return cycles == count ? 0 : 1;
}

// ---- swap: live reload of net with SOCKETS open sockets, COUNT times ----

int swap(Host &h, size_t sockets, size_t count) {
    raise_fd_limit(2 * sockets + 1024);  // each socket and its duplicate during a swap
    Net n{h};
    std::vector<Value> open;
    open.reserve(sockets);
    if (sockets > 0) {
        Value l = n.listener(4096);
        int64_t port = n.port_of(l);
        while (open.size() + 2 <= sockets) {
            open.push_back(n.connect(port));
            open.push_back(n.accept(l));
        }
        if (open.size() < sockets) open.push_back(n.socket());
        h.call_method(l, "close");
    }
    std::vector<double> times;
    size_t moved_all = 0;
    for (size_t i = 0; i < count; ++i) {
        auto t0 = Clock::now();
        refhost::ReloadResult r = h.reload_live("net");
        times.push_back(seconds_since(t0) * 1e3);
        if (r.live && r.moved >= sockets) ++moved_all;
    }
    // Each socket still works on the new code: the pairs exchange a byte.
    size_t working = 0;
    for (size_t i = 0; i + 1 < open.size(); i += 2) {
        h.call_method(open[i], "write", {h.bytes("x")});
        if (h.len(h.call_method(open[i + 1], "read", {h.integer(1)})) == 1) working += 2;
    }
    if (open.size() % 2) working += h.to_bool(h.getattr(open.back(), "closed")) ? 0 : 1;
    for (Value &s : open) h.call_method(s, "close");
    std::printf("swap_%zu swap_ms %.3f\n", sockets, median(times));  // bench.py's workload swap_<SOCKETS>
    std::printf("swap_%zu sockets %zu\n", sockets, working);
    std::printf("swap_%zu swaps %zu\n", sockets, moved_all);
    return working == sockets && moved_all == count ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
    auto usage = [&] {
        std::fprintf(stderr,
                     "usage: %s PLUGIN_DIR WORKLOAD ARGS...\n"
                     "  pingpong SIZE COUNT | udp_pingpong SIZE COUNT | bulk TOTAL CHUNK | lines COUNT |\n"
                     "  accept COUNT | fanin CONNS ROUNDS SIZE THREADS | idle CONNS | load COUNT |\n"
                     "  swap SOCKETS COUNT\n",
                     argv[0]);
        return 2;
    };
    if (argc < 4) return usage();
    std::string mode = argv[2];
    std::vector<size_t> a;
    for (int i = 3; i < argc; ++i) a.push_back(std::strtoull(argv[i], nullptr, 10));
    raise_fd_limit();
    // One arena, so that mallinfo2() sees the loop thread's blocks too. Only for `idle`:
    // elsewhere it would make the threads contend for one arena.
    if (mode == "idle") mallopt(M_ARENA_MAX, 1);

    Host host(refhost::HostOptions{{argv[1]}, false, false});
    int rc = 2;
    try {
        Gil gil(host);
        if (mode == "pingpong" && a.size() == 2) rc = pingpong(host, a[0], a[1]);
        else if (mode == "udp_pingpong" && a.size() == 2) rc = udp_pingpong(host, a[0], a[1]);
        else if (mode == "bulk" && a.size() == 2) rc = bulk(host, a[0], a[1]);
        else if (mode == "lines" && a.size() == 1) rc = lines(host, a[0]);
        else if (mode == "accept" && a.size() == 1) rc = accept_bench(host, a[0]);
        else if (mode == "fanin" && a.size() == 4) rc = fanin(host, a[0], a[1], a[2], std::max<size_t>(1, a[3]));
        else if (mode == "idle" && a.size() == 1) rc = idle(host, a[0]);
        else if (mode == "load" && a.size() == 1) rc = load(host, a[0]);
        else if (mode == "swap" && a.size() == 2) rc = swap(host, a[0], a[1]);
        else return usage();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "plugin_bench: %s\n", e.what());
        return 1;
    }
    return rc;
}
