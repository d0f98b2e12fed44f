#include "ksnet/runtime.hpp"

#include <signal.h>

#include "ksnet/error.hpp"

namespace ksnet {

namespace {
constexpr size_t kSlabSize = 64 * 1024;
// How often a waiter wakes to ask the host whether the script was interrupted.
constexpr auto kInterruptPoll = std::chrono::milliseconds(50);
}  // namespace

Runtime::Runtime(std::shared_ptr<WaitHooks> hooks)
    : hooks_(hooks ? std::move(hooks) : std::make_shared<WaitHooks>()), slab_(new char[kSlabSize]) {}

std::shared_ptr<Runtime> Runtime::start(std::shared_ptr<WaitHooks> hooks) {
    std::shared_ptr<Runtime> rt(new Runtime(std::move(hooks)));
    check_uv(uv_loop_init(&rt->loop_), "uv_loop_init", "");
    int rc = uv_async_init(&rt->loop_, &rt->wake_, &Runtime::on_wake);
    if (rc < 0) {
        uv_loop_close(&rt->loop_);
        throw os_error("uv_async_init", "", rc);
    }
    rt->wake_.data = rt.get();

    // The loop thread blocks every signal: a SIGPIPE raised by a write to a dead peer
    // stays pending on it instead of killing the process (the write reports EPIPE), and
    // asynchronous signals such as SIGINT go to the interpreter's threads.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    Runtime *self = rt.get();
    try {
        rt->thread_ = std::thread([self] { uv_run(&self->loop_, UV_RUN_DEFAULT); });
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        uv_close(reinterpret_cast<uv_handle_t *>(&rt->wake_), nullptr);
        uv_run(&rt->loop_, UV_RUN_DEFAULT);
        uv_loop_close(&rt->loop_);
        throw Error(ErrorKind::Os, "cannot start the net loop thread");
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return rt;
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

WaitResult Runtime::wait(std::mutex &mu, std::condition_variable &cv,
                         const std::function<bool()> &pred, const Deadline &deadline,
                         bool interruptible) {
    void *token = hooks_->release();
    WaitResult result;
    {
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
            auto until = now + kInterruptPoll;
            if (deadline && *deadline < until) until = *deadline;
            cv.wait_until(lk, until);
        }
    }
    // Re-take the interpreter lock only after dropping `mu`: a thread holding the
    // interpreter lock may be waiting for `mu`.
    hooks_->reacquire(token);
    return result;
}

void Runtime::on_wake(uv_async_t *h) { static_cast<Runtime *>(h->data)->drain_tasks(); }

void Runtime::drain_tasks() {
    std::vector<std::function<void()>> batch;
    {
        std::lock_guard lk(mu_);
        batch.swap(tasks_);
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

uv_buf_t Runtime::read_slab() { return uv_buf_init(slab_.get(), kSlabSize); }

int Runtime::shutdown() {
    if (on_loop_thread()) return UV_EBUSY;  // a callback cannot join its own thread
    {
        std::lock_guard lk(mu_);
        if (joined_) return close_result_;
        if (accepting_) {
            accepting_ = false;
            // The last task: everything posted before it still runs first.
            tasks_.push_back([this] {
                std::vector<LoopResource *> open;
                for (auto &[key, res] : tracked_) open.push_back(key);
                for (LoopResource *r : open) r->abort_on_loop("the net module was unloaded");
                uv_close(reinterpret_cast<uv_handle_t *>(&wake_), nullptr);
            });
            uv_async_send(&wake_);
        }
    }
    if (thread_.joinable()) thread_.join();
    int rc = uv_loop_close(&loop_);
    std::lock_guard lk(mu_);
    joined_ = true;
    close_result_ = rc;
    return rc;
}

}  // namespace ksnet
