#include "ksnet/tcp.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <tuple>

#include "caller_descriptor.hpp"
#include "ksnet/error.hpp"
#include "resolver.hpp"

namespace ksnet {

namespace {

uv_handle_t *as_handle(uv_tcp_t *h) { return reinterpret_cast<uv_handle_t *>(h); }

}  // namespace

// ---- creation and teardown ----

TcpSocket::TcpSocket(std::shared_ptr<Runtime> rt, Family family)
    : CallerIoSocket(std::move(rt), SOCK_STREAM, 0), family_(family) {
    handle_.data = static_cast<SocketBase *>(this);
}

TcpSocket::~TcpSocket() {
    for (const AcceptedConnection &a : accepted_) ::close(a.fd);  // never returned to a script
    // Let go of without close() before the loop took it (the loop holds it only weakly
    // until then): nobody else will close the descriptor.
    if (handoff_ == Handoff::Pending && fd_ >= 0) ::close(fd_);
}

std::shared_ptr<TcpSocket> TcpSocket::create(std::shared_ptr<Runtime> rt, Family family) {
    int fd = open_caller_descriptor(*rt, family, SOCK_STREAM, "TCP");
    return adopt(std::move(rt), family, fd, State::Open);
}

std::shared_ptr<TcpSocket> TcpSocket::adopt(std::shared_ptr<Runtime> rt, Family family, int fd, State state) {
    std::shared_ptr<TcpSocket> s(new TcpSocket(rt, family));
    s->fd_ = fd;
    s->state_ = state;
    // A weak reference: a socket closed and let go of before the task runs (a short-lived
    // connection) is freed by the thread that let go of it, not by the loop thread at its
    // next lazy drain. Freed on the loop thread, every such socket's blocks went back
    // through the other thread's malloc arena, and its allocations missed their thread cache.
    if (!rt->post_lazy([weak = std::weak_ptr<TcpSocket>(s)] {
            if (auto alive = weak.lock()) alive->open_handle_on_loop();
        })) {
        s->handoff_ = Handoff::Cancelled;
        ::close(fd);
        throw Error(ErrorKind::Closed, "socket: the net module was unloaded");
    }
    return s;
}

void TcpSocket::open_handle_on_loop() {
    {
        std::lock_guard lk(mu_);
        if (handoff_ == Handoff::Cancelled) return;  // closed already, by the caller
        handoff_ = Handoff::Taken;
    }
    int rc = uv_tcp_init(rt_->loop(), &handle_);
    if (rc < 0) {  // no handle to close: fail the socket and close the descriptor here
        abort_on_loop("the loop could not take the socket (uv_tcp_init failed)");
        return;
    }
    handle_open_ = true;
    rt_->track(shared_from_this());
    {
        // uv_tcp_open makes the descriptor non-blocking; the loop never reads or writes
        // it, so it goes back to blocking. Under mu_, like a caller's switch around a
        // connect with a deadline, so neither undoes the other's mode mid-call.
        std::lock_guard lk(mu_);
        rc = uv_tcp_open(&handle_, fd_);
        if (rc == 0) set_blocking(fd_, true);
    }
    if (rc < 0) {
        abort_on_loop("the loop could not take the socket (uv_tcp_open failed)");
        return;
    }
    fd_owned_by_uv_ = true;
}

bool TcpSocket::release_descriptor_locked() {
    if (handoff_ != Handoff::Pending) return true;
    handoff_ = Handoff::Cancelled;
    ::close(fd_);
    return false;
}

uv_handle_t *TcpSocket::handle() { return handle_open_ ? as_handle(&handle_) : nullptr; }

void TcpSocket::on_handle_closed() {
    if (!fd_owned_by_uv_) ::close(fd_);
}

// ---- live reload (ksp_handover) ----

void TcpSocket::save(SocketState &out, Clock::duration limit) {
    std::unique_lock lk(mu_);
    wait_until_callers_left_locked(lk, limit);
    out.state = static_cast<uint8_t>(closed_ ? State::Closed : state_);
    out.fd = closed_ ? -1 : fd_;
    if (!closed_ && state_ == State::Connecting && !connect_issued_) out.state = static_cast<uint8_t>(State::Open);
    out.connect_resume = !closed_ && state_ == State::Connecting && connect_issued_;
    out.line_max = line_max_;
    out.eof = eof_;
    out.read_error = read_error_;
    out.write_shut = write_shut_;
    out.received.assign(rbuf_.data(), rbuf_.size());
    out.write_resume = writing_.for_save();
    out.accepted.assign(accepted_.begin(), accepted_.end());
    std::memcpy(&out.peer, &peer_, sizeof peer_);
}

std::shared_ptr<TcpSocket> TcpSocket::restore(std::shared_ptr<Runtime> rt, Family family, const SocketState &s) {
    auto state = static_cast<State>(s.state);
    if (state > State::Closed) throw Error(ErrorKind::Value, "socket state: no TCP state " + std::to_string(s.state));
    std::shared_ptr<TcpSocket> sock;
    if (s.fd < 0 || state == State::Closed) {
        sock.reset(new TcpSocket(rt, family));
        sock->closed_ = true;
        sock->handoff_ = Handoff::Cancelled;
        return sock;
    }
    int fd = duplicate_handed_over(*rt, s.fd);
    std::vector<AcceptedConnection> accepted;
    for (const AcceptedConnection &a : s.accepted) {
        int copy = ::fcntl(a.fd, F_DUPFD_CLOEXEC, Runtime::kFirstDescriptor);
        if (copy < 0) {
            int err = errno;
            for (const AcceptedConnection &c : accepted) ::close(c.fd);
            ::close(fd);
            throw errno_error("dup", "a connection accepted before the reload", err);
        }
        accepted.push_back(AcceptedConnection{copy, a.peer});
    }
    try {
        sock = adopt(std::move(rt), family, fd, state);  // closes fd if it throws
    } catch (...) {
        for (const AcceptedConnection &c : accepted) ::close(c.fd);
        throw;
    }
    std::lock_guard lk(sock->mu_);
    sock->accepted_ = std::move(accepted);
    sock->line_max_ = static_cast<size_t>(s.line_max);
    sock->eof_ = s.eof;
    sock->read_error_ = s.read_error;
    sock->write_shut_ = s.write_shut;
    // An older version's state has no peer: ask the kernel, which still knows it unless
    // the connection was reset.
    if (state == State::Connected) {
        sock->remember_peer_locked(s.peer.ss_family != AF_UNSPEC ? s.peer : peer_sockaddr_or_none(sock->fd_));
    }
    if (!s.received.empty()) {
        std::memcpy(sock->rbuf_.reserve(s.received.size()), s.received.data(), s.received.size());
        sock->rbuf_.commit(s.received.size());
    }
    sock->writing_.restore(s.write_resume);
    sock->connect_issued_ = s.connect_resume;
    sock->connect_resume_ = s.connect_resume;
    return sock;
}

// ---- state and names ----

TcpSocket::State TcpSocket::state() const { return state_or_closed(state_); }

const char *TcpSocket::state_text() const {
    State s = state();
    if (s != State::Open) return state_name(s);
    // Bound is no state of its own (only the kernel knows it, and a live reload moves it
    // with the descriptor), but a script's repr should say it, as UDP's does.
    try {
        local_address();
        return "bound";
    } catch (const Error &) {
        return state_name(s);
    }
}

const char *TcpSocket::state_name(State s) {
    switch (s) {
    case State::Open: return "open";
    case State::Connecting: return "connecting";
    case State::Connected: return "connected";
    case State::Listening: return "listening";
    case State::Closed: return "closed";
    }
    return "?";
}

sockaddr_storage TcpSocket::local_address() const {
    std::lock_guard lk(mu_);  // while held, the loop cannot have closed fd_
    if (closed_) throw Error(ErrorKind::Closed, "getsockname: socket is closed");
    sockaddr_storage a = local_sockaddr(fd_);
    // The kernel answers 0.0.0.0:0 for a socket with no address yet (bind, connect and
    // listen all give it a port): no local name, as for UDP.
    if (sockaddr_port(reinterpret_cast<const sockaddr *>(&a)) == 0) {
        throw Error(ErrorKind::State, "getsockname: socket is not bound");
    }
    return a;
}

sockaddr_storage TcpSocket::peer_address() const {
    std::lock_guard lk(mu_);
    if (closed_) throw Error(ErrorKind::Closed, "getpeername: socket is closed");
    return peer_sockaddr(fd_);
}

// ---- bind, connect, listen, accept ----

void TcpSocket::bind(const Endpoint &ep) {
    auto check_state = [&] {
        throw_if_unusable_locked("bind");
        if (state_ != State::Open) {
            throw Error(ErrorKind::State, std::string("bind: socket is already ") + state_name(state_));
        }
    };
    bind_endpoint(ep, SOCK_STREAM, check_state);
}

void TcpSocket::connect(const Endpoint &ep, const Deadline &deadline) {
    bool resuming = false;  // a connect that moved here part-way: only wait for it
    {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked("connect");
        if (state_ == State::Connecting && connect_resume_) {
            connect_resume_ = false;
            resuming = true;
        } else if (state_ != State::Open) {
            throw Error(ErrorKind::State, std::string("connect: socket is already ") + state_name(state_));
        }
        state_ = State::Connecting;
    }
    std::unique_lock lk(mu_, std::defer_lock);
    try {
        int err = 0;
        if (resuming) {
            lk.lock();
            err = finish_connect_locked(lk, deadline);
            // The last version's connect may never have reached the kernel, or its result
            // went to that version's caller (SO_ERROR then says nothing): not connected,
            // so connect now.
            sockaddr_storage peer{};
            socklen_t plen = sizeof peer;
            if (err == 0 && ::getpeername(fd_, reinterpret_cast<sockaddr *>(&peer), &plen) < 0) {
                resuming = false;
                connect_issued_ = false;
                lk.unlock();
            }
        }
        if (!resuming) {
            sockaddr_storage addr{};
            socklen_t len = resolve_endpoint(ep, SOCK_STREAM, false, deadline, "connect", addr);
            lk.lock();
            throw_if_unusable_locked("connect");
            connect_issued_ = true;
            auto connect_call = [&] {
                return static_cast<ssize_t>(::connect(fd_, reinterpret_cast<const sockaddr *>(&addr), len));
            };
            if (deadline) {  // a blocking connect would wait a whole slice past a near deadline
                set_blocking(fd_, false);
                err = connect_call() < 0 ? errno : 0;
                set_blocking(fd_, true);
            } else {
                blocking_locked(lk, POLLOUT, "connect", deadline, connect_call, err);
            }
            // Moved while the call was in the kernel: what came of it is the next version's
            // to find (it connects afresh if the socket is not connected).
            if (moved_out_) throw moved_error("connect");
            if (err == EINPROGRESS || err == EALREADY || err == EINTR) err = finish_connect_locked(lk, deadline);
        }
        if (err != 0) throw errno_error("connect", format_endpoint(ep), err);
        state_ = State::Connected;
        remember_peer_locked(peer_sockaddr_or_none(fd_));
        connect_issued_ = false;
    } catch (const Error &e) {
        if (lk.owns_lock()) lk.unlock();
        std::unique_lock relock(mu_);
        bool cut = e.kind() == ErrorKind::Timeout || e.kind() == ErrorKind::Interrupted;
        if (e.kind() == ErrorKind::Moved || (cut && moving_locked())) {
            // A retry (on the next version, or here if the reload rolled back) takes it up
            // where it stopped, and ends it there if its time is up.
            if (connect_issued_) connect_resume_ = true;
            else if (state_ == State::Connecting) state_ = State::Open;
            if (e.kind() != ErrorKind::Moved) throw moved_error("connect");
        } else if (connect_issued_ && cut) {
            // A connect still in flight cannot be taken back: the socket is done for.
            relock.unlock();
            close();
        } else {
            // Nothing reached the kernel (the name's lookup ended, say): try again.
            connect_issued_ = false;
            if (state_ == State::Connecting) state_ = State::Open;
        }
        throw;
    }
}

int TcpSocket::finish_connect_locked(std::unique_lock<std::mutex> &lk, const Deadline &deadline) {
    // A connect under way completes in the background.
    if (moved_out_) throw moved_error("connect");
    wait_ready(lk, POLLOUT, deadline, "connect");
    if (moved_out_) throw moved_error("connect");  // the next version reads SO_ERROR
    int err = 0;
    socklen_t elen = sizeof err;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) err = errno;
    return err;
}

