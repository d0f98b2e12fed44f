// UDP sockets on loopback: boundaries, sizes, addresses, timeouts, closing.
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstring>
#include <thread>
#include <vector>

#include "ksnet/error.hpp"
#include "ksnet/udp.hpp"
#include "busy_thread_pool.hpp"
#include "loop_fixture.hpp"
#include "waits.hpp"

using namespace ksnet;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<UdpSocket> bound(LoopFixture &fx, Family f = Family::Inet4, const char *host = nullptr) {
    auto s = UdpSocket::create(fx.rt, f);
    s->bind(Endpoint{f, host ? host : (f == Family::Inet6 ? "::1" : "127.0.0.1"), 0});
    return s;
}

uint16_t port_of(const UdpSocket &s) {
    auto a = s.local_address();
    return sockaddr_port(reinterpret_cast<sockaddr *>(&a));
}

Endpoint endpoint_of(const UdpSocket &s) {
    auto a = s.local_address();
    auto *sa = reinterpret_cast<sockaddr *>(&a);
    return Endpoint{s.family(), format_host(sa), sockaddr_port(sa)};
}

uint32_t fnv1a(const char *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; ++i) {
        h ^= static_cast<unsigned char>(p[i]);
        h *= 16777619u;
    }
    return h;
}

// seq (4) | payload length (4) | checksum of the payload (4) | payload
std::string make_datagram(uint32_t seq) {
    size_t len = 16 + (seq * 37u) % 1400;
    std::string payload(len, '\0');
    for (size_t i = 0; i < len; ++i) payload[i] = static_cast<char>((seq * 131u + i * 7u) & 0xff);
    uint32_t hdr[3] = {seq, static_cast<uint32_t>(len), fnv1a(payload.data(), len)};
    return std::string(reinterpret_cast<char *>(hdr), sizeof hdr) + payload;
}

// Returns the sequence number, or -1 if the datagram is not intact.
int64_t check_datagram(const std::string &d) {
    uint32_t hdr[3];
    if (d.size() < sizeof hdr) return -1;
    std::memcpy(hdr, d.data(), sizeof hdr);
    if (d.size() != sizeof hdr + hdr[1]) return -1;
    if (fnv1a(d.data() + sizeof hdr, hdr[1]) != hdr[2]) return -1;
    if (d != make_datagram(hdr[0])) return -1;
    return hdr[0];
}

template <class F>
Error error_of(F f) {
    try {
        f();
    } catch (const Error &e) {
        return e;
    }
    FAIL("no error was raised");
    return Error(ErrorKind::Value, "");
}

}  // namespace

TEST_CASE("udp_10000_datagrams_arrive_intact_in_order_on_loopback") {
    LoopFixture fx;
    auto rx = bound(fx);
    auto tx = UdpSocket::create(fx.rt, Family::Inet4);
    tx->connect(endpoint_of(*rx));
    constexpr uint32_t kCount = 10000;

    std::atomic<int64_t> last_seen{-1};
    std::atomic<bool> sender_done{false};
    int64_t received = 0, corrupt = 0, out_of_order = 0;
    std::string reader_error;
    std::thread reader([&] {
        int64_t prev = -1;
        for (;;) {
            std::string d;
            try {
                d = rx->recv(UdpSocket::kAnySize, Clock::now() + (sender_done ? 300ms : 5s));
            } catch (const Error &e) {
                if (e.kind() != ErrorKind::Timeout) reader_error = e.what();
                break;
            }
            int64_t seq = check_datagram(d);
            if (seq < 0) {
                ++corrupt;
                continue;
            }
            if (seq <= prev) ++out_of_order;
            prev = seq;
            ++received;
            last_seen = seq;
            if (seq == kCount - 1) break;
        }
    });
    for (uint32_t seq = 0; seq < kCount; ++seq) {
        // Pace: stay at most 32 datagrams ahead of the reader (what the kernel's default
        // receive buffer holds of them, with room to spare), waiting at most 200 ms.
        // (Flow control, not synchronisation: a reader that falls behind for longer costs
        // datagrams, which the case counts as lost and allows up to a limit.)
        for (int spins = 0; static_cast<int64_t>(seq) - last_seen > 32 && spins < 2000; ++spins) {
            std::this_thread::sleep_for(100us);
        }
        tx->send(make_datagram(seq));
    }
    sender_done = true;
    reader.join();
    int64_t lost = kCount - received;
    MESSAGE("received " << received << " of " << kCount << ", lost " << lost);
    CHECK(reader_error == "");
    CHECK(corrupt == 0);
    CHECK(out_of_order == 0);
    CHECK(lost <= kCount / 100);  // loopback loses a datagram only under heavy load
}

