#include "ksnet/tcp.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ksnet/error.hpp"
#include "resolver.hpp"

namespace ksnet {

// A write in flight. The caller waits for it; libuv's callback completes it.
struct WriteOp {
    uv_write_t req{};
    std::shared_ptr<TcpSocket> sock;
    bool done = false;  // under the socket's mutex
    int status = 0;
};

namespace {

uv_stream_t *as_stream(uv_tcp_t *h) { return reinterpret_cast<uv_stream_t *>(h); }
uv_handle_t *as_handle(uv_tcp_t *h) { return reinterpret_cast<uv_handle_t *>(h); }

// Loop-side results of bind, shared with the waiting caller (who may give up first).
struct BindOp {
    bool done = false;
    int status = 0;
};

}  // namespace

// ---- creation and teardown ----

TcpSocket::TcpSocket(std::shared_ptr<Runtime> rt, Family family) : rt_(std::move(rt)), family_(family) {
    handle_.data = this;
}

TcpSocket::~TcpSocket() = default;

std::shared_ptr<TcpSocket> TcpSocket::create(std::shared_ptr<Runtime> rt, Family family) {
    if (family != Family::Inet4 && family != Family::Inet6) {
        throw Error(ErrorKind::Unsupported,
                    std::string("TCP sockets need family INET4 or INET6, not ") + family_name(family));
    }
    // Made here rather than by libuv so that bind() reports its own errors at once and
    // SO_REUSEADDR stays off unless asked for (uv_tcp_bind always sets it).
    int fd = ::socket(family_to_af(family), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw os_error("socket", family_name(family), uv_translate_sys_error(errno));
    std::shared_ptr<TcpSocket> s(new TcpSocket(rt, family));
    s->fd_ = fd;
    bool fd_owned_by_uv = false;
    try {
        rt->run_sync([&] {
            check_uv(uv_tcp_init(rt->loop(), &s->handle_), "uv_tcp_init", "");
            rt->track(s);
            int rc = uv_tcp_open(&s->handle_, fd);
            if (rc < 0) {
                s->abort_on_loop("uv_tcp_open failed");
                throw os_error("uv_tcp_open", "", rc);
            }
            fd_owned_by_uv = true;
        });
    } catch (...) {
        if (!fd_owned_by_uv) ::close(fd);
        throw;
    }
    return s;
}

void TcpSocket::close() {
    {
        std::lock_guard lk(mu_);
        if (state_ == State::Closed) return;
        state_ = State::Closed;
        cv_.notify_all();
    }
    auto self = shared_from_this();
    // After shutdown the runtime has already closed the handle.
    rt_->post([self] { self->close_handle_on_loop(); });
}

void TcpSocket::abort_on_loop(const char *why) {
    {
        std::lock_guard lk(mu_);
        if (state_ != State::Closed) close_reason_ = why;
        state_ = State::Closed;
        cv_.notify_all();
    }
    close_handle_on_loop();
}

void TcpSocket::close_handle_on_loop() {
    if (handle_closing_) return;
    handle_closing_ = true;
    std::deque<std::shared_ptr<TcpSocket>> unclaimed;
    {
        std::lock_guard lk(mu_);
        unclaimed.swap(accepted_);
    }
    for (auto &s : unclaimed) s->abort_on_loop("the listening socket was closed");
    uv_close(as_handle(&handle_), &TcpSocket::on_close);
}

void TcpSocket::on_close(uv_handle_t *h) {
    auto *self = static_cast<TcpSocket *>(h->data);
    self->rt_->untrack(self);  // may destroy self: nothing after this
}

// ---- state and names ----

TcpSocket::State TcpSocket::state() const {
    std::lock_guard lk(mu_);
    return state_;
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
    if (state_ == State::Closed) throw Error(ErrorKind::Closed, "getsockname: socket is closed");
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd_, reinterpret_cast<sockaddr *>(&ss), &len) < 0) {
        throw os_error("getsockname", "", uv_translate_sys_error(errno));
    }
    return ss;
}

