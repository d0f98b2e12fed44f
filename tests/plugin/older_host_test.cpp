// The plugin in hosts older than the ABI it was built against: it declares that it needs
// 1.0 and checks for every newer entry, so in a 1.0 host (no bool_get, no bytes_alloc)
// and a 1.1 host (no bytes_alloc) it must take its fallbacks and still work: reads copy
// through bytes_new, and a bool option is a TypeError only where bools cannot be read.
#include <algorithm>
#include <cstddef>
#include <string>
#include <tuple>
#include <vector>

#include "net_fixture.hpp"

using namespace nettest;

namespace {

// 1 MiB of numbered items, so a lost, repeated or reordered piece shows.
std::string one_mib_of_numbers() {
    std::string data;
    for (int i = 0; data.size() < (1u << 20); ++i) data += std::to_string(i) + ",";
    data.resize(1u << 20);
    return data;
}

// Sends 1 MiB from another host thread and receives it by read(65536) until end of
// stream; checks it arrived whole, in order, in pieces of at most 65536 bytes.
void one_mib_arrives_whole_and_in_order_by_read_65536(NetFixture &fx) {
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    const std::string sent = one_mib_of_numbers();
    std::string writer_error;
    std::thread writer([&] {
        Gil g(h);
        try {
            h.call_method(c, "write", {h.bytes(sent), h.floating(20.0)});
            h.call_method(c, "close");
        } catch (const std::exception &e) {
            writer_error = e.what();
        }
    });
    std::string got;
    size_t largest = 0;
    for (;;) {
        std::string piece = h.to_bytes(h.call_method(s, "read", {h.integer(65536), h.floating(20.0)}));
        if (piece.empty()) break;  // end of stream
        largest = std::max(largest, piece.size());
        got += piece;
    }
    fx.without_gil([&] { writer.join(); });
    CHECK(writer_error == "");
    CHECK(largest <= 65536);
    CHECK(got.size() == sent.size());
    CHECK((got == sent));  // parenthesized: no 1 MiB dump on failure
    h.call_method(s, "close");
}

}  // namespace

TEST_CASE("plugin_in_a_1_0_host_reads_and_writes_through_the_copying_path") {
    NetFixture fx(/*checking=*/true, /*abi_minor=*/0);
    auto &h = fx.host;
    REQUIRE(h.table()->abi_minor == 0);
    REQUIRE_FALSE(KSP_HOST_HAS(h.table(), bytes_shrink));
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    h.call_method(c, "write", {h.bytes("hello")});
    CHECK(h.to_bytes(h.call_method(s, "read", {h.integer(100), h.floating(5.0)})) == "hello");
    // A read shorter than the message takes its start; the next one the rest.
    h.call_method(c, "write", {h.bytes("world")});
    CHECK(h.to_bytes(h.call_method(s, "read", {h.integer(3), h.floating(5.0)})) == "wor");
    CHECK(h.to_bytes(h.call_method(s, "read", {h.integer(100), h.floating(5.0)})) == "ld");
    CHECK(h.type_name(h.call_method(s, "read", {h.integer(0)})) == "bytes");
    h.call_method(c, "write", {h.bytes("the end")});
    h.call_method(c, "close");
    CHECK(h.to_bytes(h.call_method(s, "read", {h.none(), h.floating(5.0)})) == "the end");
    CHECK(h.to_bytes(h.call_method(s, "read", {h.integer(100), h.floating(5.0)})) == "");
    CHECK(h.to_bool(h.call_method(s, "eof")));
    h.call_method(s, "close");

    std::tie(c, s) = fx.connected_pair();
    h.call_method(c, "write", {h.bytes("alpha\r\nbeta\n\ngamma")});
    h.call_method(c, "close");
    CHECK(fx.lines_of(s) == std::vector<std::string>{"alpha", "beta", "", "gamma"});
    h.call_method(s, "close");
}

TEST_CASE("plugin_in_a_1_0_host_refuses_a_bool_option_with_a_type_error") {
    NetFixture fx(/*checking=*/true, /*abi_minor=*/0);
    auto &h = fx.host;
    REQUIRE_FALSE(KSP_HOST_HAS(h.table(), bool_get));
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    // Without bool_get a bool cannot be read, so it is refused like any other non-int.
    ScriptError e = raised([&] { h.call_method(c, "setopt", {h.str("nodelay"), h.boolean(true)}); });
    CHECK(e.kind == KSP_ERR_TYPE);
    CHECK_MESSAGE(contains(e.what(), "setopt(): argument 'value' must be an int (this host cannot read bools: ABI 1.0), not bool"), e.what());
    // An int does the same job.
    h.call_method(c, "setopt", {h.str("nodelay"), h.integer(1)});
    CHECK(h.to_int(h.call_method(c, "getopt", {h.str("nodelay")})) == 1);
    h.call_method(c, "close");
    h.call_method(s, "close");
}

TEST_CASE("plugin_in_a_1_1_host_takes_a_bool_option") {
    NetFixture fx(/*checking=*/true, /*abi_minor=*/1);
    auto &h = fx.host;
    REQUIRE(KSP_HOST_HAS(h.table(), bool_get));
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    h.call_method(c, "setopt", {h.str("nodelay"), h.boolean(true)});
    CHECK(h.to_int(h.call_method(c, "getopt", {h.str("nodelay")})) == 1);
    h.call_method(c, "close");
    h.call_method(s, "close");
}

TEST_CASE("plugin_in_a_1_1_host_reads_through_the_copying_path") {
    NetFixture fx(/*checking=*/true, /*abi_minor=*/1);
    auto &h = fx.host;
    REQUIRE(h.table()->abi_minor == 1);
    REQUIRE_FALSE(KSP_HOST_HAS(h.table(), bytes_alloc));
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    h.call_method(c, "write", {h.bytes("hello")});
    CHECK(h.to_bytes(h.call_method(s, "read", {h.integer(100), h.floating(5.0)})) == "hello");
    h.call_method(c, "close");
    h.call_method(s, "close");
    one_mib_arrives_whole_and_in_order_by_read_65536(fx);
}

TEST_CASE("plugin_in_a_1_2_host_receives_1_mib_by_read_65536_whole_and_in_order") {
    NetFixture fx;
    REQUIRE(KSP_HOST_HAS(fx.host.table(), bytes_shrink));  // the in-place path
    one_mib_arrives_whole_and_in_order_by_read_65536(fx);
}
