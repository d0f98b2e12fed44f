// Live reload of the net plugin (issue: hot-swap without dropping a connection): a
// rebuilt ksp_net.so takes over the running one's sockets while scripts use them, and
// nothing is lost, duplicated or refused. Two builds alternate (tests/plugin/meson.build:
// ksp_net_rebuilt has another version string, ksp_net_format1 writes and reads the state
// format of the version before this one).
#include <arpa/inet.h>
#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "net_fixture.hpp"

using namespace nettest;

namespace {

std::string rebuild_dir() {
    const char *dir = std::getenv("KSNET_REBUILD_DIR");
    REQUIRE_MESSAGE(dir != nullptr, "KSNET_REBUILD_DIR is not set (run through meson test)");
    return dir;
}

// A plugin directory of the case's own, whose ksp_net.so the case replaces as a
// developer's rebuild would.
struct PluginDir {
    std::string path;
    PluginDir() {
        std::string templ = std::filesystem::temp_directory_path().string() + "/ksnet-reload-XXXXXX";
        REQUIRE(mkdtemp(templ.data()) != nullptr);
        path = templ;
        install(plugin_dir() + "/ksp_net.so");
    }
    ~PluginDir() { std::filesystem::remove_all(path); }
    void install(const std::string &from) {
        // A new file (not the old one rewritten): what a build or `cp` leaves behind.
        std::string next = path + "/ksp_net.so.new";
        std::filesystem::copy_file(from, next, std::filesystem::copy_options::overwrite_existing);
        std::filesystem::rename(next, path + "/ksp_net.so");
    }
    void install_build(const char *variant) { install(rebuild_dir() + "/ksp_net_" + std::string(variant) + ".so"); }
};

// Built before the host that searches it, removed after; `first`: the build it holds
// at first, if not this one (ksp_net_<first>.so).
struct OwnPluginDir {
    PluginDir dir;
    explicit OwnPluginDir(const char *first) {
        if (first != nullptr) dir.install_build(first);
    }
};

// net imported from a PluginDir, with the end-of-case checks of NetFixture.
// A script's call on a thread of its own, which holds the interpreter lock as a script
// thread does (the call releases it while it waits). `outcome`: what `call` returned, or
// the message of what it raised; `ended` once it has.
struct ScriptCall {
    waits::ThreadMark mark;
    std::string outcome;
    std::atomic<bool> ended{false};
    std::thread thread;

    ScriptCall(refhost::Host &host, std::function<std::string()> call)
        : thread([this, &host, call = std::move(call)] {
              Gil g(host);
              mark.here();
              try {
                  outcome = call();
              } catch (const std::exception &e) {
                  outcome = e.what();
              }
              ended = true;
          }) {}
    // Until its call, back from the kernel, waits for the interpreter lock this thread
    // holds (through a swap, say).
    void wait_for_the_lock() const {
        const std::string in_futex = std::to_string(SYS_futex);
        waits::wait_until([&] { return waits::blocked_in_the_kernel(mark.tid) && waits::task_state(mark.tid).syscall == in_futex; },
                          "the script thread to wait for the interpreter lock");
    }
};

struct ReloadFixture : OwnPluginDir, NetFixture {
    explicit ReloadFixture(bool checking = false, uint16_t abi_minor = KSP_ABI_MINOR, const char *first = nullptr)
        : OwnPluginDir(first), NetFixture(checking, abi_minor, dir.path) {}

    bool rebuilt = false;  // which build serves now

    // net.SocketIO as a script names it: after a reload, the new version's type.
    Value socket_type() { return host.getattr(net, "SocketIO"); }

    // Installs the other build and reloads it live.
    refhost::ReloadResult swap() {
        rebuilt = !rebuilt;
        if (rebuilt) dir.install_build("rebuilt");
        else dir.install(plugin_dir() + "/ksp_net.so");
        return host.reload_live("net");
    }

    Value listener() {
        Value s = host.call(socket_type());
        host.call_method(s, "bind", {addr("127.0.0.1", 0)});
        host.call_method(s, "listen", {host.integer(128)});
        return s;
    }
    std::pair<Value, Value> connected_pair(const Value &l) {
        Value c = host.call(socket_type());
        host.call_method(c, "connect", {addr("127.0.0.1", port_of(l))});
        Value pair = host.call_method(l, "accept");
        return {c, host.item(pair, 0)};
    }