sockaddr_storage TcpSocket::peer_address() const {
    std::lock_guard lk(mu_);
    if (state_ == State::Closed) throw Error(ErrorKind::Closed, "getpeername: socket is closed");
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd_, reinterpret_cast<sockaddr *>(&ss), &len) < 0) {
        if (errno == ENOTCONN) throw Error(ErrorKind::State, "getpeername: socket is not connected");
        throw os_error("getpeername", "", uv_translate_sys_error(errno));
    }
    return ss;
}

std::string TcpSocket::name_for_errors() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd_, reinterpret_cast<sockaddr *>(&ss), &len) == 0) {
        return format_sockaddr(reinterpret_cast<sockaddr *>(&ss));
    }
    len = sizeof ss;
    if (::getsockname(fd_, reinterpret_cast<sockaddr *>(&ss), &len) == 0) {
        return format_sockaddr(reinterpret_cast<sockaddr *>(&ss));
    }
    return "";
}

void TcpSocket::throw_if_unusable_locked(const char *op) const {
    if (state_ == State::Closed) {
        std::string msg = std::string(op) + ": ";
        msg += close_reason_.empty() ? "the socket is closed" : "socket closed because " + close_reason_;
        throw Error(ErrorKind::Closed, msg);
    }
}

void TcpSocket::wait_or_throw(const std::function<bool()> &pred, const Deadline &deadline,
                              const char *op) {
    switch (rt_->wait(mu_, cv_, pred, deadline)) {
    case WaitResult::Ready: return;
    case WaitResult::TimedOut: throw Error(ErrorKind::Timeout, std::string(op) + ": timed out", UV_ETIMEDOUT);
    case WaitResult::Interrupted: throw Error(ErrorKind::Interrupted, std::string(op) + ": interrupted");
    }
}

// ---- bind, connect, listen ----

void TcpSocket::bind(const Endpoint &ep) {
    {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked("bind");
        if (state_ != State::Open) {
            throw Error(ErrorKind::State, std::string("bind: socket is already ") + state_name(state_));
        }
    }
    std::string where = format_endpoint(ep);
    auto op = std::make_shared<BindOp>();
    auto self = shared_from_this();
    bool posted = rt_->post([self, ep, op] {
        resolve_on_loop(*self->rt_, ep, SOCK_STREAM, true,
                        [self, op](int rc, const sockaddr_storage &addr, socklen_t len) {
                            if (rc == 0 && self->handle_closing_) rc = UV_ECANCELED;
                            if (rc == 0 && ::bind(self->fd_, reinterpret_cast<const sockaddr *>(&addr), len) < 0) {
                                rc = uv_translate_sys_error(errno);
                            }
                            std::lock_guard lk(self->mu_);
                            op->status = rc;
                            op->done = true;
                            self->cv_.notify_all();
                        });
    });
    if (!posted) throw Error(ErrorKind::Closed, "bind: the net module was unloaded");
    try {
        wait_or_throw([&] { return op->done || state_ == State::Closed; }, {}, "bind");
    } catch (const Error &) {
        close();  // a name still resolving would otherwise bind behind the caller's back
        throw;
    }
    std::lock_guard lk(mu_);
    throw_if_unusable_locked("bind");
    check_uv(op->status, "bind", where);
}

