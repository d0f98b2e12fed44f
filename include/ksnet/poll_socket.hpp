// ksnet/poll_socket.hpp - an OS socket of any (family, type, protocol): the kinds
// libuv has no handle for (SK.RAW, SK.PACKET, SK.PACKET_SEQ, Bluetooth).
//
// Every method may be called from any thread. As for TcpSocket and UdpSocket (see
// CallerIoSocket), the loop owns the handle, a uv_poll_t that tracks the socket and
// closes it, and the calls are the caller's own system calls through
// Runtime::call_blocking: a non-blocking try (MSG_DONTWAIT; the descriptor is
// non-blocking and close-on-exec), then poll() on the caller's thread with the
// interpreter lock released. No thread hands a message to another. Readers are served
// one at a time, and so are a stream's writers. close() from any thread wakes every
// blocked call: shutdown() where the family has one, and kWakeSignal to the callers'
// threads, since an AF_PACKET socket's shutdown() wakes nobody.
//
// Messages (every type but SOCK_STREAM) are never cut silently: recv/recvfrom first
// peek with MSG_TRUNC to learn the message's size. If it is larger than `max` they throw
// Error(Value) "recv: the message of N bytes does not fit in max M bytes" and leave the
// message in the kernel's queue, so a retry with a larger max gets it (as UdpSocket).
#pragma once

#include <pthread.h>
#include <sys/socket.h>
#include <uv.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ksnet/handover.hpp"
#include "ksnet/caller_io_socket.hpp"

namespace ksnet {

// "AF_INET/SOCK_RAW/ICMP", "AF_BLUETOOTH/SOCK_STREAM/RFCOMM", "AF_INET/SOCK_SEQPACKET/0".
std::string describe_socket(int af, int type, int protocol);
// An address of any family as messages show it: "127.0.0.1:53" (or "127.0.0.1" for raw
// IP sockets, which have no ports), "[::1]:53", "01:23:45:67:89:AB channel 5",
// "@name" (abstract unix), "/path", "ifindex 1".
std::string format_any_sockaddr(const sockaddr *sa, socklen_t len, int type, int protocol);

class PollSocket final : public CallerIoSocket {
public:
    static constexpr size_t kAnySize = static_cast<size_t>(-1);  // recv: any message fits

    enum class State { Open, Bound, Connecting, Connected, Listening, Closed };

    // socket(af, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol). Failure: Error(Os)
    // "socket AF_INET/SOCK_RAW/ICMP: EPERM (operation not permitted)"; for AF_BLUETOOTH
    // on a kernel without it, Error(Unsupported) "... Bluetooth is not available ...".
    static std::shared_ptr<PollSocket> create(std::shared_ptr<Runtime> rt, int af, int type, int protocol);

    void bind(const sockaddr *addr, socklen_t len);
    // Non-blocking connect; completion is the descriptor turning writable, then SO_ERROR.
    // A timeout closes the socket (a connect in flight cannot be taken back).
    void connect(const sockaddr *addr, socklen_t len, const Deadline &deadline = {});
    void listen(int backlog);
    // The next connection (a new PollSocket of the same af/type/protocol) and its address.
    std::pair<std::shared_ptr<PollSocket>, sockaddr_storage> accept(const Deadline &deadline = {});

    // Connected sockets (or raw sockets with a default peer). SOCK_STREAM sends all of
    // `data` (on a timeout, a part may already have gone); other types send it as one
    // message. MSG_NOSIGNAL: a dead peer is EPIPE, never SIGPIPE.
    void send(std::string_view data, const Deadline &deadline = {});
    void sendto(std::string_view data, const sockaddr *to, socklen_t len, const Deadline &deadline = {});
    // The next message (see above). SOCK_STREAM: up to `max` bytes as soon as any are
    // there; an empty result means end of stream.
    std::string recv(size_t max, const Deadline &deadline = {});
    std::pair<std::string, sockaddr_storage> recvfrom(size_t max, const Deadline &deadline = {});

    // close(), fileno(), set_option() and get_option(): see SocketBase.
    State state() const;
    static const char *state_name(State s);
    const char *state_text() const override;
    int af() const { return af_; }
    int type() const { return type_; }
    int protocol() const { return protocol_; }
    std::string description() const { return describe_socket(af_, type_, protocol_); }

    // getsockname / getpeername; throw Error(State) for no peer, Error(Closed) when closed.
    sockaddr_storage local_address() const override;
    sockaddr_storage peer_address() const override;

    // Live reload (ksp_handover), as TcpSocket's: save() waits until no caller uses the
    // descriptor (at most `limit`); a waiting caller leaves with Error(Moved), and a
    // stream's part-sent message and a connect under way are in the state.
    void save(SocketState &out, Clock::duration limit) override;
    static std::shared_ptr<PollSocket> restore(std::shared_ptr<Runtime> rt, const SocketState &s);

    ~PollSocket() override;

private:
    PollSocket(std::shared_ptr<Runtime> rt, int af, int type, int protocol);
    // Wraps a descriptor (non-blocking, close-on-exec) in a poll handle on the loop;
    // closes `fd` if that fails.
    static std::shared_ptr<PollSocket> adopt(std::shared_ptr<Runtime> rt, int fd, int af, int type, int protocol,
                                             State state);

    // Loop-thread halves.
    uv_handle_t *handle() override { return reinterpret_cast<uv_handle_t *>(&poll_); }
    void on_handle_closed() override;  // closes fd_ (under mu_)

    // Caller-thread helpers; "_locked" ones need mu_ held.
    std::string addr_text(const sockaddr *sa, socklen_t len) const;
    std::string receive(size_t max, const Deadline &deadline, const char *op, sockaddr_storage *from);
    // After a peek (MSG_PEEK | MSG_TRUNC) into `buf` said the next message has `size`
    // bytes (`cut`: the peek was cut): throws if it does not fit `max`, else takes it
    // into `buf`. False when it is gone (another holder of the descriptor took it).
    bool take_message_locked(std::string &buf, size_t size, bool cut, size_t max, const char *op,
                             sockaddr_storage *from);
    void transmit(std::string_view data, const sockaddr *to, socklen_t len, const Deadline &deadline,
                  const char *op);

    const int af_;  // type_ and protocol_: SocketBase's
    uv_poll_t poll_{};  // never started: the loop only tracks and closes the socket

    // Under mu_.
    State state_ = State::Open;  // SocketBase's closed_ stands for Closed
    // Live reload: a connect under way (see TcpSocket); a part-sent message is in
    // CallerIoSocket::writing_.
    bool connect_resume_ = false;
};

}  // namespace ksnet