    // A call blocked through a live reload: `call` runs on a script thread until it
    // blocks, then the swap, then `unblock` (on this thread); what the call returned
    // (bytes) or the error it raised.
    struct BlockedCall {
        bool live = false;
        std::string got, error;
    };
    BlockedCall swap_while_blocked(const char *what, const std::function<Value()> &call,
                                   const std::function<void()> &unblock) {
        BlockedCall out;
        bool raised = true;
        ScriptCall caller(host, [&] {
            std::string got = host.to_bytes(call());
            raised = false;
            return got;
        });
        bool blocked = false;
        without_gil([&] { blocked = waits::wait_until_blocked(caller.mark, what); });
        if (blocked) {
            out.live = swap().live;
            unblock();
        }
        without_gil([&] { caller.thread.join(); });
        REQUIRE(blocked);
        (raised ? out.error : out.got) = caller.outcome;
        return out;
    }
};

// How many swaps a long case makes: `normal`, or KSNET_RELOAD_SWAPS (fewer under a
// sanitizer, see tests/plugin/meson.build).
int swaps_or(int normal) {
    const char *n = std::getenv("KSNET_RELOAD_SWAPS");
    return n && *n ? std::min(normal, std::atoi(n)) : normal;
}

// Bytes a connection carries: the same for the sender and the checker.
std::string pattern(uint64_t seed, size_t n) {
    std::mt19937_64 rng(seed);
    std::string out(n, '\0');
    for (char &c : out) c = static_cast<char>(rng());
    return out;
}

}  // namespace

TEST_CASE("live_reload_keeps_connections_unread_bytes_and_the_module") {
    ReloadFixture f(true);
    Value l = f.listener();
    auto [c, s] = f.connected_pair(l);
    f.host.call_method(c, "write", {f.host.bytes("one\ntwo\nthr")});
    Value lines = f.host.iter(s);
    CHECK(f.host.to_bytes(f.host.next(lines)) == "one");  // "two\nthr" stay buffered
    f.host.call_method(s, "settimeout", {f.host.floating(7.5)});

    refhost::ReloadResult r = f.swap();
    CHECK(r.live);
    CHECK(r.moved == 3);  // listener, client, server side
    CHECK(r.module.get() == f.net.get());  // `net` in a script is still the module
    CHECK(f.host.loaded_library_count() == 1);  // the old copy is unmapped

    CHECK(f.host.to_bytes(f.host.next(lines)) == "two");
    f.host.call_method(c, "write", {f.host.bytes("ee\n")});
    CHECK(f.host.to_bytes(f.host.next(lines)) == "three");
    CHECK(f.host.to_float(f.host.call_method(s, "gettimeout")) == 7.5);
    f.host.call_method(s, "write", {f.host.bytes("back")});
    CHECK(f.host.to_bytes(f.host.call_method(c, "read", {f.host.integer(4)})) == "back");
    auto [c2, s2] = f.connected_pair(l);  // the listener listens on, on the new code
    f.host.call_method(c2, "write", {f.host.bytes("new")});
    CHECK(f.host.to_bytes(f.host.call_method(s2, "read", {f.host.integer(3)})) == "new");
    for (Value *v : {&c, &s, &c2, &s2, &l}) f.host.call_method(*v, "close");
}

TEST_CASE("live_reload_lets_a_blocked_read_finish_on_the_new_version") {
    ReloadFixture f(true);
    Value l = f.listener();
    auto [c, s] = f.connected_pair(l);
    auto o = f.swap_while_blocked(
        "the read", [&] { return f.host.call_method(s, "read", {f.host.integer(100)}); },
        [&] { f.host.call_method(c, "write", {f.host.bytes("after")}); });
    CHECK(o.live);
    CHECK(o.error == "");
    CHECK(o.got == "after");
    // The read returned through the new code: nothing keeps the old copy mapped.
    CHECK(f.host.loaded_library_count() == 1);
    for (Value *v : {&c, &s, &l}) f.host.call_method(*v, "close");
}

// A call's timeout counts from when the script called, not from its last try: a read
// with a timeout of 1 s, through a swap every 0.2 s, times out while the swaps go on.
// (Before ABI 1.5's call_began_ns, each swap started the timeout over: it ended only
// once the swaps stopped.)
TEST_CASE("live_reload_keeps_the_deadline_of_a_call_waiting_through_it") {
    constexpr int kSwaps = 20;
    ReloadFixture f;
    Value l = f.listener();
    auto [c, s] = f.connected_pair(l);
    ScriptCall reader(f.host, [&] {
        f.host.call_method(s, "read", {f.host.integer(10), f.host.floating(1.0)});
        return std::string("read");
    });
    REQUIRE(f.wait_until_blocked(reader.mark, "the read"));
    int swaps = 0;
    while (!reader.ended.load() && swaps < kSwaps) {
        CHECK(f.swap().live);
        ++swaps;
        f.without_gil([] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); });
    }
    f.without_gil([&] { reader.thread.join(); });
    CHECK(reader.outcome == "read: timed out");
    CHECK_MESSAGE(swaps < kSwaps, "the read outlasted ", swaps, " swaps 0.2 s apart");
    for (Value *v : {&c, &s, &l}) f.host.call_method(*v, "close");
}

