// Load through the plugin: many connections at once with checked data, long runs of
// connect/accept/close with no growth, and many host threads blocking at once (the
// interpreter lock is free while they wait).
//
// KSNET_LOAD_CYCLES sets the number of connect/accept/close cycles (meson option
// load_cycles); the default is kDefaultCycles.
#include <malloc.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "net_fixture.hpp"
#include "raw_sockets.hpp"
#include "skip.hpp"

using namespace nettest;
using namespace std::chrono_literals;

namespace {

constexpr long kDefaultCycles = 100000;

// FNV-1a, 32 bits.
uint32_t fnv1a(std::string_view data) {
    uint32_t h = 2166136261u;
    for (unsigned char c : data) {
        h ^= c;
        h *= 16777619u;
    }
    return h;
}

void put32(std::string &out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint32_t get32(std::string_view in, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
    return v;
}

// A message: [total length][connection][sequence][payload][FNV-1a of all before it].
// The payload's length and bytes depend on (connection, sequence).
std::string make_message(uint32_t conn, uint32_t seq) {
    uint32_t mix = conn * 2654435761u ^ seq * 40503u;
    size_t payload = 1 + mix % 1500;
    std::string m;
    put32(m, static_cast<uint32_t>(12 + payload + 4));
    put32(m, conn);
    put32(m, seq);
    for (size_t i = 0; i < payload; ++i) m += static_cast<char>((mix >> (i % 24)) + i);
    put32(m, fnv1a(m));
    return m;
}

// Reads exactly n bytes (several reads if need be); throws at end of stream.
std::string read_exact(Host &h, const Value &sock, size_t n) {
    std::string out;
    while (out.size() < n) {
        std::string part = h.to_bytes(h.call_method(sock, "read", {h.integer(static_cast<int64_t>(n - out.size())),
                                                                    h.floating(60.0)}));
        if (part.empty()) throw std::runtime_error("end of stream after " + std::to_string(out.size()) + " bytes");
        out += part;
    }
    return out;
}

// One whole message, checked: its checksum and length. Returns it ("" if broken).
std::string read_message(Host &h, const Value &sock, std::string &problem) {
    std::string head = read_exact(h, sock, 4);
    uint32_t total = get32(head, 0);
    if (total < 16 || total > 4096) {
        problem = "bad length " + std::to_string(total);
        return "";
    }
    std::string m = head + read_exact(h, sock, total - 4);
    if (fnv1a(std::string_view(m).substr(0, total - 4)) != get32(m, total - 4)) {
        problem = "bad checksum";
        return "";
    }
    return m;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KSNET_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KSNET_SANITIZED 1
#endif
#endif

#ifdef KSNET_SANITIZED
}  // namespace
// From the sanitizer runtime (<sanitizer/allocator_interface.h>, which gcc does not ship).
extern "C" size_t __sanitizer_get_current_allocated_bytes(void);
namespace {
// The sanitizer's allocator replaces malloc's (mallinfo2 says 0), and its quarantine
// holds freed memory, so RSS says nothing either: ask the allocator what is in use.
size_t live_heap_bytes() { return __sanitizer_get_current_allocated_bytes(); }
constexpr bool kSanitized = true;
#else
size_t live_heap_bytes() { return mallinfo2().uordblks; }
constexpr bool kSanitized = false;
#endif

long rss_kib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    }
    return -1;
}

long cycles_to_run() {
    const char *env = std::getenv("KSNET_LOAD_CYCLES");
    long n = env ? std::atol(env) : kDefaultCycles;
    return n > 0 ? n : kDefaultCycles;
}

// Raises the soft descriptor limit to at least `want` (up to the hard limit) for a scope.
struct EnoughFds {
    std::optional<rawsock::FdLimit> raised;
    explicit EnoughFds(rlim_t want) {
        rlimit now{};
        ::getrlimit(RLIMIT_NOFILE, &now);
        if (now.rlim_cur < want) raised.emplace(std::min(want, now.rlim_max));
        ::getrlimit(RLIMIT_NOFILE, &now);
        REQUIRE_MESSAGE(now.rlim_cur >= want, "RLIMIT_NOFILE hard limit ", now.rlim_max, " is below ", want);
    }
};

}  // namespace

