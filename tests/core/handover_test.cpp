// Live reload in the core: a socket saved on one runtime (the old version) and restored
// on another (the new one) keeps its connection, its unread bytes and the calls that
// were waiting on it. Each case's old runtime has a wait slice of an hour, so a call
// that is not woken when the handover begins hangs the case instead of passing late.
#include <doctest/doctest.h>

#include <unistd.h>

#include <future>
#include <thread>

#include "busy_thread_pool.hpp"
#include "ksnet/error.hpp"
#include "ksnet/handover.hpp"
#include "ksnet/socket.hpp"
#include "loop_fixture.hpp"
#include "skip.hpp"
#include "waits.hpp"

using namespace ksnet;
using namespace std::chrono_literals;

namespace {

constexpr auto kHour = std::chrono::hours(1);

// Two runtimes, as two versions of the plugin have; every fd and thread gone at the end.
struct TwoVersions {
    census::Snapshot before;
    std::shared_ptr<Runtime> old_rt;
    std::shared_ptr<Runtime> new_rt = Runtime::start();
    explicit TwoVersions(std::shared_ptr<WaitHooks> old_hooks = nullptr) : old_rt(Runtime::start(old_hooks, kHour)) {
        old_rt->set_interrupts_pushed(true);
    }
    ~TwoVersions() {
        CHECK(old_rt->shutdown() == 0);
        CHECK(new_rt->shutdown() == 0);
        old_rt.reset();
        new_rt.reset();
        CHECK(census::open_fds() == before.fds);
        CHECK(census::threads_settled(before.thread_count) == before.thread_count);
    }

    std::unique_ptr<Socket> tcp(const std::shared_ptr<Runtime> &rt) {
        return Socket::open(rt, Family::Inet4, Kind::Tcp, Protocol::Auto);
    }
    // A connected pair on the old runtime: (client, server side).
    std::pair<std::unique_ptr<Socket>, std::unique_ptr<Socket>> pair() {
        auto l = tcp(old_rt);
        l->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
        l->listen(4);
        auto c = tcp(old_rt);
        c->connect(Endpoint{Family::Inet4, "127.0.0.1", static_cast<uint16_t>(l->local_name()->port)}, {});
        auto server = l->accept({}).first;
        l->close();
        return {std::move(c), std::move(server)};
    }

    // The whole reload of one socket: begin, save, restore on the new runtime, commit.
    // The state goes through the bytes of format `written`, which the new version reads.
    std::unique_ptr<Socket> move(Socket &s, uint32_t written = kStateFormatWithPeer) {
        old_rt->begin_handover();
        SocketState state = s.save(5s);
        auto moved = Socket::restore(new_rt, decode_state(encode_state(state, written), kStateFormatWithPeer));
        s.end_handover(true);
        old_rt->end_handover();
        return moved;
    }
};

}  // namespace

TEST_CASE("handover_moves_the_connection_and_its_unread_bytes") {
    TwoVersions v;
    auto [c, s] = v.pair();
    c->write("one\ntwo\nthr", {});
    CHECK(s->read_line({}) == "one");  // "two\nthr" stay buffered
    auto s2 = v.move(*s);
    s->close();  // the old version lets go: the connection lives on in the new one
    CHECK(s2->read_line({}) == "two");
    c->write("ee\n", {});
    CHECK(s2->read_line({}) == "three");
    s2->write("back", {});
    CHECK(c->read(4, {}) == "back");
    CHECK(s2->describe().find("state=connected") != std::string::npos);
    c->close();
    CHECK(!s2->read_line({}).has_value());  // the peer's end of stream, not ours
}

TEST_CASE("handover_keeps_the_timeout_and_linemax") {
    TwoVersions v;
    auto [c, s] = v.pair();
    s->set_timeout(std::chrono::milliseconds(1500));
    s->set_option(Option::LineMax, 4096);
    auto s2 = v.move(*s);
    s->close();
    CHECK(s2->timeout() == std::chrono::milliseconds(1500));
    CHECK(s2->get_option(Option::LineMax) == 4096);
}

