// Bad input and failing operations: each gets a clear error of the right kind.
#include "net_fixture.hpp"

using namespace nettest;

namespace {

struct Expect {
    ksp_error_kind kind;
    std::string message;
};

void check_raises(const std::function<void()> &call, const Expect &want) {
    ScriptError e = raised(call);
    CHECK_MESSAGE(e.kind == want.kind, "kind ", refhost::error_kind_name(e.kind), " for: ", e.what());
    CHECK(std::string(e.what()) == want.message);
}

}  // namespace

TEST_CASE("bad_arguments_name_the_argument_the_value_and_the_expected_form") {
    NetFixture fx;
    auto &h = fx.host;
    Value s = h.call(fx.SocketIO);
    auto m = [&](const char *name, std::initializer_list<Value> args) {
        return [&h, &s, name, args] { h.call_method(s, name, args); };
    };
    check_raises([&] { h.call(fx.SocketIO, {h.integer(2)}); },
                 {KSP_ERR_TYPE, "SocketIO(): argument 'fk' must be a member of net.FK, not int"});
    check_raises([&] { h.call(fx.SocketIO, {fx.enum_member("SK", "TCP")}); },
                 {KSP_ERR_TYPE, "SocketIO(): argument 'fk' must be a member of net.FK, not net.SK"});
    check_raises([&] { h.call(fx.SocketIO, {fx.enum_member("FK", "INET4"), h.none()}); },
                 {KSP_ERR_TYPE, "SocketIO(): argument 'sk' must be a member of net.SK, not none"});
    check_raises([&] { h.call(fx.SocketIO, {h.none(), h.none(), h.none(), h.none()}); },
                 {KSP_ERR_ARG, "SocketIO() takes from 0 to 3 arguments (4 given)"});
    check_raises(m("bind", {}), {KSP_ERR_ARG, "SocketIO.bind() takes 1 argument (0 given)"});
    check_raises(m("bind", {h.str("127.0.0.1:80")}),
                 {KSP_ERR_TYPE, "SocketIO.bind(): argument 'addr' must be a tuple (host, port), not str"});
    check_raises(m("bind", {h.tuple({h.str("127.0.0.1")})}),
                 {KSP_ERR_SIZE,
                  "SocketIO.bind(): argument 'addr' must be a tuple (host, port) for FK.INET4, not a tuple of 1 items"});
    check_raises(m("bind", {h.tuple({h.integer(127), h.integer(80)})}),
                 {KSP_ERR_TYPE, "SocketIO.bind(): the host in argument 'addr' must be a str, not int"});
    check_raises(m("bind", {h.tuple({h.str("127.0.0.1"), h.str("80")})}),
                 {KSP_ERR_TYPE, "SocketIO.bind(): the port in argument 'addr' must be an int, not str"});
    check_raises(m("bind", {fx.addr("127.0.0.1", 65536)}),
                 {KSP_ERR_VAL, "SocketIO.bind(): argument 'addr': port 65536 is out of range (expected 0..65535)"});
    check_raises(m("connect", {fx.addr("127.0.0.1", -1)}),
                 {KSP_ERR_VAL, "SocketIO.connect(): argument 'addr': port -1 is out of range (expected 0..65535)"});
    check_raises(m("connect", {h.tuple({h.str(std::string("local\0host", 10)), h.integer(1)})}),
                 {KSP_ERR_VAL, "SocketIO.connect(): argument 'addr': host name contains a NUL byte"});
    check_raises(m("connect", {h.tuple({h.str(std::string(300, 'a')), h.integer(1)})}),
                 {KSP_ERR_VAL, "SocketIO.connect(): argument 'addr': host name is 300 bytes long (at most 255)"});
    check_raises(m("listen", {h.integer(-1)}),
                 {KSP_ERR_VAL, "SocketIO.listen(): argument 'num' is -1 (expected 0..2147483647)"});
    check_raises(m("listen", {h.str("16")}),
                 {KSP_ERR_TYPE, "SocketIO.listen(): argument 'num' must be an int, not str"});
    check_raises(m("read", {h.integer(-5)}),
                 {KSP_ERR_VAL, "SocketIO.read(): argument 'sz' is -5 (expected none or a size >= 0)"});
    check_raises(m("write", {h.integer(5)}),
                 {KSP_ERR_TYPE, "SocketIO.write(): argument 'msg' must be bytes or str, not int"});
    check_raises(m("accept", {h.none(), h.none()}),
                 {KSP_ERR_ARG, "SocketIO.accept() takes from 0 to 1 arguments (2 given)"});
    check_raises(m("accept", {h.floating(-1.5)}),
                 {KSP_ERR_VAL, "SocketIO.accept(): argument 'timeout' is -1.5 (expected none or 0..31536000 seconds)"});
    check_raises(m("read", {h.none(), h.str("soon")}),
                 {KSP_ERR_TYPE, "SocketIO.read(): argument 'timeout' must be a number of seconds or none, not str"});
    check_raises(m("settimeout", {h.integer(-1)}),
                 {KSP_ERR_VAL, "SocketIO.settimeout(): argument 'timeout' is -1 (expected none or 0..31536000 seconds)"});
    // The value as given, never rounded into the range or away from it.
    check_raises(m("settimeout", {h.floating(31536000.0000001)}),
                 {KSP_ERR_VAL, "SocketIO.settimeout(): argument 'timeout' is 31536000.0000001 (expected none or 0..31536000 seconds)"});
    check_raises(m("settimeout", {h.integer(INT64_MAX)}),
                 {KSP_ERR_VAL, "SocketIO.settimeout(): argument 'timeout' is 9223372036854775807 (expected none or 0..31536000 seconds)"});
    check_raises(m("setopt", {h.str("nodelayy"), h.integer(1)}),
                 {KSP_ERR_VAL, "SocketIO.setopt(): argument 'name' is 'nodelayy' (expected one of nodelay, keepalive, "
                               "reuseaddr, rcvbuf, sndbuf, broadcast, linemax, v6only)"});
    check_raises(m("setopt", {h.str("nodelay"), h.integer(2)}),
                 {KSP_ERR_VAL, "setopt: the value of 'nodelay' is 2 (expected 0..1)"});
    check_raises(m("setopt", {h.str("rcvbuf"), h.str("big")}),
                 {KSP_ERR_TYPE, "SocketIO.setopt(): argument 'value' must be an int or a bool, not str"});
    check_raises(m("sendto", {h.bytes("x"), fx.addr("127.0.0.1", 9)}),
                 {KSP_ERR_IO, "sendto: not for a TCP socket (a TCP socket has one peer: connect() and write())"});
    check_raises(m("recvfrom", {}), {KSP_ERR_IO, "recvfrom: not for a TCP socket (a TCP socket has one peer: use read())"});
    check_raises(m("shutdown", {}), {KSP_ERR_IO, "shutdown: socket is not connected"});
    check_raises(m("seek", {h.integer(0)}),
                 {KSP_ERR_IO, "SocketIO.seek(): a socket is a stream and cannot seek"});
    check_raises(m("tell", {}), {KSP_ERR_IO, "SocketIO.tell(): a socket is a stream and cannot seek"});
    check_raises(m("trunc", {}), {KSP_ERR_IO, "SocketIO.trunc(): a socket is a stream and cannot seek"});
    // A method taken from the type and called on something that is not a socket: the host
    // checks self before the plugin runs (the plugin checks again for hosts that do not).
    check_raises([&] { h.call(h.getattr(fx.SocketIO, "read"), {h.integer(1)}); },
                 {KSP_ERR_TYPE, "net.SocketIO.read needs a 'net.SocketIO' as its first argument, not int"});
}

