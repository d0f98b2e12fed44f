#include <doctest/doctest.h>

#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <atomic>
#include <functional>
#include <future>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "ksnet/error.hpp"
#include "ksnet/socket.hpp"
#include "ksnet/tcp.hpp"
#include "busy_thread_pool.hpp"
#include "loop_fixture.hpp"
#include "waits.hpp"

using namespace ksnet;
using namespace std::chrono_literals;


TEST_CASE("tcp_echo_round_trip_on_loopback") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    c->write("hello");
    CHECK(s->read(100) == "hello");
    s->write("world");
    CHECK(c->read(5) == "world");
    c->close();
    s->close();
}

TEST_CASE("tcp_echo_round_trip_on_ipv6_loopback") {
    LoopFixture fx;
    auto [c, s] = fx.pair(Family::Inet6);
    c->write("six");
    CHECK(s->read(3) == "six");
    auto peer = s->peer_address();
    CHECK(format_host(reinterpret_cast<sockaddr *>(&peer)) == "::1");
}

TEST_CASE("tcp_accept_reports_peer_name") {
    LoopFixture fx;
    auto l = fx.listener();
    auto c = TcpSocket::create(fx.rt, Family::Inet4);
    c->connect(Endpoint{Family::Inet4, "127.0.0.1", LoopFixture::port_of(*l)});
    auto [s, name] = l->accept();
    auto local = c->local_address();
    CHECK(name == format_sockaddr(reinterpret_cast<sockaddr *>(&local)));
}

TEST_CASE("tcp_read_without_size_reads_to_end_of_stream") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    std::string big(3 * 1024 * 1024 + 17, 'x');  // many times one recv()
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    std::thread writer([&, c = c] {
        c->write(big);
        c->close();
    });
    std::string got = s->read(TcpSocket::kReadAll);
    writer.join();
    CHECK(got.size() == big.size());
    CHECK(got == big);
    CHECK(s->read(10).empty());
    CHECK(s->eof());
}

// read() to the end takes its first bytes through a small buffer (2 KiB) when nothing is
// buffered: every length around that size, and none at all, comes back whole.
TEST_CASE("tcp_read_to_end_of_short_streams_returns_every_byte") {
    LoopFixture fx;
    for (size_t size : {0, 1, 2047, 2048, 2049, 4097, 70000}) {
        auto [c, s] = fx.pair();
        std::string sent(size, '\0');
        for (size_t i = 0; i < size; ++i) sent[i] = static_cast<char>('a' + i % 26);
        c->write(sent);
        c->close();
        CHECK(s->read(TcpSocket::kReadAll) == sent);
        CHECK(s->eof());
        s->close();
    }
    // Bytes line iteration left buffered come first, then the rest of the stream.
    auto [c, s] = fx.pair();
    c->write("one\ntwo and the rest");
    c->close();
    CHECK(s->read_line() == "one");
    CHECK(s->read(TcpSocket::kReadAll) == "two and the rest");
}

// Until the loop takes a new socket's descriptor (within Runtime::kLazyDrain), its task
// holds the socket weakly: a socket let go of before then is freed by the thread that let
// go of it, closed or not, and its descriptor is closed with it.
TEST_CASE("tcp_socket_let_go_of_before_the_loop_took_it_is_freed_at_once") {
    LoopFixture fx;
    {
        LoopStuck stuck(*fx.rt);  // so that the loop cannot take them meanwhile
        auto closed = TcpSocket::create(fx.rt, Family::Inet4);
        std::weak_ptr<TcpSocket> closed_watch = closed;
        closed->close();
        closed.reset();
        CHECK(closed_watch.expired());
        auto open = TcpSocket::create(fx.rt, Family::Inet4);
        std::weak_ptr<TcpSocket> open_watch = open;
        int fd = open->fileno();
        REQUIRE(fd >= 0);
        open.reset();
        CHECK(open_watch.expired());
        CHECK(::fcntl(fd, F_GETFD) == -1);  // closed with it
    }
    // One the loop has taken lives on in the runtime until it is closed, as before.
    auto kept = TcpSocket::create(fx.rt, Family::Inet4);
    waits::wait_until([&] { return fx.rt->tracked_count() == 1; }, "the loop taking the socket");
    std::weak_ptr<TcpSocket> kept_watch = kept;
    kept.reset();
    CHECK_FALSE(kept_watch.expired());
}

