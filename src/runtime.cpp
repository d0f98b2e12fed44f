#include "ksnet/runtime.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <string>
#include <string_view>

#include "fork.hpp"
#include "ksnet/error.hpp"

namespace ksnet {

namespace {
// Closes `fd` if it is an epoll instance (and so not a descriptor of someone else's
// that a partly filled loop structure happens to name).
void close_if_epoll(int fd) {
    if (fd < 0) return;
    char link[64];
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
    if (n > 0 && std::string_view(link, static_cast<size_t>(n)) == "anon_inode:[eventpoll]") ::close(fd);
}

// libuv asserts that it never closes descriptors 0, 1 and 2 (it takes them for stdio).
// In a process started with one of them closed, the loop's epoll descriptor or a socket
// would take it, and closing it would abort the process. Those left closed are given
// /dev/null, as Node does at startup (PlatformInit in src/node.cc).
void take_closed_standard_descriptors() {
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; ++fd) {
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        int got = ::open("/dev/null", O_RDWR);
        if (got > STDERR_FILENO) ::close(got);  // another thread took `fd` meanwhile
    }
}
// uv_loop_init makes the loop's epoll descriptor and then, the first time in the process,
// a pipe for signals, and calls abort() if it cannot make that pipe: with fewer than
// three descriptors left, fail here instead, as uv_loop_init fails for the first one.
void make_sure_uv_loop_init_has_descriptors() {
    int fds[3] = {-1, -1, -1};
    bool enough = ::pipe2(fds, O_CLOEXEC) == 0 && (fds[2] = ::fcntl(fds[0], F_DUPFD_CLOEXEC, 0)) >= 0;
    int err = errno;
    for (int fd : fds) {
        if (fd >= 0) ::close(fd);
    }
    if (!enough) throw os_error("uv_loop_init", "", uv_translate_sys_error(err));
}

}  // namespace

Runtime::Runtime(std::shared_ptr<WaitHooks> hooks, Clock::duration wait_slice)
    : hooks_(hooks ? std::move(hooks) : std::make_shared<WaitHooks>()),
      wait_slice_(wait_slice) {}

