// ksnet/caller_io_socket.hpp - what TcpSocket and UdpSocket share beyond SocketBase:
// their callers make their own system calls on the descriptor, on the caller's thread
// with the interpreter lock released (Runtime::call_blocking), instead of waiting for
// the loop. The loop only owns the handle.
//
// A descriptor is never closed under a caller: each counts itself in (io_active_)
// around its system call. close() from another thread marks the socket closed and
// shuts the descriptor down, which makes a caller blocked in the kernel return at once
// (PollSocket, whose shutdown() may wake nobody, also signals its callers' threads);
// the last caller out lets the handle close. Teardown does the same for every socket
// (mark_closing, then abort_on_loop waits for the callers), and a live reload's save()
// waits until no caller is in the kernel.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "ksnet/function_ref.hpp"
#include "ksnet/handover.hpp"
#include "ksnet/runtime.hpp"
#include "ksnet/socket_base.hpp"

namespace ksnet {

class CallerIoSocket : public SocketBase {
public:
    // Teardown, before any abort_on_loop: callers in the kernel return now.
    void mark_closing() final;

protected:
    CallerIoSocket(std::shared_ptr<Runtime> rt, int type, int protocol);

    // The one way a call uses fd_ outside mu_: Runtime::call_blocking with the
    // descriptor counted in use (and let go before the interpreter lock is taken back).
    // Returns what `call` returned, with errno in `err`; without `call`, waits until fd_
    // is ready. Throws on close, unload, interrupt, a live reload (Error(Moved)) or the
    // deadline. `first_try_locked`: see BlockingCall.
    ssize_t blocking_locked(std::unique_lock<std::mutex> &lk, short events, const char *op, const Deadline &deadline,
                            FunctionRef<ssize_t()> call, int &err, bool first_try_locked = false);
    // Waits (mu_ released) until fd_ is ready; throws as blocking_locked.
    void wait_ready(std::unique_lock<std::mutex> &lk, short events, const Deadline &deadline, const char *op);
    // Takes one turn (reader, writer: `busy`), waiting for the current holder to finish
    // (and, for the writer's, for a part-sent write's own thread: see writing_).
    void take_turn(std::unique_lock<std::mutex> &lk, bool &busy, const Deadline &deadline, const char *op);
    // Gives a turn back, waking the callers waiting for one (only if there are any: a
    // broadcast per call costs a library call when, as usual, nobody waits).
    void end_turn_locked(bool &busy) {
        busy = false;
        if (turn_waiters_ > 0) cv_.notify_all();
    }
    // One caller at a time for what must not interleave (under mu_; take_turn): a reader
    // owns the receive buffer and a message's peek and read; a stream writer's bytes
    // stay together. A kind uses those it needs.
    bool reader_busy_ = false;
    bool writer_busy_ = false;
    // A stream's writes across live reloads (`sent` grows while the writer has fd_). A
    // write a reload left part-way holds the writer's turn for its own thread, which the
    // host sends back at once with the same bytes (KSP_ERR_MOVED): another writer's bytes
    // must not come between its two parts.
    WriteProgress writing_;

    // In a child after fork(), before anything looks at the calls in progress (their
    // count, the turns, the waiters for a turn): those are the parent's threads', which
    // the child does not have and which will never end here. Forgets them (a close()
    // deferred for them closes now). Every path that counts a call or takes a turn calls
    // it first, so what a child's own calls hold is never forgotten.
    void forget_parent_calls_locked();

    // Closed, or marked closing by an unload (for a result a caller brings back).
    void throw_if_closing_locked(const char *op) const;
    // save(): until no caller uses the descriptor (at most `limit`), else Error(State).
    void wait_until_callers_left_locked(std::unique_lock<std::mutex> &lk, Clock::duration limit);

    // The descriptor is used by nobody now and the socket is closed: false when the kind
    // closed it itself (TcpSocket: the loop never took it), true to close the handle on
    // the loop.
    virtual bool release_descriptor_locked() { return true; }
    // Ends a stream so that the peer sees it broke (TcpSocket: a reset), for a close or
    // an unload that cuts a write under way: an end of stream would pass the cut message
    // off as whole. Datagram kinds never send part of one.
    virtual void reset_connection_locked() {}

    std::atomic<bool> closing_{false};  // read without mu_ by waiting callers
    // Made by a kind whose shutdown() may not wake a caller in the kernel (an AF_PACKET
    // socket's does nothing): the threads of the callers inside a system call (under
    // mu_), to which close() and teardown send kWakeSignal. Null for TCP and UDP.
    std::unique_ptr<std::vector<pthread_t>> threads_in_kernel_;

private:
    // SocketBase's hooks: close() waits for the last caller, teardown waits for all.
    bool on_close_locked() final;
    void on_abort_locked(std::unique_lock<std::mutex> &lk) final;

    bool turn_taken_locked(const bool &busy) const {
        return busy || (&busy == &writer_busy_ && writing_.held_for_another_thread());
    }
    // close() and an unload, first: closing_, and a write under way cut with a reset.
    void begin_closing_locked();
    void begin_io_locked();
    void end_io_locked();
    // Callers blocked in the kernel on fd_ return now (never for a socket that moved:
    // shutdown() would end the connection for its new owner too).
    void wake_callers_locked();
    // kWakeSignal to threads_in_kernel_ (if the kind keeps them); false if none.
    bool signal_threads_in_kernel_locked();
    // The same, while callers are still in the kernel and the socket has not moved:
    // what a missed signal is resent by; false once there is nobody to wake.
    bool signal_callers_left_locked();

    // Under mu_.
    int io_active_ = 0;            // callers inside a system call (or poll()) on fd_
    bool close_deferred_ = false;  // close() waits for io_active_ to reach 0
    int turn_waiters_ = 0;         // callers in take_turn waiting for a turn to end
    unsigned fork_generation_;     // the runtime's, when the calls counted here were made
};

}  // namespace ksnet
