// ksnet/loop_thread.hpp - the runtime's loop thread, on a stack of its own.
//
// Not std::thread, for fork(): glibc keeps the stacks of ended threads for reuse, and in
// a child it counts every thread of the parent as ended. A thread the child starts may
// then run on the stack, and with the thread descriptor, of one the parent had, and
// whatever in the child still holds that thread's pthread_t waits on ours: kscript joins
// every os.thread it started when it exits, so a child that forked while one ran hung at
// exit once net had started its loop thread there. A stack of our own is never reused.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <functional>

namespace ksnet {

class LoopThread {
public:
    LoopThread() = default;
    LoopThread(const LoopThread &) = delete;
    LoopThread &operator=(const LoopThread &) = delete;
    ~LoopThread();

    // Runs `body` on a new thread; throws std::system_error if it cannot start.
    void start(std::function<void()> body);
    bool joinable() const { return started_; }
    // Waits for the thread to end, then frees its stack.
    void join();
    // Lets the thread end on its own: its stack stays mapped, since it may still run on it.
    void detach();
    // In a fork() child, where the thread does not exist: frees this copy of its stack.
    void forget_in_child();
    bool is_current() const { return started_ && pthread_equal(pthread_self(), id_); }

private:
    static void *run(void *self);
    void free_stack();

    pthread_t id_{};
    void *stack_ = nullptr;  // the mapping, guard page included
    size_t mapped_ = 0;
    std::function<void()> body_;
    bool started_ = false;
};

}  // namespace ksnet