std::shared_ptr<Runtime> Runtime::start(std::shared_ptr<WaitHooks> hooks, Clock::duration wait_slice) {
    std::shared_ptr<Runtime> rt(new Runtime(std::move(hooks), wait_slice));
    // Until the end, a failure leaves a runtime that never started (accepting_ false,
    // joined_ true): its destructor neither sends to wake_ nor closes the loop again.
    take_closed_standard_descriptors();
    make_sure_uv_loop_init_has_descriptors();
    if (int rc = uv_loop_init(&rt->loop_); rc < 0) {
        // Before libuv 1.51 (libuv/libuv#4757) a failed uv_loop_init left its epoll
        // descriptor open: each failed `import net` would cost one more.
        if (uv_version() < 0x013300) close_if_epoll(uv_backend_fd(&rt->loop_));
        throw os_error("uv_loop_init", "", rc);
    }
    int rc = uv_async_init(&rt->loop_, &rt->wake_, &Runtime::on_wake);
    if (rc < 0) {
        uv_loop_close(&rt->loop_);
        throw os_error("uv_async_init", "", rc);
    }
    rt->wake_.data = rt.get();
    uv_timer_init(&rt->loop_, &rt->drain_timer_);
    rt->drain_timer_.data = rt.get();
    uv_timer_start(
        &rt->drain_timer_,
        [](uv_timer_t *t) {
            auto *self = static_cast<Runtime *>(t->data);
            self->drain(self->lazy_tasks_);
        },
        kLazyDrain.count(), kLazyDrain.count());
    uv_timer_init(&rt->loop_, &rt->rewake_timer_);
    rt->rewake_timer_.data = rt.get();

    try {
        rt->spawn_loop_thread();
    } catch (...) {
        uv_close(reinterpret_cast<uv_handle_t *>(&rt->wake_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t *>(&rt->drain_timer_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t *>(&rt->rewake_timer_), nullptr);
        uv_run(&rt->loop_, UV_RUN_DEFAULT);
        uv_loop_close(&rt->loop_);
        throw Error(ErrorKind::Os, "cannot start the net loop thread");
    }
    {
        std::lock_guard lk(rt->mu_);
        rt->accepting_ = true;
        rt->joined_ = false;
    }
    ForkRegistry::add(rt.get());
    return rt;
}

void Runtime::spawn_loop_thread() {
    // The loop thread blocks every signal: a SIGPIPE raised by a write to a dead peer
    // stays pending on it instead of killing the process (the write reports EPIPE), and
    // asynchronous signals such as SIGINT go to the interpreter's threads.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
        thread_.start([this] { loop_main(); });
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        throw;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// uv_run returns at shutdown (no handle left) or when a fork asks the thread to park.
void Runtime::loop_main() {
    for (;;) {
        uv_run(&loop_, UV_RUN_DEFAULT);
        std::unique_lock lk(park_mu_);
        if (!park_requested_) return;
        parked_ = true;
        park_cv_.notify_all();
        park_cv_.wait(lk, [this] { return !park_requested_; });
        parked_ = false;
    }
}

// Runs in the forking thread with the registry locked. Leaves park_mu_ and mu_ locked
// across the fork, so that neither is held by a thread the child will not have.
void Runtime::park_for_fork() {
    std::unique_lock lk(park_mu_);
    park_requested_ = true;
    lk.unlock();
    bool posted = post([this] { uv_stop(&loop_); });
    if (posted) {
        lk.lock();
        park_cv_.wait(lk, [this] { return parked_; });
        lk.release();
    } else {
        lk.lock();
        park_requested_ = false;
        lk.release();
    }
    mu_.lock();
}

void Runtime::resume_in_parent() {
    mu_.unlock();
    park_requested_ = false;
    park_mu_.unlock();
    park_cv_.notify_all();
}

void Runtime::restart_in_child() {
    // The parked thread does not exist here, but it may still count as a waiter of
    // park_cv_: a fresh condition variable forgets it.
    new (&park_cv_) std::condition_variable();
    park_requested_ = false;
    parked_ = false;
    // The threads listed as waiting, and the wake-ups to send them again, are the
    // parent's; another thread may even have held waiters_mu_ at the fork.
    new (&waiters_mu_) std::mutex();
    waiters_.clear();
    resenders_.clear();
    uv_timer_stop(&rewake_timer_);
    ++fork_generation_;
    thread_.forget_in_child();
    int rc = uv_loop_fork(&loop_);
    if (rc == 0) {
        try {
            spawn_loop_thread();
        } catch (...) {
            rc = UV_EAGAIN;
        }
    }
    if (rc != 0) accepting_ = false;  // calls in the child then fail with "shut down"
    mu_.unlock();
    park_mu_.unlock();
}

Runtime::~Runtime() {
    // The owner shuts down first; this is the safety net. A runtime whose last
    // reference dies inside a loop callback cannot join its own thread.
    if (on_loop_thread()) {
        thread_.detach();
        return;
    }
    shutdown();
}

bool Runtime::running() const {
    std::lock_guard lk(mu_);
    return accepting_;
}

bool Runtime::post(std::function<void()> task) {
    {
        // Send under the lock: once accepting_ is false the loop may close wake_.
        std::lock_guard lk(mu_);
        if (!accepting_) return false;
        tasks_.push_back(std::move(task));
        uv_async_send(&wake_);
    }
    return true;
}

bool Runtime::post_lazy(std::function<void()> task) {
    std::lock_guard lk(mu_);
    if (!accepting_) return false;
    lazy_tasks_.push_back(std::move(task));
    return true;
}

void Runtime::run_sync(const std::function<void()> &task) {
    if (on_loop_thread()) {
        task();
        return;
    }
    std::mutex done_mu;
    std::condition_variable done_cv;
    bool done = false;
    std::exception_ptr failure;
    bool posted = post([&] {
        try {
            task();
        } catch (...) {
            failure = std::current_exception();
        }
        std::lock_guard lk(done_mu);
        done = true;
        done_cv.notify_all();
    });
    if (!posted) throw Error(ErrorKind::Closed, "the net runtime has shut down (module unloaded)");
    std::unique_lock lk(done_mu);
    done_cv.wait(lk, [&] { return done; });
    if (failure) std::rethrow_exception(failure);
}

// Lists the calling thread in waiters_ for the length of a wait, when interrupts are
// pushed (otherwise costs nothing).
class Runtime::WaiterScope {
public:
    WaiterScope(Runtime &rt, std::mutex *mu, std::condition_variable *cv) : rt_(rt) {
        if (!rt_.interrupts_pushed()) return;
        me_.thread = ::pthread_self();
        me_.mu = mu;
        me_.cv = cv;
        std::lock_guard w(rt_.waiters_mu_);
        rt_.waiters_.push_back(&me_);
        listed_ = true;
    }
    ~WaiterScope() {
        if (!listed_) return;
        std::lock_guard w(rt_.waiters_mu_);
        auto &all = rt_.waiters_;
        all.erase(std::find(all.begin(), all.end(), &me_));
    }
    WaiterScope(const WaiterScope &) = delete;
    WaiterScope &operator=(const WaiterScope &) = delete;
    bool listed() const { return listed_; }
    // Before each look at the interrupt flag and stop(): the wake-ups sent so far are
    // the ones this look covers (resend_missed_interrupts spares the thread from then on).
    void looking() {
        if (listed_) me_.looked.store(rt_.wakes_sent_.load());
    }

private:
    Runtime &rt_;
    Waiter me_{};
    bool listed_ = false;
};

WaitResult Runtime::wait(std::mutex &mu, std::condition_variable &cv,
                         FunctionRef<bool()> pred, const Deadline &deadline,
                         bool interruptible) {
    void *token = hooks_->release();
    WaitResult result;
    {
        WaiterScope waiting(*this, &mu, &cv);
        std::unique_lock lk(mu);
        for (;;) {
            if (pred()) {
                result = WaitResult::Ready;
                break;
            }
            if (interruptible && hooks_->interrupted()) {
                result = WaitResult::Interrupted;
                break;
            }
            auto now = Clock::now();
            if (deadline && now >= *deadline) {
                result = WaitResult::TimedOut;
                break;
            }
            auto until = now + wait_slice_;
            if (deadline && *deadline < until) until = *deadline;
            cv.wait_until(lk, until);
        }
    }
    // Re-take the interpreter lock only after dropping `mu`: a thread holding the
    // interpreter lock may be waiting for `mu`.
    hooks_->reacquire(token);
    return result;
}

void throw_unless_ready(WaitResult r, const char *op) {
    switch (r) {
    case WaitResult::Ready: return;
    case WaitResult::TimedOut: throw Error(ErrorKind::Timeout, std::string(op) + ": timed out", UV_ETIMEDOUT);
    case WaitResult::Interrupted: throw Error(ErrorKind::Interrupted, std::string(op) + ": interrupted");
    case WaitResult::Stopped: throw Error(ErrorKind::Closed, std::string(op) + ": the socket is closed");
    }
}

void Runtime::close_posted() { closes_posted_.fetch_add(1); }

void Runtime::close_done() {
    closes_done_.fetch_add(1);
    std::lock_guard lk(closes_mu_);  // a waiter between its look and its sleep hears this
    closes_cv_.notify_all();
}

bool Runtime::await_posted_closes(int err, const Deadline &deadline, const char *op) {
    if (!freed_by_posted_closes(err)) return false;
    uint64_t target = closes_posted_.load();
    if (closes_done_.load() >= target) return false;
    Deadline until = Clock::now() + kCloseWaitLimit;
    if (deadline && *deadline < *until) until = deadline;
    if (wait(closes_mu_, closes_cv_, [&] { return closes_done_.load() >= target; }, until) == WaitResult::Interrupted) {
        throw_unless_ready(WaitResult::Interrupted, op);
    }
    return true;
}

int Runtime::above_stdio(int fd) {
    if (fd < 0 || fd >= kFirstDescriptor) return fd;
    int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, kFirstDescriptor);
    int err = errno;
    ::close(fd);
    errno = err;
    return moved;
}

int Runtime::open_descriptor(FunctionRef<int()> open) {
    int fd = above_stdio(open());
    if (fd >= 0) return fd;
    int err = errno;
    if (!await_posted_closes(err, {}, "socket")) {
        errno = err;
        return fd;
    }
    return above_stdio(open());
}

void Runtime::wait_or_throw(std::mutex &mu, std::condition_variable &cv, FunctionRef<bool()> pred,
                            const Deadline &deadline, const char *op) {
    throw_unless_ready(wait(mu, cv, pred, deadline), op);
}

std::optional<WaitResult> Runtime::wait_over(const Deadline &deadline, FunctionRef<bool()> stop) {
    if (stop && stop()) return WaitResult::Stopped;
    if (hooks_->interrupted()) return WaitResult::Interrupted;
    if (deadline && Clock::now() >= *deadline) return WaitResult::TimedOut;
    return std::nullopt;
}

WaitResult Runtime::call_blocking(const BlockingCall &c, ssize_t &result, int &error) {
    void *token = nullptr;
    bool released = false;
    auto release = [&] {
        if (released) return;
        token = hooks_->release();
        released = true;
    };
    if (!c.first_try_locked) release();
    WaitResult outcome = WaitResult::Ready;
    result = 0;
    error = 0;
    bool looked = false;  // at readiness, by a poll
    {
        WaiterScope waiting(*this, nullptr, nullptr);
        waiting.looking();
        // An interrupt pushed before this thread was listed sent it no signal: look now.
        if (waiting.listed() && hooks_->interrupted()) {
            release();
            outcome = WaitResult::Interrupted;
        } else if (c.stop && c.stop()) {  // closed or handed over since the caller looked
            release();
            outcome = WaitResult::Stopped;
        }
        while (outcome == WaitResult::Ready) {
            auto started = Clock::now();
            if (c.call) {
                result = c.call();
                error = result < 0 ? errno : 0;
                if (result >= 0 || (error != EAGAIN && error != EWOULDBLOCK && error != EINTR)) break;
            }
            release();
            waiting.looking();
            if (auto over = wait_over(c.deadline, c.stop)) {
                // A wait whose deadline has passed (a timeout of 0, or one spent waiting
                // for the lock) still takes what is ready now, as a call would.
                pollfd now{c.fd, c.events, 0};
                if (*over == WaitResult::TimedOut && !c.call && !looked && ::poll(&now, 1, 0) > 0) break;
                outcome = *over;
                break;
            }
            looked = true;
            // A call that came back at once (not after a slice of SO_RCVTIMEO) met a
            // non-blocking descriptor: wait for it here.
            if (!c.call || (error != EINTR && Clock::now() - started < wait_slice_ / 2)) {
                auto slice = std::chrono::ceil<std::chrono::milliseconds>(wait_slice_);
                if (c.deadline) {
                    auto left = std::chrono::ceil<std::chrono::milliseconds>(*c.deadline - Clock::now());
                    slice = std::clamp(left, std::chrono::milliseconds(0), slice);
                }
                pollfd p{c.fd, c.events, 0};
                int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(slice.count(), INT32_MAX)));
                if (n > 0 && !c.call) break;  // ready
                // 0: a slice passed; -1: EINTR (a wake-up, or any signal). Either way look again.
            }
        }
    }
    if (c.done) c.done();
    if (released) hooks_->reacquire(token);
    return outcome;
}