TEST_CASE("udp_datagram_larger_than_udp_can_carry_is_refused_naming_both_sizes") {
    LoopFixture fx;
    auto rx = bound(fx);
    auto tx = UdpSocket::create(fx.rt, Family::Inet4);
    auto e = error_of([&] { tx->sendto(std::string(65508, 'x'), endpoint_of(*rx)); });
    CHECK(e.kind() == ErrorKind::Value);
    CHECK(std::string(e.what()) ==
          "sendto: the datagram of 65508 bytes is larger than UDP over IPv4 can carry (at most 65507 bytes)");
    // The largest one goes through whole.
    std::string big(UdpSocket::kMaxPayload4, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 13);
    tx->sendto(big, endpoint_of(*rx));
    CHECK(rx->recv(UdpSocket::kAnySize, Clock::now() + 5s) == big);
}

TEST_CASE("udp_ipv6_datagram_limit_is_65527_bytes") {
    LoopFixture fx;
    auto rx = bound(fx, Family::Inet6);
    auto tx = UdpSocket::create(fx.rt, Family::Inet6);
    tx->connect(endpoint_of(*rx));
    auto e = error_of([&] { tx->send(std::string(65528, 'x')); });
    CHECK(std::string(e.what()) ==
          "write: the datagram of 65528 bytes is larger than UDP over IPv6 can carry (at most 65527 bytes)");
    std::string big(UdpSocket::kMaxPayload6, 'y');
    tx->send(big);
    CHECK(rx->recv(UdpSocket::kAnySize, Clock::now() + 5s) == big);
}

TEST_CASE("udp_ipv6_datagram_to_an_ipv4_mapped_address_has_ipv4s_limit") {
    LoopFixture fx;
    auto rx = bound(fx);
    Endpoint mapped{Family::Inet6, "::ffff:127.0.0.1", endpoint_of(*rx).port};
    const std::string over(UdpSocket::kMaxPayload4 + 1, 'x');
    const std::string expected = "the datagram of 65508 bytes is larger than UDP over IPv4 can carry (at most 65507 bytes)";
    auto tx = UdpSocket::create(fx.rt, Family::Inet6);
    auto e = error_of([&] { tx->sendto(over, mapped); });
    CHECK(e.kind() == ErrorKind::Value);
    CHECK(std::string(e.what()) == "sendto: " + expected);
    auto connected = UdpSocket::create(fx.rt, Family::Inet6);
    connected->connect(mapped);
    e = error_of([&] { connected->send(over); });
    CHECK(e.kind() == ErrorKind::Value);
    CHECK(std::string(e.what()) == "write: " + expected);
    std::string big(UdpSocket::kMaxPayload4, 'm');
    connected->send(big);
    CHECK(rx->recv(UdpSocket::kAnySize, Clock::now() + 5s) == big);
}

