// busy_thread_pool.hpp - libuv's thread pool held busy, so that name lookups queue.
#pragma once

#include <doctest/doctest.h>
#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

// Keeps every thread of libuv's pool busy (it has 4 unless UV_THREADPOOL_SIZE says
// otherwise, and the tests do not), so that name resolutions queue behind.
struct BusyThreadPool {
    static constexpr int kThreads = 4;
    uv_loop_t loop{};
    uv_work_t work[kThreads]{};
    std::mutex mu;
    std::condition_variable cv;
    int started = 0;
    bool released = false;

    BusyThreadPool() {
        using namespace std::chrono_literals;
        uv_loop_init(&loop);
        for (auto &w : work) {
            w.data = this;
            uv_queue_work(&loop, &w, [](uv_work_t *w) {
                auto *self = static_cast<BusyThreadPool *>(w->data);
                std::unique_lock lk(self->mu);
                ++self->started;
                self->cv.notify_all();
                self->cv.wait(lk, [self] { return self->released; });
            }, nullptr);
        }
        std::unique_lock lk(mu);
        REQUIRE(cv.wait_for(lk, 10s, [this] { return started == kThreads; }));
    }
    ~BusyThreadPool() {
        {
            std::lock_guard lk(mu);
            released = true;
            cv.notify_all();
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
};