// UDP's receive is the caller's own system call too: the reload wakes it, and the call
// finishes on the new version with the datagram sent after the swap.
TEST_CASE("live_reload_lets_a_blocked_udp_recvfrom_finish_on_the_new_version") {
    ReloadFixture f(true);
    Value rx = f.socket("INET4", "UDP");
    f.host.call_method(rx, "bind", {f.addr("127.0.0.1", 0)});
    Value tx = f.socket("INET4", "UDP");
    int64_t port = f.port_of(rx);
    auto o = f.swap_while_blocked(
        "the recvfrom", [&] { return f.host.item(f.host.call_method(rx, "recvfrom", {f.host.integer(100)}), 0); },
        [&] { f.host.call_method(tx, "sendto", {f.host.bytes("after"), f.addr("127.0.0.1", port)}); });
    CHECK(o.live);
    CHECK(o.error == "");
    CHECK(o.got == "after");
    CHECK(f.host.loaded_library_count() == 1);
    for (Value *v : {&rx, &tx}) f.host.call_method(*v, "close");
}

TEST_CASE("live_reload_1000_swaps_while_100_connections_carry_checksummed_streams") {
    const int swaps = swaps_or(1000);
    constexpr int kConnections = 100;
    ReloadFixture f;
    Value l = f.listener();
    std::vector<std::pair<Value, Value>> conns;
    for (int i = 0; i < kConnections; ++i) conns.push_back(f.connected_pair(l));
    f.host.call_method(l, "close");

    // Each client sends chunks of its own pattern and reads them back from the server
    // side, which echoes what it reads: both directions carry every byte, and the
    // client compares each byte it gets back with what it sent.
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> echoed{0}, mismatches{0}, errors{0};
    std::vector<std::string> first_error(kConnections);
    std::vector<std::thread> threads;
    for (int i = 0; i < kConnections; ++i) {
        threads.emplace_back([&, i, server = conns[i].second] {
            Gil g(f.host);
            try {
                for (;;) {
                    Value data = f.host.call_method(server, "read", {f.host.integer(65536)});
                    if (f.host.len(data) == 0) break;
                    f.host.call_method(server, "write", {data});
                }
            } catch (const std::exception &e) {
                ++errors;
                first_error[i] = std::string("server: ") + e.what();
            }
        });
        threads.emplace_back([&, i, client = conns[i].first] {
            Gil g(f.host);
            std::mt19937 sizes(static_cast<unsigned>(i));
            std::string stream = pattern(static_cast<uint64_t>(i), 1 << 20);
            size_t at = 0;
            try {
                while (!stop.load()) {
                    size_t n = 1 + sizes() % (32 * 1024);
                    if (at + n > stream.size()) at = 0;
                    std::string chunk = stream.substr(at, n);
                    at += n;
                    f.host.call_method(client, "write", {f.host.bytes(chunk)});
                    std::string back;
                    while (back.size() < n) {
                        Value part = f.host.call_method(client, "read", {f.host.integer(static_cast<int64_t>(n - back.size()))});
                        if (f.host.len(part) == 0) throw std::runtime_error("end of stream in the middle of an echo");
                        back += f.host.to_bytes(part);
                    }
                    if (back != chunk) ++mismatches;
                    echoed += n;
                }
                f.host.call_method(client, "close");
            } catch (const std::exception &e) {
                ++errors;
                first_error[i] = std::string("client: ") + e.what();
            }
        });
    }

    const int maps_before = census::mappings_of(f.host.copy_dir() + "/");
    int live = 0;
    for (int i = 0; i < swaps; ++i) {
        refhost::ReloadResult r = f.swap();
        live += r.live && r.moved >= 2 * kConnections;
        // Traffic between every two swaps, not only around the first and the last.
        uint64_t seen = echoed.load();
        f.without_gil([&] { waits::wait_until([&] { return echoed.load() > seen; }, "traffic after a swap"); });
    }
    CHECK(live == swaps);
    f.without_gil([&] {
        stop = true;
        for (auto &t : threads) t.join();
    });
    // No growth: with no call returning through them any more, the old versions are
    // torn down (their loops and descriptors gone) and unmapped. The fixture checks
    // descriptors and threads once everything is closed.
    CHECK(census::mappings_of(f.host.copy_dir() + "/") == maps_before);
    CHECK(f.host.loaded_library_count() == 1);
    for (const std::string &e : first_error) CHECK(e == "");
    CHECK(errors.load() == 0);
    CHECK(mismatches.load() == 0);
    CHECK(echoed.load() > 0);
    MESSAGE(swaps << " swaps, " << echoed.load() << " bytes echoed over " << kConnections << " connections");
    for (auto &[c, s] : conns) f.host.call_method(s, "close");
}

