// Every family, kind and protocol through the plugin: what works end to end on
// loopback, and what this system refuses with the documented error. Also timeouts,
// half-close and socket options.
#include <net/if.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <thread>
#include <tuple>

#include "net_fixture.hpp"
#include "raw_sockets.hpp"
#include "skip.hpp"

using namespace nettest;

namespace {

// An ICMP echo request with identifier `id` and the checksum filled in.
std::string icmp_echo_request(uint16_t id, const std::string &payload) {
    std::string p = std::string("\x08\x00\x00\x00", 4) + char(id >> 8) + char(id & 0xFF) + std::string("\x00\x01", 2) +
                    payload;
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < p.size(); i += 2) sum += (uint8_t(p[i]) << 8) | uint8_t(p[i + 1]);
    if (p.size() % 2) sum += uint8_t(p.back()) << 8;
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    uint16_t check = static_cast<uint16_t>(~sum);
    p[2] = char(check >> 8);
    p[3] = char(check & 0xFF);
    return p;
}

}  // namespace

TEST_CASE("udp_datagrams_keep_boundaries_and_name_their_sender") {
    NetFixture fx;
    auto &h = fx.host;
    Value a = fx.socket("INET4", "UDP");
    h.call_method(a, "bind", {fx.addr("127.0.0.1", 0)});
    Value b = fx.socket("INET4", "UDP");
    Value to = fx.addr("127.0.0.1", fx.port_of(a));
    CHECK(h.to_int(h.call_method(b, "sendto", {h.bytes("one"), to})) == 3);
    h.call_method(b, "sendto", {h.str("two"), to});
    Value got = h.call_method(a, "recvfrom");
    CHECK(h.to_bytes(h.item(got, 0)) == "one");
    Value sender = h.item(got, 1);
    CHECK(h.to_str(h.item(sender, 0)) == "127.0.0.1");
    CHECK(h.to_int(h.item(sender, 1)) == fx.port_of(b));
    CHECK(h.to_bytes(h.call_method(a, "read")) == "two");
    // Connected: write and read carry one datagram each.
    h.call_method(b, "connect", {to});
    h.call_method(b, "write", {h.bytes("three")});
    CHECK(h.to_bytes(h.call_method(a, "read", {h.integer(100)})) == "three");
    CHECK(h.repr(b).find("sk=UDP state=connected") != std::string::npos);
    h.call_method(a, "close");
    h.call_method(b, "close");
}

TEST_CASE("udp_never_cuts_a_datagram_silently") {
    NetFixture fx;
    auto &h = fx.host;
    Value a = fx.socket("INET4", "UDP");
    h.call_method(a, "bind", {fx.addr("127.0.0.1", 0)});
    Value b = fx.socket("INET4", "UDP");
    h.call_method(b, "connect", {fx.addr("127.0.0.1", fx.port_of(a))});
    // Too big to send: refused, not cut.
    ScriptError big = raised([&] { h.call_method(b, "write", {h.bytes(std::string(70000, 'x'))}); });
    CHECK(big.kind == KSP_ERR_VAL);
    CHECK(contains(big.what(), "70000"));
    // Too big for the reader's size: an error, and the datagram waits for a larger read.
    h.call_method(b, "write", {h.bytes(std::string(100, 'y'))});
    ScriptError small = raised([&] { h.call_method(a, "read", {h.integer(10)}); });
    CHECK(small.kind == KSP_ERR_VAL);
    CHECK(contains(small.what(), "100 bytes"));
    CHECK(h.to_bytes(h.call_method(a, "read", {h.integer(100)})) == std::string(100, 'y'));
    // Line iteration needs a stream.
    ScriptError lines = raised([&] { h.next(h.iter(a)); });
    CHECK(lines.kind == KSP_ERR_IO);
    CHECK(contains(lines.what(), "line iteration: not for a UDP socket"));
    ScriptError listen = raised([&] { h.call_method(a, "listen"); });
    CHECK(contains(listen.what(), "UDP is connectionless"));
    h.call_method(a, "close");
    h.call_method(b, "close");
}