namespace {

void do_nothing(int) {}  // its only effect: the blocked system call returns EINTR

// The handler lives in this copy of the plugin's code, which a reload unmaps: installed
// only where the signal has none (SIG_DFL), each time a wake-up may need it, and taken
// away when a runtime that pushed wake-ups shuts down (a later runtime, perhaps in
// another copy, installs its own again). SA_RESTART, so that other code's system calls
// do not see EINTR; ours have socket timeouts or are poll(), which a handled signal
// always ends.
void install_wake_handler() {
    struct sigaction now {};
    if (::sigaction(Runtime::kWakeSignal, nullptr, &now) != 0 || now.sa_handler != SIG_DFL) return;
    struct sigaction wake {};
    wake.sa_handler = do_nothing;
    wake.sa_flags = SA_RESTART;
    sigemptyset(&wake.sa_mask);
    ::sigaction(Runtime::kWakeSignal, &wake, nullptr);
}

void remove_wake_handler() {
    struct sigaction now {};
    if (::sigaction(Runtime::kWakeSignal, nullptr, &now) != 0 || now.sa_handler != do_nothing) return;
    struct sigaction none {};
    none.sa_handler = SIG_DFL;
    sigemptyset(&none.sa_mask);
    ::sigaction(Runtime::kWakeSignal, &none, nullptr);
}

}  // namespace

