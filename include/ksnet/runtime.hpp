// ksnet/runtime.hpp - the event loop thread that owns every libuv handle.
//
// libuv handles are not thread-safe; only uv_async_send may be called from another
// thread. So the runtime runs one loop on its own thread, and every libuv call happens
// there: a blocking call from a script thread posts a task to the loop and waits on its
// socket's condition variable, with the interpreter lock released (see WaitHooks).
#pragma once

#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace ksnet {

using Clock = std::chrono::steady_clock;
using Deadline = std::optional<Clock::time_point>;  // nullopt: wait as long as it takes

// How a waiting thread steps aside for its interpreter. The binding implements these
// with the host's release_lock / acquire_lock / interrupted; the defaults do nothing.
class WaitHooks {
public:
    virtual ~WaitHooks() = default;
    virtual void *release() { return nullptr; }
    virtual void reacquire(void *) {}
    virtual bool interrupted() { return false; }
};

// Something the runtime must close at shutdown: a socket and its handle.
class LoopResource {
public:
    virtual ~LoopResource() = default;
    // On the loop thread: fail every waiter with `why` and uv_close the handle(s).
    // The resource calls Runtime::untrack(this) from its close callback.
    virtual void abort_on_loop(const char *why) = 0;
    // At shutdown, before any abort_on_loop: tell callers blocked on the resource to
    // give up, so that all of them leave within one poll slice rather than one after
    // another.
    virtual void mark_closing() {}
};

enum class WaitResult { Ready, TimedOut, Interrupted };

class Runtime : public std::enable_shared_from_this<Runtime> {
public:
    // Starts the loop thread. Throws ksnet::Error if libuv cannot start. The runtime
    // keeps the hooks: a thread woken at shutdown still calls them on its way out.
    static std::shared_ptr<Runtime> start(std::shared_ptr<WaitHooks> hooks = nullptr);
    ~Runtime();
    Runtime(const Runtime &) = delete;
    Runtime &operator=(const Runtime &) = delete;

    // Closes every tracked resource, waits for their close callbacks, stops and joins
    // the loop thread and closes the loop. Returns uv_loop_close's result (0 when
    // nothing was left behind). Idempotent; later posts are refused.
    int shutdown();

    // Runs `task` on the loop thread. Returns false (and drops the task) once shutdown
    // has begun.
    bool post(std::function<void()> task);
    // Queues `task` without waking the loop: it runs within kLazyDrain (or at shutdown,
    // before the resources are closed). For work nobody waits for (handing a new socket
    // to the loop), so that a short-lived connection costs the loop nothing. Woken
    // batches leave these alone: if they ran them, one socket's close would hand the
    // next new socket to the loop, whose close wakes it again, and so on (figures in
    // docs/design.md). False after shutdown.
    bool post_lazy(std::function<void()> task);
    static constexpr auto kLazyDrain = std::chrono::milliseconds(100);

    // Posts and waits (without releasing the interpreter lock: only for short,
    // non-blocking work). Throws Error(Closed) after shutdown.
    void run_sync(const std::function<void()> &task);

    // Waits until pred() is true (pred is evaluated with `mu` held), the deadline
    // passes or (if interruptible) the host interrupts. Releases the interpreter lock
    // meanwhile. The caller must not hold `mu`.
    WaitResult wait(std::mutex &mu, std::condition_variable &cv, const std::function<bool()> &pred,
                    const Deadline &deadline, bool interruptible = true);

    // Waits on the caller's thread until `fd` is ready for `events` (POLLIN/POLLOUT),
    // the deadline passes, the host interrupts, or stop() turns true (checked at least
    // every kWaitSlice: how close() reaches a blocked caller). Releases the
    // interpreter lock meanwhile. A signal does not end the wait or move the deadline.
    // `done` runs after the wait and before the lock is taken again: a caller lets go
    // of the descriptor there, since whoever holds the lock may be waiting for that.
    enum class FdWait { Ready, TimedOut, Interrupted, Stopped };
    FdWait wait_fd(int fd, short events, const Deadline &deadline, const std::function<bool()> &stop,
                   const std::function<void()> &done);

    // How long a waiting caller may go without looking at stop() and the host's
    // interrupt flag.
    static constexpr auto kWaitSlice = std::chrono::milliseconds(50);

