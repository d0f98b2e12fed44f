// ksnet/udp.hpp - a blocking UDP socket backed by a uv_udp_t on the runtime's loop.
//
// Every method may be called from any thread. libuv is only called on the loop thread;
// a blocking method hands its work there and waits with the interpreter lock released.
// What every socket shares (close, options, closed and moved states) is SocketBase's.
//
// Datagram boundaries are kept. Once the socket is bound (by bind(), connect() or the
// first send, which binds it implicitly) the loop receives continuously into a bounded
// per-socket queue of whole datagrams; a datagram arriving while the queue is full is
// dropped (the newest is dropped, the queued ones stay) and counted by dropped().
//
// Sizes:
//  - a datagram larger than UDP can carry (kMaxPayload4 = 65507 bytes over IPv4,
//    kMaxPayload6 = 65527 over IPv6) is refused with Error(Value) naming both sizes;
//    it is never cut.
//  - recv/recvfrom never truncate silently. If the next datagram is longer than `max`
//    they throw Error(Value) "recv: the datagram of N bytes does not fit in max M bytes"
//    and leave that datagram at the head of the queue, so a retry with a larger `max`
//    (or kAnySize) returns it. This differs from POSIX recv(), which would cut it.
//  - if the kernel itself cut a datagram (libuv's UV_UDP_PARTIAL: larger than the 64 KiB
//    receive buffer; cannot happen with UDP's limits above), the next recv reports it
//    as Error(Value) and the cut datagram is discarded.
// A receive error from the kernel (for a connected socket, ECONNREFUSED after an ICMP
// port-unreachable) is queued in order and thrown by the recv that reaches it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "ksnet/address.hpp"
#include "ksnet/handover.hpp"
#include "ksnet/socket_base.hpp"

namespace ksnet {

struct UdpSendOp;

class UdpSocket final : public SocketBase {
public:
    static constexpr size_t kAnySize = static_cast<size_t>(-1);  // recv: any datagram fits
    static constexpr size_t kMaxPayload4 = 65507;                // 65535 - 20 (IP) - 8 (UDP)
    static constexpr size_t kMaxPayload6 = 65527;                // 65535 - 8 (UDP)
    static constexpr size_t kQueueLimit = 4096;                  // datagrams waiting to be read
    static constexpr size_t kQueueBytes = 8 * 1024 * 1024;       // their payload bytes

    // Open: never bound. Bound: has a local address (bind() or an implicit bind by the
    // first send). Connected: connect() fixed the peer.
    enum class State { Open, Bound, Connected, Closed };

    // A new unbound socket of that family (INET4 or INET6).
    static std::shared_ptr<UdpSocket> create(std::shared_ptr<Runtime> rt, Family family);
    // A socket for `fd` (non-blocking, close-on-exec), in `state`; closes fd on failure.
    static std::shared_ptr<UdpSocket> adopt(std::shared_ptr<Runtime> rt, Family family, int fd, State state);

    void bind(const Endpoint &ep);
    // Fixes the peer (names resolved off the loop thread). Only datagrams from the peer
    // arrive afterwards; any queued before the connect stay queued.
    void connect(const Endpoint &ep, const Deadline &deadline = {});

    // Connected sockets only. Returns once the kernel has the datagram. On a timeout the
    // datagram may still be sent later (it was copied).
    void send(std::string_view data, const Deadline &deadline = {});
    // Unconnected sockets only.
    void sendto(std::string_view data, const Endpoint &to, const Deadline &deadline = {});
    void sendto(std::string_view data, const sockaddr_storage &to, const Deadline &deadline = {});

    // The next datagram (see the size rules above). Needs a bound or connected socket.
    std::string recv(size_t max, const Deadline &deadline = {});
    // The next datagram and its sender.
    std::pair<std::string, sockaddr_storage> recvfrom(size_t max, const Deadline &deadline = {});

    // close(), fileno(), set_option() and get_option(): see SocketBase.
    State state() const;
    static const char *state_name(State s);
    const char *state_text() const override;
    Family family() const { return family_; }
    size_t max_payload() const { return family_ == Family::Inet6 ? kMaxPayload6 : kMaxPayload4; }
    uint64_t dropped() const;  // datagrams dropped because the queue was full
    size_t queued() const;     // datagrams (and queued errors) waiting to be read

    // getsockname / getpeername; throw Error(State) when there is none, Error(Closed)
    // once closed.
    sockaddr_storage local_address() const override;
    sockaddr_storage peer_address() const override;

    // Live reload (ksp_handover), as TcpSocket's: save() stops receiving and waits for
    // the loop work in flight (binds, connects, sends), then fills the datagram part of
    // `out`; restore() makes the next version's socket from a duplicate of `s.fd`.
    void save(SocketState &out, Clock::duration limit) override;
    static std::shared_ptr<UdpSocket> restore(std::shared_ptr<Runtime> rt, Family family, const SocketState &s);

    ~UdpSocket() override;

private:
    struct Entry {
        std::string data;
        sockaddr_storage from{};
        int error = 0;         // a receive error, reported in order
        bool partial = false;  // the kernel cut this datagram
    };

    UdpSocket(std::shared_ptr<Runtime> rt, Family family);

    // Loop-thread halves.
    uv_handle_t *handle() override { return reinterpret_cast<uv_handle_t *>(&handle_); }
    void on_handover_cancelled_locked() override;  // receives again
    void start_receiving_on_loop();
    void send_on_loop(const std::shared_ptr<UdpSendOp> &op, const sockaddr *addr);
    static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
    static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const sockaddr *addr,
                        unsigned flags);
    static void complete_send(UdpSendOp &op, int status);

    // Caller-thread helpers; "_locked" ones need mu_ held.
    void check_family(const Endpoint &ep, const char *op) const;
    void check_size(size_t n, const char *op) const;
    void wait_or_throw(FunctionRef<bool()> pred, const Deadline &deadline, const char *op);
    void send_common(std::string_view data, const Endpoint *ep, const sockaddr_storage *addr,
                     const Deadline &deadline, const char *opname);
    Entry take(size_t max, const Deadline &deadline, const char *op);

    const Family family_;
    uv_udp_t handle_{};
    bool receiving_ = false;           // loop only
    std::unique_ptr<char[]> own_buf_;  // loop only, if the runtime's slab is too small

    // Under mu_.
    State state_ = State::Open;  // SocketBase's closed_ stands for Closed
    std::deque<Entry> queue_;
    int loop_ops_ = 0;  // binds, connects and sends posted to the loop and not yet done
    size_t queued_bytes_ = 0;
    uint64_t dropped_ = 0;
};

}  // namespace ksnet
