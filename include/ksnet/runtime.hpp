// ksnet/runtime.hpp - the event loop thread that owns every libuv handle.
//
// libuv handles are not thread-safe; only uv_async_send may be called from another
// thread. So the runtime runs one loop on its own thread, and every libuv call happens
// there: a blocking call from a script thread posts a task to the loop and waits on its
// socket's condition variable, with the interpreter lock released (see WaitHooks).
#pragma once

#include <pthread.h>
#include <signal.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ksnet/function_ref.hpp"
#include "ksnet/loop_thread.hpp"

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
    // When the script's call running on this thread began: a call the host repeats
    // after a live reload keeps its first start, so its timeout is not started over.
    virtual Clock::time_point call_began() { return Clock::now(); }
};

// Something the runtime must close at shutdown: a socket and its handle.
class LoopResource {
public:
    virtual ~LoopResource() = default;
    // On the loop thread: fail every waiter with `why` (a string literal: it may be kept)
    // and uv_close the handle(s).
    // The resource calls Runtime::untrack(this) from its close callback.
    virtual void abort_on_loop(const char *why) = 0;
    // At shutdown, before any abort_on_loop: tell callers blocked on the resource to
    // give up, so that all of them leave within one poll slice rather than one after
    // another.
    virtual void mark_closing() {}
};

// How a wait ended. Stopped: the caller's stop() turned true (its socket is closing).
enum class WaitResult { Ready, TimedOut, Interrupted, Stopped };

// The one place where the end of a wait becomes an error: returns for Ready, throws
// Error(Timeout) or Error(Interrupted) naming `op`, and Error(Closed) for Stopped (a
// caller that knows why its socket closed says so first).
void throw_unless_ready(WaitResult r, const char *op);

// One blocking system call on a descriptor, or a wait until it is ready, as
// Runtime::call_blocking makes it (CPython's sock_call_ex is the model).
struct BlockingCall {
    int fd = -1;
    short events = 0;                    // POLLIN or POLLOUT
    FunctionRef<ssize_t()> call;         // empty: only wait until fd is ready
    Deadline deadline;
    FunctionRef<bool()> stop;            // true: give up (close() from another thread)
    // Runs after the last system call and before the interpreter lock is taken back: a
    // caller lets go of the descriptor there, since whoever holds the lock (teardown)
    // may be waiting for it.
    FunctionRef<void()> done;
    // Make the first attempt with the interpreter lock held (see kUnlockedCopy).
    bool first_try_locked = false;
};

class Runtime : public std::enable_shared_from_this<Runtime> {
public:
    // Starts the loop thread. Throws ksnet::Error if libuv cannot start. The runtime
    // keeps the hooks: a thread woken at shutdown still calls them on its way out.
    // `wait_slice`: see kWaitSlice (tests lengthen it to show that a wake-up does not
    // wait for the end of a slice).
    static std::shared_ptr<Runtime> start(std::shared_ptr<WaitHooks> hooks = nullptr,
                                          Clock::duration wait_slice = kWaitSlice);
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

    // Where a timeout given to the script's current call counts from (WaitHooks::call_began).
    Clock::time_point call_began() const { return hooks_->call_began(); }

    // Waits until pred() is true (pred is evaluated with `mu` held), the deadline
    // passes or (if interruptible) the host interrupts. Releases the interpreter lock
    // meanwhile. The caller must not hold `mu`.
    WaitResult wait(std::mutex &mu, std::condition_variable &cv, FunctionRef<bool()> pred,
                    const Deadline &deadline, bool interruptible = true);

    // The same, throwing (throw_unless_ready) unless pred() came true.
    void wait_or_throw(std::mutex &mu, std::condition_variable &cv, FunctionRef<bool()> pred,
                       const Deadline &deadline, const char *op);

    // How long a waiting caller may go without looking at stop() and the host's
    // interrupt flag, when nothing wakes it: close() and teardown wake it at once, and so
    // does a host that pushes its interrupts (wake_for_interrupt). The default; this
    // runtime's is wait_slice().
    static constexpr auto kWaitSlice = std::chrono::milliseconds(50);
    Clock::duration wait_slice() const { return wait_slice_; }

