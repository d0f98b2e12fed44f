#include "ksnet/udp.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "ksnet/error.hpp"
#include "ksnet/io_chunk.hpp"
#include "resolver.hpp"

namespace ksnet {

// A send in flight. It owns a copy of the datagram, so a caller that gives up (timeout,
// close) never leaves libuv pointing at freed memory.
struct UdpSendOp {
    uv_udp_send_t req{};
    std::shared_ptr<UdpSocket> sock;
    std::string data;
    sockaddr_storage addr{};
    bool has_addr = false;
    bool done = false;  // under the socket's mutex
    int status = 0;
};

namespace {

// Loop-side result of bind/connect, shared with the waiting caller.
struct UdpOp {
    bool done = false;
    int status = 0;
};

socklen_t sockaddr_len(const sockaddr *sa) {
    return sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

}  // namespace

// ---- creation and teardown ----

UdpSocket::UdpSocket(std::shared_ptr<Runtime> rt, Family family)
    : SocketBase(std::move(rt), SOCK_DGRAM, 0), family_(family) {
    handle_.data = static_cast<SocketBase *>(this);
}

UdpSocket::~UdpSocket() = default;

std::shared_ptr<UdpSocket> UdpSocket::create(std::shared_ptr<Runtime> rt, Family family) {
    if (family != Family::Inet4 && family != Family::Inet6) {
        throw Error(ErrorKind::Unsupported,
                    std::string("UDP sockets need family INET4 or INET6, not ") + family_name(family));
    }
    // Our own descriptor, close-on-exec from the start, handed to libuv.
    int fd = ::socket(family_to_af(family), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw errno_error("socket", family_name(family), errno);
    return adopt(std::move(rt), family, fd, State::Open);
}

std::shared_ptr<UdpSocket> UdpSocket::adopt(std::shared_ptr<Runtime> rt, Family family, int fd, State state) {
    std::shared_ptr<UdpSocket> s(new UdpSocket(rt, family));
    s->fd_ = fd;
    s->state_ = state;
    bool fd_owned_by_uv = false;
    try {
        rt->run_sync([&] {
            check_uv(uv_udp_init(rt->loop(), &s->handle_), "uv_udp_init", "");
            rt->track(s);
            // uv_udp_open turns SO_REUSEADDR on, which on Linux lets a second UDP socket
            // bind the same port without an error: binding stays as it was (exclusive
            // unless asked, or as the version that handed the socket over left it).
            int reuse = 0;
            socklen_t len = sizeof reuse;
            ::getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, &len);
            int rc = uv_udp_open(&s->handle_, fd);
            if (rc < 0) {
                s->abort_on_loop("uv_udp_open failed");
                throw os_error("uv_udp_open", "", rc);
            }
            fd_owned_by_uv = true;
            ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse);
            if (state != State::Open) s->start_receiving_on_loop();
        });
    } catch (...) {
        if (!fd_owned_by_uv) ::close(fd);
        throw;
    }
    return s;
}

// ---- state and names ----

UdpSocket::State UdpSocket::state() const { return state_or_closed(state_); }

const char *UdpSocket::state_text() const { return state_name(state()); }

const char *UdpSocket::state_name(State s) {
    switch (s) {
    case State::Open: return "open";
    case State::Bound: return "bound";
    case State::Connected: return "connected";
    case State::Closed: return "closed";
    }
    return "?";
}

uint64_t UdpSocket::dropped() const {
    std::lock_guard lk(mu_);
    return dropped_;
}

size_t UdpSocket::queued() const {
    std::lock_guard lk(mu_);
    return queue_.size();
}

sockaddr_storage UdpSocket::local_address() const {
    std::lock_guard lk(mu_);  // while held and not closed, the loop cannot have closed fd_
    if (closed_) throw Error(ErrorKind::Closed, "getsockname: the socket is closed");
    if (state_ == State::Open) throw Error(ErrorKind::State, "getsockname: socket is not bound");
    return local_sockaddr(fd_);
}

sockaddr_storage UdpSocket::peer_address() const {
    std::lock_guard lk(mu_);
    if (closed_) throw Error(ErrorKind::Closed, "getpeername: the socket is closed");
    return peer_sockaddr(fd_);
}

void UdpSocket::check_family(const Endpoint &ep, const char *op) const {
    if (ep.family != family_) {
        throw Error(ErrorKind::Value, std::string(op) + ": address family " + family_name(ep.family) +
                                          " does not match the socket's family " + family_name(family_));
    }
}

void UdpSocket::check_size(size_t n, const char *op) const {
    if (n > max_payload()) {
        throw Error(ErrorKind::Value, std::string(op) + ": the datagram of " + std::to_string(n) +
                                          " bytes is larger than UDP over " +
                                          (family_ == Family::Inet6 ? "IPv6" : "IPv4") + " can carry (at most " +
                                          std::to_string(max_payload()) + " bytes)");
    }
}

void UdpSocket::wait_or_throw(FunctionRef<bool()> pred, const Deadline &deadline, const char *op) {
    rt_->wait_or_throw(mu_, cv_, pred, deadline, op);
}

// ---- bind and connect ----

void UdpSocket::bind(const Endpoint &ep) {
    check_family(ep, "bind");
    {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked("bind");
        if (state_ != State::Open) {
            throw Error(ErrorKind::State, std::string("bind: socket is already ") + state_name(state_));
        }
        ++loop_ops_;
    }
    std::string where = format_endpoint(ep);
    auto op = std::make_shared<UdpOp>();
    auto self = shared_as<UdpSocket>();
    bool posted = rt_->post([self, ep, op] {
        resolve_on_loop(*self->rt_, ep, SOCK_DGRAM, true,
                        [self, op](int rc, const sockaddr_storage &addr, socklen_t) {
                            if (rc == 0 && self->handle_closing_) rc = UV_ECANCELED;
                            if (rc == 0) rc = uv_udp_bind(&self->handle_, reinterpret_cast<const sockaddr *>(&addr), 0);
                            if (rc == 0) self->start_receiving_on_loop();
                            std::lock_guard lk(self->mu_);
                            if (rc == 0 && self->state_ == State::Open) self->state_ = State::Bound;
                            op->status = rc;
                            op->done = true;
                            --self->loop_ops_;
                            self->cv_.notify_all();
                        });
    });
    if (!posted) {
        std::lock_guard lk(mu_);
        --loop_ops_;
        throw Error(ErrorKind::Closed, "bind: the net module was unloaded");
    }
    try {
        wait_or_throw([&] { return op->done || closed_; }, {}, "bind");
    } catch (const Error &) {
        close();  // a name still resolving would otherwise bind behind the caller's back
        throw;
    }
    std::lock_guard lk(mu_);
    throw_if_closed_locked("bind");
    check_uv(op->status, "bind", where);
}

void UdpSocket::connect(const Endpoint &ep, const Deadline &deadline) {
    check_family(ep, "connect");
    {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked("connect");
        if (state_ == State::Connected) throw Error(ErrorKind::State, "connect: socket is already connected");
        ++loop_ops_;
    }
    std::string where = format_endpoint(ep);
    auto op = std::make_shared<UdpOp>();
    auto self = shared_as<UdpSocket>();
    bool posted = rt_->post([self, ep, op] {
        resolve_on_loop(*self->rt_, ep, SOCK_DGRAM, false,
                        [self, op](int rc, const sockaddr_storage &addr, socklen_t) {
                            if (rc == 0 && self->handle_closing_) rc = UV_ECANCELED;
                            if (rc == 0) rc = uv_udp_connect(&self->handle_, reinterpret_cast<const sockaddr *>(&addr));
                            if (rc == 0) self->start_receiving_on_loop();
                            std::lock_guard lk(self->mu_);
                            if (rc == 0 && !self->closed_) self->state_ = State::Connected;
                            op->status = rc;
                            op->done = true;
                            --self->loop_ops_;
                            self->cv_.notify_all();
                        });
    });
    if (!posted) {
        std::lock_guard lk(mu_);
        --loop_ops_;
        throw Error(ErrorKind::Closed, "connect: the net module was unloaded");
    }
    try {
        wait_or_throw([&] { return op->done || closed_; }, deadline, "connect");
    } catch (const Error &) {
        close();  // the name may still resolve and connect behind the caller's back
        throw;
    }
    std::lock_guard lk(mu_);
    throw_if_closed_locked("connect");
    check_uv(op->status, "connect", where);
}

// ---- receiving ----

void UdpSocket::start_receiving_on_loop() {
    if (receiving_ || handle_closing_) return;
    int rc = uv_udp_recv_start(&handle_, &UdpSocket::on_alloc, &UdpSocket::on_recv);
    if (rc == 0) {
        receiving_ = true;
        return;
    }
    std::lock_guard lk(mu_);
    Entry e;
    e.error = rc;
    queue_.push_back(std::move(e));
    cv_.notify_all();
}

void UdpSocket::on_alloc(uv_handle_t *h, size_t, uv_buf_t *buf) {
    auto *self = owner<UdpSocket>(h);
    uv_buf_t slab = self->rt_->read_slab();
    if (slab.len >= kIoChunk) {
        *buf = slab;  // copied out in on_recv before the loop reuses it
        return;
    }
    if (!self->own_buf_) self->own_buf_.reset(new char[kIoChunk]);
    *buf = uv_buf_init(self->own_buf_.get(), kIoChunk);
}

void UdpSocket::on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const sockaddr *addr,
                        unsigned flags) {
    auto *self = owner<UdpSocket>(h);
    if (nread == 0 && addr == nullptr) return;  // nothing (more) to read just now
    Entry e;
    if (nread < 0) {
        e.error = static_cast<int>(nread);
    } else {
        e.data.assign(buf->base, static_cast<size_t>(nread));
        e.partial = (flags & UV_UDP_PARTIAL) != 0;
        if (addr) std::memcpy(&e.from, addr, sockaddr_len(addr));
    }
    std::lock_guard lk(self->mu_);
    if (self->queue_.size() >= kQueueLimit || self->queued_bytes_ + e.data.size() > kQueueBytes) {
        if (nread >= 0) ++self->dropped_;  // drop the newest; what is queued stays in order
        return;
    }
    self->queued_bytes_ += e.data.size();
    self->queue_.push_back(std::move(e));
    self->cv_.notify_all();
}

