#include "ksnet/caller_io_socket.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <new>
#include <thread>

#include "ksnet/error.hpp"

namespace ksnet {

CallerIoSocket::CallerIoSocket(std::shared_ptr<Runtime> rt, int type, int protocol)
    : SocketBase(std::move(rt), type, protocol), fork_generation_(rt_->fork_generation()) {}

void CallerIoSocket::forget_parent_calls_locked() {
    if (fork_generation_ == rt_->fork_generation()) return;
    fork_generation_ = rt_->fork_generation();
    reader_busy_ = writer_busy_ = false;
    writing_.forget_other_threads();
    turn_waiters_ = 0;
    // The parent's threads waiting for a turn may still count as waiters of cv_, and
    // glibc's destroy waits for them: a fresh one forgets them (nobody waits on it yet:
    // both waits call this first).
    new (&cv_) std::condition_variable();
    if (threads_in_kernel_) threads_in_kernel_->clear();
    io_active_ = 0;
    if (close_deferred_) {
        close_deferred_ = false;
        if (release_descriptor_locked()) post_close_handle();
    }
}

void CallerIoSocket::begin_closing_locked() {
    forget_parent_calls_locked();
    closing_ = true;
    if (writing_.under_way()) reset_connection_locked();
}

bool CallerIoSocket::on_close_locked() {
    begin_closing_locked();
    if (io_active_ > 0) {  // a caller is in the kernel: the last one out closes
        close_deferred_ = true;
        wake_callers_locked();
        return false;
    }
    return release_descriptor_locked();
}

void CallerIoSocket::wake_callers_locked() {
    // A caller blocked in the kernel returns at once (end of stream, EPIPE, EINVAL for
    // accept, 0 for a datagram receive) instead of at the end of its wait slice; a TCP
    // peer sees the end of the stream now rather than at the close() that follows.
    if (moved_out_) return;
    ::shutdown(fd_, SHUT_RDWR);
    if (!signal_threads_in_kernel_locked()) return;
    // A caller between its look at closing_ and its system call misses the signal: sent
    // again until the callers have left (teardown's on_abort_locked resends it itself).
    // A child after fork() has none of the parent's callers.
    rt_->resend_wakes([weak = weak_from_this(), pid = ::getpid()] {
        auto self = std::static_pointer_cast<CallerIoSocket>(weak.lock());
        if (!self || ::getpid() != pid) return false;
        std::lock_guard lk(self->mu_);
        return self->signal_callers_left_locked();
    });
}

bool CallerIoSocket::signal_callers_left_locked() {
    return io_active_ > 0 && !moved_out_ && signal_threads_in_kernel_locked();
}

bool CallerIoSocket::signal_threads_in_kernel_locked() {
    if (!threads_in_kernel_ || threads_in_kernel_->empty()) return false;
    rt_->use_wake_signal();
    for (pthread_t t : *threads_in_kernel_) ::pthread_kill(t, Runtime::kWakeSignal);
    return true;
}

void CallerIoSocket::mark_closing() {
    std::lock_guard lk(mu_);
    if (moved_out_) return;  // its callers' results stand: only the descriptor goes
    begin_closing_locked();
    if (io_active_ > 0) wake_callers_locked();
}

void CallerIoSocket::on_abort_locked(std::unique_lock<std::mutex> &lk) {
    forget_parent_calls_locked();
    closing_ = true;
    // mark_closing() woke the callers in the kernel. Each lets go of fd_. A signal that
    // came between a caller's look at closing_ and its system call was missed: sent again.
    while (io_active_ > 0) {
        lk.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        lk.lock();
        signal_callers_left_locked();
    }
    close_deferred_ = false;
}

void CallerIoSocket::begin_io_locked() {
    forget_parent_calls_locked();
    ++io_active_;
    if (threads_in_kernel_) threads_in_kernel_->push_back(::pthread_self());
}

void CallerIoSocket::end_io_locked() {
    if (threads_in_kernel_) {
        auto &all = *threads_in_kernel_;
        auto me = std::find_if(all.begin(), all.end(), [](pthread_t t) { return ::pthread_equal(t, ::pthread_self()); });
        if (me != all.end()) all.erase(me);
    }
    if (io_active_ == 1 && rt_->handing_over()) cv_.notify_all();  // save() waits for this
    if (--io_active_ > 0 || !close_deferred_) return;
    close_deferred_ = false;
    if (release_descriptor_locked()) post_close_handle();
}

void CallerIoSocket::wait_until_callers_left_locked(std::unique_lock<std::mutex> &lk, Clock::duration limit) {
    // Runtime::begin_handover woke every caller; none can come back before the reload
    // ends, since each needs the interpreter lock the reloading thread holds.
    forget_parent_calls_locked();
    if (!cv_.wait_for(lk, limit, [this] { return io_active_ == 0; })) {
        throw Error(ErrorKind::State, "a call on " + name_for_errors_locked() + " did not leave the socket in time");
    }
}

void CallerIoSocket::throw_if_closing_locked(const char *op) const {
    throw_if_closed_locked(op);
    // Not closed yet, but marked closing: the runtime is shutting down.
    if (closing_) throw Error(ErrorKind::Closed, std::string(op) + ": socket closed because the net module was unloaded");
}

ssize_t CallerIoSocket::blocking_locked(std::unique_lock<std::mutex> &lk, short events, const char *op,
                                        const Deadline &deadline, FunctionRef<ssize_t()> call, int &err,
                                        bool first_try_locked) {
    // Every call looks again: its caller may have waited for the interpreter lock since
    // it last held mu_ (after a wait_ready, say), through a live reload that moved the
    // socket; a system call on this version's descriptor now would take what the next
    // version was handed (a connection an accept4 takes here is closed with this version).
    throw_if_unusable_locked(op);
    begin_io_locked();
    lk.unlock();
    bool moving = false;  // left for a live reload (Runtime::begin_handover)
    auto stop = [&] {
        if (closing_.load()) return true;
        moving = rt_->handing_over();
        return moving;
    };
    auto done = [this] {
        std::lock_guard g(mu_);
        end_io_locked();
    };
    BlockingCall c;
    c.fd = fd_;
    c.events = events;
    c.call = call;
    c.deadline = deadline;
    c.stop = stop;
    c.done = done;
    c.first_try_locked = first_try_locked;
    ssize_t result = -1;
    WaitResult r = rt_->call_blocking(c, result, err);
    lk.lock();
    if (r == WaitResult::Stopped && moving) throw moved_error(op);
    // An error while closing is the shutdown() that woke the call, not the peer; and a
    // wait woken by that shutdown must not go on to use fd_, which may be closed by now.
    if (r == WaitResult::Stopped || (r == WaitResult::Ready && (result < 0 || !call))) throw_if_closing_locked(op);
    throw_unless_ready(r, op);
    return result;
}

void CallerIoSocket::wait_ready(std::unique_lock<std::mutex> &lk, short events, const Deadline &deadline,
                                const char *op) {
    int err = 0;
    blocking_locked(lk, events, op, deadline, nullptr, err);
}

void CallerIoSocket::take_turn(std::unique_lock<std::mutex> &lk, bool &busy, const Deadline &deadline,
                               const char *op) {
    forget_parent_calls_locked();
    // A loop: the wait saw the turn free under mu_, but gave mu_ up to take the
    // interpreter lock back, and a thread that held that lock may have taken the turn.
    while (turn_taken_locked(busy)) {
        ++turn_waiters_;
        lk.unlock();
        bool moving = false;
        try {
            // A waiter that missed the reload's window still sees that its socket moved.
            rt_->wait_or_throw(mu_, cv_,
                               [&] {
                                   return !turn_taken_locked(busy) || closed_ ||
                                          (moving = rt_->handing_over() || moved_out_);
                               },
                               deadline, op);
        } catch (...) {
            lk.lock();
            --turn_waiters_;
            throw;
        }
        lk.lock();
        --turn_waiters_;
        if (moving) throw moved_error(op);
        throw_if_unusable_locked(op);
    }
    busy = true;
}

}  // namespace ksnet