    // For hosts that say when they interrupt a script (ABI 1.3): every wait in progress
    // looks at the interrupt flag now rather than at the end of its slice. A thread in a
    // condition-variable wait is notified; a thread in a system call gets kWakeSignal,
    // which makes the call return EINTR (sent again every kRewakeInterval until the
    // thread has looked, in case it came just before the call). Any thread; never blocks
    // for long.
    void wake_for_interrupt();
    // Set once such a host will call wake_for_interrupt. Installs a handler that does
    // nothing for kWakeSignal if the process has none (and again at each wake-up if it
    // was taken away); shutdown() takes it away again, since a reload unmaps its code.
    void set_interrupts_pushed(bool on);
    // Before sending kWakeSignal for any other reason (a close that shutdown() cannot
    // wake): installs that handler as above, and shutdown() takes it away.
    void use_wake_signal();
    bool interrupts_pushed() const { return interrupts_pushed_.load(std::memory_order_relaxed); }
    // For a wake-up by kWakeSignal, which a thread misses if it comes between its last
    // look and its system call: the loop calls `resend` every kRewakeInterval (it sends
    // the signal again) until it returns false. Any thread; dropped after shutdown.
    void resend_wakes(std::function<bool()> resend);
    // Ignored by default, and not used by libuv or glibc (the Go runtime chose it for the
    // same job).
    static constexpr int kWakeSignal = SIGURG;

    // Live reload (ksp_handover): between begin_handover() and end_handover() every
    // socket's calls leave their descriptors, woken as for an interrupt, and raise
    // Error(Moved) unless what they did no longer needs the socket. Only one handover
    // runs at a time (the host holds its lock throughout).
    void begin_handover();
    void end_handover();
    bool handing_over() const { return handing_over_.load(std::memory_order_acquire); }

    // Makes `c.call`, a system call on `c.fd`, with the interpreter lock released, until
    // it returns anything but EAGAIN/EINTR (Ready: `result` and `error` hold what it
    // returned), the deadline passes, stop() turns true or the host interrupts. On a
    // blocking descriptor (SO_RCVTIMEO/SO_SNDTIMEO of one kWaitSlice) that is one system
    // call when the kernel has what it needs, as in a C program; a non-blocking call
    // (MSG_DONTWAIT, or a descriptor libuv made non-blocking) is followed by poll(`events`)
    // for at most one slice or what is left to the deadline. Without `c.call` it only
    // waits until the descriptor is ready (also for POLLERR/POLLHUP: the next call
    // reports them). A signal does not end the wait or move the deadline.
    WaitResult call_blocking(const BlockingCall &c, ssize_t &result, int &error);

    // Receives of kUnlockedCopy bytes or more with a deadline give the interpreter lock up
    // for their first try; smaller ones keep it (first_try_locked): a lock another thread
    // takes meanwhile costs more than the copy. Sends always give it up, since a send
    // wakes the peer's thread, which must find the lock free (or it wakes only to wait
    // for it: 3.5 thread switches per round trip instead of 2 when both share a CPU).
    static constexpr size_t kUnlockedCopy = 16 * 1024;

    // close() leaves a socket's descriptor to the loop (uv_close), which closes it a
    // moment later. A call that finds no descriptor left (EMFILE, ENFILE) waits for the
    // closes posted before it, then tries once more: to a script, as in C, a close() frees
    // its descriptor before it returns. close_posted before the post (any thread);
    // close_done once the descriptor is closed (loop thread).
    void close_posted();
    void close_done();
    // Makes a descriptor with `open` (socket(), accept4()...: -1 and errno on failure),
    // waiting for posted closes and trying again as above (an interrupt ends the wait
    // with Error(Interrupted)). Caller's thread, without locks of its own held; the
    // interpreter lock is released while it waits.
    int open_descriptor(FunctionRef<int()> open);
    // `fd`, or, if it is 0, 1 or 2 (the process closed its standard descriptors after the
    // runtime started), a duplicate above them with `fd` closed: libuv aborts rather than
    // close those. -1 and errno stay as they came; -1 if the duplicate fails.
    static int above_stdio(int fd);
    // The lowest number a descriptor of ours takes (F_DUPFD_CLOEXEC).
    static constexpr int kFirstDescriptor = 3;
    // The wait alone: false at once unless `err` is one that closes can end (see below)
    // and closes were posted and not done; otherwise true once they are (or after
    // kCloseWaitLimit, the deadline's end if sooner: a loop that never gets to them must
    // not hold the call). An interrupt ends it with Error(Interrupted) naming `op`.
    bool await_posted_closes(int err, const Deadline &deadline, const char *op);
    static constexpr auto kCloseWaitLimit = std::chrono::seconds(5);
    // Out of descriptors (EMFILE, ENFILE), or an address still held (EADDRINUSE: a socket
    // closed a moment ago keeps its port until the loop closes its descriptor).
    static bool freed_by_posted_closes(int err) { return err == EMFILE || err == ENFILE || err == EADDRINUSE; }

