#include <doctest/doctest.h>

#include <atomic>

#include "ksnet/error.hpp"
#include "ksnet/runtime.hpp"
#include "process_census.hpp"

using namespace ksnet;

TEST_CASE("runtime_starts_runs_tasks_and_closes_its_loop") {
    census::Snapshot before;
    {
        auto rt = Runtime::start();
        CHECK(census::threads_settled(before.thread_count) == before.thread_count + 1);
        std::atomic<int> ran{0};
        for (int i = 0; i < 100; ++i) rt->run_sync([&] { ran++; });
        CHECK(ran == 100);
        CHECK(rt->shutdown() == 0);
        CHECK(rt->shutdown() == 0);  // idempotent
        CHECK_FALSE(rt->post([] {}));
        CHECK_THROWS_AS(rt->run_sync([] {}), Error);
    }
    CHECK(census::open_fds() == before.fds);
    CHECK(census::threads_settled(before.thread_count) == before.thread_count);
}

TEST_CASE("runtime_tasks_run_in_the_order_posted") {
    auto rt = Runtime::start();
    std::vector<int> order;
    for (int i = 0; i < 1000; ++i) rt->post([&order, i] { order.push_back(i); });
    rt->run_sync([] {});
    REQUIRE(order.size() == 1000);
    for (int i = 0; i < 1000; ++i) CHECK(order[i] == i);
    CHECK(rt->shutdown() == 0);
}

namespace {
struct CountingHooks : WaitHooks {
    std::atomic<int> released{0}, reacquired{0};
    std::atomic<bool> stop{false};
    void *release() override { released++; return this; }
    void reacquire(void *t) override { CHECK(t == this); reacquired++; }
    bool interrupted() override { return stop; }
};
}  // namespace

TEST_CASE("runtime_wait_releases_the_interpreter_lock_and_honours_interrupts") {
    auto hooks = std::make_shared<CountingHooks>();
    auto rt = Runtime::start(hooks);
    std::mutex mu;
    std::condition_variable cv;
    bool flag = false;
    rt->post([&] {
        std::lock_guard lk(mu);
        flag = true;
        cv.notify_all();
    });
    CHECK(rt->wait(mu, cv, [&] { return flag; }, {}) == WaitResult::Ready);
    CHECK(hooks->released == 1);
    CHECK(hooks->reacquired == 1);

    auto soon = Clock::now() + std::chrono::milliseconds(20);
    CHECK(rt->wait(mu, cv, [] { return false; }, soon) == WaitResult::TimedOut);

    hooks->stop = true;
    CHECK(rt->wait(mu, cv, [] { return false; }, {}) == WaitResult::Interrupted);
    CHECK(hooks->released == hooks->reacquired);
    CHECK(rt->shutdown() == 0);
}