TEST_CASE("tcp_read_line_strips_newlines_and_yields_last_partial_line") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    c->write("one\ntwo\r\n\nthree");
    c->close();
    CHECK(s->read_line() == "one");
    CHECK(s->read_line() == "two");
    CHECK(s->read_line() == "");
    CHECK(s->read_line() == "three");
    CHECK_FALSE(s->read_line().has_value());
}

// read_line_to hands each line over where it lies; a taker that throws (a host that
// could not make the value) leaves the line buffered for the next call.
TEST_CASE("tcp_read_line_to_keeps_the_line_when_the_taker_throws") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    c->write("one\r\ntwo");
    c->close();
    CHECK_THROWS_AS(s->read_line_to([](std::string_view) { throw std::bad_alloc(); }), std::bad_alloc);
    std::string got;
    CHECK(s->read_line_to([&](std::string_view line) { got = line; }));
    CHECK(got == "one");
    CHECK(s->read_line_to([&](std::string_view line) { got = line; }));
    CHECK(got == "two");
    CHECK_FALSE(s->read_line_to([&](std::string_view) { FAIL("no line after the end of stream"); }));
}

// Bytes the peer leaves unread make its close() a reset (RST) instead of an end of
// stream; ours arrive before that close, so `c` has them by then.
void reset_after(TcpSocket &c, TcpSocket &s, std::string_view last_words) {
    s.write("never read");
    c.write(last_words);
    c.close();
}

TEST_CASE("tcp_reset_in_the_middle_of_a_line_raises_after_the_complete_lines") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    reset_after(*c, *s, "one\ntwo\npart");
    CHECK(s->read_line() == "one");
    CHECK(s->read_line() == "two");
    try {
        auto tail = s->read_line();
        FAIL("no error; got '" << tail.value_or("<end>") << "'");
    } catch (const Error &e) {
        CHECK(e.code() == UV_ECONNRESET);
    }
    CHECK(s->read(100) == "part");  // the unfinished line stays readable
    CHECK_THROWS_AS(s->read(100), Error);
}

TEST_CASE("tcp_errors_after_the_peer_is_gone_name_the_peer_not_the_socket_itself") {
    LoopFixture fx;
    auto name_of = [](const TcpSocket &t) {
        auto a = t.local_address();
        return format_sockaddr(reinterpret_cast<const sockaddr *>(&a));
    };
    auto message_of = [](auto call) -> std::string {
        try {
            for (int i = 0; i < 200; ++i) call();
        } catch (const Error &e) {
            return e.what();
        }
        return "no error";
    };
    {
        // A reset: getpeername fails from then on.
        auto [c, s] = fx.pair();
        std::string client = name_of(*c);
        reset_after(*c, *s, "");
        CHECK(message_of([&] { s->read(100); }).rfind("read " + client + ": ECONNRESET", 0) == 0);
    }
    {
        auto [c, s] = fx.pair();
        std::string server = name_of(*s);
        s->close();
        std::string chunk(64 * 1024, 'z');
        std::string what = message_of([&] { c->write(chunk); });
        CHECK_MESSAGE(what.rfind("write " + server + ": E", 0) == 0, what);
    }
}

TEST_CASE("tcp_reset_before_the_end_of_stream_makes_read_to_end_raise") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    reset_after(*c, *s, "not all of it");
    try {
        auto got = s->read(TcpSocket::kReadAll);
        FAIL("no error; got '" << got << "'");
    } catch (const Error &e) {
        CHECK(e.code() == UV_ECONNRESET);
    }
    CHECK(s->read(100) == "not all of it");
}