    uv_loop_t *loop() { return &loop_; }
    bool on_loop_thread() const { return thread_.is_current(); }
    bool running() const;

    // Loop thread only: keep `r` alive and close it at shutdown, until untrack(r).
    void track(std::shared_ptr<LoopResource> r);
    void untrack(LoopResource *r);
    size_t tracked_count() const;  // for tests: open handles

    // fork() support (pthread_atfork, see fork.cpp): before the fork the loop thread
    // parks outside uv_run; the parent resumes it; the child, which has no loop thread,
    // re-arms the loop with uv_loop_fork and starts a new one.
    void park_for_fork();
    void resume_in_parent();
    void restart_in_child();
    // How many forks this runtime has been restarted in, on this process's side: what
    // a socket compares with to learn that the calls it counts are the parent's.
    unsigned fork_generation() const { return fork_generation_; }

private:
    Runtime(std::shared_ptr<WaitHooks> hooks, Clock::duration wait_slice);
    // A thread inside wait() or call_blocking(), while interrupts are pushed: how
    // wake_for_interrupt reaches it. Lives on that thread's stack (WaiterScope).
    struct Waiter {
        pthread_t thread;
        std::mutex *mu = nullptr;  // a condition-variable wait; null: a system call
        std::condition_variable *cv = nullptr;
        uint64_t sent = 0;               // the last wake-up signalled to it (under waiters_mu_)
        std::atomic<uint64_t> looked{0};  // the wake-ups its last look covered
    };
    class WaiterScope;
    static void on_wake(uv_async_t *h);
    // Each kRewakeInterval while a wake-up may have been missed: resend_missed_interrupts
    // and the resenders; stops once none has anything left to send.
    static void on_rewake(uv_timer_t *t);
    // kWakeSignal again to each thread that has not looked since its wake-up; false if none.
    bool resend_missed_interrupts();
    static constexpr auto kRewakeInterval = std::chrono::milliseconds(1);
    // Runs the tasks queued so far (tasks_ or lazy_tasks_).
    void drain(std::vector<std::function<void()>> &queue);
    // Why a wait ends now (stop(), a host interrupt, the deadline), if it does.
    std::optional<WaitResult> wait_over(const Deadline &deadline, FunctionRef<bool()> stop);
    void loop_main();
    void spawn_loop_thread();

    uv_loop_t loop_{};
    uv_async_t wake_{};
    uv_timer_t drain_timer_{};  // runs lazily posted tasks that no wake-up has run
    uv_timer_t rewake_timer_{};  // on_rewake, while a signalled thread has not looked
    std::vector<std::function<bool()>> resenders_;  // resend_wakes; loop thread only
    LoopThread thread_;
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
    // Written only in a child, by restart_in_child, before this runtime's loop thread starts
    // there (and before the script's thread, which forked, goes on).
    unsigned fork_generation_ = 0;
    friend struct ForkRegistry;

    const Clock::duration wait_slice_;
    std::atomic<bool> interrupts_pushed_{false};
    std::atomic<bool> wake_signal_used_{false};
    std::atomic<bool> handing_over_{false};
    std::mutex waiters_mu_;
    std::vector<Waiter *> waiters_;  // the threads waiting now
    std::atomic<uint64_t> wakes_sent_{0};  // wake_for_interrupt calls so far

    // Counts without a lock for the posting threads (a fork never finds one held there);
    // closes_mu_ is only for a waiter's condition variable.
    std::atomic<uint64_t> closes_posted_{0}, closes_done_{0};
    std::mutex closes_mu_;
    std::condition_variable closes_cv_;

    std::unordered_map<LoopResource *, std::shared_ptr<LoopResource>> tracked_;  // loop only
    size_t tracked_count_ = 0;                                                   // under mu_
};

}  // namespace ksnet