TEST_CASE("udp_over_ipv6_loopback") {
    NetFixture fx;
    auto &h = fx.host;
    Value a = fx.socket("INET6", "UDP");
    h.call_method(a, "bind", {h.tuple({h.str("::1"), h.integer(0), h.integer(0), h.integer(0)})});
    Value b = fx.socket("INET6", "UDP");
    h.call_method(b, "sendto", {h.bytes("v6"), fx.addr("::1", fx.port_of(a))});
    Value got = h.call_method(a, "recvfrom", {h.integer(10)});
    CHECK(h.to_bytes(h.item(got, 0)) == "v6");
    CHECK(h.to_str(h.item(h.item(got, 1), 0)) == "::1");
    h.call_method(a, "close");
    h.call_method(b, "close");
}

TEST_CASE("ipv6_link_local_names_keep_their_interface_and_work_as_addresses") {
    // Only a namespace of the test's own has a link-local address on its loopback. Its
    // own thread: the namespace stays with that thread (and the plugin's, started there).
    std::thread([] {
        SKIP_UNLESS(rawsock::own_network_namespace(), "needs a network namespace of its own (root)");
        SKIP_UNLESS(rawsock::add_ipv6_address("lo", "fe80::1", 64), "the kernel refused an IPv6 address on lo");
        NetFixture fx;
        auto &h = fx.host;
        const int64_t lo = if_nametoindex("lo");
        const std::string lo_index = std::to_string(lo);
        auto name_of = [&](const Value &s) { return h.to_str(h.getattr(s, "local_name")); };

        // UDP, the scope given as the tuple's fourth item, as a number after '%', by name.
        Value a = fx.socket("INET6", "UDP");
        h.call_method(a, "bind", {h.tuple({h.str("fe80::1"), h.integer(0), h.integer(0), h.integer(lo)})});
        CHECK(name_of(a) == "fe80::1%lo");
        Value b = fx.socket("INET6", "UDP");
        h.call_method(b, "bind", {fx.addr(("fe80::1%" + lo_index).c_str(), 0)});
        CHECK(name_of(b) == "fe80::1%lo");
        h.call_method(b, "sendto", {h.bytes("ping"), fx.addr(name_of(a).c_str(), fx.port_of(a))});
        Value got = h.call_method(a, "recvfrom", {h.integer(16), h.floating(5.0)});
        Value sender = h.item(got, 1);
        CHECK(h.to_str(h.item(sender, 0)) == "fe80::1%lo");
        CHECK(h.to_int(h.item(sender, 1)) == fx.port_of(b));
        // The sender's name as recvfrom gives it is an address a reply can go to.
        h.call_method(a, "sendto", {h.bytes("pong"), sender});
        CHECK(h.to_bytes(h.call_method(b, "read", {h.integer(16), h.floating(5.0)})) == "pong");

        // TCP: connect to the listener's name; accept and peer_name keep the interface.
        Value l = fx.listener("fe80::1%lo", fx.enum_member("FK", "INET6"));
        Value c = h.call(fx.SocketIO, {fx.enum_member("FK", "INET6")});
        h.call_method(c, "connect", {fx.addr(name_of(l).c_str(), fx.port_of(l)), h.floating(5.0)});
        Value accepted = h.call_method(l, "accept", {h.floating(5.0)});
        CHECK(h.to_str(h.item(accepted, 1)) == "[fe80::1%lo]:" + std::to_string(h.to_int(h.getattr(c, "local_port"))));
        CHECK(h.to_str(h.getattr(c, "peer_name")) == "fe80::1%lo");

        // An interface that does not exist: the error names the host as given.
        Value d = h.call(fx.SocketIO, {fx.enum_member("FK", "INET6")});
        ScriptError e = raised([&] { h.call_method(d, "connect", {fx.addr("fe80::1%nosuch0", fx.port_of(l)), h.floating(5.0)}); });
        CHECK(e.kind == KSP_ERR_VAL);
        CHECK(contains(e.what(), "[fe80::1%nosuch0]"));
        CHECK(contains(e.what(), "no network interface 'nosuch0'"));
        for (Value *s : {&a, &b, &l, &c, &d}) h.call_method(*s, "close");
        h.call_method(h.item(accepted, 0), "close");
    }).join();
}

