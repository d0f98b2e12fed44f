#include "ksnet/socket_base.hpp"

#include <algorithm>

#include "ksnet/address.hpp"
#include "ksnet/error.hpp"
#include "resolver.hpp"

namespace ksnet {

void SocketBase::close() {
    {
        std::lock_guard lk(mu_);
        if (closed_ || moved_out_) return;  // moved: teardown lets go of the handle
        closed_ = true;
        cv_.notify_all();
        stop_lookups_locked();
        if (!on_close_locked()) return;
    }
    post_close_handle();
}

void SocketBase::post_close_handle() {
    auto self = shared_from_this();
    rt_->close_posted();
    close_posted_ = true;
    // Refused after shutdown, which closed the descriptor already.
    if (!rt_->post([self] { self->close_handle_on_loop(); })) descriptor_closed();
}

void SocketBase::descriptor_closed() {
    if (!close_posted_) return;
    close_posted_ = false;
    rt_->close_done();
}

void SocketBase::abort_on_loop(const char *why) {
    {
        std::unique_lock lk(mu_);
        if (!moved_out_) {
            if (!closed_) close_reason_ = why;
            closed_ = true;
            cv_.notify_all();
            stop_lookups_locked();
            on_abort_locked(lk);
        }
    }
    close_handle_on_loop();
}

void SocketBase::close_handle_on_loop() {
    if (handle_closing_) return;
    handle_closing_ = true;
    uv_handle_t *h = handle();
    if (!h) {
        on_handle_closed();
        return descriptor_closed();
    }
    uv_close(h, &SocketBase::on_close);
}

void SocketBase::on_close(uv_handle_t *h) {
    auto *self = static_cast<SocketBase *>(h->data);
    self->on_handle_closed();
    self->descriptor_closed();
    self->rt_->untrack(self);  // may destroy self: nothing after this
}

bool SocketBase::retry_after_posted_closes(std::unique_lock<std::mutex> &lk, int err, const Deadline &deadline,
                                           bool &waited, const char *op) {
    if (waited || !Runtime::freed_by_posted_closes(err)) return false;
    lk.unlock();  // the loop's closes do not need it, but a close() from another thread does
    try {
        waited = rt_->await_posted_closes(err, deadline, op);
    } catch (...) {
        lk.lock();
        throw;
    }
    lk.lock();
    return waited;
}

int SocketBase::bind_locked(std::unique_lock<std::mutex> &lk, const sockaddr *addr, socklen_t len,
                            FunctionRef<void()> check) {
    bool waited = false;
    for (;;) {
        if (::bind(fd_, addr, len) == 0) return 0;
        int err = errno;
        if (!retry_after_posted_closes(lk, err, {}, waited, "bind")) return err;
        check();
    }
}

void SocketBase::stop_lookups_locked() {
    for (const auto &lookup : lookups_) stop_lookup(*lookup);
}

socklen_t SocketBase::resolve_endpoint(const Endpoint &ep, int socktype, bool passive, const Deadline &deadline,
                                       const char *op, sockaddr_storage &out) {
    // A numeric host (every datagram a sendto() addresses, say) has nothing to wait for.
    socklen_t numeric = 0;
    if (parse_numeric(ep, out, numeric)) return numeric;
    auto lookup = new_lookup();
    {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked(op);
        lookups_.push_back(lookup);
    }
    auto forget = [&] { lookups_.erase(std::find(lookups_.begin(), lookups_.end(), lookup)); };
    try {
        socklen_t len = resolve(*rt_, ep, socktype, passive, deadline, op, out, lookup);
        std::lock_guard lk(mu_);
        forget();
        return len;
    } catch (const Error &e) {
        std::lock_guard lk(mu_);
        forget();
        if (e.kind() == ErrorKind::Closed && closed_) throw_closed_locked(op);  // with why (an unload)
        throw;
    }
}

std::unique_lock<std::mutex> SocketBase::bind_endpoint(const Endpoint &ep, int socktype, FunctionRef<void()> check) {
    {
        std::lock_guard lk(mu_);
        check();  // before a name lookup
    }
    sockaddr_storage addr{};
    socklen_t len = resolve_endpoint(ep, socktype, true, {}, "bind", addr);
    std::unique_lock lk(mu_);  // while held and open, the loop cannot close fd_
    check();
    if (int err = bind_locked(lk, reinterpret_cast<const sockaddr *>(&addr), len, check)) {
        throw errno_error("bind", format_endpoint(ep), err);
    }
    return lk;
}

bool SocketBase::closed() const {
    std::lock_guard lk(mu_);
    return closed_;
}

int SocketBase::fileno() const {
    std::lock_guard lk(mu_);
    return closed_ ? -1 : fd_;
}

void SocketBase::set_option(Option o, int64_t value) {
    std::lock_guard lk(mu_);  // while open, the loop cannot close fd_
    throw_if_unusable_locked("setopt");
    if (set_own_option_locked(o, value)) return;
    ksnet::set_option(fd_, o, value, name_for_errors_locked());
}

int64_t SocketBase::get_option(Option o) const {
    std::lock_guard lk(mu_);
    throw_if_unusable_locked("getopt");
    if (auto own = own_option_locked(o)) return *own;
    return ksnet::get_option(fd_, o, name_for_errors_locked());
}

void SocketBase::end_handover(bool committed) {
    std::lock_guard lk(mu_);
    if (committed) moved_out_ = true;
    else on_handover_cancelled_locked();
    cv_.notify_all();
}

void SocketBase::throw_closed_locked(const char *op) const {
    std::string msg = std::string(op) + ": ";
    msg += close_reason_ ? std::string("socket closed because ") + close_reason_ : "the socket is closed";
    throw Error(ErrorKind::Closed, msg);
}

std::string SocketBase::name_for_errors_locked() const {
    return closed_ ? "" : ksnet::name_for_errors(fd_, type_, protocol_);
}

}  // namespace ksnet
