// serve.cpp - `ksphost serve`: a line-echo server on 127.0.0.1, written against the
// `net` module as a script would use it, that reloads `net` live on SIGHUP. An
// interpreter developer rebuilds the plugin, copies it over the file `ksphost` loaded,
// sends SIGHUP, and the clients' connections go on, now served by the new code.
//
//   ksphost -I DIR serve [--port N]
//
// Threads: the main one listens and accepts, one per connection echoes lines, and one
// waits for signals with sigwait (every thread blocks SIGHUP, SIGINT and SIGTERM, so no
// Host call ever runs in a signal handler). SIGHUP: Host::reload_live("net"), and its
// result on stderr. SIGINT or SIGTERM: close every socket, join the threads, exit 0.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "cli/commands.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::ScriptError;
using refhost::Value;

namespace {

struct Connection {
    Value sock;  // touched only with the interpreter lock held
    std::string peer;
    std::thread thread;
    std::atomic<bool> done{false};
};

// Everything below is shared by the threads; `listener` and `connections` only with the
// interpreter lock held.
struct Server {
    explicit Server(Host& host) : h(host) {}
    Host& h;
    int port = 0;
    Value listener;
    std::list<std::unique_ptr<Connection>> connections;
    std::atomic<bool> stopping{false};
};

void log(const std::string& line) {
    std::fprintf(stderr, "serve: %s\n", line.c_str());
    std::fflush(stderr);
}

// A listening socket of the current `net` (after a reload the old way, the new version's).
// reuseaddr: so that listening again on the same port after such a reload succeeds.
Value listen_on(Host& h, int port) {
    Value sock = h.call(h.getattr(h.import("net"), "SocketIO"));
    h.call_method(sock, "setopt", {h.str("reuseaddr"), h.boolean(true)});
    h.call_method(sock, "bind", {h.tuple({h.str("127.0.0.1"), h.integer(port)})});
    h.call_method(sock, "listen");
    return sock;
}

// close() that cannot fail: a socket of a version reloaded the old way is closed already
// and no longer has a close method.
void close_quietly(Host& h, const Value& sock) {
    try {
        h.call_method(sock, "close");
    } catch (const ScriptError&) {
    }
}

// Echoes each line back until the client closes, the socket is closed, or it fails.
void echo(Server& s, Connection& c) {
    Gil g(s.h);
    try {
        Value lines = s.h.iter(c.sock);
        while (Value line = s.h.next(lines)) s.h.call_method(c.sock, "write", {s.h.bytes(s.h.to_bytes(line) + "\n")});
        s.h.call_method(c.sock, "close");
    } catch (const std::exception& e) {
        if (!s.stopping) log("connection " + c.peer + " ended: " + e.what());
        close_quietly(s.h, c.sock);  // the client hears of it now, not at the next accept
    }
    c.done = true;
}

// Joins the threads of connections that ended and drops their sockets. Lock held.
void reap(Server& s) {
    for (auto it = s.connections.begin(); it != s.connections.end();) {
        if (!(*it)->done) {
            ++it;
            continue;
        }
        void* token = s.h.table()->release_lock();  // an ending thread may still want the lock
        (*it)->thread.join();
        s.h.table()->acquire_lock(token);
        it = s.connections.erase(it);
    }
}

// True once `listener` takes no more connections: closed, or a socket of a version
// reloaded the old way (which has no `closed` any more).
bool listener_gone(Host& h, const Value& listener) {
    try {
        return h.to_bool(h.getattr(listener, "closed"));
    } catch (const ScriptError&) {
        return true;
    }
}

// Accepts until stopped. A listener closed by a reload the old way is replaced. Any other
// failure (out of descriptors, say) leaves the connection in the backlog: accept again a
// moment later, rather than spin or give the port up.
void accept_loop(Server& s) {
    constexpr auto kRetryAfter = std::chrono::milliseconds(100);
    bool failing = false;  // said once per run of failures
    while (!s.stopping) {
        Value pair;
        try {
            pair = s.h.call_method(s.listener, "accept");
        } catch (const std::exception& e) {
            if (s.stopping) break;
            if (listener_gone(s.h, s.listener)) {
                log(std::string("accept failed: ") + e.what() + "; listening again on 127.0.0.1:" + std::to_string(s.port));
                close_quietly(s.h, s.listener);
                s.listener = listen_on(s.h, s.port);
                continue;
            }
            if (!failing) {
                log(std::string("accept failed: ") + e.what() + "; trying again every " +
                    std::to_string(kRetryAfter.count()) + " ms");
            }
            failing = true;
            void* token = s.h.table()->release_lock();
            std::this_thread::sleep_for(kRetryAfter);
            s.h.table()->acquire_lock(token);
            reap(s);  // connections that ended give their descriptors back
            continue;
        }
        if (failing) log("accept works again");
        failing = false;
        reap(s);
        auto c = std::make_unique<Connection>();
        c->sock = s.h.item(pair, 0);
        c->peer = s.h.to_str(s.h.item(pair, 1));
        Connection& ref = *c;
        s.connections.push_back(std::move(c));
        ref.thread = std::thread([&s, &ref] { echo(s, ref); });
    }
}

// What one SIGHUP does: reload `net` live and say how it went.
void reload(Server& s) {
    Gil g(s.h);
    try {
        refhost::ReloadResult r = s.h.reload_live("net");
        if (r.live)
            log("net reloaded live, " + std::to_string(r.moved) + (r.moved == 1 ? " object" : " objects") +
                " moved: " + r.message);
        else
            log("net reloaded the old way (its sockets were closed): " + r.message);
    } catch (const ScriptError& e) {
        log(std::string("reload failed, the old version goes on serving: ") + refhost::error_kind_name(e.kind) + ": " +
            e.what());
    } catch (const std::exception& e) {
        log(std::string("reload failed: ") + e.what());
    }
}

// Closes the listener and every connection: the blocked calls return and the threads end.
void stop(Server& s) {
    Gil g(s.h);
    s.stopping = true;
    close_quietly(s.h, s.listener);
    for (auto& c : s.connections) close_quietly(s.h, c->sock);
}

void signal_loop(Server& s, const sigset_t& set) {
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            log("SIGHUP: reloading net");
            reload(s);
        } else {
            log(sig == SIGINT ? "SIGINT: stopping" : "SIGTERM: stopping");
            stop(s);
            return;
        }
    }
}