TEST_CASE("handover_wakes_a_blocked_read_at_once_and_it_raises_moved") {
    TwoVersions v;
    auto [c, s] = v.pair();
    waits::ThreadMark mark;
    auto reader = std::async(std::launch::async, [&, s = s.get()] {
        mark.here();
        try {
            s->read(10, {});
        } catch (const Error &e) {
            return e.kind() == ErrorKind::Moved ? std::string("moved") : std::string(e.what());
        }
        return std::string("no error");
    });
    waits::wait_until_blocked(mark, "the read");
    v.old_rt->begin_handover();
    REQUIRE(reader.wait_for(10s) == std::future_status::ready);  // not at the end of an hour
    CHECK(reader.get() == "moved");
    SocketState state = s->save(5s);
    auto s2 = Socket::restore(v.new_rt, state);
    s->end_handover(true);
    v.old_rt->end_handover();
    s->close();
    c->write("x", {});
    CHECK(s2->read(10, {}) == "x");  // the retry, on the new socket
}

TEST_CASE("handover_wakes_a_name_lookup_at_once_and_it_raises_moved") {
    TwoVersions v;  // first: it runs a task on the pool
    BusyThreadPool pool;  // the lookup stays queued
    auto s = v.tcp(v.old_rt);
    waits::ThreadMark mark;
    auto connect = std::async(std::launch::async, [&]() -> std::string {
        mark.here();
        try {
            s->connect(Endpoint{Family::Inet4, "localhost", 9}, {});
        } catch (const Error &e) {
            return e.what();
        }
        return "no error";
    });
    waits::wait_until_blocked(mark, "the lookup");
    v.old_rt->begin_handover();
    REQUIRE(connect.wait_for(10s) == std::future_status::ready);
    CHECK(connect.get() == "connect: the socket moved to another version of the net plugin");
    v.old_rt->end_handover();
    s->close();
}

namespace {

// A live reload that comes just as a caller's wait ran out of time, its outcome settled,
// and the caller is about to take the interpreter lock back: `then` runs there, once,
// at the first such moment after `deadline`.
struct ReloadAtReacquire : WaitHooks {
    std::mutex mu;
    std::function<void()> then;
    Clock::time_point deadline;
    void reacquire(void *) override {
        std::function<void()> run;
        {
            std::lock_guard lk(mu);
            if (Clock::now() >= deadline) run.swap(then);
        }
        if (run) run();
    }
    void arm(Clock::time_point after, std::function<void()> f) {
        std::lock_guard lk(mu);
        deadline = after;
        then = std::move(f);
    }
};

}  // namespace

TEST_CASE("handover_as_a_write_times_out_leaves_its_end_to_the_next_version") {
    // Without that, the old version reset the connection the new one had taken, closed
    // only its own socket, and left the new one's writer turn to a caller that never came.
    auto hooks = std::make_shared<ReloadAtReacquire>();
    TwoVersions v(hooks);
    auto [c, s] = v.pair();
    // Small fixed buffers (no autotuning): once they are full, the write waits to its end.
    s->set_option(Option::SendBuffer, 4096);
    c->set_option(Option::RecvBuffer, 4096);
    std::unique_ptr<Socket> moved;
    const std::string big(16 * 1024 * 1024, 'w');  // more than the kernel buffers
    const Clock::time_point deadline = Clock::now() + 300ms;
    waits::ThreadMark mark;
    auto writer = std::async(std::launch::async, [&]() -> std::string {
        mark.here();
        try {
            s->write(big, deadline);
            return "no error";
        } catch (const Error &e) {
            if (e.kind() != ErrorKind::Moved) return std::string("not moved: ") + e.what();
        }
        try {
            moved->write(big, deadline);  // the host's retry, with the call's first start
            return "no error on the retry";
        } catch (const Error &e) {
            return e.what();
        }
    });
    waits::wait_until_blocked(mark, "the write");
    hooks->arm(deadline, [&] { moved = v.move(*s); });
    std::string outcome = writer.get();
    CHECK_MESSAGE(outcome.find("write: timed out after ") == 0, outcome);
    CHECK_MESSAGE(outcome.find("; the connection was reset and the socket closed") != std::string::npos, outcome);
    REQUIRE(moved);
    CHECK(moved->closed());
    s->close();
    std::string what = "no error";
    try {
        while (!c->read(1 << 20, {}).empty()) {
        }
        what = "end of stream";
    } catch (const Error &e) {
        what = e.what();
    }
    CHECK_MESSAGE(what.find("ECONNRESET") != std::string::npos, what);
}