void TcpSocket::listen(int backlog) {
    std::lock_guard lk(mu_);
    throw_if_unusable_locked("listen");
    if (state_ != State::Open && state_ != State::Listening) {  // again: the new backlog counts
        throw Error(ErrorKind::State, std::string("listen: socket is already ") + state_name(state_));
    }
    if (::listen(fd_, backlog) < 0) {
        int err = errno;  // before the name, whose getpeername sets it
        throw errno_error("listen", name_for_errors_locked(), err);
    }
    state_ = State::Listening;
}

std::pair<std::shared_ptr<TcpSocket>, std::string> TcpSocket::accept(const Deadline &deadline) {
    std::unique_lock lk(mu_);
    // Taken from the kernel into accepted_ before the caller lets go of the descriptor,
    // so that a live reload hands over a connection whose caller had not returned yet.
    bool waited_for_closes = false;  // after EMFILE, once (Runtime::await_posted_closes)
    while (accepted_.empty()) {
        throw_if_unusable_locked("accept");
        if (state_ != State::Listening) {
            throw Error(ErrorKind::State, "accept: socket is not listening (call listen() first)");
        }
        // A blocking accept4 waits whole slices: with a deadline, wait in poll() first.
        if (deadline) wait_ready(lk, POLLIN, deadline, "accept");
        int err = 0;
        ssize_t fd = blocking_locked(lk, POLLIN, "accept", deadline, [&] {
            AcceptedConnection a;
            socklen_t len = sizeof a.peer;
            a.fd = Runtime::above_stdio(::accept4(fd_, reinterpret_cast<sockaddr *>(&a.peer), &len, SOCK_CLOEXEC));
            if (a.fd >= 0) {
                std::lock_guard g(mu_);
                accepted_.push_back(a);
            }
            return static_cast<ssize_t>(a.fd);
        }, err);
        if (fd >= 0) {
            throw_if_unusable_locked("accept");  // moved: the next version returns it
            throw_if_closing_locked("accept");   // closed: the destructor closes it
            continue;
        }
        throw_if_unusable_locked("accept");
        if (retry_after_posted_closes(lk, err, deadline, waited_for_closes, "accept")) continue;
        if (err != ECONNABORTED && err != EPROTO) {
            // EMFILE and friends: the caller hears of it; the connection waits in the backlog.
            throw errno_error("accept", name_for_errors_locked(), err);
        }
    }
    throw_if_unusable_locked("accept");
    AcceptedConnection a = accepted_.front();
    accepted_.erase(accepted_.begin());
    const size_t line_max = line_max_;  // the listener's, as its timeout is (Socket::accept)
    lk.unlock();
    auto client = adopt(rt_, family_, a.fd, State::Connected);
    {
        std::lock_guard g(client->mu_);
        client->remember_peer_locked(a.peer);
        client->line_max_ = line_max;
    }
    return {std::move(client), format_sockaddr(reinterpret_cast<sockaddr *>(&a.peer))};
}