void usage(std::FILE* out) {
    std::fputs("usage: ksphost [-I DIR]... serve [--port N]\n\n"
               "Echoes every line a client sends back to it, on 127.0.0.1 port N (default 0: a free\n"
               "port, printed on the first line of output), through the `net` plugin.\n\n"
               "  kill -HUP PID    reload net live: the plugin file is loaded again (copy a rebuilt\n"
               "                   ksp_net.so over it first) and takes over every open socket; stderr\n"
               "                   says \"net reloaded live\", or why it reloaded the old way (the\n"
               "                   sockets closed; serve listens again), or why it failed (the old\n"
               "                   version goes on serving)\n"
               "  kill -TERM PID   (or Ctrl-C) close every socket and exit\n",
               out);
}

bool parse_port(const char* text, int& port) {
    char* end = nullptr;
    long n = std::strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || n < 0 || n > 65535) return false;
    port = static_cast<int>(n);
    return true;
}

}  // namespace

int serve_main(Host& h, int argc, char** argv) {
    Server s(h);
    for (int i = 1; i < argc; i++) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        } else if (arg == "--port") {
            if (i + 1 == argc) {
                std::fprintf(stderr, "ksphost serve: --port needs a number after it (0 to 65535)\n");
                return 2;
            }
            if (!parse_port(argv[++i], s.port)) {
                std::fprintf(stderr, "ksphost serve: --port needs a number from 0 to 65535, not '%s'\n", argv[i]);
                return 2;
            }
        } else {
            std::fprintf(stderr, "ksphost serve: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    // A log line to a stderr nobody reads any more (`serve 2>&1 | tee log`, tee gone)
    // must not end the server: the write fails instead.
    signal(SIGPIPE, SIG_IGN);
    // Before any thread starts, so that every thread inherits the mask.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);

    {
        Gil g(h);
        s.listener = listen_on(h, s.port);  // ScriptError is reported by main
        s.port = static_cast<int>(h.to_int(h.getattr(s.listener, "local_port")));
    }
    std::printf("serve: echoing lines on 127.0.0.1:%d (pid %d); SIGHUP reloads net live, SIGINT or SIGTERM stops\n",
                s.port, static_cast<int>(getpid()));
    std::fflush(stdout);

    std::thread signals([&] { signal_loop(s, set); });
    int status = 0;
    {
        Gil g(h);
        try {
            accept_loop(s);
        } catch (const std::exception& e) {
            log(std::string("cannot listen again: ") + e.what());
            status = 1;
        }
        void* token = h.table()->release_lock();
        if (status != 0) kill(getpid(), SIGTERM);  // the signal thread then closes everything
        signals.join();
        for (auto& c : s.connections) c->thread.join();
        h.table()->acquire_lock(token);
        s.connections.clear();
        s.listener = Value();
    }
    log("stopped");
    return status;
}