UdpSocket::Entry UdpSocket::take(size_t max, const Deadline &deadline, const char *op) {
    for (;;) {
        {
            std::unique_lock lk(mu_);
            throw_if_unusable_locked(op);
            if (!queue_.empty()) {
                Entry &e = queue_.front();
                if (e.error < 0) {
                    int rc = e.error;
                    queue_.pop_front();
                    throw os_error(op, name_for_errors_locked(), rc);
                }
                if (e.partial) {
                    std::string msg = std::string(op) + ": a datagram from " +
                                      format_sockaddr(reinterpret_cast<sockaddr *>(&e.from)) +
                                      " was larger than the " + std::to_string(kIoChunk) +
                                      "-byte receive buffer; the kernel cut it, so it was discarded";
                    queued_bytes_ -= e.data.size();
                    queue_.pop_front();
                    throw Error(ErrorKind::Value, msg);
                }
                if (max != kAnySize && e.data.size() > max) {
                    // Kept at the head of the queue: a retry with a larger max gets it.
                    throw Error(ErrorKind::Value, std::string(op) + ": the datagram of " +
                                                      std::to_string(e.data.size()) + " bytes does not fit in max " +
                                                      std::to_string(max) + " bytes");
                }
                Entry out = std::move(e);
                queue_.pop_front();
                queued_bytes_ -= out.data.size();
                return out;
            }
            if (state_ == State::Open) {
                throw Error(ErrorKind::State,
                            std::string(op) + ": socket is not bound (call bind(), connect() or sendto() first)");
            }
        }
        bool moving = false;  // a live reload: the next version serves the queue
        // A waiter that missed the reload's window still sees that its socket moved.
        wait_or_throw([&] {
            return !queue_.empty() || closed_ || (moving = rt_->handing_over() || moved_out_);
        }, deadline, op);
        if (moving) throw moved_error(op);
    }
}

