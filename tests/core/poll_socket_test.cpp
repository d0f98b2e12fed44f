// PollSocket: raw, packet and sequenced-packet sockets on loopback, and what the kernel
// refuses here (the errors must name the socket and the errno).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <functional>
#include <tuple>
#include <cstring>
#include <set>
#include <thread>

#include "ksnet/error.hpp"
#include "ksnet/poll_socket.hpp"
#include "ksnet/udp.hpp"
#include "loop_fixture.hpp"
#include "skip.hpp"
#include "waits.hpp"

using namespace ksnet;
using namespace std::chrono_literals;

namespace {

constexpr int kSockPacket = 10;  // SOCK_PACKET

sockaddr_in loopback4(uint16_t port = 0, const char *host = "127.0.0.1") {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, host, &sin.sin_addr);
    return sin;
}

sockaddr_in6 loopback6() {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_loopback;
    return sin6;
}

const sockaddr *sa(const void *p) { return static_cast<const sockaddr *>(p); }

uint16_t port_of(const PollSocket &s) {
    auto a = s.local_address();
    return sockaddr_port(reinterpret_cast<sockaddr *>(&a));
}

uint16_t inet_checksum(const std::string &data) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < data.size(); i += 2) {
        sum += (static_cast<uint8_t>(data[i]) << 8) | static_cast<uint8_t>(data[i + 1]);
    }
    if (data.size() % 2) sum += static_cast<uint8_t>(data.back()) << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

// An ICMP (type 8) or ICMPv6 (type 128) echo request; the kernel fills in the ICMPv6
// checksum itself.
std::string echo_request(uint8_t type, uint16_t id, uint16_t seq, const std::string &payload, bool checksum) {
    std::string p(8, '\0');
    p[0] = static_cast<char>(type);
    p[4] = static_cast<char>(id >> 8);
    p[5] = static_cast<char>(id & 0xff);
    p[6] = static_cast<char>(seq >> 8);
    p[7] = static_cast<char>(seq & 0xff);
    p += payload;
    if (checksum) {
        uint16_t c = inet_checksum(p);
        p[2] = static_cast<char>(c >> 8);
        p[3] = static_cast<char>(c & 0xff);
    }
    return p;
}

std::string unique_marker(const char *what) {
    static std::atomic<int> n{0};
    return std::string("ksnet-") + what + "-" + std::to_string(getpid()) + "-" + std::to_string(++n);
}

// Runs `body` in a forked child that has given up root (and so CAP_NET_RAW); returns
// what the body returned. No runtime may exist in the parent across the fork.
template <class Body>
std::string run_unprivileged(Body body) {
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        std::string out;
        try {
            if (geteuid() == 0) {
                if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) out = "cannot drop root";
            }
            if (out.empty()) out = body();
        } catch (const std::exception &e) {
            out = std::string("exception: ") + e.what();
        }
        ssize_t w = write(fds[1], out.data(), out.size());
        _exit(w == static_cast<ssize_t>(out.size()) ? 0 : 1);
    }
    REQUIRE(pid > 0);
    close(fds[1]);
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    close(fds[0]);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    return out;
}

// What PollSocket::create says, with a runtime of its own (in this process or a child).
std::string create_error(int af, int type, int protocol) {
    auto rt = Runtime::start();
    std::string what = "created";
    try {
        PollSocket::create(rt, af, type, protocol)->close();
    } catch (const Error &e) {
        what = e.what();
    }
    if (rt->shutdown() != 0) what += " (and the runtime left something behind)";
    return what;
}

bool is_root() { return geteuid() == 0; }

std::vector<int> socket_fds() {
    std::vector<int> fds;
    for (int fd = 0; fd < 4096; ++fd) {
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0 && std::string(target, static_cast<size_t>(n)).rfind("socket:", 0) == 0) fds.push_back(fd);
    }
    return fds;
}