TEST_CASE("operations_in_the_wrong_state_or_after_close_raise_ioerror") {
    NetFixture fx;
    auto &h = fx.host;
    Value s = h.call(fx.SocketIO);
    check_raises([&] { h.call_method(s, "read", {h.integer(1)}); }, {KSP_ERR_IO, "read: socket is not connected"});
    check_raises([&] { h.call_method(s, "accept"); },
                 {KSP_ERR_IO, "accept: socket is not listening (call listen() first)"});
    h.call_method(s, "close");
    h.call_method(s, "close");  // twice is harmless
    for (const char *name : {"read", "write", "accept", "listen"}) {
        ScriptError e = raised([&] {
            if (std::string(name) == "write") h.call_method(s, name, {h.bytes("x")});
            else h.call_method(s, name);
        });
        CHECK(e.kind == KSP_ERR_IO);
        CHECK(std::string(e.what()) == std::string(name) + ": the socket is closed");
    }
    check_raises([&] { h.call_method(s, "bind", {fx.addr("127.0.0.1", 0)}); },
                 {KSP_ERR_IO, "bind: the socket is closed"});
    check_raises([&] { h.call_method(s, "connect", {fx.addr("127.0.0.1", 1)}); },
                 {KSP_ERR_IO, "connect: the socket is closed"});
}