TEST_CASE("udp_recv_smaller_than_the_datagram_raises_and_keeps_the_datagram") {
    LoopFixture fx;
    auto rx = bound(fx);
    auto tx = UdpSocket::create(fx.rt, Family::Inet4);
    std::string d(100, 'd');
    tx->sendto(d, endpoint_of(*rx));
    tx->sendto("next", endpoint_of(*rx));
    auto e = error_of([&] { rx->recv(10, Clock::now() + 5s); });
    CHECK(e.kind() == ErrorKind::Value);
    CHECK(std::string(e.what()) == "read: the datagram of 100 bytes does not fit in max 10 bytes");
    CHECK_THROWS_WITH(rx->recvfrom(99), "recvfrom: the datagram of 100 bytes does not fit in max 99 bytes");
    CHECK(rx->recv(100) == d);  // exactly its size fits
    CHECK(rx->recv(4, Clock::now() + 5s) == "next");
    CHECK(rx->held() == 0);
}

TEST_CASE("udp_empty_datagram_is_delivered_as_an_empty_string") {
    LoopFixture fx;
    auto rx = bound(fx);
    auto tx = UdpSocket::create(fx.rt, Family::Inet4);
    tx->sendto("", endpoint_of(*rx));
    tx->sendto("after", endpoint_of(*rx));
    CHECK(rx->recv(0, Clock::now() + 5s).empty());
    CHECK(rx->recv(5, Clock::now() + 5s) == "after");
}

TEST_CASE("udp_recvfrom_reports_the_sender_and_sendto_replies_to_it") {
    LoopFixture fx;
    auto server = bound(fx, Family::Inet4, "127.0.0.1");
    auto client = bound(fx, Family::Inet4, "127.0.0.2");  // all of 127/8 is loopback
    client->sendto("ping", endpoint_of(*server));
    auto [data, from] = server->recvfrom(100, Clock::now() + 5s);
    CHECK(data == "ping");
    auto *sa = reinterpret_cast<sockaddr *>(&from);
    CHECK(format_sockaddr(sa) == "127.0.0.2:" + std::to_string(port_of(*client)));
    server->sendto("pong", from);
    auto [reply, replier] = client->recvfrom(100, Clock::now() + 5s);
    CHECK(reply == "pong");
    CHECK(sockaddr_port(reinterpret_cast<sockaddr *>(&replier)) == port_of(*server));
}

TEST_CASE("udp_first_sendto_binds_the_socket_implicitly_and_starts_receiving") {
    LoopFixture fx;
    auto server = bound(fx);
    auto client = UdpSocket::create(fx.rt, Family::Inet4);
    CHECK(client->state() == UdpSocket::State::Open);
    CHECK_THROWS_WITH(client->local_address(), "getsockname: socket is not bound");
    client->sendto("hi", endpoint_of(*server));
    CHECK(client->state() == UdpSocket::State::Bound);
    CHECK(port_of(*client) != 0);
    auto [d, from] = server->recvfrom(10, Clock::now() + 5s);
    server->sendto("back", from);
    CHECK(client->recv(10, Clock::now() + 5s) == "back");
}

TEST_CASE("udp_connected_send_and_recv_exchange_with_the_peer_only") {
    LoopFixture fx;
    auto a = bound(fx);
    auto b = bound(fx);
    auto stranger = UdpSocket::create(fx.rt, Family::Inet4);
    a->connect(endpoint_of(*b));
    b->connect(endpoint_of(*a));
    CHECK(a->state() == UdpSocket::State::Connected);
    auto peer = a->peer_address();
    CHECK(sockaddr_port(reinterpret_cast<sockaddr *>(&peer)) == port_of(*b));
    stranger->sendto("not for you", endpoint_of(*a));  // the kernel filters it out
    b->send("one");
    b->send("two");
    a->send("three");
    CHECK(a->recv(100, Clock::now() + 5s) == "one");
    CHECK(a->recv(100, Clock::now() + 5s) == "two");
    CHECK(b->recv(100, Clock::now() + 5s) == "three");
    CHECK_THROWS_AS(a->recv(100, Clock::now() + 50ms), Error);  // nothing from the stranger
    CHECK_THROWS_WITH(a->sendto("x", endpoint_of(*b)), "sendto: socket is connected (use write())");
    CHECK_THROWS_WITH(stranger->send("x"), "write: socket is not connected (use sendto(), or connect() first)");
}