// Reads frames until one contains `marker` (bounded in frames and time). Other loopback
// traffic of this machine arrives too and may overflow the socket's buffer, so `resend`
// sends the marker again now and then.
bool sees_marker(PollSocket &s, const std::string &marker, const std::function<void()> &resend,
                 std::string *from_text = nullptr) {
    auto deadline = Clock::now() + 5s;
    auto next_resend = Clock::now() + 100ms;
    for (int i = 0; i < 100000 && Clock::now() < deadline; ++i) {
        if (Clock::now() >= next_resend) {
            resend();
            next_resend = Clock::now() + 100ms;
        }
        std::string frame;
        sockaddr_storage from{};
        try {
            std::tie(frame, from) = s.recvfrom(PollSocket::kAnySize, std::min(deadline, next_resend));
        } catch (const Error &e) {
            if (e.kind() != ErrorKind::Timeout) throw;
            continue;
        }
        if (frame.find(marker) != std::string::npos) {
            if (from_text) {
                *from_text = format_any_sockaddr(reinterpret_cast<sockaddr *>(&from), sizeof from, s.type(), s.protocol());
            }
            return true;
        }
    }
    return false;
}

}  // namespace

TEST_CASE("poll_socket_raw_icmp_echo_to_127_0_0_1_gets_its_reply") {
    if (!is_root()) {
        census::Snapshot before;
        CHECK(create_error(AF_INET, SOCK_RAW, IPPROTO_ICMP) == "socket AF_INET/SOCK_RAW/ICMP: EPERM (operation not permitted)");
        return;
    }
    LoopFixture fx;
    auto s = PollSocket::create(fx.rt, AF_INET, SOCK_RAW, IPPROTO_ICMP);
    CHECK(s->description() == "AF_INET/SOCK_RAW/ICMP");
    uint16_t id = static_cast<uint16_t>(getpid() ^ 0x5a5a), seq = 7;
    std::string payload = unique_marker("ping");
    auto to = loopback4();
    s->sendto(echo_request(8, id, seq, payload, true), sa(&to), sizeof to);
    bool replied = false;
    auto deadline = Clock::now() + 5s;
    for (int i = 0; i < 1000 && !replied; ++i) {
        auto [packet, from] = s->recvfrom(PollSocket::kAnySize, deadline);
        // IPv4 raw sockets receive the IP header too.
        REQUIRE(packet.size() >= 20);
        size_t ihl = (static_cast<uint8_t>(packet[0]) & 0x0f) * 4u;
        std::string icmp = packet.substr(ihl);
        if (icmp.size() < 8 || icmp[0] != 0) continue;  // not an echo reply (e.g. our own request)
        if (icmp.substr(8) != payload) continue;        // someone else's
        CHECK(static_cast<uint8_t>(icmp[4]) == (id >> 8));
        CHECK(static_cast<uint8_t>(icmp[7]) == seq);
        CHECK(inet_checksum(icmp) == 0);  // intact
        CHECK(format_any_sockaddr(reinterpret_cast<sockaddr *>(&from), sizeof(sockaddr_in), SOCK_RAW, IPPROTO_ICMP) ==
              "127.0.0.1");
        replied = true;
    }
    CHECK(replied);
}

