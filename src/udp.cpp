#include "ksnet/udp.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "caller_descriptor.hpp"
#include "ksnet/error.hpp"
#include "resolver.hpp"

namespace ksnet {

namespace {

socklen_t sockaddr_len(const sockaddr *sa) {
    return sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

}  // namespace

// ---- creation and teardown ----

UdpSocket::UdpSocket(std::shared_ptr<Runtime> rt, Family family)
    : CallerIoSocket(std::move(rt), SOCK_DGRAM, 0), family_(family) {
    handle_.data = static_cast<SocketBase *>(this);
}

UdpSocket::~UdpSocket() = default;

std::shared_ptr<UdpSocket> UdpSocket::create(std::shared_ptr<Runtime> rt, Family family) {
    int fd = open_caller_descriptor(*rt, family, SOCK_DGRAM, "UDP");
    return adopt(std::move(rt), family, fd, State::Open);
}

std::shared_ptr<UdpSocket> UdpSocket::adopt(std::shared_ptr<Runtime> rt, Family family, int fd, State state) {
    std::shared_ptr<UdpSocket> s(new UdpSocket(rt, family));
    s->fd_ = fd;
    s->state_ = state;
    bool fd_owned_by_uv = false;
    try {
        // Synchronous, unlike TcpSocket's lazy hand-over: a UDP socket is rarely short-lived.
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
            set_blocking(fd, true);  // nobody has the socket yet; the loop never reads it
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

size_t UdpSocket::held() const {
    std::lock_guard lk(mu_);
    return held_.size();
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

size_t UdpSocket::max_payload_to(const sockaddr_storage &to) {
    if (to.ss_family == AF_INET6 &&
        !IN6_IS_ADDR_V4MAPPED(&reinterpret_cast<const sockaddr_in6 *>(&to)->sin6_addr)) {
        return kMaxPayload6;
    }
    return kMaxPayload4;
}

void UdpSocket::check_size(size_t n, size_t limit, const char *op) const {
    if (n > limit) {
        throw Error(ErrorKind::Value, std::string(op) + ": the datagram of " + std::to_string(n) +
                                          " bytes is larger than UDP over " +
                                          (limit == kMaxPayload6 ? "IPv6" : "IPv4") + " can carry (at most " +
                                          std::to_string(limit) + " bytes)");
    }
}

// ---- bind and connect ----

void UdpSocket::bind(const Endpoint &ep) {
    check_family(ep, "bind");
    auto check_state = [&] {
        throw_if_unusable_locked("bind");
        if (state_ != State::Open) {
            throw Error(ErrorKind::State, std::string("bind: socket is already ") + state_name(state_));
        }
    };
    auto lk = bind_endpoint(ep, SOCK_DGRAM, check_state);
    state_ = State::Bound;
}

void UdpSocket::connect(const Endpoint &ep, const Deadline &deadline) {
    check_family(ep, "connect");
    auto check_state = [&] {
        throw_if_unusable_locked("connect");
        if (state_ == State::Connected) throw Error(ErrorKind::State, "connect: socket is already connected");
    };
    {
        std::lock_guard lk(mu_);
        check_state();
    }
    sockaddr_storage addr{};
    socklen_t len = resolve_endpoint(ep, SOCK_DGRAM, false, deadline, "connect", addr);
    std::lock_guard lk(mu_);
    check_state();
    if (::connect(fd_, reinterpret_cast<const sockaddr *>(&addr), len) < 0) {
        throw errno_error("connect", format_endpoint(ep), errno);
    }
    state_ = State::Connected;
    peer_max_payload_ = max_payload_to(addr);
}

// ---- receiving ----

UdpSocket::Datagram UdpSocket::receive(size_t max, const Deadline &deadline, const char *op) {
    std::unique_lock lk(mu_);
    throw_if_unusable_locked(op);
    take_turn(lk, reader_busy_, deadline, op);
    struct Turn {
        UdpSocket &s;
        ~Turn() { s.end_turn_locked(s.reader_busy_); }
    } turn{*this};
    auto too_long = [&](size_t n) {
        return Error(ErrorKind::Value, std::string(op) + ": the datagram of " + std::to_string(n) +
                                           " bytes does not fit in max " + std::to_string(max) + " bytes");
    };
    if (!held_.empty()) {
        Datagram &d = held_.front();
        if (d.error < 0) {
            int rc = d.error;
            held_.erase(held_.begin());
            throw os_error(op, name_for_errors_locked(), rc);
        }
        if (max != kAnySize && d.data.size() > max) throw too_long(d.data.size());
        Datagram out = std::move(d);
        held_.erase(held_.begin());
        return out;
    }
    if (state_ == State::Open) {
        throw Error(ErrorKind::State,
                    std::string(op) + ": socket is not bound (call bind(), connect() or sendto() first)");
    }
    // Room for the largest datagram, so that one too long for `max` is kept whole.
    if (!into_) into_.reset(new char[kMaxPayload6]);
    Datagram d;
    int flags = deadline ? MSG_DONTWAIT : 0;
    int err = 0;
    // With a deadline the call is non-blocking: its first try needs no lock released.
    ssize_t n = blocking_locked(lk, POLLIN, op, deadline, [&] {
        iovec iov{into_.get(), kMaxPayload6};
        msghdr msg{};
        msg.msg_name = &d.from;
        msg.msg_namelen = sizeof d.from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        return ::recvmsg(fd_, &msg, flags);
    }, err, deadline.has_value());
    if (n == 0) throw_if_closing_locked(op);  // the shutdown() of a close, not an empty datagram
    if (n < 0) throw errno_error(op, name_for_errors_locked(), err);
    d.data.assign(into_.get(), static_cast<size_t>(n));
    if (max != kAnySize && d.data.size() > max) {
        held_.push_back(std::move(d));  // the next read gets it
        throw too_long(static_cast<size_t>(n));
    }
    return d;
}

std::string UdpSocket::recv(size_t max, const Deadline &deadline) {
    return receive(max, deadline, "read").data;
}

std::pair<std::string, sockaddr_storage> UdpSocket::recvfrom(size_t max, const Deadline &deadline) {
    Datagram d = receive(max, deadline, "recvfrom");
    return {std::move(d.data), d.from};
}

// ---- sending ----

void UdpSocket::transmit(std::string_view data, const Endpoint *ep, const sockaddr_storage *addr,
                         const Deadline &deadline, const char *op) {
    if (ep) check_family(*ep, op);
    if (addr && addr->ss_family != family_to_af(family_)) {
        throw Error(ErrorKind::Value, std::string(op) + ": the address's family does not match the socket's family " +
                                          family_name(family_));
    }
    check_size(data.size(), max_payload(), op);  // before a name lookup
    auto check_state = [&] {
        throw_if_unusable_locked(op);
        if (!ep && !addr && state_ != State::Connected) {
            throw Error(ErrorKind::State, "write: socket is not connected (use sendto(), or connect() first)");
        }
        if ((ep || addr) && state_ == State::Connected) {
            throw Error(ErrorKind::State, std::string(op) + ": socket is connected (use write())");
        }
    };
    {
        std::lock_guard lk(mu_);
        check_state();  // before a name lookup
    }
    sockaddr_storage to{};
    socklen_t to_len = 0;
    if (ep) {
        to_len = resolve_endpoint(*ep, SOCK_DGRAM, false, deadline, op, to);
    } else if (addr) {
        to = *addr;
        to_len = sockaddr_len(reinterpret_cast<const sockaddr *>(addr));
    }
    std::unique_lock lk(mu_);
    check_state();
    check_size(data.size(), to_len ? max_payload_to(to) : peer_max_payload_, op);
    // MSG_NOSIGNAL for symmetry with streams; a datagram socket raises no SIGPIPE.
    int flags = MSG_NOSIGNAL | (deadline ? MSG_DONTWAIT : 0);
    int err = 0;
    ssize_t n = blocking_locked(lk, POLLOUT, op, deadline, [&] {
        return ::sendto(fd_, data.data(), data.size(), flags, to_len ? reinterpret_cast<const sockaddr *>(&to) : nullptr,
                        to_len);
    }, err, deadline.has_value());
    if (n < 0) {
        std::string where = ep     ? format_endpoint(*ep)
                            : addr ? format_sockaddr(reinterpret_cast<const sockaddr *>(addr))
                                   : name_for_errors_locked();
        throw errno_error(op, where, err);
    }
    if (state_ == State::Open) state_ = State::Bound;  // the first sendto() bound it
}

void UdpSocket::send(std::string_view data, const Deadline &deadline) {
    transmit(data, nullptr, nullptr, deadline, "write");
}

void UdpSocket::sendto(std::string_view data, const Endpoint &to, const Deadline &deadline) {
    transmit(data, &to, nullptr, deadline, "sendto");
}

void UdpSocket::sendto(std::string_view data, const sockaddr_storage &to, const Deadline &deadline) {
    transmit(data, nullptr, &to, deadline, "sendto");
}

// ---- live reload (ksp_handover) ----

void UdpSocket::save(SocketState &out, Clock::duration limit) {
    std::unique_lock lk(mu_);
    wait_until_callers_left_locked(lk, limit);
    out.state = static_cast<uint8_t>(closed_ ? State::Closed : state_);
    out.fd = closed_ ? -1 : fd_;
    for (const Datagram &d : held_) out.datagrams.push_back(QueuedDatagram{d.data, d.from, d.error, false});
}

std::shared_ptr<UdpSocket> UdpSocket::restore(std::shared_ptr<Runtime> rt, Family family, const SocketState &s) {
    auto state = static_cast<State>(s.state);
    if (state > State::Closed) throw Error(ErrorKind::Value, "socket state: no UDP state " + std::to_string(s.state));
    if (s.fd < 0 || state == State::Closed) {
        std::shared_ptr<UdpSocket> closed(new UdpSocket(rt, family));
        closed->closed_ = true;
        return closed;
    }
    int fd = duplicate_handed_over(*rt, s.fd);
    auto sock = adopt(std::move(rt), family, fd, state);
    std::lock_guard lk(sock->mu_);
    if (state == State::Connected) {
        sockaddr_storage peer = peer_sockaddr_or_none(fd);
        sock->peer_max_payload_ = peer.ss_family != AF_UNSPEC ? max_payload_to(peer) : sock->max_payload();
    }
    // Before what is still in the kernel's queue. A version that queued in the plugin
    // may hand over a datagram the kernel cut (it never happens within UDP's limits):
    // its read raises EMSGSIZE rather than return it cut.
    for (const QueuedDatagram &d : s.datagrams) {
        sock->held_.push_back(Datagram{d.data, d.from, d.partial ? UV_EMSGSIZE : d.error});
    }
    return sock;
}

}  // namespace ksnet