TEST_CASE("tcp_read_line_handles_lines_longer_than_the_buffer_limit") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    std::string line(2 * 1024 * 1024, 'L');  // many times one recv()
    s->set_option(Option::LineMax, 4 * 1024 * 1024);
    std::thread writer([&, c = c] {
        c->write(line + "\nshort\n");
        c->close();
    });
    auto first = s->read_line();
    writer.join();
    REQUIRE(first.has_value());
    CHECK(first->size() == line.size());
    CHECK(s->read_line() == "short");
    CHECK_FALSE(s->read_line().has_value());
}

TEST_CASE("tcp_connect_refused_names_address_and_errno") {
    LoopFixture fx;
    auto l = fx.listener();
    uint16_t port = LoopFixture::port_of(*l);
    l->close();
    auto c = TcpSocket::create(fx.rt, Family::Inet4);
    try {
        c->connect(Endpoint{Family::Inet4, "127.0.0.1", port});
        FAIL("connected to a closed port");
    } catch (const Error &e) {
        CHECK(e.kind() == ErrorKind::Os);
        CHECK(std::string(e.what()) ==
              "connect 127.0.0.1:" + std::to_string(port) + ": ECONNREFUSED (connection refused)");
    }
}

TEST_CASE("tcp_connect_resolves_localhost_by_name") {
    LoopFixture fx;
    auto l = fx.listener();
    auto c = TcpSocket::create(fx.rt, Family::Inet4);
    c->connect(Endpoint{Family::Inet4, "localhost", LoopFixture::port_of(*l)});
    auto [s, name] = l->accept();
    c->write("x");
    CHECK(s->read(1) == "x");
}

TEST_CASE("tcp_bind_error_addrinuse") {
    LoopFixture fx;
    auto l = fx.listener();
    uint16_t port = LoopFixture::port_of(*l);
    auto other = TcpSocket::create(fx.rt, Family::Inet4);
    try {
        other->bind(Endpoint{Family::Inet4, "127.0.0.1", port});
        FAIL("bound twice");
    } catch (const Error &e) {
        CHECK(e.code() == UV_EADDRINUSE);
        CHECK(std::string(e.what()).find("bind 127.0.0.1:" + std::to_string(port) + ": EADDRINUSE") == 0);
    }
}

TEST_CASE("tcp_operations_in_the_wrong_state_say_so") {
    LoopFixture fx;
    auto s = TcpSocket::create(fx.rt, Family::Inet4);
    CHECK_THROWS_WITH(s->read(1), "read: socket is not connected");
    CHECK_THROWS_WITH(s->write("x"), "write: socket is not connected");
    CHECK_THROWS_WITH(s->accept(), "accept: socket is not listening (call listen() first)");
    s->close();
    s->close();  // twice is harmless
    CHECK_THROWS_WITH(s->read(1), "read: the socket is closed");
    CHECK_THROWS_WITH(s->bind(Endpoint{}), "bind: the socket is closed");
}

// A closed socket's state stays what it was (connected) beside the closed flag: every
// call must still look at the flag, fast paths included.
TEST_CASE("tcp_connected_socket_after_close_refuses_every_call") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    c->write("line\nbuffered");
    CHECK(s->read_line(Clock::now() + 5s) == "line");  // the rest waits in the socket's buffer
    s->close();
    char buf[8];
    CHECK_THROWS_WITH(s->read(1), "read: the socket is closed");
    CHECK_THROWS_WITH(s->read_into(buf, sizeof buf), "read: the socket is closed");
    CHECK_THROWS_WITH(s->read_line(), "read: the socket is closed");
    CHECK_THROWS_WITH(s->write("x"), "write: the socket is closed");
    CHECK(s->state() == TcpSocket::State::Closed);
}

TEST_CASE("tcp_unbound_socket_has_no_local_name_as_udp") {
    LoopFixture fx;
    for (Family f : {Family::Inet4, Family::Inet6}) {
        auto tcp = Socket::open(fx.rt, f, Kind::Tcp, Protocol::Auto);
        auto udp = Socket::open(fx.rt, f, Kind::Udp, Protocol::Auto);
        CHECK(!tcp->local_name());
        CHECK(!udp->local_name());
        CHECK(tcp->describe().find("local=") == std::string::npos);
        tcp->bind(Endpoint{f, f == Family::Inet4 ? "127.0.0.1" : "::1", 0});
        REQUIRE(tcp->local_name());
        CHECK(tcp->local_name()->port != 0);
    }
}