TEST_CASE("poll_socket_raw_icmpv6_echo_to_ipv6_loopback_gets_its_reply") {
    SKIP_UNLESS(is_root(), "needs root for a raw socket (the EPERM case covers the rest)");
    LoopFixture fx;
    auto s = PollSocket::create(fx.rt, AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    std::string payload = unique_marker("ping6");
    auto to = loopback6();
    s->sendto(echo_request(128, 0x1234, 1, payload, false), sa(&to), sizeof to);
    bool replied = false;
    auto deadline = Clock::now() + 5s;
    for (int i = 0; i < 1000 && !replied; ++i) {
        auto [icmp, from] = s->recvfrom(PollSocket::kAnySize, deadline);  // no IP header for IPv6
        if (icmp.size() < 8 || static_cast<uint8_t>(icmp[0]) != 129 || icmp.substr(8) != payload) continue;
        CHECK(format_any_sockaddr(reinterpret_cast<sockaddr *>(&from), sizeof(sockaddr_in6), SOCK_RAW,
                                  IPPROTO_ICMPV6) == "::1");
        replied = true;
    }
    CHECK(replied);
}

TEST_CASE("poll_socket_raw_and_packet_sockets_without_privilege_fail_with_eperm") {
    // As root the kernel allows these, so the check runs in a child that gave up root.
    census::Snapshot before;
    CHECK(run_unprivileged([] { return create_error(AF_INET, SOCK_RAW, IPPROTO_ICMP); }) ==
          "socket AF_INET/SOCK_RAW/ICMP: EPERM (operation not permitted)");
    CHECK(run_unprivileged([] { return create_error(AF_INET, SOCK_RAW, IPPROTO_UDP); }) ==
          "socket AF_INET/SOCK_RAW/UDP: EPERM (operation not permitted)");
    CHECK(run_unprivileged([] { return create_error(AF_INET, kSockPacket, 0); }) ==
          "socket AF_INET/SOCK_PACKET/0: EPERM (operation not permitted)");
    CHECK(run_unprivileged([] { return create_error(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)); }) ==
          "socket AF_PACKET/SOCK_RAW/ETH_P_ALL: EPERM (operation not permitted)");
    CHECK(census::open_fds() == before.fds);
}

TEST_CASE("poll_socket_seqpacket_over_inet_is_refused_with_esocktnosupport") {
    census::Snapshot before;
    CHECK(create_error(AF_INET, SOCK_SEQPACKET, 0) ==
          "socket AF_INET/SOCK_SEQPACKET/0: ESOCKTNOSUPPORT (socket type not supported)");
    CHECK(create_error(AF_INET6, SOCK_SEQPACKET, 0) ==
          "socket AF_INET6/SOCK_SEQPACKET/0: ESOCKTNOSUPPORT (socket type not supported)");
    // An impossible protocol for the type is EPROTONOSUPPORT.
    CHECK(create_error(AF_INET, SOCK_DGRAM, IPPROTO_TCP) ==
          "socket AF_INET/SOCK_DGRAM/TCP: EPROTONOSUPPORT (protocol not supported)");
    CHECK(census::open_fds() == before.fds);
    CHECK(census::threads_settled(before.thread_count) == before.thread_count);
}

TEST_CASE("poll_socket_sock_packet_over_inet6_is_refused_and_over_inet_needs_cap_net_raw") {
    census::Snapshot before;
    CHECK(create_error(AF_INET6, kSockPacket, 0) ==
          "socket AF_INET6/SOCK_PACKET/0: ESOCKTNOSUPPORT (socket type not supported)");
    // Linux still maps the obsolete (AF_INET, SOCK_PACKET) onto AF_PACKET: with
    // CAP_NET_RAW it is made, without it EPERM (the case above).
    CHECK(create_error(AF_INET, kSockPacket, 0) ==
          (is_root() ? "created" : "socket AF_INET/SOCK_PACKET/0: EPERM (operation not permitted)"));
    CHECK(census::open_fds() == before.fds);
}