TEST_CASE("live_reload_with_64_threads_blocked_in_read_accept_and_connect") {
    constexpr int kReaders = 32, kAcceptors = 16, kConnectors = 16;
    constexpr int kThreads = kReaders + kAcceptors + kConnectors;
    ReloadFixture f;
    Value l = f.listener();
    std::vector<std::pair<Value, Value>> conns;
    for (int i = 0; i < kReaders; ++i) conns.push_back(f.connected_pair(l));
    // Connects block on a listener whose backlog is full: the kernel drops their SYNs
    // and sends them again a second later. Fill it until a connect times out.
    Value full = f.host.call(f.socket_type());
    f.host.call_method(full, "bind", {f.addr("127.0.0.1", 0)});
    f.host.call_method(full, "listen", {f.host.integer(kConnectors)});
    std::vector<Value> fillers;
    for (int i = 0; i < 4 * kConnectors; ++i) {
        Value c = f.host.call(f.socket_type());
        try {
            f.host.call_method(c, "connect", {f.addr("127.0.0.1", f.port_of(full)), f.host.floating(0.2)});
        } catch (const ScriptError &) {
            break;  // full
        }
        fillers.push_back(c);
    }
    std::vector<std::string> results(kThreads);
    std::vector<Value> connectors(kConnectors);
    std::vector<waits::ThreadMark> marks(kThreads);
    std::vector<std::thread> threads;
    auto run = [&](int i, const std::function<std::string()> &body) {
        threads.emplace_back([&, i, body] {
            Gil g(f.host);
            marks[i].here();
            try {
                results[i] = body();
            } catch (const std::exception &e) {
                results[i] = std::string("error: ") + e.what();
            }
        });
    };
    for (int i = 0; i < kReaders; ++i) {
        run(i, [&, s = conns[i].second] { return f.host.to_bytes(f.host.call_method(s, "read", {f.host.integer(100)})); });
    }
    for (int i = kReaders; i < kReaders + kAcceptors; ++i) {
        run(i, [&] {
            Value conn = f.host.item(f.host.call_method(l, "accept"), 0);
            std::string got = f.host.to_bytes(f.host.call_method(conn, "read", {f.host.integer(100)}));
            f.host.call_method(conn, "close");
            return got;
        });
    }
    for (int i = 0; i < kConnectors; ++i) connectors[i] = f.host.call(f.socket_type());
    for (int i = kReaders + kAcceptors; i < kThreads; ++i) {
        run(i, [&, c = connectors[i - kReaders - kAcceptors]] {
            f.host.call_method(c, "connect", {f.addr("127.0.0.1", f.port_of(full))});
            return std::string("connected");
        });
    }
    int blocked = 0;
    f.without_gil([&] {
        for (auto &m : marks) blocked += waits::wait_until_blocked(m, "a blocked call");
    });
    CHECK(blocked == kThreads);  // (the threads are let go below either way)
    for (int round = 0; round < 5; ++round) CHECK(f.swap().live);

    for (int i = 0; i < kReaders; ++i) f.host.call_method(conns[i].first, "write", {f.host.bytes("r" + std::to_string(i))});
    std::vector<Value> clients;
    for (int i = 0; i < kAcceptors; ++i) {
        Value c = f.host.call(f.socket_type());
        f.host.call_method(c, "connect", {f.addr("127.0.0.1", f.port_of(l))});
        f.host.call_method(c, "write", {f.host.bytes("a")});
        clients.push_back(c);
    }
    // Room in the backlog: the connects get through with their SYNs' next try.
    std::vector<Value> served;
    for (size_t n = 0; n < fillers.size() + kConnectors; ++n) {
        served.push_back(f.host.item(f.host.call_method(full, "accept", {f.host.floating(10.0)}), 0));
    }
    f.without_gil([&] {
        for (auto &t : threads) t.join();
    });
    for (int i = 0; i < kReaders; ++i) CHECK(results[i] == "r" + std::to_string(i));
    for (int i = kReaders; i < kReaders + kAcceptors; ++i) CHECK(results[i] == "a");
    for (int i = kReaders + kAcceptors; i < kThreads; ++i) CHECK(results[i] == "connected");
    for (auto *group : {&clients, &served, &fillers, &connectors}) {
        for (Value &v : *group) f.host.call_method(v, "close");
    }
    for (auto &[c, s] : conns) {
        f.host.call_method(c, "close");
        f.host.call_method(s, "close");
    }
    f.host.call_method(l, "close");
    f.host.call_method(full, "close");
}