TEST_CASE("tcp_close_from_another_thread_wakes_a_blocked_reader") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    waits::ThreadMark reading;
    std::thread closer([s = s, &reading] {
        waits::wait_until_blocked(reading, "read");
        s->close();
    });
    reading.here();
    CHECK_THROWS_AS(s->read(1), Error);
    closer.join();
}

TEST_CASE("tcp_close_that_cuts_a_part_sent_write_resets_the_connection_and_says_how_much_went") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    const std::string message(32 << 20, 'm');  // far more than the socket buffers hold
    waits::ThreadMark writing;
    std::thread closer([c = c, &writing] {
        waits::wait_until_blocked(writing, "write");
        c->close();
    });
    writing.here();
    std::string error = "no error";
    try {
        c->write(message);
    } catch (const Error &e) {
        error = e.what();
    }
    closer.join();
    CHECK_MESSAGE(error.find(" of 33554432 bytes; the connection was reset") != std::string::npos, error);
    // The peer reads what arrived, then learns the stream broke: never an end of stream
    // that would pass the cut message off as whole.
    std::string ending = "end of stream";
    try {
        while (!s->read(1 << 20, Clock::now() + 10s).empty()) {
        }
    } catch (const Error &e) {
        ending = e.what();
    }
    CHECK_MESSAGE(ending.find("ECONNRESET") != std::string::npos, ending);
}

TEST_CASE("tcp_read_timeout_raises_timeout_and_keeps_the_socket_usable") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    try {
        s->read(1, Clock::now() + 30ms);
        FAIL("no timeout");
    } catch (const Error &e) {
        CHECK(e.kind() == ErrorKind::Timeout);
    }
    c->write("late");
    CHECK(s->read(4) == "late");
}

TEST_CASE("tcp_read_to_end_that_times_out_keeps_what_arrived_for_the_next_read") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    c->write("kept");
    CHECK_THROWS_AS(s->read(TcpSocket::kReadAll, Clock::now() + 50ms), Error);
    c->write(" too");
    c->close();
    CHECK(s->read(TcpSocket::kReadAll) == "kept too");
}

TEST_CASE("tcp_read_into_takes_line_buffered_bytes_first_then_the_stream") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    c->write("one\ntwo three");
    CHECK(s->read_line() == "one");
    char buf[100];
    CHECK(s->read_into(buf, 4) == 4);  // from what read_line() read ahead
    CHECK(std::string(buf, 4) == "two ");
    size_t n = s->read_into(buf, sizeof buf);
    CHECK(std::string(buf, n) == "three");
    c->write("more");
    n = s->read_into(buf, sizeof buf);
    CHECK(std::string(buf, n) == "more");
    c->close();
    CHECK(s->read_into(buf, sizeof buf) == 0);
    CHECK(s->eof());
}

TEST_CASE("tcp_write_to_reset_peer_reports_epipe_or_econnreset") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    s->close();
    std::string chunk(64 * 1024, 'z');
    bool failed = false;
    for (int i = 0; i < 200 && !failed; ++i) {
        try {
            c->write(chunk);
        } catch (const Error &e) {
            std::string what = e.what();
            CHECK((what.find("EPIPE") != std::string::npos || what.find("ECONNRESET") != std::string::npos));
            failed = true;
        }
    }
    CHECK(failed);
}