void TcpSocket::remember_peer_locked(const sockaddr_storage &peer) {
    peer_ = {};
    if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) {
        std::memcpy(&peer_, &peer, peer.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
    }
}

std::string TcpSocket::name_for_errors_locked() const {
    if (closed_ || peer_.sin6_family == 0) return SocketBase::name_for_errors_locked();
    return format_sockaddr(reinterpret_cast<const sockaddr *>(&peer_));
}

// ---- reading and writing, on the caller's thread ----

void TcpSocket::check_readable_locked(const char *op) const {
    throw_if_unusable_locked(op);
    if (state_ != State::Connected) throw Error(ErrorKind::State, std::string(op) + ": socket is not connected");
}

ssize_t TcpSocket::receive_call(std::unique_lock<std::mutex> &lk, char *into, size_t max,
                                const Deadline &deadline, Keep keep) {
    max = std::min(max, kIoChunk);
    int err = 0;
    // Without a deadline one blocking recv(); with one, non-blocking recv()s and poll().
    int flags = deadline ? MSG_DONTWAIT : 0;
    bool keep_lock = deadline && max < Runtime::kUnlockedCopy;
    ssize_t n = blocking_locked(lk, POLLIN, "read", deadline, [&] {
        ssize_t got = ::recv(fd_, into, max, flags);
        if (got > 0 && keep != Keep::No) {  // only the reader touches rbuf_
            if (keep == Keep::Copy) std::memcpy(rbuf_.reserve(static_cast<size_t>(got)), into, static_cast<size_t>(got));
            rbuf_.commit(static_cast<size_t>(got));
        }
        return got;
    }, err, keep_lock);
    throw_if_closed_locked("read");
    if (n == 0) {
        throw_if_closing_locked("read");  // the shutdown() of an unload, not the peer's end
        eof_ = true;
    }
    if (n >= 0) return n;
    read_error_ = uv_translate_sys_error(err);
    return 0;
}

