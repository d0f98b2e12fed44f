// ksnet/udp.hpp - a blocking UDP socket; its descriptor is owned by a uv_udp_t on the
// runtime's loop.
//
// Every method may be called from any thread. As for TcpSocket (see CallerIoSocket),
// the loop thread owns the handle (tracks it, closes it with uv_close), and the calls
// themselves are system calls on the caller's thread with the interpreter lock
// released: sendto() and recvmsg() on a blocking descriptor whose SO_RCVTIMEO/
// SO_SNDTIMEO bring them back every wait slice (non-blocking calls and poll() when the
// call has a deadline). So a datagram costs what it costs in C: no thread hands it to
// another. Datagrams wait in the kernel's
// receive queue (its size is the option rcvbuf) until a script reads them; the kernel
// drops what does not fit, as it does for any UDP socket.
//
// Datagram boundaries are kept. Sizes:
//  - a datagram larger than UDP can carry (kMaxPayload4 = 65507 bytes over IPv4,
//    kMaxPayload6 = 65527 over IPv6) is refused with Error(Value) naming both sizes;
//    it is never cut.
//  - recv/recvfrom never truncate silently. If the next datagram is longer than `max`
//    they throw Error(Value) "recv: the datagram of N bytes does not fit in max M bytes"
//    and keep that datagram (taken from the kernel, held by the socket) for the next
//    read, so a retry with a larger `max` (or kAnySize) returns it. This differs from
//    POSIX recv(), which would cut it.
// A receive error from the kernel (for a connected socket, ECONNREFUSED after an ICMP
// port-unreachable) is thrown by the next recv.
#pragma once

#include <uv.h>

#include <cstdint>
#include <vector>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "ksnet/address.hpp"
#include "ksnet/handover.hpp"
#include "ksnet/caller_io_socket.hpp"

namespace ksnet {

class UdpSocket final : public CallerIoSocket {
public:
    static constexpr size_t kAnySize = static_cast<size_t>(-1);  // recv: any datagram fits
    static constexpr size_t kMaxPayload4 = 65507;                // 65535 - 20 (IP) - 8 (UDP)
    static constexpr size_t kMaxPayload6 = 65527;                // 65535 - 8 (UDP)

    // Open: never bound. Bound: has a local address (bind() or an implicit bind by the
    // first send). Connected: connect() fixed the peer.
    enum class State { Open, Bound, Connected, Closed };

    // A new unbound socket of that family (INET4 or INET6).
    static std::shared_ptr<UdpSocket> create(std::shared_ptr<Runtime> rt, Family family);

    void bind(const Endpoint &ep);
    // Fixes the peer (a name is resolved off the loop thread). Only datagrams from the
    // peer arrive afterwards; one already held for a read stays.
    void connect(const Endpoint &ep, const Deadline &deadline = {});

    // Connected sockets only. Returns once the kernel has the datagram.
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
    // What one datagram to `to` can carry: IPv4's limit for an IPv4-mapped IPv6 address,
    // which the kernel sends over IPv4.
    static size_t max_payload_to(const sockaddr_storage &to);
    // Datagrams taken from the kernel and not yet returned: one too long for the read
    // that met it, or those an older version handed over.
    size_t held() const;

    // getsockname / getpeername; throw Error(State) when there is none, Error(Closed)
    // once closed.
    sockaddr_storage local_address() const override;
    sockaddr_storage peer_address() const override;

    // Live reload (ksp_handover), as TcpSocket's: save() waits until no caller uses the
    // descriptor (at most `limit`) and fills the datagram part of `out` (what the socket
    // holds; the kernel's queue moves with the descriptor); restore() makes the next
    // version's socket from a duplicate of `s.fd`.
    void save(SocketState &out, Clock::duration limit) override;
    static std::shared_ptr<UdpSocket> restore(std::shared_ptr<Runtime> rt, Family family, const SocketState &s);

    ~UdpSocket() override;

private:
    struct Datagram {
        std::string data;
        sockaddr_storage from{};
        int error = 0;  // a receive error an older version queued, reported in order
    };

    UdpSocket(std::shared_ptr<Runtime> rt, Family family);
    // A socket for `fd` (blocking, close-on-exec, with wait slices) in `state`; the loop
    // takes it into the handle before this returns. Closes fd on failure.
    static std::shared_ptr<UdpSocket> adopt(std::shared_ptr<Runtime> rt, Family family, int fd, State state);

    // Loop-thread halves.
    uv_handle_t *handle() override { return reinterpret_cast<uv_handle_t *>(&handle_); }

    // Caller-thread helpers; "_locked" ones need mu_ held.
    void check_family(const Endpoint &ep, const char *op) const;
    void check_size(size_t n, size_t limit, const char *op) const;
    Datagram receive(size_t max, const Deadline &deadline, const char *op);
    void transmit(std::string_view data, const Endpoint *ep, const sockaddr_storage *addr, const Deadline &deadline,
                  const char *op);

    const Family family_;
    uv_udp_t handle_{};

    // Under mu_.
    State state_ = State::Open;         // SocketBase's closed_ stands for Closed
    size_t peer_max_payload_ = 0;       // Connected: max_payload_to(the peer)
    std::unique_ptr<char[]> into_;      // what the reader receives into (room for any datagram)
    std::vector<Datagram> held_;        // see held(); oldest first, almost always empty
};

}  // namespace ksnet