TEST_CASE("udp_connected_send_to_a_closed_port_reports_econnrefused_on_recv") {
    LoopFixture fx;
    auto gone = bound(fx);
    uint16_t port = port_of(*gone);
    gone->close();
    auto s = UdpSocket::create(fx.rt, Family::Inet4);
    s->connect(Endpoint{Family::Inet4, "127.0.0.1", port});
    s->send("anyone?");
    auto e = error_of([&] { s->recv(100, Clock::now() + 5s); });
    CHECK(e.kind() == ErrorKind::Os);
    CHECK(std::string(e.what()) ==
          "read 127.0.0.1:" + std::to_string(port) + ": ECONNREFUSED (connection refused)");
}

TEST_CASE("udp_round_trip_on_ipv6_loopback") {
    LoopFixture fx;
    auto server = bound(fx, Family::Inet6);
    auto client = UdpSocket::create(fx.rt, Family::Inet6);
    client->sendto("six", Endpoint{Family::Inet6, "::1", port_of(*server)});
    auto [d, from] = server->recvfrom(10, Clock::now() + 5s);
    CHECK(d == "six");
    CHECK(format_host(reinterpret_cast<sockaddr *>(&from)) == "::1");
    CHECK(format_sockaddr(reinterpret_cast<sockaddr *>(&from)) == "[::1]:" + std::to_string(port_of(*client)));
}

TEST_CASE("udp_sendto_resolves_localhost_by_name") {
    LoopFixture fx;
    auto server = bound(fx);
    auto client = UdpSocket::create(fx.rt, Family::Inet4);
    client->sendto("named", Endpoint{Family::Inet4, "localhost", port_of(*server)});
    CHECK(server->recv(10, Clock::now() + 5s) == "named");
}

TEST_CASE("udp_recv_timeout_raises_timeout_and_keeps_the_socket_usable") {
    LoopFixture fx;
    auto rx = bound(fx);
    auto e = error_of([&] { rx->recv(10, Clock::now() + 30ms); });
    CHECK(e.kind() == ErrorKind::Timeout);
    CHECK(std::string(e.what()) == "read: timed out");
    auto tx = UdpSocket::create(fx.rt, Family::Inet4);
    tx->sendto("late", endpoint_of(*rx));
    CHECK(rx->recv(10, Clock::now() + 5s) == "late");
}

TEST_CASE("udp_close_from_another_thread_wakes_a_blocked_recv") {
    LoopFixture fx;
    auto rx = bound(fx);
    waits::ThreadMark receiving;
    std::thread closer([rx, &receiving] {
        waits::wait_until_blocked(receiving, "recv");
        rx->close();
    });
    receiving.here();
    auto e = error_of([&] { rx->recv(10); });  // no deadline: only the close ends it
    closer.join();
    CHECK(e.kind() == ErrorKind::Closed);
    CHECK(std::string(e.what()) == "read: the socket is closed");
}

TEST_CASE("udp_bind_error_addrinuse") {
    LoopFixture fx;
    auto a = bound(fx);
    uint16_t port = port_of(*a);
    auto b = UdpSocket::create(fx.rt, Family::Inet4);
    auto e = error_of([&] { b->bind(Endpoint{Family::Inet4, "127.0.0.1", port}); });
    CHECK(e.code() == UV_EADDRINUSE);
    CHECK(std::string(e.what()) == "bind 127.0.0.1:" + std::to_string(port) + ": EADDRINUSE (address already in use)");
}

