// ksnet/socket_base.hpp - what every kind of socket shares (TcpSocket, UdpSocket,
// PollSocket): the mutex and condition variable, the descriptor, the closed and moved
// states and their errors, options, fileno, and the close of the handle on the loop.
//
// close() (from any thread) marks the socket closed under mu_, which wakes every
// blocked call, then lets the loop uv_close the handle; the socket's memory goes only
// after the close callback, when the runtime lets go of it (Runtime::untrack). A kind
// that must close later or its own way says so in its hooks: TcpSocket's callers make
// system calls off the loop, so its descriptor waits for the last of them, and a
// descriptor the loop has not taken yet is closed at once.
//
// Closed is one flag here, beside the kind's own states (open, bound, connected, ...):
// state() reports Closed while it is set, and a saved socket carries the kind's Closed.
// The hooks are virtual: they run on close, teardown and setopt, never per read or write.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ksnet/address.hpp"
#include "ksnet/error.hpp"
#include "ksnet/handover.hpp"
#include "ksnet/options.hpp"
#include "ksnet/runtime.hpp"

namespace ksnet {

struct PendingLookup;  // resolver.hpp

class SocketBase : public LoopResource, public std::enable_shared_from_this<SocketBase> {
public:
    // Harmless when already closed. Wakes every thread blocked on this socket.
    void close();
    // Teardown (loop thread): closes the socket with `why` as its reason and closes the
    // handle. A socket that moved to another version keeps its state for calls on their
    // way back; only its handle (this version's descriptor) goes.
    void abort_on_loop(const char *why) final;

    bool closed() const;
    // The OS descriptor, -1 once closed.
    int fileno() const;
    // The address of `ep` (resolve in resolver.hpp) for a call on this socket, looked up
    // as `socktype`; a close() meanwhile ends the wait at once. Caller thread, mu_ not held.
    socklen_t resolve_endpoint(const Endpoint &ep, int socktype, bool passive, const Deadline &deadline,
                               const char *op, sockaddr_storage &out);
    // Socket options by name (ksnet/options.hpp).
    void set_option(Option o, int64_t value);
    int64_t get_option(Option o) const;

    // The kind's state as scripts name it ("connected", "closed", ...).
    virtual const char *state_text() const = 0;
    // getsockname / getpeername: Error(Closed) once closed, Error(State) when there is none.
    virtual sockaddr_storage local_address() const = 0;
    virtual sockaddr_storage peer_address() const = 0;

    // Live reload (ksp_handover). save(): after Runtime::begin_handover, waits (at most
    // `limit`) until the kind's calls in flight are done and fills the kind's part of `out`.
    virtual void save(SocketState &out, Clock::duration limit) = 0;
    // committed: the socket now belongs to the next version; calls still on their way
    // back raise Error(Moved), and close() leaves the descriptor to teardown. Otherwise
    // the socket serves on.
    void end_handover(bool committed);

protected:
    // `type` and `protocol` are the OS socket's, for naming it in messages.
    SocketBase(std::shared_ptr<Runtime> rt, int type, int protocol)
        : rt_(std::move(rt)), type_(type), protocol_(protocol) {}

    // ---- hooks ----
    // Loop thread: the uv handle, whose data is this SocketBase (see owner()); nullptr
    // when the loop never opened one (nothing to uv_close, nothing tracked).
    virtual uv_handle_t *handle() = 0;
    // Loop thread, once the handle is closed (or there was none): what else must go.
    virtual void on_handle_closed() {}
    // close(), mu_ held, just marked closed: true to close the handle on the loop now,
    // false when the kind closes the descriptor itself or later.
    virtual bool on_close_locked() { return true; }
    // abort_on_loop(), mu_ held, just marked closed: wait for what must leave first.
    virtual void on_abort_locked(std::unique_lock<std::mutex> &) {}
    // end_handover(false), mu_ held: start serving again.
    virtual void on_handover_cancelled_locked() {}
    // mu_ held, socket open: an option the kind keeps itself instead of the OS.
    virtual bool set_own_option_locked(Option, int64_t) { return false; }
    virtual std::optional<int64_t> own_option_locked(Option) const { return std::nullopt; }

