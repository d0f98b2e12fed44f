// TCP through the plugin: echo across host threads, read/write/iteration semantics,
// and the interpreter lock released while calls block.
#include <atomic>
#include <chrono>
#include <tuple>

#include "net_fixture.hpp"

using namespace nettest;
using namespace std::chrono_literals;

namespace {

void echo_10000_messages(NetFixture &fx, const char *host, Value fk) {
    auto &h = fx.host;
    constexpr int kMessages = 10000;
    Value l = fx.listener(host, fk);
    int64_t port = fx.port_of(l);
    std::string server_error;
    std::thread server([&] {
        Gil g(h);
        try {
            Value conn = h.item(h.call_method(l, "accept"), 0);
            Value it = h.iter(conn);
            while (Value line = h.next(it)) {
                h.call_method(conn, "write", {h.bytes(h.to_bytes(line) + "\n")});
            }
            h.call_method(conn, "close");
        } catch (const std::exception &e) {
            server_error = e.what();
        }
    });
    Value c = fk ? h.call(fx.SocketIO, {fk}) : h.call(fx.SocketIO);
    h.call_method(c, "connect", {fx.addr(host, port)});
    Value lines = h.iter(c);
    int matched = 0;
    for (int i = 0; i < kMessages; ++i) {
        // Every byte value but the line ends, so the exchange is checked byte for byte.
        std::string msg = std::to_string(i) + ":";
        for (int b = 0; b < 256; ++b) {
            if (b != '\n' && b != '\r') msg += static_cast<char>(b);
        }
        h.call_method(c, "write", {h.bytes(msg + "\n")});
        Value back = h.next(lines);
        REQUIRE(back);
        if (h.to_bytes(back) == msg) ++matched;
    }
    h.call_method(c, "close");
    fx.without_gil([&] { server.join(); });
    CHECK(server_error == "");
    CHECK(matched == kMessages);
    h.call_method(l, "close");
}

}  // namespace

TEST_CASE("echo_server_and_client_on_two_host_threads_exchange_10000_messages") {
    NetFixture fx;
    echo_10000_messages(fx, "127.0.0.1", Value());
}

TEST_CASE("echo_10000_messages_over_ipv6_loopback") {
    NetFixture fx;
    echo_10000_messages(fx, "::1", fx.enum_member("FK", "INET6"));
}

TEST_CASE("accept_returns_socket_and_client_name") {
    NetFixture fx;
    auto &h = fx.host;
    Value l = fx.listener();
    Value c = h.call(fx.SocketIO);
    h.call_method(c, "connect", {fx.addr("localhost", fx.port_of(l))});
    Value pair = h.call_method(l, "accept");
    REQUIRE(h.len(pair) == 2);
    Value s = h.item(pair, 0);
    CHECK(h.type_name(s) == "net.SocketIO");
    std::string expected = "127.0.0.1:" + std::to_string(h.to_int(h.getattr(c, "local_port")));
    CHECK(h.to_str(h.item(pair, 1)) == expected);
    CHECK(h.to_str(h.getattr(s, "peer_name")) == "127.0.0.1");
    CHECK(h.to_int(h.getattr(s, "peer_port")) == h.to_int(h.getattr(c, "local_port")));
    CHECK(h.to_int(h.getattr(c, "peer_port")) == fx.port_of(l));
}

TEST_CASE("read_returns_bytes_up_to_size_and_everything_without_size") {
    NetFixture fx;
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    h.call_method(c, "write", {h.str("héllo")});  // str goes out as UTF-8
    std::string got;
    while (got.size() < 6) got += h.to_bytes(h.call_method(s, "read", {h.integer(6 - static_cast<int64_t>(got.size()))}));
    CHECK(got == "h\xc3\xa9llo");
    CHECK(h.type_name(h.call_method(s, "read", {h.integer(0)})) == "bytes");
    CHECK(h.to_int(h.call_method(c, "write", {h.bytes("rest of it")})) == 10);
    h.call_method(c, "close");
    CHECK(h.to_bytes(h.call_method(s, "read")) == "rest of it");
    CHECK(h.to_bytes(h.call_method(s, "read", {h.none()})) == "");
    CHECK(h.to_bool(h.call_method(s, "eof")));
}