TEST_CASE("udp_operations_in_the_wrong_state_or_family_say_so") {
    LoopFixture fx;
    auto s = UdpSocket::create(fx.rt, Family::Inet4);
    CHECK_THROWS_WITH(s->recv(1), "read: socket is not bound (call bind(), connect() or sendto() first)");
    CHECK_THROWS_WITH(s->peer_address(), "getpeername: socket is not connected");
    CHECK_THROWS_WITH(s->bind(Endpoint{Family::Inet6, "::1", 0}),
                      "bind: address family INET6 does not match the socket's family INET4");
    s->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    CHECK_THROWS_WITH(s->bind(Endpoint{Family::Inet4, "127.0.0.1", 0}), "bind: socket is already bound");
    CHECK_THROWS_AS(UdpSocket::create(fx.rt, Family::Bluetooth), Error);
    s->close();
    s->close();  // twice is harmless
    CHECK_THROWS_WITH(s->recv(1), "read: the socket is closed");
    CHECK_THROWS_WITH(s->sendto("x", Endpoint{Family::Inet4, "127.0.0.1", 9}), "sendto: the socket is closed");
    CHECK(s->state() == UdpSocket::State::Closed);
}

TEST_CASE("udp_unread_datagrams_wait_in_the_kernel_and_come_out_oldest_first") {
    LoopFixture fx;
    auto rx = bound(fx);
    auto tx = UdpSocket::create(fx.rt, Family::Inet4);
    tx->connect(endpoint_of(*rx));
    for (uint32_t seq = 0; seq < 50; ++seq) tx->send(make_datagram(seq));
    CHECK(rx->held() == 0);  // the plugin keeps none of them
    for (uint32_t seq = 0; seq < 50; ++seq) CHECK(check_datagram(rx->recv(UdpSocket::kAnySize, Clock::now() + 5s)) == seq);
}

// The calls are the caller's own system calls: a loop thread that is busy (here: stuck
// in a task) delays none of them. Each would time out if it waited for the loop.
TEST_CASE("udp_connect_send_and_recv_need_no_loop_thread") {
    LoopFixture fx;
    auto rx = bound(fx);
    auto tx = UdpSocket::create(fx.rt, Family::Inet4);
    LoopStuck stuck(*fx.rt);
    auto soon = [] { return Clock::now() + 2s; };
    tx->connect(endpoint_of(*rx), soon());
    tx->send("ping", soon());
    auto [data, from] = rx->recvfrom(UdpSocket::kAnySize, soon());
    CHECK(data == "ping");
    rx->sendto("pong", from, soon());
    CHECK(tx->recv(UdpSocket::kAnySize, soon()) == "pong");
}

TEST_CASE("udp_shutdown_with_an_open_socket_closes_it_and_wakes_recv_with_the_reason") {
    census::Snapshot before;
    auto rt = Runtime::start();
    auto s = UdpSocket::create(rt, Family::Inet4);
    s->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    std::string error;
    waits::ThreadMark receiving;
    std::thread blocked([&] {
        try {
            receiving.here();
            s->recv(10);
        } catch (const Error &e) {
            error = e.what();
        }
    });
    waits::wait_until_blocked(receiving, "recv");
    waits::wait_until([&] { return rt->tracked_count() == 1; }, "the loop to take the socket");
    CHECK(rt->tracked_count() == 1);
    CHECK(rt->shutdown() == 0);
    blocked.join();
    CHECK(error == "read: socket closed because the net module was unloaded");
    CHECK_THROWS_AS(s->sendto("x", Endpoint{Family::Inet4, "127.0.0.1", 9}), Error);
    s.reset();
    rt.reset();
    CHECK(census::open_fds() == before.fds);
    CHECK(census::threads_settled(before.thread_count) == before.thread_count);
}

TEST_CASE("udp_sendto_that_gives_up_on_a_name_cancels_its_lookup_still_queued") {
    // libuv runs few lookups at a time: one nobody waits for must not hold up the next.
    LoopFixture fx;  // first: it runs a task on the pool
    BusyThreadPool pool;
    auto u = UdpSocket::create(fx.rt, Family::Inet4);
    const size_t before = fx.rt->tracked_count();
    CHECK_THROWS_WITH_AS(u->sendto("x", Endpoint{Family::Inet4, "localhost", 9}, Clock::now() + 50ms),
                         "sendto: timed out", Error);
    CHECK(waits::wait_until([&] { return fx.rt->tracked_count() == before; }, "the lookup to be cancelled", 5000ms));
    u->close();
}