TEST_CASE("load_1000_connections_at_once_each_exchange_100_checksummed_messages_in_order") {
    constexpr int kConns = 1000, kMessages = 100, kClientThreads = 4, kServerThreads = 4;
    EnoughFds fds(2 * kConns + 256);
    // Checking mode keeps every released object (to catch stale handles), so it would
    // keep all 200,000 messages.
    NetFixture fx{false};
    auto &h = fx.host;
    const int sockets_before = census::open_sockets();
    Value l = h.call(fx.SocketIO);
    h.call_method(l, "bind", {fx.addr("127.0.0.1", 0)});
    h.call_method(l, "listen", {h.integer(kConns)});
    int64_t port = fx.port_of(l);
    auto t0 = std::chrono::steady_clock::now();

    std::vector<Value> accepted;
    std::string accept_error;
    std::thread acceptor([&] {
        Gil g(h);
        try {
            for (int i = 0; i < kConns; ++i) accepted.push_back(h.item(h.call_method(l, "accept", {h.floating(60.0)}), 0));
        } catch (const std::exception &e) {
            accept_error = e.what();
        }
    });
    // Clients: each thread connects its share, then, round by round, writes one message
    // on every connection and reads every echo back.
    std::vector<std::vector<Value>> client_socks(kClientThreads);
    std::vector<std::string> client_errors(kClientThreads);
    std::atomic<int> echoes_ok{0};
    std::atomic<int> connected{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> clients;
    for (int t = 0; t < kClientThreads; ++t) {
        clients.emplace_back([&, t] {
            Gil g(h);
            try {
                for (int i = t; i < kConns; i += kClientThreads) {
                    Value c = h.call(fx.SocketIO);
                    h.call_method(c, "connect", {fx.addr("127.0.0.1", port), h.floating(60.0)});
                    client_socks[t].push_back(c);
                    ++connected;
                }
                bool going = false;
                fx.without_gil([&] { going = waits::wait_until([&] { return go.load(); }, "the servers to start", 120s); });
                if (!going) throw std::runtime_error("the servers never started");
                auto &mine = client_socks[t];
                for (int seq = 0; seq < kMessages; ++seq) {
                    for (size_t k = 0; k < mine.size(); ++k) {
                        uint32_t conn = static_cast<uint32_t>(t + k * kClientThreads);
                        h.call_method(mine[k], "write", {h.bytes(make_message(conn, seq)), h.floating(60.0)});
                    }
                    for (size_t k = 0; k < mine.size(); ++k) {
                        uint32_t conn = static_cast<uint32_t>(t + k * kClientThreads);
                        std::string problem;
                        std::string back = read_message(h, mine[k], problem);
                        if (back != make_message(conn, seq)) {
                            throw std::runtime_error("connection " + std::to_string(conn) + " message " +
                                                     std::to_string(seq) + ": echo differs " + problem);
                        }
                        ++echoes_ok;
                    }
                }
            } catch (const std::exception &e) {
                client_errors[t] = e.what();
            }
        });
    }
    fx.without_gil([&] {
        acceptor.join();
        // A client may still be on its way out of connect() after its peer was accepted.
        waits::wait_until([&] { return connected.load() == kConns; }, "every client to return from connect()");
    });
    REQUIRE(accept_error == "");
    REQUIRE(accepted.size() == size_t{kConns});
    CHECK(connected.load() == kConns);
    double connect_seconds = rawsock::seconds_since(t0);
    int64_t open_now = census::open_fds();
    CHECK(open_now >= 2 * kConns);  // all of them open at once

    // Servers: each thread takes every kServerThreads-th accepted socket and, round by
    // round, reads one message from each, checks it and its order, and echoes it.
    std::vector<std::string> server_errors(kServerThreads);
    std::atomic<int> messages_ok{0};
    std::vector<std::thread> servers;
    for (int t = 0; t < kServerThreads; ++t) {
        servers.emplace_back([&, t] {
            Gil g(h);
            try {
                std::vector<int64_t> conn_of;
                for (int seq = 0; seq < kMessages; ++seq) {
                    size_t k = 0;
                    for (int i = t; i < kConns; i += kServerThreads, ++k) {
                        std::string problem;
                        std::string m = read_message(h, accepted[i], problem);
                        if (m.empty()) throw std::runtime_error("server socket " + std::to_string(i) + ": " + problem);
                        uint32_t conn = get32(m, 4), got_seq = get32(m, 8);
                        if (seq == 0) conn_of.push_back(conn);
                        if (conn != conn_of[k]) throw std::runtime_error("a message from another connection");
                        if (got_seq != static_cast<uint32_t>(seq)) {
                            throw std::runtime_error("connection " + std::to_string(conn) + ": message " +
                                                     std::to_string(got_seq) + " where " + std::to_string(seq) +
                                                     " was due (lost, duplicated or reordered)");
                        }
                        ++messages_ok;
                        h.call_method(accepted[i], "write", {h.bytes(m), h.floating(60.0)});
                    }
                }
            } catch (const std::exception &e) {
                server_errors[t] = e.what();
            }
        });
    }
    go = true;
    fx.without_gil([&] {
        for (auto &t : clients) t.join();
        for (auto &t : servers) t.join();
    });
    double total_seconds = rawsock::seconds_since(t0);
    for (auto &e : client_errors) CHECK(e == "");
    for (auto &e : server_errors) CHECK(e == "");
    CHECK(messages_ok.load() == kConns * kMessages);
    CHECK(echoes_ok.load() == kConns * kMessages);
    MESSAGE(kConns, " connections open at once (", open_now, " fds), ", kConns * kMessages,
            " messages each way checked; connecting took ", connect_seconds, " s, everything ", total_seconds, " s");
    for (auto &v : client_socks)
        for (auto &c : v) h.call_method(c, "close");
    for (auto &s : accepted) h.call_method(s, "close");
    h.call_method(l, "close");
    client_socks.clear();
    accepted.clear();
    // The loop closes the descriptors asynchronously.
    fx.wait_until([&] { return census::open_sockets() == sockets_before; }, "the loop to close every socket");
}


TEST_CASE("load_connect_accept_close_cycles_leave_no_growth_in_fds_or_memory") {
    const long cycles = cycles_to_run();
    NetFixture fx{false};  // checking mode would grow with every cycle by itself
    auto &h = fx.host;
    Value l = h.call(fx.SocketIO);
    h.call_method(l, "bind", {fx.addr("127.0.0.1", 0)});
    h.call_method(l, "listen", {h.integer(128)});
    const int sockets0 = census::open_sockets();  // the listener's
    Value where = fx.addr("127.0.0.1", fx.port_of(l));
    Value no_more = h.integer(1);
    Value wait = h.floating(10.0);
    auto cycle = [&] {
        Value c = h.call(fx.SocketIO);
        h.call_method(c, "connect", {where, wait});
        Value s = h.item(h.call_method(l, "accept", {wait}), 0);
        // The server closes first (so TIME_WAIT stays on its side), the client reads
        // end of stream and closes.
        h.call_method(s, "close");
        if (!h.to_bytes(h.call_method(c, "read", {no_more, wait})).empty()) throw std::runtime_error("data?");
        h.call_method(c, "close");
    };
    auto settle = [&] {
        // Closing is asynchronous: the loop closes the descriptors.
        fx.wait_until([&] { return census::open_sockets() == sockets0; }, "the loop to close every connection");
        // The runtime's queue of hand-overs still holds the sockets closed before the
        // loop took them (their memory, not their descriptors) until its next run, which
        // the runtime guarantees within kLazyDrain. Nothing outside the runtime shows that
        // run, so this sleep outlasts the period (a kept sleep, not a guess at a state).
        fx.without_gil([] { std::this_thread::sleep_for(250ms); });
    };
    const long warm_up = std::min<long>(2000, cycles / 10 + 1);
    for (long i = 0; i < warm_up; ++i) cycle();
    settle();
    CHECK(census::open_sockets() == sockets0);
    // Counted after the warm-up: by then libuv's first stream handle has reserved one more
    // descriptor for itself (for EMFILE).
    const int fds0 = census::open_fds();  // the listener's, the runtime's and that one
    size_t objects0 = h.live_objects();
    malloc_trim(0);
    size_t heap0 = live_heap_bytes();
    long rss0 = rss_kib();
    auto t0 = std::chrono::steady_clock::now();
    long done = 0;
    std::string error;
    try {
        for (; done < cycles; ++done) cycle();
    } catch (const std::exception &e) {
        error = e.what();
    }
    double seconds = rawsock::seconds_since(t0);
    CHECK_MESSAGE(error == "", "cycle ", done, ": ", error);
    settle();
    malloc_trim(0);
    int fds1 = census::open_fds();
    CHECK(census::open_sockets() == sockets0);
    size_t heap1 = live_heap_bytes();
    long rss1 = rss_kib();
    CHECK(fds1 == fds0);
    CHECK(h.live_objects() == objects0);
    // Slack: allocator bookkeeping and lazily grown tables, far below one allocation per cycle.
    CHECK_MESSAGE(heap1 <= heap0 + 512 * 1024, "heap in use grew from ", heap0, " to ", heap1, " bytes");
    if (!kSanitized) CHECK_MESSAGE(rss1 <= rss0 + 8 * 1024, "RSS grew from ", rss0, " to ", rss1, " KiB");
    MESSAGE(done, " connect/accept/close cycles in ", seconds, " s (", seconds * 1e6 / std::max(1L, done),
            " us each); fds ", fds0, " -> ", fds1, "; heap in use ", heap0, " -> ", heap1, " bytes; RSS ", rss0,
            " -> ", rss1, " KiB");
    h.call_method(l, "close");
}

// Issue 12's target for memory (at most 1 KiB of heap per open, idle, accepted
// SocketIO: the host's object, the plugin's socket, libuv's handle), as a check: the
// benchmark's figure is only seen when somebody runs it. The clients are plain C
// sockets, so what grows is the accepting side's.
TEST_CASE("load_an_idle_accepted_connection_holds_at_most_1_kib_of_heap") {
    // A sanitizer's allocator counts otherwise, and the host's object pool is off under
    // one: the target is the plain build's.
    SKIP_UNLESS(!kSanitized, "the figure is the plain build's (a sanitizer's allocator counts otherwise)");
    constexpr size_t kConns = 500;
    constexpr size_t kMaxBytesPerConn = 1024;
    NetFixture fx{false};  // checking mode keeps released objects
    auto &h = fx.host;
    Value l = h.call(fx.SocketIO);
    h.call_method(l, "bind", {fx.addr("127.0.0.1", 0)});
    h.call_method(l, "listen", {h.integer(static_cast<int64_t>(kConns))});
    auto port = static_cast<uint16_t>(fx.port_of(l));
    std::vector<int> clients;
    std::vector<Value> accepted;
    clients.reserve(kConns + 8);
    accepted.reserve(kConns + 8);
    // The loop takes a new socket within kLazyDrain; nothing outside the runtime shows
    // when, so this kept sleep outlasts it.
    auto settle = [&] { fx.without_gil([] { std::this_thread::sleep_for(250ms); }); };
    auto open_one = [&] {
        clients.push_back(rawsock::connect_to(port));
        accepted.push_back(h.item(h.call_method(l, "accept"), 0));
    };
    for (int i = 0; i < 8; ++i) open_one();  // whatever grows once (tables, first blocks)
    settle();
    malloc_trim(0);
    size_t heap0 = live_heap_bytes();
    for (size_t i = 0; i < kConns; ++i) open_one();
    settle();
    size_t heap1 = live_heap_bytes();
    double per_conn = (static_cast<double>(heap1) - static_cast<double>(heap0)) / kConns;
    MESSAGE("heap per idle accepted connection: ", per_conn, " bytes");
    CHECK(per_conn <= kMaxBytesPerConn);
    for (auto &s : accepted) h.call_method(s, "close");
    for (int fd : clients) ::close(fd);
    h.call_method(l, "close");
}

TEST_CASE("load_64_host_threads_block_on_their_own_sockets_while_the_lock_stays_free") {
    constexpr int kThreads = 64;
    NetFixture fx;
    auto &h = fx.host;
    std::vector<std::pair<Value, Value>> pairs;
    for (int i = 0; i < kThreads; ++i) pairs.push_back(fx.connected_pair());
    std::atomic<int> done{0};
    std::vector<ThreadMark> marks(kThreads);
    std::vector<std::string> errors(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
        threads.emplace_back([&, i] {
            Gil g(h);
            try {
                marks[i].here();
                std::string got = h.to_bytes(h.call_method(pairs[i].second, "read", {h.integer(100), h.floating(30.0)}));
                if (got != "wake " + std::to_string(i)) throw std::runtime_error("got '" + got + "'");
                h.call_method(pairs[i].second, "write", {h.bytes("done " + std::to_string(i))});
                ++done;
            } catch (const std::exception &e) {
                errors[i] = e.what();
            }
        });
    }
    fx.without_gil([&] {
        for (int i = 0; i < kThreads; ++i) waits::wait_until_blocked(marks[i], "read " + std::to_string(i));
    });
    // Every thread is blocked in read(): this thread takes the lock and works freely.
    auto t0 = std::chrono::steady_clock::now();
    int64_t sum = 0;
    for (int i = 0; i < 20000; ++i) sum += h.to_int(h.integer(i));
    double busy = rawsock::seconds_since(t0);
    CHECK(sum == int64_t{20000} * 19999 / 2);
    CHECK(done.load() == 0);
    CHECK_MESSAGE(busy < 2.0, "20000 host calls took ", busy, " s while ", kThreads, " threads were blocked");
    for (int i = 0; i < kThreads; ++i) h.call_method(pairs[i].first, "write", {h.bytes("wake " + std::to_string(i))});
    for (int i = 0; i < kThreads; ++i) {
        CHECK(h.to_bytes(h.call_method(pairs[i].first, "read", {h.integer(100), h.floating(30.0)})) ==
              "done " + std::to_string(i));
    }
    fx.without_gil([&] {
        for (auto &t : threads) t.join();
    });
    for (auto &e : errors) CHECK(e == "");
    CHECK(done.load() == kThreads);
    for (auto &[c, s] : pairs) {
        h.call_method(c, "close");
        h.call_method(s, "close");
    }
}

TEST_CASE("load_two_threads_share_one_socket_one_reading_one_writing_without_deadlock") {
    constexpr size_t kTotal = 16u << 20, kChunk = 64 * 1024;
    NetFixture fx;
    auto &h = fx.host;
    auto c_s = fx.connected_pair();
    auto c = c_s.first;
    auto s = c_s.second;
    // The peer echoes everything back, on its own host thread.
    std::string echo_error;
    std::thread echo([&] {
        Gil g(h);
        try {
            for (;;) {
                Value part = h.call_method(s, "read", {h.integer(kChunk), h.floating(30.0)});
                if (h.len(part) == 0) break;
                // A slow peer: the reader and the writer spend most of their time blocked.
                // (Not a wait for anything: the peer's pace, part of the scenario.)
                fx.without_gil([] { std::this_thread::sleep_for(2ms); });
                h.call_method(s, "write", {part, h.floating(30.0)});
            }
            h.call_method(s, "close");
        } catch (const std::exception &e) {
            echo_error = e.what();
        }
    });
    auto byte_at = [](size_t i) { return static_cast<char>((i * 7 + (i >> 16)) & 0xFF); };
    // One thread writes the stream into c while another reads the echo from c.
    std::string write_error, read_error;
    size_t mismatches = 0, received = 0;
    std::atomic<bool> finished{false};
    std::thread writer([&] {
        Gil g(h);
        try {
            for (size_t off = 0; off < kTotal; off += kChunk) {
                std::string chunk(kChunk, '\0');
                for (size_t i = 0; i < kChunk; ++i) chunk[i] = byte_at(off + i);
                h.call_method(c, "write", {h.bytes(chunk), h.floating(30.0)});
            }
            h.call_method(c, "shutdown", {h.floating(30.0)});
        } catch (const std::exception &e) {
            write_error = e.what();
        }
    });
    std::thread reader([&] {
        Gil g(h);
        try {
            while (received < kTotal) {
                std::string part = h.to_bytes(h.call_method(c, "read", {h.integer(kChunk), h.floating(30.0)}));
                if (part.empty()) break;
                for (size_t i = 0; i < part.size(); ++i) {
                    if (part[i] != byte_at(received + i)) ++mismatches;
                }
                received += part.size();
            }
            CHECK(h.to_bytes(h.call_method(c, "read", {h.none(), h.floating(30.0)})) == "");  // then end of stream
        } catch (const std::exception &e) {
            read_error = e.what();
        }
        finished = true;
    });
    // Meanwhile a fourth thread keeps taking the lock: it must make progress all along.
    std::atomic<long> ticks{0};
    std::thread ticker([&] {
        while (!finished.load()) {
            {
                Gil g(h);
                h.integer(ticks.load());
                ++ticks;
            }
            std::this_thread::sleep_for(1ms);  // the ticker's pace, part of the scenario
        }
    });
    auto t0 = std::chrono::steady_clock::now();
    fx.without_gil([&] {
        writer.join();
        reader.join();
        ticker.join();
        echo.join();
    });
    double seconds = rawsock::seconds_since(t0);
    CHECK(write_error == "");
    CHECK(read_error == "");
    CHECK(echo_error == "");
    CHECK(received == kTotal);
    CHECK(mismatches == 0);
    // The ticker sleeps 1 ms per tick: while the others are blocked it runs near 1000/s.
    CHECK_MESSAGE(ticks.load() > static_cast<long>(seconds * 100), ticks.load(), " ticks in ", seconds, " s");
    MESSAGE(kTotal, " bytes through one socket shared by a reader and a writer thread in ", seconds, " s; ",
            ticks.load(), " ticks of a third thread meanwhile");
    h.call_method(c, "close");
}