ssize_t TcpSocket::receive(std::unique_lock<std::mutex> &lk, char *into, size_t max, const Deadline &deadline) {
    return receive_call(lk, into, max, deadline, Keep::No);
}

ssize_t TcpSocket::receive_buffered(std::unique_lock<std::mutex> &lk, const Deadline &deadline) {
    ssize_t n = receive_call(lk, rbuf_.reserve(kIoChunk), kIoChunk, deadline, Keep::InPlace);
    if (moved_out_) throw moved_error("read");  // the next version has these bytes
    return n;
}

ssize_t TcpSocket::receive_staged(std::unique_lock<std::mutex> &lk, const Deadline &deadline) {
    char first[kStagedReceive];
    ssize_t n = receive_call(lk, first, sizeof first, deadline, Keep::Copy);
    if (moved_out_) throw moved_error("read");  // the next version has these bytes
    return n;
}

size_t TcpSocket::read_nothing() const {
    // Waits for nothing, but a closed or unconnected socket says so, as any read does.
    std::lock_guard lk(mu_);
    check_readable_locked("read");
    return 0;
}

struct TcpSocket::ReaderTurn {
    TcpSocket &s;
    ReaderTurn(TcpSocket &socket, std::unique_lock<std::mutex> &lk, const Deadline &deadline) : s(socket) {
        // The usual case without a call: connected, and nobody else reading.
        if (s.moved_out_ || s.closed_ || s.state_ != State::Connected) s.check_readable_locked("read");
        s.take_turn(lk, s.reader_busy_, deadline, "read");
    }
    ~ReaderTurn() { s.end_turn_locked(s.reader_busy_); }
};