TEST_CASE("handover_resumes_a_part_sent_write_without_a_byte_twice") {
    TwoVersions v;
    auto [c, s] = v.pair();
    std::string big(16 * 1024 * 1024, '\0');  // more than the kernel buffers: blocks part-way
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
    std::promise<Socket *> next;  // where the writer retries, as the host would
    waits::ThreadMark mark;
    auto writer = std::async(std::launch::async, [&, s = s.get()] {
        mark.here();
        try {
            s->write(big, {});
            return std::string("not moved");
        } catch (const Error &e) {
            if (e.kind() != ErrorKind::Moved) return std::string(e.what());
        }
        next.get_future().get()->write(big, {});  // same thread, same bytes
        return std::string("resumed");
    });
    waits::wait_until_blocked(mark, "the write");
    v.old_rt->begin_handover();
    SocketState state = s->save(5s);
    REQUIRE(state.write_resume.has_value());
    CHECK(state.write_resume->sent > 0);
    CHECK(state.write_resume->sent < big.size());
    auto s2 = Socket::restore(v.new_rt, state);
    s->end_handover(true);
    v.old_rt->end_handover();
    s->close();
    next.set_value(s2.get());
    std::string got;
    while (got.size() < big.size()) {
        std::string part = c->read(1 << 20, {});
        REQUIRE(!part.empty());
        got += part;
    }
    CHECK(writer.get() == "resumed");
    CHECK(got.size() == big.size());
    CHECK(got == big);
}

TEST_CASE("handover_moves_a_listener_and_a_connection_waiting_in_its_backlog") {
    TwoVersions v;
    auto l = v.tcp(v.old_rt);
    l->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    l->listen(4);
    auto port = static_cast<uint16_t>(l->local_name()->port);
    auto c = v.tcp(v.old_rt);
    c->connect(Endpoint{Family::Inet4, "127.0.0.1", port}, {});
    auto l2 = v.move(*l);
    l->close();  // the port stays open: the new version's duplicate listens
    auto c2 = v.tcp(v.new_rt);
    c2->connect(Endpoint{Family::Inet4, "127.0.0.1", port}, {});
    auto a = l2->accept({}).first;
    auto b = l2->accept({}).first;
    c->write("1", {});
    c2->write("2", {});
    CHECK(a->read(1, {}) == "1");
    CHECK(b->read(1, {}) == "2");
}

TEST_CASE("handover_moves_queued_datagrams_in_order") {
    TwoVersions v;
    auto u = Socket::open(v.old_rt, Family::Inet4, Kind::Udp, Protocol::Auto);
    u->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    auto port = static_cast<uint16_t>(u->local_name()->port);
    auto tx = Socket::open(v.new_rt, Family::Inet4, Kind::Udp, Protocol::Auto);
    Endpoint to{Family::Inet4, "127.0.0.1", port};
    for (const char *d : {"a", "bb", "ccc"}) tx->sendto(d, to, {});
    CHECK(u->read(10, {}) == "a");
    // "bb" and "ccc" are in the old socket's queue or still in the kernel's, which the
    // duplicate shares: either way they come first, in order.
    auto u2 = v.move(*u);
    u->close();
    tx->sendto("dddd", to, {});
    CHECK(u2->read(10, {}) == "bb");
    CHECK(u2->read(10, {}) == "ccc");
    CHECK(u2->read(10, {}) == "dddd");
}

