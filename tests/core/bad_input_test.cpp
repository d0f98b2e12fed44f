// Bad input to the core's parsers, table by table: every malformed address, port,
// channel, PSM or option name is refused with Error(Value) naming it; every well-formed
// one is accepted. Bluetooth sockets cannot be made on a kernel without AF_BLUETOOTH,
// so Bluetooth addresses are checked here rather than through the plugin.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ksnet/address.hpp"
#include "ksnet/bluetooth.hpp"
#include "ksnet/error.hpp"
#include "ksnet/options.hpp"
#include "ksnet/poll_socket.hpp"
#include "loop_fixture.hpp"

using namespace ksnet;
using namespace std::chrono_literals;

namespace {

// Runs `call`; returns the Error(Value)'s message, or fails the case.
template <class F>
std::string value_error_of(F &&call, const std::string &input) {
    try {
        call();
    } catch (const Error &e) {
        CHECK_MESSAGE(e.kind() == ErrorKind::Value, "kind ", static_cast<int>(e.kind()), " for '", input, "': ", e.what());
        return e.what();
    } catch (const std::exception &e) {
        FAIL("'" << input << "' raised a non-ksnet exception: " << e.what());
    }
    FAIL("'" << input << "' was accepted");
    return "";
}

std::string printable(const std::string &s) {
    std::string out;
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\x%02x", c);
            out += esc;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("bluetooth_address_table_malformed_texts_are_value_errors_naming_the_text") {
    const std::vector<std::string> bad = {
        "",
        ":",
        "01:23:45:67:89",           // five octets
        "01:23:45:67:89:AB:",       // trailing separator
        "01:23:45:67:89:AB:CD",     // seven octets
        "0:1:2:3:4:5",              // one digit per octet
        "001:23:45:67:89:AB",       // three digits
        "01:23:45:67:89:A",         // short last octet
        "01.23.45.67.89.AB",        // wrong separator
        "01-23-45-67-89-AB",
        "01:23:45:67:89:AB ",       // trailing space
        " 01:23:45:67:89:AB",       // leading space
        "0x:23:45:67:89:AB",        // prefix
        "GG:23:45:67:89:AB",        // not hex
        "01:23:45:67:89:-1",
        "+1:23:45:67:89:AB",
        "01::23:45:67:89:AB",
        "01:23:45:67:89:ÄB",        // multi-byte UTF-8
        std::string("01:23:45\0:67:89:AB", 18),
        std::string("01:23:45:67:89:A\0", 17),
        std::string(17, '\0'),
        std::string(1000, 'A'),     // long: the message shows a shortened copy
        "0123456789AB",
        "01:23:45:67:89:AB\n",
    };
    for (const std::string &text : bad) {
        CAPTURE(printable(text));
        std::string msg = value_error_of([&] { bt::parse_bdaddr(text); }, printable(text));
        CHECK(msg.rfind("Bluetooth address '", 0) == 0);
        CHECK(msg.find("expected XX:XX:XX:XX:XX:XX") != std::string::npos);
        CHECK(msg.size() < 300);  // long input is shortened, not copied whole
        // The same through the sockaddr builders.
        sockaddr_storage ss;
        value_error_of([&] { bt::make_rfcomm_sockaddr(text, 1, ss); }, printable(text));
        value_error_of([&] { bt::make_l2cap_sockaddr(text, 1, ss); }, printable(text));
    }
    for (const char *good : {"00:00:00:00:00:00", "FF:FF:FF:FF:FF:FF", "0a:1B:2c:3D:4e:5F"}) {
        CAPTURE(good);
        CHECK_NOTHROW(bt::parse_bdaddr(good));
    }
}

TEST_CASE("bluetooth_port_table_channels_and_psms_out_of_range_are_value_errors") {
    for (int64_t ch : {int64_t{-1}, int64_t{0}, int64_t{31}, int64_t{255}, int64_t{256}, int64_t{1} << 40,
                       INT64_MIN, INT64_MAX}) {
        CAPTURE(ch);
        std::string msg = value_error_of([&] { bt::check_rfcomm_channel(ch); }, std::to_string(ch));
        CHECK(msg.find(std::to_string(ch)) != std::string::npos);
        sockaddr_storage ss;
        value_error_of([&] { bt::make_rfcomm_sockaddr("01:23:45:67:89:AB", ch, ss); }, std::to_string(ch));
    }
    for (int64_t psm : {int64_t{-1}, int64_t{0}, int64_t{2}, int64_t{0x0100}, int64_t{0x0101}, int64_t{0x10001},
                        int64_t{0xFFFF}, INT64_MIN, INT64_MAX}) {
        CAPTURE(psm);
        value_error_of([&] { bt::check_l2cap_psm(psm); }, std::to_string(psm));
        sockaddr_storage ss;
        value_error_of([&] { bt::make_l2cap_sockaddr("01:23:45:67:89:AB", psm, ss); }, std::to_string(psm));
    }
}

TEST_CASE("bluetooth_decode_refuses_other_families_and_protocols") {
    sockaddr_storage ss{};
    reinterpret_cast<sockaddr *>(&ss)->sa_family = AF_INET;
    CHECK_THROWS_AS(bt::decode_sockaddr(reinterpret_cast<sockaddr *>(&ss), bt::kProtoRfcomm), Error);
    bt::make_rfcomm_sockaddr("01:23:45:67:89:AB", 3, ss);
    CHECK_THROWS_AS(bt::decode_sockaddr(reinterpret_cast<sockaddr *>(&ss), 7), Error);
    CHECK_THROWS_AS(bt::decode_sockaddr(reinterpret_cast<sockaddr *>(&ss), -1), Error);
}

TEST_CASE("numeric_address_table_malformed_literals_are_not_taken_as_addresses") {
    // parse_numeric only accepts what inet_pton does; anything else is left to the
    // resolver (and fails there with the name in the message).
    struct Row {
        Family family;
        const char *text;
    };
    const std::vector<Row> bad = {
        {Family::Inet4, "256.0.0.1"},     {Family::Inet4, "1.2.3"},         {Family::Inet4, "1.2.3.4.5"},
        {Family::Inet4, "1..2.3"},        {Family::Inet4, "-1.2.3.4"},      {Family::Inet4, "01.2.3.4"},
        {Family::Inet4, "0x7f.0.0.1"},    {Family::Inet4, "127.0.0.1 "},    {Family::Inet4, " 127.0.0.1"},
        {Family::Inet4, "127.0.0.1/8"},   {Family::Inet4, "::1"},           {Family::Inet4, "localhost"},
        {Family::Inet4, "1.2.3.4:80"},    {Family::Inet6, ":::1"},          {Family::Inet6, "1::2::3"},
        {Family::Inet6, "::g"},           {Family::Inet6, "1:2:3:4:5:6:7:8:9"}, {Family::Inet6, "[::1]"},
        {Family::Inet6, "12345::1"},      {Family::Inet6, "::1%"},          {Family::Inet6, "127.0.0.1"},
        {Family::Inet6, "::ffff:1.2.3"},  {Family::Inet6, "fe80::1%nosuch0"}, {Family::Inet6, "::1/128"},
        {Family::Inet6, "fe80::1%99999999999"}, {Family::Inet6, "%lo"},     {Family::Inet6, "fe80::1%lo%lo"},
    };
    for (const Row &r : bad) {
        CAPTURE(r.text);
        Endpoint ep{r.family, r.text, 80};
        sockaddr_storage ss;
        socklen_t len = 0;
        CHECK_FALSE(parse_numeric(ep, ss, len));
    }
    // Embedded NUL: inet_pton stops at it, so check_host must refuse the name first.
    CHECK_THROWS_WITH(check_host(std::string("127.0.0.1\0evil", 14), "addr"), "addr: host name contains a NUL byte");
    // Longest and just too long.
    CHECK_NOTHROW(check_host(std::string(255, 'a'), "addr"));
    CHECK_THROWS_AS(check_host(std::string(256, 'a'), "addr"), Error);
    CHECK_THROWS_AS(check_host(std::string(1 << 20, 'a'), "addr"), Error);
    // Good ones still parse, and format back.
    for (const Row &r : {Row{Family::Inet4, "127.0.0.1"}, Row{Family::Inet6, "::1"}, Row{Family::Inet6, "::ffff:127.0.0.1"}}) {
        CAPTURE(r.text);
        Endpoint ep{r.family, r.text, 80};
        sockaddr_storage ss;
        socklen_t len = 0;
        REQUIRE(parse_numeric(ep, ss, len));
        std::string text = format_sockaddr(reinterpret_cast<sockaddr *>(&ss));
        CHECK(text.find("80") != std::string::npos);
    }
}

TEST_CASE("port_table_out_of_range_ports_are_value_errors_naming_the_port") {
    for (int64_t port : {int64_t{-1}, int64_t{65536}, int64_t{1} << 32, int64_t{1} << 62, INT64_MIN, INT64_MAX}) {
        CAPTURE(port);
        std::string msg = value_error_of([&] { check_port(port, "argument 'addr'"); }, std::to_string(port));
        CHECK(msg.find(std::to_string(port)) != std::string::npos);
        CHECK(msg.find("argument 'addr'") == 0);
    }
}

TEST_CASE("option_name_table_unknown_names_are_value_errors_listing_the_known_ones") {
    for (const std::string &name : {std::string(""), std::string("NODELAY"), std::string("nodelay "),
                                    std::string("no_delay"), std::string("nodela"), std::string("nodelay\0x", 9),
                                    std::string(10000, 'x'), std::string("so_reuseaddr")}) {
        CAPTURE(printable(name));
        std::string msg = value_error_of([&] { option_from_name(name, "argument 'name'"); }, printable(name));
        CHECK(msg.find("argument 'name'") == 0);
        CHECK(msg.find("nodelay, keepalive, reuseaddr, rcvbuf, sndbuf, broadcast") != std::string::npos);
        CHECK(msg.size() < 250);  // a long name is shortened
    }
    // A NUL in the name is shown escaped: the message crosses the C ABI as a C string.
    try {
        option_from_name(std::string("nodelay\0x", 9), "argument 'name'");
    } catch (const Error &e) {
        CHECK(std::string(e.what()) == "argument 'name' is 'nodelay\\x00x' (expected one of nodelay, keepalive, "
                                       "reuseaddr, rcvbuf, sndbuf, broadcast, linemax, v6only)");
    }
    for (const char *name : {"nodelay", "keepalive", "reuseaddr", "rcvbuf", "sndbuf", "broadcast"}) {
        CHECK(option_name(option_from_name(name, "x")) == std::string(name));
    }
}

TEST_CASE("keepalive_refused_leaves_the_options_as_they_were") {
    // Before: SO_KEEPALIVE was set first, so an idle time the kernel refused (above its
    // 32767 s, which the range check let through) or a UDP socket (no TCP_KEEPIDLE) left
    // keepalive on after the error.
    int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
    int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE((tcp >= 0 && udp >= 0));
    CHECK_THROWS_AS(set_option(tcp, Option::KeepAlive, 40000, "test"), Error);
    CHECK(get_option(tcp, Option::KeepAlive, "test") == 0);
    set_option(tcp, Option::KeepAlive, 32767, "test");
    CHECK(get_option(tcp, Option::KeepAlive, "test") == 32767);
    CHECK_THROWS_AS(set_option(udp, Option::KeepAlive, 5, "test"), Error);
    CHECK(get_option(udp, Option::KeepAlive, "test") == 0);
    ::close(tcp);
    ::close(udp);
}

TEST_CASE("poll_socket_stream_read_with_a_huge_max_returns_what_is_there") {
    // A stream PollSocket (Bluetooth RFCOMM is the real user; AF_UNIX stands in) asked
    // for 2**62 bytes must read what has arrived, not try to allocate 2**62 bytes first.
    LoopFixture fx;
    std::string name = "ksnet-bad-input-" + std::to_string(::getpid());
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path + 1, name.data(), name.size());  // abstract: no file
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    auto l = PollSocket::create(fx.rt, AF_UNIX, SOCK_STREAM, 0);
    l->bind(reinterpret_cast<sockaddr *>(&un), len);
    l->listen(4);
    auto c = PollSocket::create(fx.rt, AF_UNIX, SOCK_STREAM, 0);
    c->connect(reinterpret_cast<sockaddr *>(&un), len, Clock::now() + 5s);
    auto s = l->accept(Clock::now() + 5s).first;
    c->send("five!", Clock::now() + 5s);
    std::string got;
    try {
        got = s->recv(size_t{1} << 62, Clock::now() + 5s);
    } catch (const std::exception &e) {
        FAIL("recv(2**62) raised: " << e.what());
    }
    CHECK(got == "five!");
    c->close();
    s->close();
    l->close();
}
