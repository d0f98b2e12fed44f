#include "ksnet/poll_socket.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "ksnet/address.hpp"
#include "ksnet/bluetooth.hpp"
#include "ksnet/error.hpp"
#include "ksnet/io_chunk.hpp"

namespace ksnet {

namespace {

constexpr size_t kPeekCap = 256 * 1024;  // the largest message peeked at in one go
constexpr int kSockPacket = 10;          // SOCK_PACKET (obsolete, still in Linux)

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// recvmsg(fd, flags) of at most `size` bytes into `into`, the sender into `from`.
ssize_t receive_message(int fd, char *into, size_t size, int flags, sockaddr_storage &from, int &msg_flags) {
    iovec iov{into, size};
    msghdr m{};
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    ssize_t got = ::recvmsg(fd, &m, flags);
    msg_flags = m.msg_flags;
    return got;
}

std::string af_text(int af) {
    switch (af) {
    case AF_UNIX: return "AF_UNIX";
    case AF_INET: return "AF_INET";
    case AF_INET6: return "AF_INET6";
    case AF_PACKET: return "AF_PACKET";
    case AF_NETLINK: return "AF_NETLINK";
    case bt::kAfBluetooth: return "AF_BLUETOOTH";
    }
    return "AF_" + std::to_string(af);
}

std::string type_text(int type) {
    switch (type) {
    case SOCK_STREAM: return "SOCK_STREAM";
    case SOCK_DGRAM: return "SOCK_DGRAM";
    case SOCK_RAW: return "SOCK_RAW";
    case SOCK_RDM: return "SOCK_RDM";
    case SOCK_SEQPACKET: return "SOCK_SEQPACKET";
    case kSockPacket: return "SOCK_PACKET";
    }
    return "SOCK_" + std::to_string(type);
}

std::string protocol_text(int af, int type, int protocol) {
    if (af == AF_PACKET || type == kSockPacket) {  // an Ethernet protocol, network order
        unsigned eth = ntohs(static_cast<uint16_t>(protocol));
        if (protocol == 0) return "0";
        if (eth == 0x0003) return "ETH_P_ALL";
        char buf[16];
        std::snprintf(buf, sizeof buf, "0x%04X", eth);
        return buf;
    }
    if (af == AF_INET || af == AF_INET6) {
        switch (protocol) {
        case 0: return "0";
        case IPPROTO_ICMP: return "ICMP";
        case IPPROTO_IGMP: return "IGMP";
        case IPPROTO_TCP: return "TCP";
        case IPPROTO_UDP: return "UDP";
        case IPPROTO_ICMPV6: return "ICMPV6";
        case IPPROTO_SCTP: return "SCTP";
        case IPPROTO_UDPLITE: return "UDPLITE";
        case IPPROTO_RAW: return "RAW";
        }
    }
    if (af == bt::kAfBluetooth) {
        static const char *const names[] = {"L2CAP", "HCI", "SCO", "RFCOMM", "BNEP", "CMTP", "HIDP", "AVDTP"};
        if (protocol >= 0 && protocol < 8) return names[protocol];
    }
    return std::to_string(protocol);
}

}  // namespace

std::string describe_socket(int af, int type, int protocol) {
    return af_text(af) + "/" + type_text(type) + "/" + protocol_text(af, type, protocol);
}

std::string format_any_sockaddr(const sockaddr *sa, socklen_t len, int type, int protocol) {
    if (len < static_cast<socklen_t>(sizeof(sa_family_t))) return "(no address)";
    if (type == kSockPacket) return packet_device(sa);
    switch (sa->sa_family) {
    case AF_INET:
    case AF_INET6:
        return type == SOCK_RAW ? format_host(sa) : format_sockaddr(sa);
    case bt::kAfBluetooth:
        return bt::format_bt_sockaddr(sa, protocol);
    case AF_UNIX: {
        auto *un = reinterpret_cast<const sockaddr_un *>(sa);
        size_t off = offsetof(sockaddr_un, sun_path);
        if (static_cast<size_t>(len) <= off) return "(unnamed)";
        size_t n = static_cast<size_t>(len) - off;
        if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, n - 1);
        return std::string(un->sun_path, strnlen(un->sun_path, n));
    }
    case AF_PACKET: {
        auto *ll = reinterpret_cast<const sockaddr_ll *>(sa);
        std::string name = ll->sll_ifindex > 0 ? interface_name(static_cast<unsigned>(ll->sll_ifindex)) : "";
        return name.empty() ? "ifindex " + std::to_string(ll->sll_ifindex) : name;
    }
    }
    return af_text(sa->sa_family) + " address";
}