TEST_CASE("tcp_shutdown_with_open_sockets_closes_them_and_wakes_blocked_calls") {
    census::Snapshot before;
    auto rt = Runtime::start();
    auto l = TcpSocket::create(rt, Family::Inet4);
    l->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    l->listen(4);
    std::string error;
    waits::ThreadMark accepting;
    std::thread blocked([&] {
        try {
            accepting.here();
            l->accept();
        } catch (const Error &e) {
            error = e.what();
        }
    });
    waits::wait_until_blocked(accepting, "accept");
    // The loop takes a new socket lazily, within kLazyDrain.
    waits::wait_until([&] { return rt->tracked_count() == 1; }, "the loop to take the socket");
    CHECK(rt->tracked_count() == 1);
    CHECK(rt->shutdown() == 0);
    blocked.join();
    CHECK(error == "accept: socket closed because the net module was unloaded");
    CHECK_THROWS_AS(l->read(1), Error);
    l.reset();
    rt.reset();
    CHECK(census::open_fds() == before.fds);
    CHECK(census::threads_settled(before.thread_count) == before.thread_count);
}

TEST_CASE("socket_refuses_unsupported_combinations_before_any_system_call") {
    LoopFixture fx;
    int fds = census::open_fds();
    CHECK_THROWS_WITH(Socket::open(fx.rt, Family::Inet4, Kind::Tcp, Protocol::BtRfcomm),
                      "SocketIO(fk=INET4, sk=TCP, pk=BT_RFCOMM): Bluetooth protocols need fk=BT");
    CHECK_THROWS_WITH(Socket::open(fx.rt, Family::Inet4, Kind::Raw, Protocol::Auto),
                      "SocketIO(fk=INET4, sk=RAW, pk=AUTO): sk=RAW needs the IP protocol to carry: pk=ICMP, "
                      "ICMPV6, TCP, UDP or RAW");
    CHECK_THROWS_WITH(Socket::open(fx.rt, Family::Inet6, Kind::Raw, Protocol::Icmp),
                      "SocketIO(fk=INET6, sk=RAW, pk=ICMP): ICMP is IPv4's: use pk=ICMPV6 with fk=INET6");
    CHECK_THROWS_WITH(Socket::open(fx.rt, Family::Inet4, Kind::Udp, Protocol::IpTcp),
                      "SocketIO(fk=INET4, sk=UDP, pk=TCP): sk=UDP needs pk=AUTO or UDP");
    CHECK_THROWS_WITH(Socket::open(fx.rt, Family::Bluetooth, Kind::Udp, Protocol::BtRfcomm),
                      "SocketIO(fk=BT, sk=UDP, pk=BT_RFCOMM): BT_RFCOMM is a stream protocol: it needs sk=TCP");
    CHECK_THROWS_WITH(Socket::open(fx.rt, Family::Bluetooth, Kind::Packet, Protocol::Auto),
                      "SocketIO(fk=BT, sk=PACKET, pk=AUTO): SK.PACKET is not a Bluetooth socket kind");
    CHECK(census::open_fds() == fds);
}

TEST_CASE("tcp_many_messages_arrive_once_and_in_order") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    constexpr int kMessages = 10000;
    std::thread writer([c = c] {
        for (int i = 0; i < kMessages; ++i) c->write("msg " + std::to_string(i) + "\n");
        c->close();
    });
    int expected = 0;
    while (auto line = s->read_line()) {
        REQUIRE(*line == "msg " + std::to_string(expected));
        ++expected;
    }
    writer.join();
    CHECK(expected == kMessages);
}

TEST_CASE("tcp_line_longer_than_linemax_raises_naming_the_option_and_stays_readable") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    CHECK(s->get_option(Option::LineMax) == static_cast<int64_t>(kDefaultLineMax));
    std::string endless(kDefaultLineMax + 100 * 1024, 'x');  // no newline in sight
    std::thread writer([&, c = c] {
        c->write(endless + "\nnext\n");
        c->close();
    });
    try {
        auto line = s->read_line();
        FAIL("no error; got a line of " << (line ? line->size() : 0) << " bytes");
    } catch (const Error &e) {
        CHECK(e.kind() == ErrorKind::Value);
        CHECK(std::string(e.what()).find("'linemax'") != std::string::npos);
    }
    std::string got;
    while (got.size() < endless.size() + 1) got += s->read(endless.size() + 1 - got.size());
    writer.join();
    CHECK(got == endless + "\n");
    CHECK(s->read_line() == "next");
    CHECK_FALSE(s->read_line().has_value());
}