TEST_CASE("poll_socket_sock_packet_on_lo_sees_a_loopback_udp_datagram") {
    SKIP_UNLESS(is_root(), "needs root for a raw or packet socket");
    LoopFixture fx;
    auto p = PollSocket::create(fx.rt, AF_INET, kSockPacket, htons(ETH_P_ALL));
    CHECK(p->description() == "AF_INET/SOCK_PACKET/ETH_P_ALL");
    sockaddr dev{};  // struct sockaddr_pkt without its protocol: the device name
    dev.sa_family = AF_PACKET;
    std::strcpy(dev.sa_data, "lo");
    p->bind(&dev, sizeof dev);
    auto rx = UdpSocket::create(fx.rt, Family::Inet4);
    rx->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    auto local = rx->local_address();
    auto tx = UdpSocket::create(fx.rt, Family::Inet4);
    std::string marker = unique_marker("spkt");
    Endpoint to{Family::Inet4, "127.0.0.1", sockaddr_port(reinterpret_cast<sockaddr *>(&local))};
    tx->sendto(marker, to);
    std::string from;
    CHECK(sees_marker(*p, marker, [&] { tx->sendto(marker, to); }, &from));
    CHECK(from == "lo");
    CHECK(rx->recv(100, Clock::now() + 5s) == marker);
}

TEST_CASE("poll_socket_af_packet_raw_on_lo_sees_a_loopback_udp_datagram") {
    SKIP_UNLESS(is_root(), "needs root for a raw or packet socket");
    LoopFixture fx;
    auto p = PollSocket::create(fx.rt, AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
    CHECK(p->description() == "AF_PACKET/SOCK_RAW/0x0800");
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_IP);
    ll.sll_ifindex = static_cast<int>(if_nametoindex("lo"));
    REQUIRE(ll.sll_ifindex > 0);
    p->bind(sa(&ll), sizeof ll);
    auto rx = UdpSocket::create(fx.rt, Family::Inet4);
    rx->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    auto local = rx->local_address();
    auto tx = UdpSocket::create(fx.rt, Family::Inet4);
    std::string marker = unique_marker("pkt");
    Endpoint to{Family::Inet4, "127.0.0.1", sockaddr_port(reinterpret_cast<sockaddr *>(&local))};
    tx->sendto(marker, to);
    std::string from;
    CHECK(sees_marker(*p, marker, [&] { tx->sendto(marker, to); }, &from));
    CHECK(from == "lo");
}

TEST_CASE("poll_socket_raw_udp_packet_reaches_a_udp_socket_with_the_forged_source_port") {
    SKIP_UNLESS(is_root(), "needs root for a raw or packet socket");
    LoopFixture fx;
    auto rx = UdpSocket::create(fx.rt, Family::Inet4);
    rx->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    auto local = rx->local_address();
    uint16_t port = sockaddr_port(reinterpret_cast<sockaddr *>(&local));
    auto raw = PollSocket::create(fx.rt, AF_INET, SOCK_RAW, IPPROTO_UDP);
    std::string payload = unique_marker("rawudp");
    std::string udp(8, '\0');  // source 40001, destination, length, checksum 0 (none)
    uint16_t fields[4] = {htons(40001), htons(port), htons(static_cast<uint16_t>(8 + payload.size())), 0};
    std::memcpy(udp.data(), fields, 8);
    auto to = loopback4();
    raw->sendto(udp + payload, sa(&to), sizeof to);
    auto [d, from] = rx->recvfrom(100, Clock::now() + 5s);
    CHECK(d == payload);
    CHECK(format_sockaddr(reinterpret_cast<sockaddr *>(&from)) == "127.0.0.1:40001");
    // The raw socket gets its own copy of incoming UDP packets, IP header included.
    CHECK(sees_marker(*raw, payload, [&] { raw->sendto(udp + payload, sa(&to), sizeof to); }));
}

TEST_CASE("poll_socket_recv_smaller_than_the_message_raises_and_keeps_the_message") {
    LoopFixture fx;
    auto a = PollSocket::create(fx.rt, AF_INET, SOCK_DGRAM, 0);
    auto b = PollSocket::create(fx.rt, AF_INET, SOCK_DGRAM, 0);
    auto any = loopback4();
    a->bind(sa(&any), sizeof any);
    auto to = loopback4(port_of(*a));
    b->sendto(std::string(100, 'm'), sa(&to), sizeof to);
    b->sendto("small", sa(&to), sizeof to);
    try {
        a->recv(10, Clock::now() + 5s);
        FAIL("cut the message");
    } catch (const Error &e) {
        CHECK(e.kind() == ErrorKind::Value);
        CHECK(std::string(e.what()) == "read: the message of 100 bytes does not fit in max 10 bytes");
    }
    CHECK(a->recv(100) == std::string(100, 'm'));
    auto [d, from] = a->recvfrom(5, Clock::now() + 5s);
    CHECK(d == "small");
    CHECK(sockaddr_port(reinterpret_cast<sockaddr *>(&from)) == port_of(*b));
}