TEST_CASE("connect_refused_names_the_address_and_errno") {
    NetFixture fx;
    auto &h = fx.host;
    Value l = fx.listener();
    int64_t port = fx.port_of(l);
    h.call_method(l, "close");
    Value c = h.call(fx.SocketIO);
    check_raises([&] { h.call_method(c, "connect", {fx.addr("127.0.0.1", port)}); },
                 {KSP_ERR_OS, "connect 127.0.0.1:" + std::to_string(port) + ": ECONNREFUSED (connection refused)"});
}

// ABI 1.5: a failed system call's errno reaches the host as a number (raise_errno), for
// its exception's errno; a 1.4 host has only the message, which names it.
TEST_CASE("errors_of_system_calls_carry_their_errno_to_the_host") {
    for (uint16_t minor : {uint16_t{5}, uint16_t{4}}) {
        CAPTURE(minor);
        auto expect = [&](int err) { return minor >= 5 ? err : 0; };
        NetFixture fx(/*checking=*/true, minor);
        auto &h = fx.host;
        Value l = fx.listener();
        int64_t port = fx.port_of(l);
        h.call_method(l, "close");
        Value c = h.call(fx.SocketIO);
        ScriptError refused = raised([&] { h.call_method(c, "connect", {fx.addr("127.0.0.1", port)}); });
        CHECK(refused.os_errno == expect(ECONNREFUSED));
        CHECK(contains(refused.what(), ": ECONNREFUSED (connection refused)"));
        auto [a, b] = fx.connected_pair();
        ScriptError timed_out = raised([&] { h.call_method(a, "read", {h.integer(10), h.floating(0.01)}); });
        CHECK(timed_out.kind == KSP_ERR_TIMEOUT);
        CHECK(timed_out.os_errno == expect(ETIMEDOUT));
        // Name resolution's failures are libuv's own codes, no errno.
        ScriptError unresolved = raised([&] { h.call_method(c, "connect", {fx.addr("no-such-host.invalid", 80)}); });
        CHECK(unresolved.os_errno == 0);
        for (Value *v : {&a, &b, &c}) h.call_method(*v, "close");
        ScriptError closed = raised([&] { h.call_method(a, "read"); });
        CHECK(closed.os_errno == 0);
    }
}

TEST_CASE("unresolvable_host_is_an_oserror_naming_the_host") {
    NetFixture fx;
    auto &h = fx.host;
    Value c = h.call(fx.SocketIO);
    // RFC 6761 reserves .invalid: no resolver may answer it.
    ScriptError e = raised([&] { h.call_method(c, "connect", {fx.addr("no-such-host.invalid", 80)}); });
    CHECK(e.kind == KSP_ERR_OS);
    CHECK(std::string(e.what()).rfind("connect no-such-host.invalid:80: EAI_", 0) == 0);
}

TEST_CASE("bind_to_an_address_in_use_is_an_oserror") {
    NetFixture fx;
    auto &h = fx.host;
    Value l = fx.listener();
    int64_t port = fx.port_of(l);
    Value other = h.call(fx.SocketIO);
    ScriptError e = raised([&] { h.call_method(other, "bind", {fx.addr("127.0.0.1", port)}); });
    CHECK(e.kind == KSP_ERR_OS);
    CHECK(std::string(e.what()) ==
          "bind 127.0.0.1:" + std::to_string(port) + ": EADDRINUSE (address already in use)");
}

TEST_CASE("combinations_that_make_no_sense_are_refused_before_any_system_call") {
    NetFixture fx;
    int fds = census::open_fds();
    auto refused = [&](const char *fk, const char *sk, const char *pk, const std::string &why) {
        check_raises([&] { fx.socket(fk, sk, pk); },
                     {KSP_ERR_VAL, std::string("SocketIO(fk=") + fk + ", sk=" + sk + ", pk=" + pk + "): " + why});
    };
    refused("INET4", "TCP", "BT_L2CAP", "Bluetooth protocols need fk=BT");
    refused("INET6", "UDP", "BT_RFCOMM", "Bluetooth protocols need fk=BT");
    refused("INET4", "RAW", "AUTO", "sk=RAW needs the IP protocol to carry: pk=ICMP, ICMPV6, TCP, UDP or RAW");
    refused("INET4", "RAW", "ICMPV6", "ICMPV6 is IPv6's: use pk=ICMP with fk=INET4");
    refused("INET4", "TCP", "UDP", "sk=TCP needs pk=AUTO or TCP");
    refused("BT", "TCP", "ICMP", "fk=BT needs pk=AUTO, BT_RFCOMM or BT_L2CAP");
    refused("BT", "PACKET", "AUTO", "SK.PACKET is not a Bluetooth socket kind");
    refused("BT", "PACKET_SEQ", "BT_RFCOMM", "BT_RFCOMM is a stream protocol: it needs sk=TCP");
    CHECK(census::open_fds() == fds);
}