TEST_CASE("ipv6_zone_is_read_as_an_interface_name_before_an_index") {
    // As getaddrinfo reads it: "%2" is the interface called "2" if there is one. Here that
    // is the loopback (index 1), renamed, and there is no interface 2.
    std::thread([] {
        SKIP_UNLESS(rawsock::own_network_namespace(), "needs a network namespace of its own (root)");
        SKIP_UNLESS(rawsock::rename_interface("lo", "2"), "the kernel refused to rename lo");
        SKIP_UNLESS(rawsock::add_ipv6_address("2", "fe80::1", 64), "the kernel refused an IPv6 address");
        REQUIRE(if_nametoindex("2") != 2);
        NetFixture fx;
        auto &h = fx.host;
        Value a = fx.socket("INET6", "UDP");
        h.call_method(a, "bind", {fx.addr("fe80::1%2", 0)});
        CHECK(h.to_str(h.getattr(a, "local_name")) == "fe80::1%2");
        Value b = fx.socket("INET6", "UDP");
        h.call_method(b, "sendto", {h.bytes("x"), fx.addr("fe80::1%2", fx.port_of(a))});
        Value got = h.call_method(a, "recvfrom", {h.integer(4), h.floating(5.0)});
        CHECK(h.to_bytes(h.item(got, 0)) == "x");
        CHECK(h.to_str(h.item(h.item(got, 1), 0)) == "fe80::1%2");
        h.call_method(a, "close");
        h.call_method(b, "close");
    }).join();
}

TEST_CASE("raw_icmp_echo_on_loopback_or_eperm_without_privilege") {
    NetFixture fx;
    auto &h = fx.host;
    if (geteuid() != 0) {
        ScriptError e = raised([&] { fx.socket("INET4", "RAW", "ICMP"); });
        CHECK(e.kind == KSP_ERR_OS);
        CHECK(contains(e.what(), "EPERM"));
        return;
    }
    Value s = fx.socket("INET4", "RAW", "ICMP");
    CHECK(h.repr(s).find("sk=RAW pk=ICMP") != std::string::npos);
    const uint16_t id = static_cast<uint16_t>(getpid());
    h.call_method(s, "sendto", {h.bytes(icmp_echo_request(id, "ksnet ping")), fx.addr("127.0.0.1", 0)});
    // A raw socket sees the request go by as well as the reply: look for the reply.
    bool replied = false;
    for (int i = 0; i < 10 && !replied; ++i) {
        Value got = h.call_method(s, "recvfrom", {h.none(), h.floating(5.0)});
        std::string packet = h.to_bytes(h.item(got, 0));
        size_t ihl = (uint8_t(packet[0]) & 0x0F) * 4;  // raw IPv4 sockets receive the IP header
        REQUIRE(packet.size() >= ihl + 8);
        std::string icmp = packet.substr(ihl);
        uint16_t got_id = static_cast<uint16_t>((uint8_t(icmp[4]) << 8) | uint8_t(icmp[5]));
        if (icmp[0] == 0 && got_id == id) {
            replied = true;
            CHECK(icmp.substr(8) == "ksnet ping");
            CHECK(h.to_str(h.item(h.item(got, 1), 0)) == "127.0.0.1");
        }
    }
    CHECK(replied);
    // It carries datagrams: listen() and accept() say so (accept asked for listen() first).
    for (const char *method : {"listen", "accept"}) {
        ScriptError e = raised([&] { h.call_method(s, method); });
        CHECK(e.kind == KSP_ERR_IO);
        CHECK(e.what() == std::string(method) + ": not for a RAW socket (it carries datagrams, not connections: use recvfrom() and sendto())");
    }
    h.call_method(s, "close");
}

TEST_CASE("packet_seq_over_ip_is_refused_by_the_kernel_with_its_reason") {
    NetFixture fx;
    int fds = census::open_fds();
    ScriptError e = raised([&] { fx.socket("INET4", "PACKET_SEQ"); });
    CHECK(e.kind == KSP_ERR_OS);
    CHECK(contains(e.what(), "SOCK_SEQPACKET"));
    CHECK(contains(e.what(), "ESOCKTNOSUPPORT"));
    CHECK(census::open_fds() == fds);
}

TEST_CASE("packet_kind_opens_as_root_or_names_eperm") {
    NetFixture fx;
    auto &h = fx.host;
    if (geteuid() != 0) {
        ScriptError e = raised([&] { fx.socket("INET4", "PACKET"); });
        CHECK(e.kind == KSP_ERR_OS);
        CHECK(contains(e.what(), "EPERM"));
        return;
    }
    Value s = fx.socket("INET4", "PACKET");
    CHECK(h.repr(s).find("sk=PACKET") != std::string::npos);
    // Bound to no device, it has no name, as any unbound socket.
    CHECK(h.is_none(h.getattr(s, "local_name")));
    CHECK(h.is_none(h.getattr(s, "local_port")));
    CHECK(h.is_none(h.getattr(s, "peer_name")));
    CHECK(contains(raised([&] { h.call_method(s, "accept"); }).what(), "accept: not for a PACKET socket"));
    h.call_method(s, "close");
}