TEST_CASE("tcp_complete_line_longer_than_linemax_raises_too") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    s->set_option(Option::LineMax, 4);
    CHECK_THROWS_AS(s->set_option(Option::LineMax, 0), Error);
    c->write("four\nfive!\n");
    c->close();
    CHECK(s->read_line() == "four");
    CHECK_THROWS_AS(s->read_line(), Error);  // however the bytes were cut into recv()s
    CHECK(s->read(100) == "five!\n");
}

namespace {

// Runs `then` once, on the thread marked `who`, when it takes the interpreter lock back
// (the moment after a wait has given its mutex up).
struct TakesTheLockBack : WaitHooks {
    waits::ThreadMark *who = nullptr;
    std::function<void()> then;
    std::atomic<bool> armed{false};
    void reacquire(void *) override {
        if (armed && who && who->set() && pthread_equal(pthread_self(), who->handle.load()) && armed.exchange(false))
            then();
    }
};

}  // namespace

TEST_CASE("tcp_reader_turn_taken_while_a_waiter_retakes_the_interpreter_lock_is_not_shared") {
    // A waiter for the reader's turn sees it free, gives the socket's mutex up and takes
    // the interpreter lock back; a thread that held that lock takes the turn meanwhile.
    // The waiter must wait again, not read beside it (two readers of one receive buffer).
    auto hooks = std::make_shared<TakesTheLockBack>();
    auto rt = Runtime::start(hooks, std::chrono::hours(1));
    auto [c, s] = connected_pair(rt);
    waits::ThreadMark first, waiter, taker;
    auto read_on = [&s](waits::ThreadMark &mark, size_t n) {
        return std::async(std::launch::async, [&s, &mark, n] {
            mark.here();
            try {
                return s->read(n);
            } catch (const Error &e) {
                return std::string(e.what());
            }
        });
    };
    auto a = read_on(first, 1);
    REQUIRE(waits::wait_until_blocked(first, "the first read"));
    auto b = read_on(waiter, 5);
    REQUIRE(waits::wait_until_blocked(waiter, "the wait for the turn"));
    std::future<std::string> t;
    std::atomic<bool> taken{false};
    hooks->who = &waiter;
    hooks->then = [&] {
        t = read_on(taker, 5);
        waits::wait_until_blocked(taker, "the read that took the turn");
        taken = true;
    };
    hooks->armed = true;
    c->write("x");  // the first read ends and gives the turn back
    CHECK(a.get() == "x");
    REQUIRE(waits::wait_until([&] { return taken.load(); }, "the turn taken in the window"));
    REQUIRE(waits::wait_until_blocked(waiter, "the waiter, after the window"));
    CHECK(waits::task_state(waiter.tid.load()).syscall == std::to_string(SYS_futex));  // waiting for the turn
    c->write("yz");
    CHECK(t.get() == "yz");
    s->close();
    CHECK(b.get() == "read: the socket is closed");
    c->close();
    CHECK(rt->shutdown() == 0);
}