void Runtime::use_wake_signal() {
    wake_signal_used_.store(true);
    install_wake_handler();  // another runtime may have taken it away
}

void Runtime::set_interrupts_pushed(bool on) {
    if (on) use_wake_signal();
    interrupts_pushed_.store(on);
}

void Runtime::wake_for_interrupt() {
    if (interrupts_pushed()) use_wake_signal();
    const uint64_t wake = ++wakes_sent_;  // after the host set its flag: a look that covers it sees it
    bool signalled = false;
    {
        std::lock_guard w(waiters_mu_);
        for (Waiter *waiter : waiters_) {
            if (waiter->cv) {
                std::lock_guard lk(*waiter->mu);  // so that a waiter between its look and its wait still hears
                waiter->cv->notify_all();
            } else {
                waiter->sent = std::max(waiter->sent, wake);  // another waker may have sent a later one
                ::pthread_kill(waiter->thread, kWakeSignal);
                signalled = true;
            }
        }
    }
    // A signal that lands between a thread's last look and its system call is missed
    // (the call would wait out its slice): the loop sends it again until the thread has
    // looked since.
    if (signalled) resend_wakes(nullptr);
}

void Runtime::resend_wakes(std::function<bool()> resend) {
    post([this, resend = std::move(resend)]() mutable {
        if (resend) resenders_.push_back(std::move(resend));
        if (!uv_is_active(reinterpret_cast<uv_handle_t *>(&rewake_timer_)))
            uv_timer_start(&rewake_timer_, &Runtime::on_rewake, kRewakeInterval.count(), kRewakeInterval.count());
    });
}