std::string UdpSocket::recv(size_t max, const Deadline &deadline) {
    return take(max, deadline, "recv").data;
}

std::pair<std::string, sockaddr_storage> UdpSocket::recvfrom(size_t max, const Deadline &deadline) {
    Entry e = take(max, deadline, "recvfrom");
    return {std::move(e.data), e.from};
}

// ---- sending ----

void UdpSocket::complete_send(UdpSendOp &op, int status) {
    UdpSocket &self = *op.sock;
    std::lock_guard lk(self.mu_);
    op.status = status;
    op.done = true;
    --self.loop_ops_;
    if (status == 0 && self.state_ == State::Open) self.state_ = State::Bound;  // implicit bind
    self.cv_.notify_all();
}

void UdpSocket::send_on_loop(const std::shared_ptr<UdpSendOp> &op, const sockaddr *addr) {
    if (handle_closing_) return complete_send(*op, UV_ECANCELED);
    uv_buf_t buf = uv_buf_init(op->data.data(), static_cast<unsigned>(op->data.size()));
    // Straight to the kernel when nothing is queued; libuv queues it otherwise.
    int rc = uv_udp_try_send(&handle_, &buf, 1, addr);
    if (rc >= 0) {
        start_receiving_on_loop();  // the first send bound the socket
        return complete_send(*op, 0);
    }
    if (rc != UV_EAGAIN) return complete_send(*op, rc);
    op->req.data = new std::shared_ptr<UdpSendOp>(op);
    rc = uv_udp_send(&op->req, &handle_, &buf, 1, addr, [](uv_udp_send_t *req, int status) {
        auto *slot = static_cast<std::shared_ptr<UdpSendOp> *>(req->data);
        std::shared_ptr<UdpSendOp> keep = std::move(*slot);
        delete slot;
        if (status == 0) keep->sock->start_receiving_on_loop();
        complete_send(*keep, status);
    });
    if (rc < 0) {
        delete static_cast<std::shared_ptr<UdpSendOp> *>(op->req.data);
        complete_send(*op, rc);
    }
}