size_t TcpSocket::read_some_locked(std::unique_lock<std::mutex> &lk, char *into, size_t cap,
                                   const Deadline &deadline) {
    if (size_t n = std::min(cap, rbuf_.size())) {  // what read_line() buffered comes first
        std::memcpy(into, rbuf_.data(), n);
        rbuf_.consume(n);
        scanned_ = 0;
        return n;
    }
    for (;;) {
        if (eof_) return 0;
        if (read_error_ < 0) throw os_error("read", name_for_errors_locked(), read_error_);
        ssize_t n = receive(lk, into, cap, deadline);
        if (n > 0) return static_cast<size_t>(n);
    }
}

size_t TcpSocket::read_into(char *into, size_t cap, const Deadline &deadline) {
    if (cap == 0) return read_nothing();
    std::unique_lock lk(mu_);
    ReaderTurn turn(*this, lk, deadline);
    return read_some_locked(lk, into, cap, deadline);
}

std::string TcpSocket::read(size_t max, const Deadline &deadline) {
    if (max == 0) {
        read_nothing();
        return {};
    }
    std::unique_lock lk(mu_);
    ReaderTurn turn(*this, lk, deadline);
    std::string out;
    if (max != kReadAll) {
        out.resize(std::min(max, kIoChunk));
        out.resize(read_some_locked(lk, out.data(), out.size(), deadline));
        return out;
    }
    // To the end of the stream: gathered in rbuf_, which needs no zero-filling and keeps
    // what arrived for the next read if this one times out.
    // The first receive into an empty buffer goes through a small one on the stack: a
    // stream that has ended already (a peer that closes at once) takes no 64 KiB block
    // (about 1,200 instructions of malloc and free per accepted-and-closed connection).
    if (rbuf_.empty() && !eof_ && read_error_ == 0) receive_staged(lk, deadline);
    while (!eof_ && read_error_ == 0) receive_buffered(lk, deadline);
    // A stream that broke did not end: what arrived is not all of it. It stays
    // buffered for read(n), and this call raises, as CPython's makefile().read() does.
    if (read_error_ < 0) throw os_error("read", name_for_errors_locked(), read_error_);
    scanned_ = 0;
    return rbuf_.take(rbuf_.size());
}