void TcpSocket::connect(const Endpoint &ep, const Deadline &deadline) {
    {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked("connect");
        if (state_ != State::Open) {
            throw Error(ErrorKind::State, std::string("connect: socket is already ") + state_name(state_));
        }
        state_ = State::Connecting;
        connect_done_ = false;
    }
    std::string where = format_endpoint(ep);
    auto self = shared_from_this();
    auto finish = [self](int rc) {
        std::lock_guard lk(self->mu_);
        self->connect_status_ = rc;
        self->connect_done_ = true;
        if (self->state_ == State::Connecting) self->state_ = rc == 0 ? State::Connected : State::Open;
        self->cv_.notify_all();
    };
    bool posted = rt_->post([self, ep, finish] {
        resolve_on_loop(*self->rt_, ep, SOCK_STREAM, false,
                        [self, finish](int rc, const sockaddr_storage &addr, socklen_t) {
                            if (rc < 0 || self->handle_closing_) return finish(rc < 0 ? rc : UV_ECANCELED);
                            auto *req = new uv_connect_t{};
                            req->data = new decltype(finish)(finish);
                            rc = uv_tcp_connect(req, &self->handle_, reinterpret_cast<const sockaddr *>(&addr),
                                                [](uv_connect_t *r, int status) {
                                                    auto *fin = static_cast<decltype(finish) *>(r->data);
                                                    auto *sock = static_cast<TcpSocket *>(r->handle->data);
                                                    if (status == 0) sock->start_reading_on_loop();
                                                    (*fin)(status);
                                                    delete fin;
                                                    delete r;
                                                });
                            if (rc < 0) {
                                delete static_cast<decltype(finish) *>(req->data);
                                delete req;
                                finish(rc);
                            }
                        });
    });
    if (!posted) throw Error(ErrorKind::Closed, "connect: the net module was unloaded");
    try {
        wait_or_throw([this] { return connect_done_ || state_ == State::Closed; }, deadline, "connect");
    } catch (const Error &) {
        // A connect in flight cannot be cancelled in libuv: closing the socket ends it.
        close();
        throw;
    }
    std::lock_guard lk(mu_);
    throw_if_unusable_locked("connect");
    check_uv(connect_status_, "connect", where);
}

void TcpSocket::listen(int backlog) {
    {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked("listen");
        if (state_ != State::Open) {
            throw Error(ErrorKind::State, std::string("listen: socket is already ") + state_name(state_));
        }
    }
    int rc = 0;
    rt_->run_sync([&] {
        if (handle_closing_) {
            rc = UV_EBADF;
            return;
        }
        rc = uv_listen(as_stream(&handle_), backlog, &TcpSocket::on_connection);
    });
    if (rc < 0) throw os_error("listen", name_for_errors(), rc);
    std::lock_guard lk(mu_);
    if (state_ == State::Open) state_ = State::Listening;
}

// ---- accepting ----

void TcpSocket::on_connection(uv_stream_t *server, int status) {
    auto *self = static_cast<TcpSocket *>(server->data);
    bool accept_now = false;
    {
        std::lock_guard lk(self->mu_);
        if (status < 0) {
            self->accept_error_ = status;
            self->cv_.notify_all();
            return;
        }
        // Accept only when someone waits: until uv_accept is called libuv stops
        // polling the listener, so the kernel's backlog is the only queue.
        self->connection_pending_ = true;
        accept_now = self->accept_waiters_ > 0;
    }
    if (accept_now) self->accept_on_loop();
}

void TcpSocket::accept_on_loop() {
    {
        std::lock_guard lk(mu_);
        if (!connection_pending_ || state_ != State::Listening) return;
        connection_pending_ = false;
    }
    std::shared_ptr<TcpSocket> client(new TcpSocket(rt_, family_));
    int rc = uv_tcp_init(rt_->loop(), &client->handle_);
    if (rc == 0) {
        rt_->track(client);
        rc = uv_accept(as_stream(&handle_), as_stream(&client->handle_));
        if (rc == 0) {
            uv_os_fd_t fd = -1;
            uv_fileno(as_handle(&client->handle_), &fd);
            client->fd_ = fd;
            client->state_ = State::Connected;
            client->start_reading_on_loop();
        } else {
            client->abort_on_loop("accept failed");
        }
    }
    std::lock_guard lk(mu_);
    if (rc == 0) {
        accepted_.push_back(std::move(client));
    } else {
        accept_error_ = rc;
    }
    cv_.notify_all();
}