// A connect whose system call ends while a live reload moves its socket: the caller,
// blocked in the kernel with no timeout, comes back from connect() only to wait for the
// interpreter lock, which this thread holds through the swap. `complete` lets the
// kernel answer the connect (the SYN's next try, a second after the first was dropped).
std::string connect_ended_across_a_swap(ReloadFixture &f, Value &client,
                                        const std::function<void(Value &full)> &complete) {
    // A listener whose backlog is full: the kernel drops the client's SYN.
    Value full = f.host.call(f.socket_type());
    f.host.call_method(full, "bind", {f.addr("127.0.0.1", 0)});
    f.host.call_method(full, "listen", {f.host.integer(0)});
    std::vector<Value> fillers;
    for (;;) {
        Value c = f.host.call(f.socket_type());
        try {
            f.host.call_method(c, "connect", {f.addr("127.0.0.1", f.port_of(full)), f.host.floating(0.2)});
        } catch (const ScriptError &) {
            break;  // full (the timed-out socket closed itself)
        }
        fillers.push_back(c);
    }
    REQUIRE(!fillers.empty());
    client = f.host.call(f.socket_type());
    ScriptCall caller(f.host, [&] {
        f.host.call_method(client, "connect", {f.addr("127.0.0.1", f.port_of(full))});
        return std::string("connected");
    });
    const std::string in_connect = std::to_string(SYS_connect);
    f.wait_until([&] { return caller.mark.set() && waits::task_state(caller.mark.tid).syscall == in_connect; },
                 "the connect");
    complete(full);
    // The connect returned and its thread waits for the lock: swap now.
    caller.wait_for_the_lock();
    CHECK(f.swap().live);
    f.without_gil([&] { caller.thread.join(); });
    const std::string outcome = caller.outcome;
    if (!f.host.to_bool(f.host.getattr(full, "closed"))) {
        // The client's connection works: what it writes arrives on the server's side.
        f.host.call_method(client, "write", {f.host.bytes("after")});
        for (size_t n = 0; n <= fillers.size(); ++n) {
            Value pair = f.host.call_method(full, "accept", {f.host.floating(10.0)});
            Value served = f.host.item(pair, 0);
            if (f.host.to_int(f.host.getattr(served, "peer_port")) == f.port_of(client)) {
                CHECK(f.host.to_bytes(f.host.call_method(served, "read", {f.host.integer(5)})) == "after");
                n = fillers.size();
            }
            f.host.call_method(served, "close");
        }
        f.host.call_method(full, "close");
    }
    for (Value &c : fillers) f.host.call_method(c, "close");
    f.host.call_method(client, "close");
    return outcome;
}

// The wait slice of an hour keeps the blocking connect in the kernel until it is answered.
struct LongWaitSlice {
    LongWaitSlice() { setenv("KSNET_WAIT_SLICE_MS", "3600000", 1); }
    ~LongWaitSlice() { unsetenv("KSNET_WAIT_SLICE_MS"); }
};

TEST_CASE("live_reload_as_a_connect_returns_hands_the_connection_to_the_new_version") {
    LongWaitSlice slice;
    ReloadFixture f;
    Value client;
    std::string outcome = connect_ended_across_a_swap(f, client, [&](Value &full) {
        // Room in the backlog: the SYN's next try gets through.
        Value pair = f.host.call_method(full, "accept");
        f.host.call_method(f.host.item(pair, 0), "close");
    });
    CHECK(outcome == "connected");
}

TEST_CASE("live_reload_as_a_connect_is_refused_reports_the_refusal") {
    LongWaitSlice slice;
    ReloadFixture f;
    Value client;
    std::string outcome = connect_ended_across_a_swap(f, client, [&](Value &full) {
        f.host.call_method(full, "close");  // the SYN's next try meets a closed port
    });
    CHECK_MESSAGE(outcome.find("ECONNREFUSED") != std::string::npos, outcome);
}

