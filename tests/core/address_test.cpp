#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <uv.h>

#include "ksnet/address.hpp"
#include "ksnet/error.hpp"

using namespace ksnet;

TEST_CASE("address_port_range_is_checked_with_the_argument_named") {
    CHECK(check_port(0, "addr") == 0);
    CHECK(check_port(65535, "addr") == 65535);
    try {
        check_port(65536, "bind(): argument 'addr'");
        FAIL("no error");
    } catch (const Error &e) {
        CHECK(e.kind() == ErrorKind::Value);
        CHECK(std::string(e.what()) == "bind(): argument 'addr': port 65536 is out of range (expected 0..65535)");
    }
    CHECK_THROWS_AS(check_port(-1, "p"), Error);
}

TEST_CASE("address_host_rejects_nul_and_overlong_names") {
    CHECK_NOTHROW(check_host("localhost", "h"));
    CHECK_THROWS_WITH(check_host(std::string("a\0b", 3), "h"), "h: host name contains a NUL byte");
    CHECK_THROWS_WITH(check_host(std::string(256, 'a'), "h"), "h: host name is 256 bytes long (at most 255)");
}

TEST_CASE("address_numeric_parsing_and_formatting_round_trip") {
    sockaddr_storage ss{};
    socklen_t len = 0;
    Endpoint v4{Family::Inet4, "127.0.0.1", 8080};
    REQUIRE(parse_numeric(v4, ss, len));
    CHECK(format_sockaddr(reinterpret_cast<sockaddr *>(&ss)) == "127.0.0.1:8080");
    Endpoint v6{Family::Inet6, "::1", 443};
    REQUIRE(parse_numeric(v6, ss, len));
    CHECK(format_sockaddr(reinterpret_cast<sockaddr *>(&ss)) == "[::1]:443");
    Endpoint any{Family::Inet4, "", 0};
    REQUIRE(parse_numeric(any, ss, len));
    CHECK(format_host(reinterpret_cast<sockaddr *>(&ss)) == "0.0.0.0");
    CHECK_FALSE(parse_numeric(Endpoint{Family::Inet4, "localhost", 1}, ss, len));
    CHECK_FALSE(parse_numeric(Endpoint{Family::Inet4, "::1", 1}, ss, len));
    CHECK(format_endpoint(Endpoint{Family::Inet6, "::1", 5}) == "[::1]:5");
    CHECK(format_endpoint(Endpoint{Family::Inet4, "localhost", 5}) == "localhost:5");
}

TEST_CASE("os_error_names_operation_address_and_errno") {
    Error e = os_error("connect", "127.0.0.1:9", UV_ECONNREFUSED);
    CHECK(std::string(e.what()) == "connect 127.0.0.1:9: ECONNREFUSED (connection refused)");
    CHECK(e.kind() == ErrorKind::Os);
    CHECK(e.code() == UV_ECONNREFUSED);
}

TEST_CASE("address_ipv4_formatting_agrees_with_inet_ntop") {
    // format_host writes IPv4 addresses by hand (no sprintf): every digit count in every place.
    const char *texts[] = {"0.0.0.0", "255.255.255.255", "127.0.0.1", "1.20.100.0", "10.99.9.200", "192.168.0.10"};
    for (const char *text : texts) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        REQUIRE(inet_pton(AF_INET, text, &sin.sin_addr) == 1);
        char expected[INET_ADDRSTRLEN];
        REQUIRE(inet_ntop(AF_INET, &sin.sin_addr, expected, sizeof expected));
        CHECK(format_host(reinterpret_cast<sockaddr *>(&sin)) == expected);
        sin.sin_port = htons(65535);
        CHECK(format_sockaddr(reinterpret_cast<sockaddr *>(&sin)) == std::string(expected) + ":65535");
    }
}

TEST_CASE("address_ipv6_zone_gives_the_scope_and_names_keep_it") {
    // Any address may carry a scope; the kernel requires one only for link-local ones.
    const uint32_t lo = if_nametoindex("lo");
    REQUIRE(lo != 0);
    auto scope_of = [](const Endpoint &ep) {
        sockaddr_storage ss{};
        socklen_t len = 0;
        REQUIRE(parse_numeric(ep, ss, len));
        return reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_scope_id;
    };
    CHECK(scope_of(Endpoint{Family::Inet6, "fe80::1%lo", 1}) == lo);
    CHECK(scope_of(Endpoint{Family::Inet6, "fe80::1%7", 1}) == 7);
    // The tuple's own scope, when not 0, wins over the zone.
    CHECK(scope_of(Endpoint{Family::Inet6, "fe80::1%lo", 1, 0, 9}) == 9);
    CHECK(interface_index("lo") == lo);
    CHECK(interface_index("4294967295") == 4294967295u);
    CHECK(interface_index("4294967296") == 0);
    CHECK(interface_index("") == 0);
    CHECK(interface_name(lo) == "lo");

    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(80);
    REQUIRE(inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr) == 1);
    auto *sa = reinterpret_cast<sockaddr *>(&sin6);
    CHECK(format_host(sa) == "fe80::1");
    sin6.sin6_scope_id = lo;
    CHECK(format_host(sa) == "fe80::1%lo");
    CHECK(format_sockaddr(sa) == "[fe80::1%lo]:80");
    // An index with no interface (gone since) is written as the number.
    sin6.sin6_scope_id = 4000000000u;
    CHECK(format_host(sa) == "fe80::1%4000000000");
    CHECK(format_endpoint(Endpoint{Family::Inet6, "fe80::1%lo", 80, 0, 3}) == "[fe80::1%3]:80");
    CHECK(format_endpoint(Endpoint{Family::Inet6, "fe80::1%lo", 80}) == "[fe80::1%lo]:80");
}