std::pair<std::shared_ptr<TcpSocket>, std::string> TcpSocket::accept(const Deadline &deadline) {
    std::shared_ptr<TcpSocket> client;
    for (;;) {
        {
            std::unique_lock lk(mu_);
            throw_if_unusable_locked("accept");
            if (state_ != State::Listening) {
                throw Error(ErrorKind::State, "accept: socket is not listening (call listen() first)");
            }
            if (!accepted_.empty()) {
                client = std::move(accepted_.front());
                accepted_.pop_front();
                break;
            }
            if (accept_error_ < 0) {
                int rc = accept_error_;
                accept_error_ = 0;
                lk.unlock();
                throw os_error("accept", name_for_errors(), rc);
            }
            ++accept_waiters_;
            if (connection_pending_) {
                auto self = shared_from_this();
                rt_->post([self] { self->accept_on_loop(); });
            }
        }
        try {
            wait_or_throw([this] { return !accepted_.empty() || accept_error_ < 0 || state_ == State::Closed; },
                          deadline, "accept");
        } catch (...) {
            std::lock_guard lk(mu_);
            --accept_waiters_;
            throw;
        }
        std::lock_guard lk(mu_);
        --accept_waiters_;
    }
    sockaddr_storage peer{};
    std::string name;
    try {
        peer = client->peer_address();
        name = format_sockaddr(reinterpret_cast<sockaddr *>(&peer));
    } catch (const Error &) {
        name = "";  // the peer already reset; reads will say so
    }
    return {std::move(client), std::move(name)};
}

// ---- reading ----

void TcpSocket::start_reading_on_loop() {
    {
        std::lock_guard lk(mu_);
        resume_posted_ = false;
        if (reading_ || eof_ || read_error_ || state_ == State::Closed || handle_closing_) return;
        reading_ = true;
    }
    int rc = uv_read_start(as_stream(&handle_), &TcpSocket::on_alloc, &TcpSocket::on_read);
    if (rc < 0) {
        std::lock_guard lk(mu_);
        reading_ = false;
        read_error_ = rc;
        cv_.notify_all();
    }
}

void TcpSocket::pause_for_fork_on_loop() {
    std::lock_guard lk(mu_);
    if (!reading_ || waiting_readers_ > 0 || handle_closing_) return;
    uv_read_stop(as_stream(&handle_));
    reading_ = false;  // the next read() starts it again (want_more_locked)
}

void TcpSocket::on_alloc(uv_handle_t *h, size_t, uv_buf_t *buf) {
    *buf = static_cast<TcpSocket *>(h->data)->rt_->read_slab();
}

void TcpSocket::on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    auto *self = static_cast<TcpSocket *>(s->data);
    std::lock_guard lk(self->mu_);
    if (nread > 0) {
        if (self->rpos_ > 0 && self->rpos_ == self->rbuf_.size()) {
            self->rbuf_.clear();
            self->scan_pos_ = self->rpos_ = 0;
        }
        self->rbuf_.append(buf->base, static_cast<size_t>(nread));
        // Backpressure: stop taking from the kernel while nobody is draining us.
        if (self->buffered_locked() >= kHighWater && self->waiting_readers_ == 0) {
            uv_read_stop(s);
            self->reading_ = false;
        }
    } else if (nread < 0) {
        if (nread == UV_EOF) {
            self->eof_ = true;
        } else {
            self->read_error_ = static_cast<int>(nread);
        }
        uv_read_stop(s);
        self->reading_ = false;
    }
    self->cv_.notify_all();
}

void TcpSocket::want_more_locked() {
    if (reading_ || resume_posted_ || eof_ || read_error_ || state_ != State::Connected) return;
    if (buffered_locked() >= kHighWater / 2 && waiting_readers_ == 0) return;
    resume_posted_ = true;
    auto self = shared_from_this();
    rt_->post([self] { self->start_reading_on_loop(); });
}

std::string TcpSocket::take_locked(size_t n) {
    std::string out = rbuf_.substr(rpos_, n);
    rpos_ += n;
    if (rpos_ == rbuf_.size()) {
        rbuf_.clear();
        rbuf_.shrink_to_fit();  // an idle connection keeps no buffer
        rpos_ = 0;
    } else if (rpos_ > rbuf_.size() / 2) {
        rbuf_.erase(0, rpos_);
        rpos_ = 0;
    }
    scan_pos_ = rpos_;
    want_more_locked();
    return out;
}

