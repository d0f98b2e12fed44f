// The test helpers that replace sleeps (tests/support/waits.hpp) tell a thread blocked
// in the kernel from one that runs, so a case waiting for "blocked" waits for that.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "waits.hpp"

TEST_CASE("waits_tell_a_thread_blocked_in_the_kernel_from_one_that_runs") {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    std::atomic<bool> stop{false};
    waits::ThreadMark spinning, reading;
    std::thread spinner([&] {
        spinning.here();
        while (!stop.load()) {
        }
    });
    std::thread reader([&] {
        reading.here();
        char c;
        CHECK(::read(p[0], &c, 1) == 1);
    });
    CHECK(waits::wait_until_blocked(reading, "read on an empty pipe"));
    CHECK(waits::wait_until([&] { return spinning.set(); }, "the spinning thread to start"));
    int seen_blocked = 0;
    for (int i = 0; i < 20; ++i) seen_blocked += waits::blocked_in_the_kernel(spinning.tid.load()) ? 1 : 0;
    CHECK(seen_blocked == 0);
    CHECK(::write(p[1], "x", 1) == 1);
    stop = true;
    spinner.join();
    reader.join();
    ::close(p[0]);
    ::close(p[1]);
}