namespace {
// Fills `s`'s send buffer (and the peer's receive buffer) until the kernel takes no more,
// even once the acknowledgements in flight have come back.
void fill_send_buffer(TcpSocket &s, TcpSocket &peer) {
    // Fixed sizes: the kernel's autotuning would otherwise make room again later.
    int size = 16 * 1024;
    REQUIRE(::setsockopt(s.fileno(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0);
    REQUIRE(::setsockopt(peer.fileno(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size) == 0);
    std::string block(64 * 1024, 'f');
    for (bool took = true; took;) {
        took = false;
        while (::send(s.fileno(), block.data(), block.size(), MSG_DONTWAIT | MSG_NOSIGNAL) > 0) took = true;
        std::this_thread::sleep_for(20ms);
    }
}

// Waits until `fd` has something to report (data, end of stream, an error).
void wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
}
}  // namespace

TEST_CASE("tcp_eof_after_the_peer_reset_is_true_and_the_next_read_raises_the_reset") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    linger abort_on_close{1, 0};
    REQUIRE(::setsockopt(s->fileno(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close) == 0);
    s->close();
    wait_readable(c->fileno());
    // Before: the peek used up the pending ECONNRESET, eof() said false, and the read that
    // followed saw a clean end of stream.
    CHECK(c->eof());
    try {
        c->read(100);
        FAIL("read after a reset returned");
    } catch (const Error &e) {
        CHECK(e.code() == UV_ECONNRESET);
    }
}

TEST_CASE("tcp_write_that_times_out_part_way_resets_the_connection_and_says_how_much_was_sent") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    std::string big(32 * 1024 * 1024, 'b');  // more than both buffers hold: nobody reads yet
    try {
        c->write(big, Clock::now() + 200ms);
        FAIL("a write bigger than the buffers did not time out");
    } catch (const Error &e) {
        CHECK(e.kind() == ErrorKind::Timeout);
        CHECK(std::string(e.what()).find(" of 33554432 bytes; the connection was reset") != std::string::npos);
    }
    CHECK(c->closed());
    // The peer gets the bytes that went out, then the reset: never a clean end of stream
    // after a cut message (which a close() with FIN gave before).
    size_t got = 0;
    try {
        for (;;) {
            std::string part = s->read(1 << 20, Clock::now() + 5s);
            REQUIRE(!part.empty());
            got += part.size();
        }
    } catch (const Error &e) {
        CHECK(e.code() == UV_ECONNRESET);
    }
    CHECK(got < big.size());
}

TEST_CASE("tcp_write_that_times_out_before_sending_anything_leaves_the_stream_usable") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    fill_send_buffer(*c, *s);
    CHECK_THROWS_AS(c->write("after", Clock::now() + 50ms), Error);
    CHECK(!c->closed());  // nothing of "after" went out: the stream is still in order
    std::thread reader([s = s] {
        std::string all;
        while (all.size() < 5 || all.compare(all.size() - 5, 5, "after") != 0) all += s->read(1 << 20);
    });
    c->write("after", Clock::now() + 5s);
    reader.join();
}

TEST_CASE("tcp_listen_again_takes_the_new_backlog") {
    // Before, a second listen() returned without telling the kernel: the queue stayed at
    // the first backlog, and connections beyond it waited for ever.
    LoopFixture fx;
    auto l = TcpSocket::create(fx.rt, Family::Inet4);
    l->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    l->listen(1);
    l->listen(16);
    std::vector<std::shared_ptr<TcpSocket>> clients;
    for (int i = 0; i < 6; ++i) {
        auto c = TcpSocket::create(fx.rt, Family::Inet4);
        CHECK_NOTHROW(c->connect(Endpoint{Family::Inet4, "127.0.0.1", LoopFixture::port_of(*l)}, Clock::now() + 5s));
        clients.push_back(c);
    }
    for (size_t i = 0; i < clients.size(); ++i) l->accept();
}

TEST_CASE("tcp_close_from_another_thread_ends_a_blocked_connect_as_closed") {
    // Before, the wait that the close's shutdown() woke went on to read SO_ERROR from a
    // descriptor already closed (EBADF), or reported the shutdown as ECONNRESET; another
    // socket given that number meanwhile would have had its own error read and cleared.
    LoopFixture fx;
    auto l = TcpSocket::create(fx.rt, Family::Inet4);
    l->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    l->listen(0);
    Endpoint to{Family::Inet4, "127.0.0.1", LoopFixture::port_of(*l)};
    // Fill the accept queue: then the kernel drops the next connections' SYNs.
    std::vector<std::shared_ptr<TcpSocket>> queued;
    for (bool full = false; !full && queued.size() < 64;) {
        auto q = TcpSocket::create(fx.rt, Family::Inet4);
        try {
            q->connect(to, Clock::now() + 200ms);
            queued.push_back(q);
        } catch (const Error &) {
            full = true;  // timed out (and closed itself)
        }
    }
    for (Deadline deadline : {Deadline{Clock::now() + 60s}, Deadline{}}) {
        CAPTURE(deadline.has_value());
        auto c = TcpSocket::create(fx.rt, Family::Inet4);
        waits::ThreadMark mark;
        std::promise<std::string> outcome;
        std::thread t([&] {
            mark.here();
            try {
                c->connect(to, deadline);
                outcome.set_value("connected");
            } catch (const Error &e) {
                outcome.set_value(std::string(e.kind() == ErrorKind::Closed ? "closed: " : "other: ") + e.what());
            }
        });
        waits::wait_until_blocked(mark, "connect");
        c->close();
        t.join();
        CHECK(outcome.get_future().get() == "closed: connect: the socket is closed");
    }
}

