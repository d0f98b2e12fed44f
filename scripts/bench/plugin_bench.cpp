// plugin_bench.cpp - the workloads of raw_c.c through the `net` plugin, imported by
// the reference host from a plugin directory and driven through the host ABI as an
// interpreter would: both ends are net.SocketIO objects on two interpreter threads.
// Prints "workload metric value" lines, like raw_c.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "refhost.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::Value;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Reads exactly n bytes through sock.read(n - got).
void read_exact(Host &h, const Value &sock, size_t n) {
    size_t got = 0;
    while (got < n) {
        Value chunk = h.call_method(sock, "read", {h.integer(static_cast<int64_t>(n - got))});
        size_t len = h.len(chunk);
        if (len == 0) throw std::runtime_error("unexpected end of stream");
        got += len;
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s PLUGIN_DIR pingpong SIZE COUNT | PLUGIN_DIR bulk TOTAL CHUNK\n",
                     argv[0]);
        return 2;
    }
    std::string mode = argv[2];
    size_t a = std::strtoull(argv[3], nullptr, 10);
    size_t b = std::strtoull(argv[4], nullptr, 10);

    Host host(refhost::HostOptions{{argv[1]}, false, false});
    try {
        Gil gil(host);
        Value net = host.import("net");
        Value socket_type = host.getattr(net, "SocketIO");
        Value listener = host.call(socket_type);
        host.call_method(listener, "bind", {host.tuple({host.str("127.0.0.1"), host.integer(0)})});
        host.call_method(listener, "listen");
        Value port = host.getattr(listener, "local_port");

        size_t received = 0;
        std::string server_error;
        std::thread server([&] {
            Gil g(host);
            try {
                Value pair = host.call_method(listener, "accept");
                Value conn = host.item(pair, 0);
                if (mode == "pingpong") {
                    for (size_t i = 0; i < b; ++i) {
                        std::string msg;
                        while (msg.size() < a) {
                            msg += host.to_bytes(host.call_method(conn, "read", {host.integer(static_cast<int64_t>(a - msg.size()))}));
                        }
                        host.call_method(conn, "write", {host.bytes(msg)});
                    }
                } else {
                    Value size = host.integer(65536);
                    for (;;) {
                        size_t len = host.len(host.call_method(conn, "read", {size}));
                        if (len == 0) break;
                        received += len;
                    }
                }
                host.call_method(conn, "close");
            } catch (const std::exception &e) {
                server_error = e.what();
            }
        });

        Value client = host.call(socket_type);
        host.call_method(client, "connect", {host.tuple({host.str("127.0.0.1"), port})});
        if (mode == "pingpong") {
            Value msg = host.bytes(std::string(a, 'p'));
            auto t0 = std::chrono::steady_clock::now();
            for (size_t i = 0; i < b; ++i) {
                host.call_method(client, "write", {msg});
                read_exact(host, client, a);
            }
            double t = seconds_since(t0);
            std::printf("pingpong_%zu rtt_us %.3f\n", a, t / static_cast<double>(b) * 1e6);
            host.call_method(client, "close");
            {
                // Let the server thread take the lock to finish.
                void *token = host.table()->release_lock();
                server.join();
                host.table()->acquire_lock(token);
            }
        } else {
            size_t total = a, chunk = b;
            Value data = host.bytes(std::string(chunk, 'b'));
            auto t0 = std::chrono::steady_clock::now();
            for (size_t sent = 0; sent < total; sent += chunk) host.call_method(client, "write", {data});
            host.call_method(client, "close");
            void *token = host.table()->release_lock();
            server.join();
            host.table()->acquire_lock(token);
            double t = seconds_since(t0);
            if (received != total) {
                std::fprintf(stderr, "bulk: received %zu of %zu bytes\n", received, total);
                return 1;
            }
            std::printf("bulk mib_per_s %.1f\n", static_cast<double>(total) / t / (1024.0 * 1024.0));
            std::printf("bulk bytes %zu\n", received);
        }
        if (!server_error.empty()) {
            std::fprintf(stderr, "server: %s\n", server_error.c_str());
            return 1;
        }
        host.call_method(listener, "close");
    } catch (const std::exception &e) {
        std::fprintf(stderr, "plugin_bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