    // Makes `call`, a system call on the blocking descriptor `fd` that gives up after
    // one kWaitSlice (the socket's SO_RCVTIMEO/SO_SNDTIMEO), with the interpreter lock
    // released, until it returns anything but EAGAIN/EINTR (Ready: `result` and `error`
    // hold what it returned), the deadline has passed (checked between slices),
    // stop() turns true or the host interrupts. One system call when the kernel has
    // what it needs, as in a C program; a descriptor that is non-blocking for the
    // moment (libuv sets O_NONBLOCK when the loop takes it) is waited for with
    // poll(`events`). `done` as for wait_fd.
    FdWait call_blocking(int fd, short events, const std::function<ssize_t()> &call, ssize_t &result, int &error,
                         const Deadline &deadline, const std::function<bool()> &stop,
                         const std::function<void()> &done);

    // Runs `call` (a non-blocking system call) with the interpreter lock released. TCP
    // calls with a deadline use it (those without one block, and always release it):
    // sends always, since a send wakes the peer's thread, which must find the lock free
    // (or it wakes only to wait for it: 3.5 thread switches per round trip instead of 2
    // when both share a CPU); receives for kUnlockedCopy bytes or more, so that a big
    // copy runs alongside other script threads, while below that a lock another thread
    // takes costs more than the copy.
    // `done` runs before the lock is taken back, as for wait_fd.
    static constexpr size_t kUnlockedCopy = 16 * 1024;
    template <class Call, class Done>
    auto without_interpreter_lock(Call &&call, Done &&done) {
        void *token = hooks_->release();
        auto result = call();
        done();
        hooks_->reacquire(token);
        return result;
    }

    uv_loop_t *loop() { return &loop_; }
    bool on_loop_thread() const { return std::this_thread::get_id() == thread_.get_id(); }
    bool running() const;

    // Loop thread only: keep `r` alive and close it at shutdown, until untrack(r).
    void track(std::shared_ptr<LoopResource> r);
    void untrack(LoopResource *r);
    size_t tracked_count() const;  // for tests: open handles

    // Loop thread only: one reusable read buffer for every stream's alloc callback.
    uv_buf_t read_slab();

    // fork() support (pthread_atfork, see fork.cpp): before the fork the loop thread
    // parks outside uv_run; the parent resumes it; the child, which has no loop thread,
    // re-arms the loop with uv_loop_fork and starts a new one.
    void park_for_fork();
    void resume_in_parent();
    void restart_in_child();

private:
    explicit Runtime(std::shared_ptr<WaitHooks> hooks);
    static void on_wake(uv_async_t *h);
    // Runs the tasks queued so far (tasks_ or lazy_tasks_).
    void drain(std::vector<std::function<void()>> &queue);
    // Why a wait ends now (stop(), a host interrupt, the deadline), if it does.
    std::optional<FdWait> wait_over(const Deadline &deadline, const std::function<bool()> &stop);
    void loop_main();
    void spawn_loop_thread();

    uv_loop_t loop_{};
    uv_async_t wake_{};
    uv_timer_t drain_timer_{};  // runs lazily posted tasks that no wake-up has run
    std::thread thread_;
    std::shared_ptr<WaitHooks> hooks_;

    mutable std::mutex mu_;
    std::vector<std::function<void()>> tasks_;
    std::vector<std::function<void()>> lazy_tasks_;
    bool accepting_ = false;  // true from the end of start() to shutdown()
    bool joined_ = true;      // the loop is closed (or was never opened)
    int close_result_ = 0;

    // Parking for fork (under park_mu_).
    std::mutex park_mu_;
    std::condition_variable park_cv_;
    bool park_requested_ = false;
    bool parked_ = false;
    bool holding_tasks_lock_ = false;  // prepare took mu_; parent/child release it
    Runtime *fork_next_ = nullptr;     // the process's list of running runtimes (fork.cpp)
    friend struct ForkRegistry;

    std::unordered_map<LoopResource *, std::shared_ptr<LoopResource>> tracked_;  // loop only
    size_t tracked_count_ = 0;                                                   // under mu_
    std::unique_ptr<char[]> slab_;
};

}  // namespace ksnet