TEST_CASE("bluetooth_without_kernel_support_says_so") {
    NetFixture fx;
    auto &h = fx.host;
    for (const char *sk : {"TCP", "PACKET_SEQ"}) {
        CAPTURE(sk);
        try {
            Value s = fx.socket("BT", sk);
            // A kernel with Bluetooth: the socket opens; addresses are checked before use.
            ScriptError e = raised([&] { h.call_method(s, "connect", {fx.addr("01:23:45:67:89:GG", 1)}); });
            CHECK(e.kind == KSP_ERR_VAL);
            h.call_method(s, "close");
        } catch (const ScriptError &e) {
            CHECK(e.kind == KSP_ERR_OS);
            CHECK(contains(e.what(), "Bluetooth is not available on this system"));
            CHECK(contains(e.what(), "EAFNOSUPPORT"));
        }
    }
}

TEST_CASE("timeouts_raise_timeouterror_per_call_and_by_default") {
    NetFixture fx;
    auto &h = fx.host;
    Value l = fx.listener();
    ScriptError e = raised([&] { h.call_method(l, "accept", {h.floating(0.05)}); });
    CHECK(e.kind == KSP_ERR_TIMEOUT);
    CHECK(std::string(e.what()) == "accept: timed out");
    CHECK(h.is_none(h.call_method(l, "gettimeout")));
    h.call_method(l, "close");

    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    h.call_method(s, "settimeout", {h.floating(0.05)});
    CHECK(h.to_float(h.call_method(s, "gettimeout")) == doctest::Approx(0.05));
    ScriptError r = raised([&] { h.call_method(s, "read", {h.integer(1)}); });
    CHECK(r.kind == KSP_ERR_TIMEOUT);
    // The socket still works after a read timed out.
    h.call_method(c, "write", {h.bytes("late")});
    CHECK(h.to_bytes(h.call_method(s, "read", {h.integer(4), h.integer(5)})) == "late");
    h.call_method(s, "settimeout", {h.none()});
    CHECK(h.is_none(h.call_method(s, "gettimeout")));
    h.call_method(c, "close");
    h.call_method(s, "close");
}

TEST_CASE("shutdown_half_closes_and_the_peer_reads_to_end") {
    NetFixture fx;
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    h.call_method(c, "write", {h.bytes("last words")});
    h.call_method(c, "shutdown");
    h.call_method(c, "shutdown");  // twice is harmless
    CHECK(h.to_bytes(h.call_method(s, "read")) == "last words");  // to end of stream
    CHECK(h.to_bool(h.call_method(s, "eof")));
    // The other direction still works.
    h.call_method(s, "write", {h.bytes("ack")});
    CHECK(h.to_bytes(h.call_method(c, "read", {h.integer(3)})) == "ack");
    ScriptError e = raised([&] { h.call_method(c, "write", {h.bytes("more")}); });
    CHECK(e.kind == KSP_ERR_IO);
    CHECK(std::string(e.what()) == "write: the write side was shut down (shutdown())");
    h.call_method(c, "close");
    h.call_method(s, "close");
}

TEST_CASE("socket_options_set_and_read_back") {
    NetFixture fx;
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    auto opt = [&](const Value &sock, const char *name) { return h.to_int(h.call_method(sock, "getopt", {h.str(name)})); };
    CHECK(opt(c, "reuseaddr") == 0);  // off unless asked for
    h.call_method(c, "setopt", {h.str("nodelay"), h.boolean(true)});
    CHECK(opt(c, "nodelay") == 1);
    h.call_method(c, "setopt", {h.str("keepalive"), h.integer(30)});
    CHECK(opt(c, "keepalive") == 30);
    h.call_method(c, "setopt", {h.str("rcvbuf"), h.integer(1 << 16)});
    CHECK(opt(c, "rcvbuf") >= (1 << 16));  // Linux doubles it for bookkeeping
    h.call_method(c, "close");
    ScriptError e = raised([&] { opt(c, "nodelay"); });
    CHECK(std::string(e.what()) == "getopt: the socket is closed");
    h.call_method(s, "close");

    Value u = fx.socket("INET4", "UDP");
    h.call_method(u, "setopt", {h.str("broadcast"), h.integer(1)});
    CHECK(opt(u, "broadcast") == 1);
    h.call_method(u, "close");
}