std::optional<std::string> TcpSocket::read_line(const Deadline &deadline) {
    std::optional<std::string> line;
    if (!read_line_to([&](std::string_view l) { line.emplace(l); }, deadline)) return std::nullopt;
    return line;
}

bool TcpSocket::read_line_to(FunctionRef<void(std::string_view)> take, const Deadline &deadline) {
    std::unique_lock lk(mu_);
    ReaderTurn turn(*this, lk, deadline);
    for (;;) {
        const char *start = rbuf_.data();
        const char *nl = rbuf_.size() > scanned_
                             ? static_cast<const char *>(std::memchr(start + scanned_, '\n', rbuf_.size() - scanned_))
                             : nullptr;
        if (nl) {
            size_t len = static_cast<size_t>(nl - start);
            if (len > line_max_) throw_line_too_long_locked();
            take({start, len > 0 && start[len - 1] == '\r' ? len - 1 : len});
            rbuf_.consume(len + 1);
            scanned_ = 0;
            return true;
        }
        scanned_ = rbuf_.size();
        // The bytes stay buffered, for read() or a larger linemax.
        if (scanned_ > line_max_) throw_line_too_long_locked();
        // After a reset the bytes past the last newline are no line: they stay
        // buffered for read(n) and the error comes after the complete lines.
        if (read_error_ < 0) throw os_error("read", name_for_errors_locked(), read_error_);
        if (eof_) {
            if (rbuf_.empty()) return false;
            take({rbuf_.data(), rbuf_.size()});  // a last line without a newline counts
            rbuf_.consume(rbuf_.size());
            scanned_ = 0;
            return true;
        }
        receive_buffered(lk, deadline);
    }
}

bool TcpSocket::eof() {
    std::lock_guard lk(mu_);
    if (closed_) return true;
    forget_parent_calls_locked();
    if (reader_busy_) return false;  // its recv() may be filling rbuf_ right now
    if (!rbuf_.empty()) return false;
    if (eof_ || read_error_ < 0) return true;
    if (state_ != State::Connected) return false;
    // Nothing buffered: peek whether the peer's end of stream is next.
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        // The peek took the socket's pending error (a reset): the next read raises it.
        read_error_ = uv_translate_sys_error(errno);
        return true;
    }
    return n == 0;
}