TEST_CASE("line_iteration_strips_newlines_and_yields_last_partial_line") {
    NetFixture fx;
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    h.call_method(c, "write", {h.bytes("alpha\r\nbeta\n\ngamma")});
    h.call_method(c, "close");
    CHECK(fx.lines_of(s) == std::vector<std::string>{"alpha", "beta", "", "gamma"});
}

TEST_CASE("line_longer_than_linemax_raises_val_error_naming_it_and_read_takes_its_bytes") {
    NetFixture fx;
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    CHECK(h.to_int(h.call_method(s, "getopt", {h.str("linemax")})) == 1048576);
    h.call_method(s, "setopt", {h.str("linemax"), h.integer(8)});
    CHECK(h.to_int(h.call_method(s, "getopt", {h.str("linemax")})) == 8);
    h.call_method(c, "write", {h.bytes("short\nmuch too long\nend\n")});
    h.call_method(c, "close");
    Value it = h.iter(s);
    CHECK(h.to_bytes(h.next(it)) == "short");
    ScriptError e = raised([&] { h.next(it); });
    CHECK(e.kind == KSP_ERR_VAL);
    CHECK(std::string(e.what()) ==
          "line iteration: no newline within 8 bytes (the socket's 'linemax' option: raise it with "
          "setopt('linemax', n), or take the bytes with read())");
    CHECK(h.to_bytes(h.call_method(s, "read", {h.integer(14)})) == "much too long\n");
    CHECK(fx.lines_of(s) == std::vector<std::string>{"end"});

    e = raised([&] { h.call_method(s, "setopt", {h.str("linemax"), h.integer(0)}); });
    CHECK(e.kind == KSP_ERR_VAL);
    CHECK(std::string(e.what()).find("'linemax' is 0 (expected 1..") != std::string::npos);
    Value u = fx.socket("INET4", "UDP");
    e = raised([&] { h.call_method(u, "setopt", {h.str("linemax"), h.integer(100)}); });
    CHECK(std::string(e.what()).find("only a byte stream has lines") != std::string::npos);
    h.call_method(u, "close");
}

TEST_CASE("printf_from_base_io_writes_formatted_text") {
    NetFixture fx;
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    h.call_method(c, "printf", {h.str("%s=%d\n"), h.str("answer"), h.integer(42)});
    CHECK(h.to_bytes(h.next(h.iter(s))) == "answer=42");
}

TEST_CASE("a_socket_made_on_one_thread_is_used_on_another") {
    NetFixture fx;
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    std::string seen;
    std::thread other([&, s = s] {
        Gil g(h);
        seen = h.to_bytes(h.call_method(s, "read", {h.integer(5)}));
        h.call_method(s, "write", {h.bytes("pong")});
    });
    h.call_method(c, "write", {h.bytes("ping!")});
    CHECK(h.to_bytes(h.call_method(c, "read", {h.integer(4)})) == "pong");
    fx.without_gil([&] { other.join(); });
    CHECK(seen == "ping!");
}

TEST_CASE("blocked_accept_releases_the_interpreter_lock") {
    NetFixture fx;
    auto &h = fx.host;
    Value l = fx.listener();
    int64_t port = fx.port_of(l);
    std::atomic<bool> accepted{false};
    ThreadMark mark;
    std::thread server([&] {
        Gil g(h);
        mark.here();
        Value pair = h.call_method(l, "accept");
        accepted = true;
    });
    fx.wait_until_blocked(mark, "accept");
    // The server is blocked in accept(); if it held the lock we could not run this.
    CHECK_FALSE(accepted);
    Value c = h.call(fx.SocketIO);
    h.call_method(c, "connect", {fx.addr("127.0.0.1", port)});
    fx.without_gil([&] { server.join(); });
    CHECK(accepted);
}

TEST_CASE("close_from_another_thread_wakes_a_blocked_read_with_ioerror") {
    NetFixture fx;
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    std::optional<ScriptError> error;
    ThreadMark mark;
    std::thread reader([&, s = s] {
        Gil g(h);
        try {
            mark.here();
            h.call_method(s, "read", {h.integer(10)});
        } catch (const ScriptError &e) {
            error = e;
        }
    });
    fx.wait_until_blocked(mark, "read");
    h.call_method(s, "close");
    fx.without_gil([&] { reader.join(); });
    REQUIRE(error);
    CHECK(error->kind == KSP_ERR_IO);
    CHECK(std::string(error->what()) == "read: the socket is closed");
}