void UdpSocket::send_common(std::string_view data, const Endpoint *ep, const sockaddr_storage *addr,
                            const Deadline &deadline, const char *opname) {
    if (ep) check_family(*ep, opname);
    if (addr && addr->ss_family != family_to_af(family_)) {
        throw Error(ErrorKind::Value, std::string(opname) + ": the address's family does not match the socket's family " +
                                          family_name(family_));
    }
    check_size(data.size(), opname);
    auto op = std::make_shared<UdpSendOp>();
    std::string where;
    {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked(opname);
        if (!ep && !addr && state_ != State::Connected) {
            throw Error(ErrorKind::State, "send: socket is not connected (use sendto(), or connect() first)");
        }
        if ((ep || addr) && state_ == State::Connected) {
            throw Error(ErrorKind::State, std::string(opname) + ": socket is connected (use send())");
        }
        op->sock = shared_as<UdpSocket>();
        ++loop_ops_;  // done in complete_send, which every path below reaches
        if (ep) {
            where = format_endpoint(*ep);
        } else if (addr) {
            where = format_sockaddr(reinterpret_cast<const sockaddr *>(addr));
        } else {
            where = name_for_errors_locked();
        }
    }
    op->data.assign(data.data(), data.size());
    if (addr) {
        op->addr = *addr;
        op->has_addr = true;
    }
    std::optional<Endpoint> to;
    if (ep) to = *ep;
    bool posted = rt_->post([op, to] {
        UdpSocket *self = op->sock.get();
        if (!to) {
            return self->send_on_loop(op, op->has_addr ? reinterpret_cast<const sockaddr *>(&op->addr) : nullptr);
        }
        resolve_on_loop(*self->rt_, *to, SOCK_DGRAM, false, [op](int rc, const sockaddr_storage &a, socklen_t) {
            if (rc < 0) return complete_send(*op, rc);
            op->addr = a;
            op->has_addr = true;
            op->sock->send_on_loop(op, reinterpret_cast<const sockaddr *>(&op->addr));
        });
    });
    if (!posted) {
        std::lock_guard lk(mu_);
        --loop_ops_;
        throw Error(ErrorKind::Closed, std::string(opname) + ": the net module was unloaded");
    }
    try {
        wait_or_throw([&] { return op->done || closed_; }, deadline, opname);
    } catch (const Error &e) {
        if (e.kind() == ErrorKind::Timeout) {
            throw Error(ErrorKind::Timeout, std::string(opname) + ": timed out (the datagram may still be sent)",
                        UV_ETIMEDOUT);
        }
        throw;
    }
    std::lock_guard lk(mu_);
    if (!op->done || op->status == UV_ECANCELED) throw_if_closed_locked(opname);
    check_uv(op->status, opname, where);
}