TEST_CASE("tcp_connect_that_times_out_looking_up_the_name_leaves_the_socket_open") {
    // No handshake began, so nothing needs the socket closed (one under way would).
    LoopFixture fx;  // first: it runs a task on the pool
    auto l = fx.listener();
    auto c = TcpSocket::create(fx.rt, Family::Inet4);
    {
        BusyThreadPool pool;  // the lookup stays queued
        CHECK_THROWS_WITH_AS(c->connect(Endpoint{Family::Inet4, "localhost", 9}, Clock::now() + 50ms),
                             "connect: timed out", Error);
    }
    CHECK(std::string(c->state_text()) == "open");
    c->connect(Endpoint{Family::Inet4, "127.0.0.1", LoopFixture::port_of(*l)});
    auto s = l->accept().first;
    c->write("still good");
    CHECK(s->read(100) == "still good");
}

TEST_CASE("tcp_v6only_listener_leaves_the_port_to_an_inet4_listener") {
    LoopFixture fx;
    auto six = TcpSocket::create(fx.rt, Family::Inet6);
    six->set_option(Option::V6Only, 1);
    CHECK(six->get_option(Option::V6Only) == 1);
    six->bind(Endpoint{Family::Inet6, "::", 0});
    six->listen(4);
    const uint16_t port = LoopFixture::port_of(*six);
    auto four = TcpSocket::create(fx.rt, Family::Inet4);
    four->bind(Endpoint{Family::Inet4, "127.0.0.1", port});  // EADDRINUSE without v6only
    four->listen(4);
    auto c = TcpSocket::create(fx.rt, Family::Inet4);
    c->connect(Endpoint{Family::Inet4, "127.0.0.1", port});
    auto s = four->accept().first;
    c->write("to four");
    CHECK(s->read(100) == "to four");
    auto inet4 = TcpSocket::create(fx.rt, Family::Inet4);
    CHECK_THROWS_WITH_AS(inet4->set_option(Option::V6Only, 1), doctest::Contains("setopt v6only"), Error);
}

TEST_CASE("tcp_accept_with_a_deadline_already_past_takes_a_connection_already_waiting") {
    // A timeout of 0 does what can be done at once, as read() with one does.
    LoopFixture fx;
    auto l = fx.listener();
    auto c = TcpSocket::create(fx.rt, Family::Inet4);
    c->connect(Endpoint{Family::Inet4, "127.0.0.1", LoopFixture::port_of(*l)});
    pollfd waiting{l->fileno(), POLLIN, 0};
    REQUIRE(::poll(&waiting, 1, 5000) == 1);  // the connection is in the backlog
    auto s = l->accept(Clock::now()).first;
    c->write("x");
    CHECK(s->read(1) == "x");
    CHECK_THROWS_WITH_AS(l->accept(Clock::now()), "accept: timed out", Error);  // none waiting
}

TEST_CASE("tcp_accepted_connections_take_the_listeners_linemax") {
    LoopFixture fx;
    auto l = fx.listener();
    l->set_option(Option::LineMax, 5);
    auto c = TcpSocket::create(fx.rt, Family::Inet4);
    c->connect(Endpoint{Family::Inet4, "127.0.0.1", LoopFixture::port_of(*l)});
    auto s = l->accept().first;
    CHECK(s->get_option(Option::LineMax) == 5);
    c->write("123456\n");
    CHECK_THROWS_WITH_AS(s->read_line(), doctest::Contains("linemax"), Error);
}
