// test_gil.cpp - the interpreter lock is released while a plugin waits.
#include <atomic>
#include <thread>

#include <doctest/doctest.h>

#include "refhost.hpp"
#include "support.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::Value;
using support::LeakGuard;
using support::TempDir;

TEST_SUITE("gil") {

TEST_CASE("gil_released_while_native_waits") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_ok"), "fixture_ok");
    Host h(support::options_for(dir.path()));
    std::atomic<bool> other_ran{false};
    std::thread other;
    {
        Gil g(h);
        Value c = h.call(h.getattr(h.import("fixture_ok"), "Counter"));
        // Started while we hold the lock: it can only get in while nap() waits.
        other = std::thread([&] {
            Gil g2(h);
            Value v = h.integer(1);  // touches values: needs the lock
            other_ran = true;
        });
        // Bounded: each nap gives the other thread 50 ms to get the lock.
        for (int i = 0; i < 40 && !other_ran; i++) h.call_method(c, "nap", {h.integer(50)});
        CHECK(other_ran);
    }
    other.join();
}

TEST_CASE("release_lock_lets_other_threads_in_via_abi") {
    LeakGuard guard;
    Host h(refhost::HostOptions{});
    Gil g(h);
    const ksp_host* t = h.table();
    void* token = t->release_lock();
    std::thread other([&] {
        Gil g2(h);
        Value v = h.str("in");
    });
    other.join();  // would deadlock if the lock were still held
    t->acquire_lock(token);
    CHECK(h.to_int(h.integer(2)) == 2);
}

}  // TEST_SUITE