std::string name_for_errors(int fd, int type, int protocol) {
    if (fd < 0) return "";
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    auto *sa = reinterpret_cast<sockaddr *>(&ss);
    if (::getpeername(fd, sa, &len) == 0) return format_any_sockaddr(sa, len, type, protocol);
    len = sizeof ss;
    if (::getsockname(fd, sa, &len) != 0) return "";
    bool unbound_ip = (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) && sockaddr_port(sa) == 0 &&
                      format_host(sa) == (sa->sa_family == AF_INET ? "0.0.0.0" : "::");
    return unbound_ip ? "" : format_any_sockaddr(sa, len, type, protocol);
}

// ---- creation and teardown ----

PollSocket::PollSocket(std::shared_ptr<Runtime> rt, int af, int type, int protocol)
    : CallerIoSocket(std::move(rt), type, protocol), af_(af) {
    poll_.data = static_cast<SocketBase *>(this);
    threads_in_kernel_ = std::make_unique<std::vector<pthread_t>>();
}

PollSocket::~PollSocket() = default;

std::shared_ptr<PollSocket> PollSocket::create(std::shared_ptr<Runtime> rt, int af, int type, int protocol) {
    type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    int fd = rt->open_descriptor([&] { return ::socket(af, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol); });
    if (fd < 0) {
        int err = errno;
        std::string what = "socket " + describe_socket(af, type, protocol);
        if (af == bt::kAfBluetooth && err == EAFNOSUPPORT) {
            throw bt::bluetooth_unavailable(what, uv_translate_sys_error(err));
        }
        throw errno_error("socket", describe_socket(af, type, protocol), err);
    }
    return adopt(std::move(rt), fd, af, type, protocol, State::Open);
}

std::shared_ptr<PollSocket> PollSocket::adopt(std::shared_ptr<Runtime> rt, int fd, int af, int type, int protocol,
                                              State state) {
    std::shared_ptr<PollSocket> s;
    try {
        s.reset(new PollSocket(rt, af, type, protocol));
    } catch (...) {
        ::close(fd);
        throw;
    }
    s->fd_ = fd;
    s->state_ = state;
    bool tracked = false;
    try {
        rt->run_sync([&] {
            int rc = uv_poll_init_socket(rt->loop(), &s->poll_, fd);
            if (rc < 0) throw os_error("uv_poll_init_socket", s->description(), rc);
            rt->track(s);
            tracked = true;
        });
    } catch (...) {
        if (!tracked) {
            ::close(fd);
            s->fd_ = -1;
        }
        throw;
    }
    return s;
}