TEST_CASE("poll_socket_unix_seqpacket_listen_accept_connect_keeps_message_boundaries") {
    LoopFixture fx;
    auto l = PollSocket::create(fx.rt, AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::string name = unique_marker("seqpacket");  // abstract: no file
    std::memcpy(un.sun_path + 1, name.data(), name.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    l->bind(sa(&un), len);
    l->listen(4);
    CHECK(l->state() == PollSocket::State::Listening);
    CHECK_THROWS_WITH(l->recv(1), "read: socket is listening (use accept())");
    std::shared_ptr<PollSocket> server;
    waits::ThreadMark accepting;
    std::thread acceptor([&] {
        accepting.here();
        server = l->accept(Clock::now() + 5s).first;  // blocks until the connect
    });
    waits::wait_until_blocked(accepting, "accept");
    auto c = PollSocket::create(fx.rt, AF_UNIX, SOCK_SEQPACKET, 0);
    c->connect(sa(&un), len, Clock::now() + 5s);
    acceptor.join();
    REQUIRE(server);
    CHECK(server->state() == PollSocket::State::Connected);
    c->send("a");
    c->send("bcd");
    c->send(std::string(70000, 'z'));
    CHECK(server->recv(100, Clock::now() + 5s) == "a");
    CHECK(server->recv(100, Clock::now() + 5s) == "bcd");
    CHECK_THROWS_WITH(server->recv(100, Clock::now() + 5s), "read: the message of 70000 bytes does not fit in max 100 bytes");
    CHECK(server->recv(PollSocket::kAnySize) == std::string(70000, 'z'));
    c->close();
    CHECK(server->recv(100, Clock::now() + 5s).empty());  // the peer is gone
    l->close();
}

TEST_CASE("poll_socket_stream_connect_completes_without_blocking_and_moves_a_megabyte") {
    LoopFixture fx;
    auto l = PollSocket::create(fx.rt, AF_INET, SOCK_STREAM, 0);
    auto any = loopback4();
    l->bind(sa(&any), sizeof any);
    l->listen(4);
    auto c = PollSocket::create(fx.rt, AF_INET, SOCK_STREAM, IPPROTO_TCP);
    auto to = loopback4(port_of(*l));
    c->connect(sa(&to), sizeof to, Clock::now() + 5s);
    CHECK(c->state() == PollSocket::State::Connected);
    auto [s, peer] = l->accept(Clock::now() + 5s);
    CHECK(sockaddr_port(reinterpret_cast<sockaddr *>(&peer)) == port_of(*c));
    std::string big(1 << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
    std::thread writer([&, c = c] {
        c->send(big, Clock::now() + 10s);  // more than the socket buffers: waits for writable
        c->close();
    });
    std::string got;
    for (int i = 0; i < 100000; ++i) {
        std::string part = s->recv(PollSocket::kAnySize, Clock::now() + 10s);
        if (part.empty()) break;
        got += part;
    }
    writer.join();
    CHECK(got.size() == big.size());
    CHECK(got == big);
}

// The calls are the caller's own system calls, and so are their waits (poll() on the
// caller's thread): a loop thread that is busy (here: stuck in a task) delays none of
// them. Each would time out if it waited for the loop.
TEST_CASE("poll_socket_calls_and_their_waits_need_no_loop_thread") {
    LoopFixture fx;
    auto any = loopback4();
    auto a = PollSocket::create(fx.rt, AF_INET, SOCK_DGRAM, 0);
    a->bind(sa(&any), sizeof any);
    auto b = PollSocket::create(fx.rt, AF_INET, SOCK_DGRAM, 0);
    auto l = PollSocket::create(fx.rt, AF_INET, SOCK_STREAM, 0);
    l->bind(sa(&any), sizeof any);
    l->listen(1);
    auto c = PollSocket::create(fx.rt, AF_INET, SOCK_STREAM, 0);
    auto to = loopback4(port_of(*l));
    c->connect(sa(&to), sizeof to, Clock::now() + 5s);
    auto s = l->accept(Clock::now() + 5s).first;  // accept() hands the new socket to the loop
    LoopStuck stuck(*fx.rt);
    auto soon = [] { return Clock::now() + 5s; };
    auto dest = loopback4(port_of(*a));
    waits::ThreadMark receiving;
    std::thread sender([&] {
        waits::wait_until_blocked(receiving, "recv");
        b->sendto("late", sa(&dest), sizeof dest, soon());
    });
    receiving.here();
    CHECK(a->recv(100, soon()) == "late");
    sender.join();
    std::string big(4 << 20, 'x');  // more than the socket buffers: the sender waits for room
    std::thread writer([&] { c->send(big, soon()); });
    size_t got = 0;
    while (got < big.size()) {
        std::string part = s->recv(PollSocket::kAnySize, soon());
        REQUIRE(!part.empty());
        got += part.size();
    }
    writer.join();
    CHECK(got == big.size());
}

TEST_CASE("poll_socket_connect_refused_names_address_and_errno") {
    LoopFixture fx;
    auto l = PollSocket::create(fx.rt, AF_INET, SOCK_STREAM, 0);
    auto any = loopback4();
    l->bind(sa(&any), sizeof any);
    uint16_t port = port_of(*l);
    l->close();  // bound, never listening: connects are refused
    auto c = PollSocket::create(fx.rt, AF_INET, SOCK_STREAM, 0);
    auto to = loopback4(port);
    try {
        c->connect(sa(&to), sizeof to, Clock::now() + 5s);
        FAIL("connected to a closed port");
    } catch (const Error &e) {
        CHECK(e.kind() == ErrorKind::Os);
        CHECK(e.code() == UV_ECONNREFUSED);
        CHECK(std::string(e.what()) == "connect 127.0.0.1:" + std::to_string(port) + ": ECONNREFUSED (connection refused)");
    }
}

TEST_CASE("poll_socket_recv_timeout_raises_timeout_and_keeps_the_socket_usable") {
    LoopFixture fx;
    auto a = PollSocket::create(fx.rt, AF_INET, SOCK_DGRAM, 0);
    auto any = loopback4();
    a->bind(sa(&any), sizeof any);
    try {
        a->recv(10, Clock::now() + 30ms);
        FAIL("no timeout");
    } catch (const Error &e) {
        CHECK(e.kind() == ErrorKind::Timeout);
        CHECK(std::string(e.what()) == "read: timed out");
    }
    auto b = PollSocket::create(fx.rt, AF_INET, SOCK_DGRAM, 0);
    auto to = loopback4(port_of(*a));
    b->connect(sa(&to), sizeof to);
    b->send("late");
    CHECK(a->recv(10, Clock::now() + 5s) == "late");
}

TEST_CASE("poll_socket_close_from_another_thread_wakes_a_blocked_recv_and_accept") {
    LoopFixture fx;
    auto a = PollSocket::create(fx.rt, AF_INET, SOCK_DGRAM, 0);
    auto any = loopback4();
    a->bind(sa(&any), sizeof any);
    auto l = PollSocket::create(fx.rt, AF_INET, SOCK_STREAM, 0);
    l->bind(sa(&any), sizeof any);
    l->listen(1);
    waits::ThreadMark receiving;
    std::thread closer([a, l, &receiving] {
        waits::wait_until_blocked(receiving, "recv");
        a->close();
        l->close();
    });
    receiving.here();
    CHECK_THROWS_WITH(a->recv(10), "read: the socket is closed");  // no deadline: the close ends it
    CHECK_THROWS_WITH(l->accept(), "accept: the socket is closed");
    closer.join();
    CHECK(a->state() == PollSocket::State::Closed);
    a->close();  // twice is harmless
}

TEST_CASE("poll_socket_shutdown_closes_it_and_wakes_a_blocked_recv_with_the_reason") {
    census::Snapshot before;
    auto rt = Runtime::start();
    auto a = PollSocket::create(rt, AF_INET, SOCK_DGRAM, 0);
    auto any = loopback4();
    a->bind(sa(&any), sizeof any);
    std::string error;
    waits::ThreadMark receiving;
    std::thread blocked([&] {
        try {
            receiving.here();
            a->recv(10);
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
    CHECK_THROWS_AS(a->send("x"), Error);
    a.reset();
    rt.reset();
    CHECK(census::open_fds() == before.fds);
    CHECK(census::threads_settled(before.thread_count) == before.thread_count);
}

TEST_CASE("poll_and_udp_socket_descriptors_are_close_on_exec") {
    LoopFixture fx;
    auto before = socket_fds();
    auto l = PollSocket::create(fx.rt, AF_INET, SOCK_STREAM, 0);
    auto any = loopback4();
    l->bind(sa(&any), sizeof any);
    l->listen(1);
    auto c = PollSocket::create(fx.rt, AF_INET, SOCK_STREAM, 0);
    auto to = loopback4(port_of(*l));
    c->connect(sa(&to), sizeof to, Clock::now() + 5s);
    auto accepted = l->accept(Clock::now() + 5s).first;  // accept4 with SOCK_CLOEXEC
    auto u = UdpSocket::create(fx.rt, Family::Inet6);
    auto after = socket_fds();
    std::set<int> old(before.begin(), before.end());
    int fresh = 0;
    for (int fd : after) {
        if (old.count(fd)) continue;
        ++fresh;
        CAPTURE(fd);
        CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        // Poll sockets wait in the loop; UDP callers make blocking calls of their own.
        bool nonblocking = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
        CHECK(nonblocking == (fd != u->fileno()));
    }
    CHECK(fresh == 4);
}

TEST_CASE("describe_socket_and_format_any_sockaddr_name_things_as_messages_do") {
    CHECK(describe_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) == "AF_INET/SOCK_RAW/ICMP");
    CHECK(describe_socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6) == "AF_INET6/SOCK_RAW/ICMPV6");
    CHECK(describe_socket(AF_INET, SOCK_SEQPACKET, 0) == "AF_INET/SOCK_SEQPACKET/0");
    CHECK(describe_socket(31, SOCK_STREAM, 3) == "AF_BLUETOOTH/SOCK_STREAM/RFCOMM");
    CHECK(describe_socket(31, SOCK_SEQPACKET, 0) == "AF_BLUETOOTH/SOCK_SEQPACKET/L2CAP");
    CHECK(describe_socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL)) == "AF_PACKET/SOCK_DGRAM/ETH_P_ALL");
    CHECK(describe_socket(99, 42, 7) == "AF_99/SOCK_42/7");
    auto sin = loopback4(53);
    CHECK(format_any_sockaddr(sa(&sin), sizeof sin, SOCK_DGRAM, 0) == "127.0.0.1:53");
    CHECK(format_any_sockaddr(sa(&sin), sizeof sin, SOCK_RAW, IPPROTO_ICMP) == "127.0.0.1");
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, "\0abc", 4);
    CHECK(format_any_sockaddr(sa(&un), offsetof(sockaddr_un, sun_path) + 4, SOCK_SEQPACKET, 0) == "@abc");
}