TEST_CASE("live_reload_as_an_accept_finds_a_connection_hands_it_to_the_new_version") {
    // accept() with a timeout waits in poll() first, then calls accept4(). Here the wait
    // ends (a client came) and its thread waits for the interpreter lock, which this
    // thread holds through the swap: the accept4() that follows must be the new
    // version's, or the connection lands in the old listener, which closes it.
    ReloadFixture f;
    Value l = f.listener();
    int64_t peer_port = -1;
    ScriptCall acceptor(f.host, [&] {
        Value served = f.host.item(f.host.call_method(l, "accept", {f.host.floating(5.0)}), 0);
        peer_port = f.host.to_int(f.host.getattr(served, "peer_port"));
        f.host.call_method(served, "close");
        return std::string("accepted");
    });
    const std::string in_poll = std::to_string(SYS_poll), in_ppoll = std::to_string(SYS_ppoll);
    f.wait_until([&] {
        if (!acceptor.mark.set()) return false;
        std::string call = waits::task_state(acceptor.mark.tid).syscall;
        return call == in_poll || call == in_ppoll;
    }, "the accept's wait");
    int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(client >= 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(f.port_of(l)));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(client, reinterpret_cast<sockaddr *>(&to), sizeof to) == 0);
    acceptor.wait_for_the_lock();
    CHECK(f.swap().live);
    f.without_gil([&] { acceptor.thread.join(); });
    CHECK(acceptor.outcome == "accepted");
    sockaddr_in mine{};
    socklen_t len = sizeof mine;
    ::getsockname(client, reinterpret_cast<sockaddr *>(&mine), &len);
    CHECK(peer_port == ntohs(mine.sin_port));
    ::close(client);
    f.host.call_method(l, "close");
}

TEST_CASE("live_reload_lets_a_part_sent_write_finish_before_another_writers_bytes") {
    // One thread's write is part-sent (the peer reads nothing yet) when the swap moves
    // it; this thread, which holds the interpreter lock through the swap, writes next.
    // The first write's own thread must finish it first, or this thread's bytes land
    // between its two parts.
    ReloadFixture f;
    int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(server >= 0);
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof at;
    REQUIRE(::bind(server, reinterpret_cast<sockaddr *>(&at), sizeof at) == 0);
    REQUIRE(::listen(server, 1) == 0);
    REQUIRE(::getsockname(server, reinterpret_cast<sockaddr *>(&at), &len) == 0);
    Value w = f.host.call(f.socket_type());
    f.host.call_method(w, "connect", {f.addr("127.0.0.1", ntohs(at.sin_port))});
    int peer = ::accept(server, nullptr, nullptr);
    REQUIRE(peer >= 0);
    const std::string first(16 << 20, 'b'), second = "second writer";
    ScriptCall writer(f.host, [&] {
        f.host.call_method(w, "write", {f.host.bytes(first)});
        return std::string("written");
    });
    const std::string in_send = std::to_string(SYS_sendto);
    f.wait_until([&] {
        return writer.mark.set() && waits::blocked_in_the_kernel(writer.mark.tid) &&
               waits::task_state(writer.mark.tid).syscall == in_send;
    }, "the first write to wait for room");
    CHECK(f.swap().live);
    std::string got;
    std::thread reader([&] {
        char buf[65536];
        for (ssize_t n; (n = ::recv(peer, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
    });
    f.host.call_method(w, "write", {f.host.bytes(second), f.host.floating(30.0)});
    f.without_gil([&] { writer.thread.join(); });
    CHECK(writer.outcome == "written");
    f.host.call_method(w, "close");
    f.without_gil([&] { reader.join(); });
    CHECK(got.size() == first.size() + second.size());
    CHECK_MESSAGE(got.compare(0, first.size(), first) == 0, "the first write's bytes were split at ",
                  got.find_first_not_of('b'));
    CHECK(got.compare(first.size(), std::string::npos, second) == 0);
    ::close(peer);
    ::close(server);
}

TEST_CASE("live_reload_during_a_connect_storm_refuses_no_connection") {
    ReloadFixture f;
    Value l = f.listener();
    const int port = static_cast<int>(f.port_of(l));
    std::atomic<bool> stop{false};
    std::atomic<int> refused{0}, connected{0}, accepted{0};
    // Independent clients: plain sockets, not the plugin.
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
        clients.emplace_back([&] {
            while (!stop.load()) {
                int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                sockaddr_in a{};
                a.sin_family = AF_INET;
                a.sin_port = htons(static_cast<uint16_t>(port));
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0) {
                    ++connected;
                    char c;
                    (void)!::recv(fd, &c, 1, 0);  // until the server side closes
                } else if (errno == ECONNREFUSED) {
                    ++refused;
                }
                ::close(fd);
            }
        });
    }
    std::thread server([&] {
        Gil g(f.host);
        try {
            for (;;) {
                Value pair = f.host.call_method(l, "accept", {f.host.floating(0.5)});
                f.host.call_method(f.host.item(pair, 0), "close");
                ++accepted;
            }
        } catch (const std::exception &) {  // the timeout once the clients stopped
        }
    });
    for (int i = 0; i < 200; ++i) CHECK(f.swap().live);
    f.without_gil([&] {
        stop = true;
        for (auto &t : clients) t.join();
        server.join();
    });
    CHECK(refused.load() == 0);
    CHECK(connected.load() > 0);
    CHECK(accepted.load() == connected.load());
    f.host.call_method(l, "close");
}

TEST_CASE("live_reload_rolls_back_when_the_new_version_cannot_take_a_socket") {
    ReloadFixture f;
    Value l = f.listener();
    auto [c, s] = f.connected_pair(l);
    f.host.call_method(c, "write", {f.host.bytes("kept\nrest")});
    Value lines = f.host.iter(s);
    CHECK(f.host.to_bytes(f.host.next(lines)) == "kept");

    f.dir.install_build("format1");  // the version before, which cannot read this one's state
    ScriptError e = raised([&] { f.host.reload_live("net"); });
    CHECK(e.kind == KSP_ERR_IMPORT);
    std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(f.dir.path + "/ksp_net.so") != std::string::npos);
    CHECK(msg.find("restore") != std::string::npos);
    CHECK(msg.find("written in format 2, this version of net reads format 1") != std::string::npos);
    CHECK(f.host.loaded_library_count() == 1);

    // The old version serves on, unchanged.
    f.host.call_method(c, "write", {f.host.bytes("\n")});
    CHECK(f.host.to_bytes(f.host.next(lines)) == "rest");
    f.host.call_method(s, "write", {f.host.bytes("ok")});
    CHECK(f.host.to_bytes(f.host.call_method(c, "read", {f.host.integer(2)})) == "ok");

    std::ofstream(f.dir.path + "/ksp_net.so", std::ios::trunc) << "not a plugin";
    ScriptError e2 = raised([&] { f.host.reload_live("net"); });
    CHECK(std::string(e2.what()).find(f.dir.path + "/ksp_net.so") != std::string::npos);
    f.host.call_method(s, "write", {f.host.bytes("still")});
    CHECK(f.host.to_bytes(f.host.call_method(c, "read", {f.host.integer(5)})) == "still");
    for (Value *v : {&c, &s, &l}) f.host.call_method(*v, "close");
}