void TcpSocket::write(std::string_view data, const Deadline &deadline) {
    std::unique_lock lk(mu_);
    throw_if_unusable_locked("write");
    if (state_ != State::Connected) throw Error(ErrorKind::State, "write: socket is not connected");
    if (write_shut_) throw Error(ErrorKind::State, "write: the write side was shut down (shutdown())");
    if (data.empty()) return;
    take_turn(lk, writer_busy_, deadline, "write");
    writing_.begin(data.size());
    struct Turn {
        TcpSocket &s;
        ~Turn() {
            s.writing_.end();
            s.end_turn_locked(s.writer_busy_);
        }
    } turn{*this};
    try {
        while (writing_.sent() < data.size()) {
            // Handed over, or being handed over: the rest is the next version's to send.
            if (moving_locked()) throw moved_error("write");
            send_some_locked(lk, data.substr(writing_.sent()), deadline);
        }
    } catch (const Error &e) {
        // Out of time or interrupted as a live reload takes the socket: the next version,
        // which has the connection and this write's progress, ends it (the retry keeps
        // the call's start); a reset here would cut the connection under it.
        bool cut = e.kind() == ErrorKind::Timeout || e.kind() == ErrorKind::Interrupted;
        if (e.kind() == ErrorKind::Moved || (cut && moving_locked())) {
            writing_.keep_for_retry();
            if (e.kind() != ErrorKind::Moved) throw moved_error("write");
        } else if (writing_.sent() > 0 && (e.kind() == ErrorKind::Closed || e.kind() == ErrorKind::Timeout ||
                                            e.kind() == ErrorKind::Interrupted)) {
            // Part of `data` is gone: the stream cannot go on in order. The peer must see
            // it broke rather than an end of stream after a cut message: a close() or an
            // unload reset it already (begin_closing_locked); a timeout or an interrupt
            // resets it here and closes the socket.
            size_t sent = writing_.sent();
            std::string ending = "; the connection was reset";
            if (e.kind() != ErrorKind::Closed) {
                if (!closed_) reset_connection_locked();
                lk.unlock();
                close();
                lk.lock();
                ending += " and the socket closed";
            }
            throw Error(e.kind(), std::string(e.what()) + " after " + std::to_string(sent) + " of " +
                                      std::to_string(data.size()) + " bytes" + ending,
                        e.code());
        }
        throw;
    }
}

void TcpSocket::reset_connection_locked() {
    // Linux sends the reset at once when a connected socket is disconnected
    // (connect to AF_UNSPEC), before close() could shut it down with an end of stream.
    // A writer may be blocked in send() on fd_ meanwhile (close() cutting its write): the
    // kernel orders the two, and the disconnect wakes it. The system call directly:
    // ThreadSanitizer takes connect() for a write to the descriptor and reports the send
    // beside it, as it does not for the shutdown() that wakes callers otherwise.
    sockaddr unspecified{};
    unspecified.sa_family = AF_UNSPEC;
    ::syscall(SYS_connect, fd_, &unspecified, sizeof unspecified);
}

void TcpSocket::send_some_locked(std::unique_lock<std::mutex> &lk, std::string_view data, const Deadline &deadline) {
    // MSG_NOSIGNAL: a dead peer is EPIPE here, never SIGPIPE. Without a deadline one
    // blocking send(); with one, non-blocking send()s and poll().
    int flags = MSG_NOSIGNAL | (deadline ? MSG_DONTWAIT : 0);
    int err = 0;
    ssize_t n = blocking_locked(lk, POLLOUT, "write", deadline, [&] {
        ssize_t sent = ::send(fd_, data.data(), data.size(), flags);
        if (sent > 0) writing_.add(static_cast<size_t>(sent));  // only the writer touches it
        return sent;
    }, err);
    throw_if_closed_locked("write");
    if (n < 0) throw errno_error("write", name_for_errors_locked(), err);
}

// ---- half-close and the option linemax ----

void TcpSocket::shutdown_write(const Deadline &deadline) {
    std::unique_lock lk(mu_);
    throw_if_unusable_locked("shutdown");
    if (state_ != State::Connected) throw Error(ErrorKind::State, "shutdown: socket is not connected");
    if (write_shut_) return;  // twice is harmless, like close()
    take_turn(lk, writer_busy_, deadline, "shutdown");  // after the write in progress
    end_turn_locked(writer_busy_);
    write_shut_ = true;
    if (::shutdown(fd_, SHUT_WR) < 0) {
        int err = errno;
        throw errno_error("shutdown", name_for_errors_locked(), err);
    }
}

bool TcpSocket::set_own_option_locked(Option o, int64_t value) {
    if (o != Option::LineMax) return false;
    line_max_ = line_max_from(value);
    return true;
}

std::optional<int64_t> TcpSocket::own_option_locked(Option o) const {
    if (o != Option::LineMax) return std::nullopt;
    return static_cast<int64_t>(line_max_);
}

void TcpSocket::throw_line_too_long_locked() const {
    throw Error(ErrorKind::Value, "line iteration: no newline within " + std::to_string(line_max_) +
                                      " bytes (the socket's 'linemax' option: raise it with setopt('linemax', n), "
                                      "or take the bytes with read())");
}

}  // namespace ksnet