TEST_CASE("handover_state_of_a_newer_format_or_cut_short_is_refused_by_name") {
    SocketState s;
    s.received = "abc";
    std::string bytes = encode_state(s, 3);
    CHECK(decode_state(bytes, 3).received == "abc");
    CHECK(decode_state(bytes, 4).received == "abc");  // a newer version reads it
    try {
        decode_state(bytes, 2);
        FAIL("a newer format was read");
    } catch (const Error &e) {
        CHECK(std::string(e.what()) == "socket state: written in format 3, this version of net reads formats 1 to 2");
    }
    try {
        decode_state(encode_state(s, 2), 1);
        FAIL("a newer format was read");
    } catch (const Error &e) {
        CHECK(std::string(e.what()) == "socket state: written in format 2, this version of net reads format 1");
    }
    try {
        decode_state(bytes.substr(0, bytes.size() - 1), 3);
        FAIL("a cut state was read");
    } catch (const Error &e) {
        CHECK(std::string(e.what()) == "socket state: the bytes end too soon");
    }
    CHECK_THROWS_AS(decode_state("garbage!garbage!", 3), Error);
}

TEST_CASE("handover_keeps_the_peer_of_a_reset_connection_for_its_errors") {
    // After a reset the kernel no longer knows the peer (getpeername fails): errors on
    // the moved socket would name the socket itself.
    TwoVersions v;
    auto [c, s] = v.pair();
    std::string client = "127.0.0.1:" + std::to_string(c->local_name()->port);
    s->write("never read", {});
    c->close();
    int fd = s->fileno();
    waits::wait_until(
        [&] {
            sockaddr_storage peer;
            socklen_t len = sizeof peer;
            return ::getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len) < 0;
        },
        "the reset to arrive");
    auto moved = v.move(*s);
    std::string what = "no error";
    try {
        for (int i = 0; i < 10; ++i) moved->read(100, {});
    } catch (const Error &e) {
        what = e.what();
    }
    CHECK_MESSAGE(what.rfind("read " + client + ": ECONNRESET", 0) == 0, what);
}

TEST_CASE("handover_reads_the_state_an_older_version_wrote") {
    TwoVersions v;
    auto [c, s] = v.pair();
    c->write("one\ntwo", {});
    CHECK(s->read_line({}) == "one");
    auto s2 = v.move(*s, kOldestStateFormat);
    s->close();
    c->write("\n", {});
    CHECK(s2->read_line({}) == "two");
    s2->write("back", {});
    CHECK(c->read(4, {}) == "back");
    CHECK(s2->peer_name()->port == c->local_name()->port);
}

TEST_CASE("handover_moves_a_raw_icmp_socket_and_a_read_waiting_on_it") {
    SKIP_UNLESS(geteuid() == 0, "needs root for a raw socket");
    TwoVersions v;
    auto raw = Socket::open(v.old_rt, Family::Inet4, Kind::Raw, Protocol::Icmp);
    waits::ThreadMark mark;
    auto reader = std::async(std::launch::async, [&, raw = raw.get()] {
        mark.here();
        try {
            raw->recvfrom(Socket::kAll, {});
        } catch (const Error &e) {
            return e.kind() == ErrorKind::Moved ? std::string("moved") : std::string(e.what());
        }
        return std::string("no error");
    });
    waits::wait_until_blocked(mark, "the read");
    auto raw2 = v.move(*raw);
    REQUIRE(reader.wait_for(10s) == std::future_status::ready);
    CHECK(reader.get() == "moved");
    raw->close();
    // An ICMP echo request to 127.0.0.1 on the new socket: it receives what comes back.
    unsigned char echo[8] = {8, 0, 0, 0, 0x12, 0x34, 0, 1};
    uint32_t sum = 0;
    for (int i = 0; i < 8; i += 2) sum += static_cast<uint32_t>(echo[i] << 8 | echo[i + 1]);
    sum = (sum & 0xffff) + (sum >> 16);
    uint16_t check = static_cast<uint16_t>(~sum);
    echo[2] = static_cast<unsigned char>(check >> 8);
    echo[3] = static_cast<unsigned char>(check & 0xff);
    raw2->sendto(std::string_view(reinterpret_cast<char *>(echo), sizeof echo), Endpoint{Family::Inet4, "127.0.0.1", 0},
                 {});
    auto [packet, from] = raw2->recvfrom(Socket::kAll, Clock::now() + 5s);
    CHECK(from.host == "127.0.0.1");
    CHECK(packet.size() >= 28);  // an IP header and the ICMP message
}
