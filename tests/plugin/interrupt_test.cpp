// The host's interrupt ends a blocked call: at once in a host that pushes it (ABI 1.3,
// set_interrupt_waker), within a wait slice in an older one (polled interrupted()).
#include <cstdlib>
#include <string>
#include <thread>
#include <tuple>

#include "net_fixture.hpp"

using namespace nettest;
using namespace std::chrono_literals;

namespace {

// A host thread blocks in read() without a timeout; the host then interrupts it.
std::string interrupted_read(NetFixture &fx) {
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    std::string error;
    ksp_error_kind kind = KSP_ERR_ERROR;
    ThreadMark mark;
    std::thread reader([&] {
        Gil g(h);
        try {
            mark.here();
            h.call_method(s, "read", {h.integer(1)});
            error = "no error";
        } catch (const ScriptError &e) {
            error = e.what();
            kind = e.kind;
        }
    });
    fx.wait_until_blocked(mark, "read");
    fx.without_gil([&] {
        h.request_interrupt(true);
        reader.join();
    });
    h.request_interrupt(false);
    CHECK(kind == KSP_ERR_INTERRUPT);
    h.call_method(c, "close");
    h.call_method(s, "close");
    return error;
}

}  // namespace

TEST_CASE("interrupt_in_a_1_3_host_ends_a_blocked_read_at_once") {
    // A wait slice of an hour: only the pushed wake-up can end the read in time.
    setenv("KSNET_WAIT_SLICE_MS", "3600000", 1);
    NetFixture fx;
    REQUIRE(fx.host.table()->abi_minor >= 3);
    CHECK(fx.host.interrupt_wakers() == 1);
    CHECK(interrupted_read(fx) == "read: interrupted");
}

TEST_CASE("interrupt_in_a_1_2_host_ends_a_blocked_read_by_polling") {
    NetFixture fx(/*checking=*/true, /*abi_minor=*/2);
    CHECK(fx.host.interrupt_wakers() == 0);  // nothing to register with
    CHECK(interrupted_read(fx) == "read: interrupted");
}

TEST_CASE("interrupt_waker_is_removed_at_unload") {
    Host host{refhost::HostOptions{{plugin_dir()}, false, true}};
    Gil gil(host);
    host.import("net");
    CHECK(host.interrupt_wakers() == 1);
    host.unload("net");
    CHECK(host.interrupt_wakers() == 0);
    host.request_interrupt(true);  // with nothing registered: nothing runs
    host.request_interrupt(false);
}