std::string TcpSocket::read(size_t max, const Deadline &deadline) {
    if (max == 0) return {};
    std::string all;  // kReadAll collects here, so that backpressure never stalls it
    for (;;) {
        {
            std::unique_lock lk(mu_);
            throw_if_unusable_locked("read");
            if (state_ != State::Connected) {
                throw Error(ErrorKind::State, "read: socket is not connected");
            }
            size_t avail = buffered_locked();
            if (max == kReadAll) {
                all += take_locked(avail);
                if (eof_) return all;
            } else if (avail > 0) {
                return take_locked(std::min(max, avail));
            } else if (eof_) {
                return {};
            }
            if (read_error_ < 0) {
                int rc = read_error_;
                lk.unlock();
                throw os_error("read", name_for_errors(), rc);
            }
            ++waiting_readers_;
            want_more_locked();
        }
        try {
            wait_or_throw([this] { return buffered_locked() > 0 || eof_ || read_error_ < 0 || state_ == State::Closed; },
                          deadline, "read");
        } catch (...) {
            std::lock_guard lk(mu_);
            --waiting_readers_;
            throw;
        }
        std::lock_guard lk(mu_);
        --waiting_readers_;
    }
}

std::optional<std::string> TcpSocket::read_line(const Deadline &deadline) {
    for (;;) {
        {
            std::unique_lock lk(mu_);
            throw_if_unusable_locked("read");
            if (state_ != State::Connected) {
                throw Error(ErrorKind::State, "read: socket is not connected");
            }
            size_t nl = rbuf_.find('\n', scan_pos_);
            if (nl != std::string::npos) {
                size_t len = nl - rpos_;
                std::string line = take_locked(len + 1);
                line.pop_back();
                if (!line.empty() && line.back() == '\r') line.pop_back();
                return line;
            }
            scan_pos_ = rbuf_.size();
            if (eof_) {
                if (buffered_locked() == 0) return std::nullopt;
                return take_locked(buffered_locked());
            }
            if (read_error_ < 0) {
                int rc = read_error_;
                lk.unlock();
                throw os_error("read", name_for_errors(), rc);
            }
            ++waiting_readers_;
            want_more_locked();
        }
        try {
            // scan_pos_ is at the end of what was searched: anything new lies past it.
            wait_or_throw([this] { return scan_pos_ < rbuf_.size() || eof_ || read_error_ < 0 || state_ == State::Closed; },
                          deadline, "read");
        } catch (...) {
            std::lock_guard lk(mu_);
            --waiting_readers_;
            throw;
        }
        std::lock_guard lk(mu_);
        --waiting_readers_;
    }
}

bool TcpSocket::eof() {
    std::lock_guard lk(mu_);
    if (state_ == State::Closed) return true;
    return (eof_ || read_error_ < 0) && buffered_locked() == 0;
}

// ---- writing ----

void TcpSocket::complete_write(WriteOp &op, int status) {
    TcpSocket &self = *op.sock;
    std::lock_guard lk(self.mu_);
    op.status = status;
    op.done = true;
    if (status < 0 && self.write_error_ == 0) self.write_error_ = status;
    self.cv_.notify_all();
}