bool Runtime::resend_missed_interrupts() {
    bool missed = false;
    std::lock_guard w(waiters_mu_);
    for (Waiter *waiter : waiters_) {
        if (waiter->cv || waiter->looked.load() >= waiter->sent) continue;
        ::pthread_kill(waiter->thread, kWakeSignal);
        missed = true;
    }
    return missed;
}

void Runtime::on_rewake(uv_timer_t *t) {
    auto *self = static_cast<Runtime *>(t->data);
    bool missed = self->resend_missed_interrupts();
    std::erase_if(self->resenders_, [](const std::function<bool()> &resend) { return !resend(); });
    if (!missed && self->resenders_.empty()) uv_timer_stop(t);
}

void Runtime::begin_handover() {
    handing_over_.store(true, std::memory_order_release);
    wake_for_interrupt();
}

void Runtime::end_handover() { handing_over_.store(false, std::memory_order_release); }

void Runtime::on_wake(uv_async_t *h) {
    auto *self = static_cast<Runtime *>(h->data);
    self->drain(self->tasks_);
}

void Runtime::drain(std::vector<std::function<void()>> &queue) {
    std::vector<std::function<void()>> batch;
    {
        std::lock_guard lk(mu_);
        batch.swap(queue);
    }
    for (auto &task : batch) task();
}

void Runtime::track(std::shared_ptr<LoopResource> r) {
    LoopResource *key = r.get();
    tracked_.emplace(key, std::move(r));
    std::lock_guard lk(mu_);
    tracked_count_ = tracked_.size();
}

void Runtime::untrack(LoopResource *r) {
    // Move the last reference out first: destroying it may re-enter untrack's callers.
    std::shared_ptr<LoopResource> keep;
    auto it = tracked_.find(r);
    if (it == tracked_.end()) return;
    keep = std::move(it->second);
    tracked_.erase(it);
    {
        std::lock_guard lk(mu_);
        tracked_count_ = tracked_.size();
    }
}

size_t Runtime::tracked_count() const {
    std::lock_guard lk(mu_);
    return tracked_count_;
}

int Runtime::shutdown() {
    if (on_loop_thread()) return UV_EBUSY;  // a callback cannot join its own thread
    ForkRegistry::remove(this);
    {
        std::lock_guard lk(mu_);
        if (joined_) return close_result_;
        if (accepting_) {
            accepting_ = false;
            // The last task: everything posted before it still runs first.
            tasks_.push_back([this] {
                drain(lazy_tasks_);  // sockets not yet handed over are closed with the rest
                std::vector<LoopResource *> open;
                for (auto &[key, res] : tracked_) open.push_back(key);
                for (LoopResource *r : open) r->mark_closing();
                for (LoopResource *r : open) r->abort_on_loop("the net module was unloaded");
                uv_close(reinterpret_cast<uv_handle_t *>(&wake_), nullptr);
                uv_close(reinterpret_cast<uv_handle_t *>(&drain_timer_), nullptr);
                uv_close(reinterpret_cast<uv_handle_t *>(&rewake_timer_), nullptr);
            });
            uv_async_send(&wake_);
        }
    }
    if (thread_.joinable()) thread_.join();
    // After the teardown, which may have signalled callers: this code may be unmapped next.
    if (wake_signal_used_.load()) remove_wake_handler();
    int rc = uv_loop_close(&loop_);
    std::lock_guard lk(mu_);
    joined_ = true;
    close_result_ = rc;
    return rc;
}

}  // namespace ksnet