void UdpSocket::send(std::string_view data, const Deadline &deadline) {
    send_common(data, nullptr, nullptr, deadline, "send");
}

void UdpSocket::sendto(std::string_view data, const Endpoint &to, const Deadline &deadline) {
    send_common(data, &to, nullptr, deadline, "sendto");
}

void UdpSocket::sendto(std::string_view data, const sockaddr_storage &to, const Deadline &deadline) {
    send_common(data, nullptr, &to, deadline, "sendto");
}

// ---- live reload (ksp_handover) ----

void UdpSocket::save(SocketState &out, Clock::duration limit) {
    rt_->run_sync([this] {  // nothing more is queued behind the snapshot
        if (receiving_) uv_udp_recv_stop(&handle_);
        receiving_ = false;
    });
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, limit, [this] { return loop_ops_ == 0; })) {
        throw Error(ErrorKind::State, "a send on " + name_for_errors_locked() + " did not complete in time");
    }
    out.state = static_cast<uint8_t>(closed_ ? State::Closed : state_);
    out.fd = closed_ ? -1 : fd_;
    out.dropped = dropped_;
    for (const Entry &e : queue_) {
        out.datagrams.push_back(QueuedDatagram{e.data, e.from, e.error, e.partial});
    }
}

std::shared_ptr<UdpSocket> UdpSocket::restore(std::shared_ptr<Runtime> rt, Family family, const SocketState &s) {
    auto state = static_cast<State>(s.state);
    if (state > State::Closed) throw Error(ErrorKind::Value, "socket state: no UDP state " + std::to_string(s.state));
    if (s.fd < 0 || state == State::Closed) {
        std::shared_ptr<UdpSocket> closed(new UdpSocket(rt, family));
        closed->closed_ = true;
        return closed;
    }
    int fd = ::fcntl(s.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw errno_error("dup", "the socket handed over", errno);
    auto sock = adopt(std::move(rt), family, fd, state);
    std::lock_guard lk(sock->mu_);
    // Before what the new handle receives, which the loop appends behind these.
    for (auto d = s.datagrams.rbegin(); d != s.datagrams.rend(); ++d) {
        Entry e;
        e.data = d->data;
        e.from = d->from;
        e.error = d->error;
        e.partial = d->partial;
        sock->queued_bytes_ += e.data.size();
        sock->queue_.push_front(std::move(e));
    }
    sock->dropped_ = s.dropped;
    return sock;
}

void UdpSocket::on_handover_cancelled_locked() {
    if (closed_ || state_ == State::Open) return;
    auto self = shared_as<UdpSocket>();
    rt_->post([self] { self->start_receiving_on_loop(); });  // serving on, as before
}

}  // namespace ksnet