void TcpSocket::write(std::string_view data, const Deadline &deadline) {
    if (data.empty()) {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked("write");
        return;
    }
    auto op = std::make_shared<WriteOp>();
    {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked("write");
        if (state_ != State::Connected) throw Error(ErrorKind::State, "write: socket is not connected");
        if (write_shut_) throw Error(ErrorKind::State, "write: the write side was shut down (shutdown())");
        if (write_error_ < 0) throw os_error("write", name_for_errors(), write_error_);
        op->sock = shared_from_this();
    }
    uv_buf_t buf = uv_buf_init(const_cast<char *>(data.data()), static_cast<unsigned>(0));
    buf.len = data.size();
    bool posted = rt_->post([op, buf] {
        TcpSocket *self = op->sock.get();
        if (self->handle_closing_) return complete_write(*op, UV_ECANCELED);
        op->req.data = new std::shared_ptr<WriteOp>(op);
        int rc = uv_write(&op->req, as_stream(&self->handle_), &buf, 1, [](uv_write_t *req, int status) {
            auto *slot = static_cast<std::shared_ptr<WriteOp> *>(req->data);
            std::shared_ptr<WriteOp> keep = std::move(*slot);
            delete slot;
            complete_write(*keep, status);
        });
        if (rc < 0) {
            delete static_cast<std::shared_ptr<WriteOp> *>(op->req.data);
            complete_write(*op, rc);
        }
    });
    if (!posted) throw Error(ErrorKind::Closed, "write: the net module was unloaded");
    try {
        wait_or_throw([&] { return op->done; }, deadline, "write");
    } catch (const Error &) {
        // libuv still points at `data`: abort the connection, then wait (briefly, the
        // close cancels the write) until it lets go. The caller learns the stream broke.
        close();
        rt_->wait(mu_, cv_, [&] { return op->done; }, {}, /*interruptible=*/false);
        throw;
    }
    int status = op->status;
    if (status < 0) {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked("write");
    }
    if (status < 0) throw os_error("write", name_for_errors(), status);
}

// ---- half-close and options ----

void TcpSocket::shutdown_write(const Deadline &deadline) {
    struct ShutdownOp {
        uv_shutdown_t req{};
        std::shared_ptr<TcpSocket> sock;
        bool done = false;
        int status = 0;
    };
    auto op = std::make_shared<ShutdownOp>();
    {
        std::lock_guard lk(mu_);
        throw_if_unusable_locked("shutdown");
        if (state_ != State::Connected) throw Error(ErrorKind::State, "shutdown: socket is not connected");
        if (write_shut_) return;  // twice is harmless, like close()
        write_shut_ = true;
        op->sock = shared_from_this();
    }
    bool posted = rt_->post([op] {
        TcpSocket *self = op->sock.get();
        auto finish = [](ShutdownOp &o, int status) {
            std::lock_guard lk(o.sock->mu_);
            o.status = status;
            o.done = true;
            o.sock->cv_.notify_all();
        };
        if (self->handle_closing_) return finish(*op, UV_ECANCELED);
        op->req.data = new std::shared_ptr<ShutdownOp>(op);
        // libuv sends the FIN only after the writes queued before it.
        int rc = uv_shutdown(&op->req, as_stream(&self->handle_), [](uv_shutdown_t *req, int status) {
            auto *slot = static_cast<std::shared_ptr<ShutdownOp> *>(req->data);
            std::shared_ptr<ShutdownOp> keep = std::move(*slot);
            delete slot;
            std::lock_guard lk(keep->sock->mu_);
            keep->status = status;
            keep->done = true;
            keep->sock->cv_.notify_all();
        });
        if (rc < 0) {
            delete static_cast<std::shared_ptr<ShutdownOp> *>(op->req.data);
            finish(*op, rc);
        }
    });
    if (!posted) throw Error(ErrorKind::Closed, "shutdown: the net module was unloaded");
    wait_or_throw([&] { return op->done || state_ == State::Closed; }, deadline, "shutdown");
    std::lock_guard lk(mu_);
    if (!op->done) throw_if_unusable_locked("shutdown");
    if (op->status < 0 && op->status != UV_ECANCELED) throw os_error("shutdown", name_for_errors(), op->status);
}

void TcpSocket::set_option(Option o, int64_t value) {
    std::lock_guard lk(mu_);  // while held, the loop cannot close fd_
    throw_if_unusable_locked("setopt");
    ksnet::set_option(fd_, o, value, name_for_errors());
}

int64_t TcpSocket::get_option(Option o) const {
    std::lock_guard lk(mu_);
    throw_if_unusable_locked("getopt");
    return ksnet::get_option(fd_, o, name_for_errors());
}

}  // namespace ksnet