TEST_CASE("live_reload_from_the_version_before_keeps_every_connection") {
    // The version before wrote its state in an older format, which this one reads.
    ReloadFixture f(false, KSP_ABI_MINOR, "format1");
    Value l = f.listener();
    auto [c, s] = f.connected_pair(l);
    f.host.call_method(c, "write", {f.host.bytes("kept\nrest")});
    Value lines = f.host.iter(s);
    CHECK(f.host.to_bytes(f.host.next(lines)) == "kept");

    f.dir.install(plugin_dir() + "/ksp_net.so");
    REQUIRE(f.host.reload_live("net").live);
    f.host.call_method(c, "write", {f.host.bytes("\n")});
    CHECK(f.host.to_bytes(f.host.next(lines)) == "rest");
    f.host.call_method(s, "write", {f.host.bytes("ok")});
    CHECK(f.host.to_bytes(f.host.call_method(c, "read", {f.host.integer(2)})) == "ok");
    auto [c2, s2] = f.connected_pair(l);
    f.host.call_method(c2, "write", {f.host.bytes("new")});
    CHECK(f.host.to_bytes(f.host.call_method(s2, "read", {f.host.integer(3)})) == "new");
    for (Value *v : {&c, &s, &c2, &s2, &l}) f.host.call_method(*v, "close");
}

TEST_CASE("live_reload_then_a_reload_the_old_way_retires_what_a_script_kept") {
    // A live reload passes what the script kept on to the new version; a reload the old
    // way after it does not, as after one without a live reload before it.
    ReloadFixture f(true);
    Value kept_type = f.socket_type();
    Value kept_inet4 = f.enum_member("FK", "INET4");
    REQUIRE(f.swap().live);
    f.host.call_method(f.host.call(kept_type, {kept_inet4}), "close");
    Value net = f.host.reload("net");
    ScriptError e = raised([&] { f.host.call(kept_type, {kept_inet4}); });
    CHECK(std::string(e.what()).find("SocketIO is no longer available") != std::string::npos);
    Value fresh_type = f.host.getattr(net, "SocketIO");
    ScriptError e2 = raised([&] { f.host.call(fresh_type, {kept_inet4}); });
    CHECK(std::string(e2.what()).find("argument 'fk' must be a member of net.FK") != std::string::npos);
    Value inet4 = f.host.getattr(f.host.getattr(net, "FK"), "INET4");
    f.host.call_method(f.host.call(fresh_type, {inet4}), "close");
}