void PollSocket::on_handle_closed() {
    // Only now, with the poll handle gone, may the descriptor go; under mu_ so that no
    // caller is inside a system call on it.
    std::lock_guard lk(mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

// ---- state and names ----

PollSocket::State PollSocket::state() const { return state_or_closed(state_); }

const char *PollSocket::state_text() const { return state_name(state()); }

const char *PollSocket::state_name(State s) {
    switch (s) {
    case State::Open: return "open";
    case State::Bound: return "bound";
    case State::Connecting: return "connecting";
    case State::Connected: return "connected";
    case State::Listening: return "listening";
    case State::Closed: return "closed";
    }
    return "?";
}

std::string PollSocket::addr_text(const sockaddr *sa, socklen_t len) const {
    return format_any_sockaddr(sa, len, type_, protocol_);
}

sockaddr_storage PollSocket::local_address() const {
    std::lock_guard lk(mu_);  // while held and not closed, the loop cannot have closed fd_
    if (closed_) throw Error(ErrorKind::Closed, "getsockname: the socket is closed");
    return local_sockaddr(fd_);
}

sockaddr_storage PollSocket::peer_address() const {
    std::lock_guard lk(mu_);
    if (closed_) throw Error(ErrorKind::Closed, "getpeername: the socket is closed");
    return peer_sockaddr(fd_);
}

// ---- bind, connect, listen, accept ----

void PollSocket::bind(const sockaddr *addr, socklen_t len) {
    std::unique_lock lk(mu_);
    throw_if_unusable_locked("bind");
    int err = bind_locked(lk, addr, len, [&] { throw_if_unusable_locked("bind"); });
    if (err) throw errno_error("bind", addr_text(addr, len), err);
    if (state_ == State::Open) state_ = State::Bound;
}

void PollSocket::connect(const sockaddr *addr, socklen_t len, const Deadline &deadline) {
    std::string where = addr_text(addr, len);
    std::unique_lock lk(mu_);
    throw_if_unusable_locked("connect");
    if (state_ == State::Connecting && connect_resume_) {
        connect_resume_ = false;  // it moved here part-way: only wait for it
    } else {
        if (state_ == State::Connecting || state_ == State::Listening) {
            throw Error(ErrorKind::State, std::string("connect: socket is ") + state_name(state_));
        }
        if (::connect(fd_, addr, len) == 0) {
            state_ = State::Connected;
            return;
        }
        int err = errno;
        if (err != EINPROGRESS && err != EINTR) throw errno_error("connect", where, err);
        state_ = State::Connecting;
    }
    for (;;) {
        try {
            wait_ready(lk, POLLOUT, deadline, "connect");
        } catch (const Error &e) {
            bool cut = e.kind() == ErrorKind::Timeout || e.kind() == ErrorKind::Interrupted;
            if (e.kind() == ErrorKind::Moved || (cut && moving_locked())) {
                // A retry (on the next version, or here if the reload rolled back) waits
                // for it, and ends it if its time is up.
                connect_resume_ = true;
                if (e.kind() != ErrorKind::Moved) throw moved_error("connect");
                throw;
            }
            lk.unlock();
            close();  // a connect in flight cannot be taken back
            throw;
        }
        throw_if_unusable_locked("connect");  // the next version reads SO_ERROR
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
        if (soerr != 0) {
            state_ = State::Open;
            throw errno_error("connect", where, soerr);
        }
        sockaddr_storage peer{};
        socklen_t pl = sizeof peer;
        if (::getpeername(fd_, reinterpret_cast<sockaddr *>(&peer), &pl) == 0) {
            state_ = State::Connected;
            return;
        }
        // Woken early: still connecting.
    }
}

void PollSocket::listen(int backlog) {
    std::lock_guard lk(mu_);
    throw_if_unusable_locked("listen");
    if (::listen(fd_, backlog) < 0) {
        int err = errno;  // before the name, whose getpeername sets it
        throw errno_error("listen", name_for_errors_locked(), err);
    }
    state_ = State::Listening;
}

std::pair<std::shared_ptr<PollSocket>, sockaddr_storage> PollSocket::accept(const Deadline &deadline) {
    std::unique_lock lk(mu_);
    bool waited_for_closes = false;  // after EMFILE, once (Runtime::await_posted_closes)
    for (;;) {
        throw_if_unusable_locked("accept");
        if (state_ != State::Listening) {
            throw Error(ErrorKind::State, "accept: socket is not listening (call listen() first)");
        }
        sockaddr_storage ss{};
        int err = 0;
        ssize_t fd = blocking_locked(lk, POLLIN, "accept", deadline, [&] {
            socklen_t len = sizeof ss;
            return static_cast<ssize_t>(Runtime::above_stdio(
                ::accept4(fd_, reinterpret_cast<sockaddr *>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC)));
        }, err, true);
        if (fd >= 0) {
            lk.unlock();  // adopt() waits for the loop, which may need mu_
            return {adopt(rt_, static_cast<int>(fd), af_, type_, protocol_, State::Connected), ss};
        }
        if (retry_after_posted_closes(lk, err, deadline, waited_for_closes, "accept")) continue;
        if (err != ECONNABORTED) throw errno_error("accept", name_for_errors_locked(), err);
    }
}

// ---- sending and receiving ----

void PollSocket::transmit(std::string_view data, const sockaddr *to, socklen_t len, const Deadline &deadline,
                          const char *op) {
    const bool stream = type_ == SOCK_STREAM;
    std::unique_lock lk(mu_);
    throw_if_unusable_locked(op);
    if (state_ == State::Listening) throw Error(ErrorKind::State, std::string(op) + ": socket is listening");
    if (stream) take_turn(lk, writer_busy_, deadline, op);
    // A stream's message that moved part-sent goes on where it stopped.
    size_t off = stream ? writing_.begin(data.size()) : 0;
    struct Turn {
        PollSocket &s;
        bool stream;
        ~Turn() {
            if (!stream) return;
            s.writing_.end();
            s.end_turn_locked(s.writer_busy_);
        }
    } turn{*this, stream};
    try {
        for (;;) {
            int err = 0;
            ssize_t n = blocking_locked(lk, POLLOUT, op, deadline, [&] {
                const char *from = data.data() + off;
                size_t left = data.size() - off;
                ssize_t sent = to ? ::sendto(fd_, from, left, MSG_NOSIGNAL | MSG_DONTWAIT, to, len)
                                  : ::send(fd_, from, left, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (sent > 0 && stream) writing_.add(static_cast<size_t>(sent));  // only the writer touches it
                return sent;
            }, err);
            if (n < 0) throw errno_error(op, to ? addr_text(to, len) : name_for_errors_locked(), err);
            off += static_cast<size_t>(n);
            if (!stream || off >= data.size()) break;  // a stream takes the rest next
        }
    } catch (const Error &e) {
        if (e.kind() == ErrorKind::Moved && stream) writing_.keep_for_retry();
        throw;
    }
    if (state_ == State::Open) state_ = State::Bound;  // implicitly bound
}

void PollSocket::send(std::string_view data, const Deadline &deadline) { transmit(data, nullptr, 0, deadline, "write"); }

void PollSocket::sendto(std::string_view data, const sockaddr *to, socklen_t len, const Deadline &deadline) {
    transmit(data, to, len, deadline, "sendto");
}

std::string PollSocket::receive(size_t max, const Deadline &deadline, const char *op, sockaddr_storage *from) {
    std::unique_lock lk(mu_);
    throw_if_unusable_locked(op);
    if (state_ == State::Listening) {
        throw Error(ErrorKind::State, std::string(op) + ": socket is listening (use accept())");
    }
    take_turn(lk, reader_busy_, deadline, op);
    struct Turn {
        PollSocket &s;
        ~Turn() { s.end_turn_locked(s.reader_busy_); }
    } turn{*this};
    for (;;) {
        sockaddr_storage ss{};
        int err = 0;
        // What arrived (for a stream never a huge buffer), or room to peek at a message.
        size_t room = std::min(max, type_ == SOCK_STREAM ? kIoChunk : kPeekCap);
        if (room == 0 && type_ == SOCK_STREAM) return {};
        std::string buf(room, '\0');
        int msg_flags = 0;
        ssize_t n = blocking_locked(lk, POLLIN, op, deadline, [&] {
            // A message is only peeked at, to learn its size without taking it.
            int flags = type_ == SOCK_STREAM ? MSG_DONTWAIT : MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT;
            return receive_message(fd_, buf.data(), room, flags, ss, msg_flags);
        }, err, room < Runtime::kUnlockedCopy);
        if (n == 0) throw_if_closing_locked(op);  // the shutdown() of a close, not an empty message
        if (n < 0) throw errno_error(op, name_for_errors_locked(), err);
        if (type_ == SOCK_STREAM) {
            buf.resize(static_cast<size_t>(n));  // empty: end of stream
            if (from) *from = ss;
            return buf;
        }
        if (take_message_locked(buf, static_cast<size_t>(n), (msg_flags & MSG_TRUNC) != 0, max, op, from)) {
            return buf;
        }
        // Another holder of the descriptor took the message: wait for the next.
    }
}

bool PollSocket::take_message_locked(std::string &buf, size_t size, bool cut, size_t max, const char *op,
                                     sockaddr_storage *from) {
    size_t room = buf.size();
    if (cut && size <= room) {
        // The protocol did not say how long the message really is.
        if (room == max) {
            throw Error(ErrorKind::Value,
                        std::string(op) + ": the message is longer than max " + std::to_string(max) + " bytes");
        }
        throw Error(ErrorKind::Value,
                    std::string(op) + ": the message is longer than " + std::to_string(kPeekCap) + " bytes");
    }
    if (max != kAnySize && size > max) {
        // Left in the kernel's queue: a retry with a larger max gets it.
        throw Error(ErrorKind::Value, std::string(op) + ": the message of " + std::to_string(size) +
                                          " bytes does not fit in max " + std::to_string(max) + " bytes");
    }
    throw_if_closing_locked(op);  // fd_ may be gone since the peek
    buf.resize(size);
    sockaddr_storage ss{};
    int msg_flags = 0;
    ssize_t r = receive_message(fd_, buf.data(), size, MSG_TRUNC | MSG_DONTWAIT, ss, msg_flags);
    if (r < 0) {
        int err = errno;
        if (would_block(err) || err == EINTR) return false;
        throw errno_error(op, name_for_errors_locked(), err);
    }
    if (static_cast<size_t>(r) > size || (msg_flags & MSG_TRUNC)) {
        // Another holder of the descriptor took the peeked message first.
        throw Error(ErrorKind::Value, std::string(op) + ": the message of " + std::to_string(r) +
                                          " bytes changed under the read and was cut");
    }
    buf.resize(static_cast<size_t>(r));
    if (from) *from = ss;
    return true;
}

std::string PollSocket::recv(size_t max, const Deadline &deadline) { return receive(max, deadline, "read", nullptr); }

std::pair<std::string, sockaddr_storage> PollSocket::recvfrom(size_t max, const Deadline &deadline) {
    sockaddr_storage from{};
    std::string data = receive(max, deadline, "recvfrom", &from);
    return {std::move(data), from};
}

// ---- live reload (ksp_handover) ----

void PollSocket::save(SocketState &out, Clock::duration limit) {
    std::unique_lock lk(mu_);
    wait_until_callers_left_locked(lk, limit);
    out.os_af = af_;
    out.os_type = type_;
    out.os_protocol = protocol_;
    out.state = static_cast<uint8_t>(closed_ ? State::Closed : state_);
    out.fd = closed_ ? -1 : fd_;
    out.connect_resume = !closed_ && state_ == State::Connecting;
    out.write_resume = writing_.for_save();
}

std::shared_ptr<PollSocket> PollSocket::restore(std::shared_ptr<Runtime> rt, const SocketState &s) {
    auto state = static_cast<State>(s.state);
    if (state > State::Closed) throw Error(ErrorKind::Value, "socket state: no state " + std::to_string(s.state));
    if (s.fd < 0 || state == State::Closed) {
        std::shared_ptr<PollSocket> closed(new PollSocket(rt, s.os_af, s.os_type, s.os_protocol));
        closed->closed_ = true;
        return closed;
    }
    int fd = ::fcntl(s.fd, F_DUPFD_CLOEXEC, Runtime::kFirstDescriptor);
    if (fd < 0) throw errno_error("dup", "the socket handed over", errno);
    auto sock = adopt(std::move(rt), fd, s.os_af, s.os_type, s.os_protocol, state);
    std::lock_guard lk(sock->mu_);
    sock->writing_.restore(s.write_resume);
    sock->connect_resume_ = s.connect_resume;
    return sock;
}

}  // namespace ksnet