    // ---- for the kinds ----
    // Loop thread. Requests still pending on the handle (queued UDP sends) complete with
    // UV_ECANCELED before the close callback.
    void close_handle_on_loop();
    void post_close_handle();  // close_handle_on_loop, from any thread

    // Caller thread, mu_ held by `lk`, after accept() or bind() failed with `err`: true
    // when closes posted before could free what it lacked (a descriptor, an address) and
    // it waited for them (Runtime::await_posted_closes; once per call, as `waited`
    // records), so that another try may succeed. An interrupt ends the wait with
    // Error(Interrupted) naming `op`, mu_ held again.
    bool retry_after_posted_closes(std::unique_lock<std::mutex> &lk, int err, const Deadline &deadline,
                                   bool &waited, const char *op);
    // bind() of fd_, tried again after posted closes if the address was in use: 0, or
    // the errno. Caller thread, mu_ held by `lk`; `check` (the kind's checks before a
    // bind) runs again after the wait, which let go of mu_.
    int bind_locked(std::unique_lock<std::mutex> &lk, const sockaddr *addr, socklen_t len, FunctionRef<void()> check);
    // bind() of an IP socket (TCP, UDP) to `ep`, looked up as `socktype`: `check` (the
    // kind's checks before a bind, mu_ held) runs before the lookup and again after it.
    // Returns mu_, still held, for the kind to record the new state.
    std::unique_lock<std::mutex> bind_endpoint(const Endpoint &ep, int socktype, FunctionRef<void()> check);

    // Caller thread, mu_ held. At the start of a call: closed, or moved to another
    // version of the plugin (live reload), whose code the host calls instead.
    void throw_if_unusable_locked(const char *op) const {
        throw_if_moved_locked(op);
        throw_if_closed_locked(op);
    }
    void throw_if_moved_locked(const char *op) const {
        if (moved_out_) throw moved_error(op);
    }
    // Handed over, or being handed over (the next version may have saved its state
    // already): what the socket still has to do is the next version's.
    bool moving_locked() const { return moved_out_ || rt_->handing_over(); }
    void throw_if_closed_locked(const char *op) const {
        if (closed_) throw_closed_locked(op);
    }
    // "op: the socket is closed", or why the runtime closed it.
    [[noreturn]] void throw_closed_locked(const char *op) const;
    void stop_lookups_locked();  // closing: every resolve_endpoint waiting ends now
    // How messages name the socket: its peer, else its own address ("127.0.0.1:5000");
    // "" once closed.
    virtual std::string name_for_errors_locked() const;

    // The kind's own state `s` (read under mu_), or its Closed once closed.
    template <class State>
    State state_or_closed(const State &s) const {
        std::lock_guard lk(mu_);
        return closed_ ? State::Closed : s;
    }

    // The socket whose handle (uv_tcp_t, uv_udp_t, uv_poll_t) `h` is.
    template <class Kind, class Handle>
    static Kind *owner(const Handle *h) {
        return static_cast<Kind *>(static_cast<SocketBase *>(h->data));
    }
    template <class Kind>
    std::shared_ptr<Kind> shared_as() {
        return std::static_pointer_cast<Kind>(shared_from_this());
    }

    std::shared_ptr<Runtime> rt_;
    const int type_, protocol_;
    int fd_ = -1;  // open while mu_ is held and the socket is not closed (the loop closes it)
    bool handle_closing_ = false;  // loop only
    // Set by post_close_handle before its post (which orders it for the loop); the loop
    // tells the runtime once the descriptor is closed (Runtime::close_done).
    bool close_posted_ = false;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool closed_ = false;       // under mu_
    const char *close_reason_ = nullptr;  // why the runtime closed it, if it did (a literal)
    bool moved_out_ = false;    // handed to another version of the plugin (live reload)
    std::vector<std::shared_ptr<PendingLookup>> lookups_;  // callers' name lookups, under mu_

private:
    static void on_close(uv_handle_t *h);
    void descriptor_closed();  // the descriptor is closed (or shutdown closed it)
};

}  // namespace ksnet