TEST_CASE("live_reload_in_a_host_of_abi_1_3_closes_the_sockets_and_says_so") {
    ReloadFixture f(false, 3);
    Value l = f.listener();
    refhost::ReloadResult r = f.swap();
    CHECK_FALSE(r.live);
    INFO(r.message);
    CHECK(r.message.find("closing") != std::string::npos);
    ScriptError e = raised([&] { f.host.call_method(l, "accept"); });  // the old way: gone
    CHECK(std::string(e.what()).find("unloaded") != std::string::npos);
}

TEST_CASE("live_reload_500_swaps_of_100_sockets_do_not_grow_the_heap") {
    mallopt(M_ARENA_MAX, 1);  // before any thread: mallinfo2 then sees every allocation
    ReloadFixture f;
    Value l = f.listener();
    std::vector<std::pair<Value, Value>> conns;
    for (int i = 0; i < 50; ++i) conns.push_back(f.connected_pair(l));
    for (int i = 0; i < 20; ++i) f.swap();  // what grows once (tables, the first blocks of each size)
    auto heap = [] { return static_cast<long>(mallinfo2().uordblks); };
    const int swaps = swaps_or(500);
    long before = heap();
    for (int i = 0; i < swaps; ++i) CHECK(f.swap().live);
    long grown = heap() - before;
    MESSAGE("heap after " << swaps << " swaps: " << grown << " bytes more");
    CHECK(grown < swaps * 64);  // less than 64 bytes a swap: nothing kept per swap
    for (auto &[c, s] : conns) {
        f.host.call_method(c, "write", {f.host.bytes("x")});  // every connection still works
        CHECK(f.host.to_bytes(f.host.call_method(s, "read", {f.host.integer(1)})) == "x");
        f.host.call_method(c, "close");
        f.host.call_method(s, "close");
    }
    f.host.call_method(l, "close");
}

TEST_CASE("live_reload_leaves_no_signal_handler_in_unmapped_code") {
    // The plugin's wake-up handler for SIGURG is code of one copy: when a reload unmaps
    // that copy, the next wake-up (a signal to a blocked thread) must not jump there.
    auto handler_is_mapped = [] {
        struct sigaction now {};
        REQUIRE(::sigaction(SIGURG, nullptr, &now) == 0);
        if (now.sa_handler == SIG_DFL || now.sa_handler == SIG_IGN) return true;
        Dl_info where{};
        return ::dladdr(reinterpret_cast<void *>(now.sa_handler), &where) != 0;
    };
    {
        ReloadFixture f;
        Value l = f.listener();
        auto [c, s] = f.connected_pair(l);
        for (int i = 0; i < 3; ++i) {
            CHECK(f.swap().live);
            CHECK(handler_is_mapped());
        }
        for (Value *v : {&c, &s, &l}) f.host.call_method(*v, "close");
    }
    CHECK(handler_is_mapped());  // after the last copy was unloaded too
}

// A script that took `SocketIO` and the enums from the module before a reload (`from net
// import SocketIO, FK`, or a member kept in a variable) goes on using them: the old type
// constructs on the serving version, and the old enums' members are members still.
TEST_CASE("live_reload_leaves_the_type_and_enums_a_script_kept_working") {
    ReloadFixture f(true);
    Value kept_type = f.socket_type();
    Value kept_fk = f.host.getattr(f.net, "FK");
    Value kept_inet6 = f.host.getattr(kept_fk, "INET6");
    Value kept_udp = f.enum_member("SK", "UDP");
    Value kept_close = f.host.getattr(kept_type, "close");
    for (int swap = 1; swap <= 2; ++swap) {  // the second: from a version that replaced the first
        CAPTURE(swap);
        REQUIRE(f.swap().live);
        Value s = f.host.call(kept_type, {kept_inet6, kept_udp});
        CHECK(f.host.type_name(s) == "net.SocketIO");
        CHECK(f.host.to_int(f.host.getattr(s, "fk")) == f.host.to_int(kept_inet6));
        CHECK(f.host.to_int(f.host.getattr(s, "sk")) == f.host.to_int(kept_udp));
        f.host.call_method(s, "bind", {f.addr("::1", 0)});
        CHECK(f.port_of(s) > 0);
        f.host.call(kept_close, {s});
        Value t = f.host.call(f.socket_type(), {f.host.getattr(kept_fk, "INET4")});  // new type, old enum
        f.host.call_method(t, "close");
    }
    CHECK(f.host.loaded_library_count() == 1);  // what the script kept pins no old copy
}
