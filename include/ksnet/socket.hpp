// ksnet/socket.hpp - one socket of any family, kind and protocol: what the binding's
// SocketIO wraps. It checks the combination before any system call and forwards each
// operation to the implementation for that kind:
//   SK.TCP on INET4/INET6        -> TcpSocket  (uv_tcp_t, a byte stream)
//   SK.UDP on INET4/INET6        -> UdpSocket  (uv_udp_t, datagrams)
//   everything else (RAW, PACKET, PACKET_SEQ, Bluetooth) -> PollSocket (an OS socket
//                                   watched by uv_poll_t)
// What every kind shares (close, options, fileno, closed, addresses, live reload) it
// reaches through their one base, SocketBase; the rest through the kind's own class.
// Each socket also carries a default timeout that every blocking call uses unless the
// call passes its own.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ksnet/address.hpp"
#include "ksnet/handover.hpp"
#include "ksnet/io_chunk.hpp"
#include "ksnet/options.hpp"
#include "ksnet/runtime.hpp"

namespace ksnet {

class SocketBase;
class TcpSocket;
class UdpSocket;
class PollSocket;

enum class Kind { Tcp, Udp, Raw, Packet, PacketSeq };
enum class Protocol { Auto, BtL2cap, BtRfcomm, Icmp, Icmpv6, IpTcp, IpUdp, IpRaw };

const char *kind_name(Kind k);          // "TCP", ...
const char *protocol_name(Protocol p);  // "AUTO", ...

// A socket address taken apart for a script: host text and port (channel or PSM for
// Bluetooth; 0 for raw IP sockets, which have no ports).
struct NamePort {
    std::string host;
    unsigned port = 0;
};

class Socket {
public:
    static constexpr size_t kAll = static_cast<size_t>(-1);  // read(): to end / any size

    // Throws Error(Value) for a combination that makes no sense and
    // Error(Unsupported) for one this system cannot do.
    static std::unique_ptr<Socket> open(std::shared_ptr<Runtime> rt, Family family, Kind kind,
                                        Protocol protocol);
    ~Socket();

    Family family() const { return family_; }
    Kind kind() const { return kind_; }
    Protocol protocol() const { return protocol_; }
    // A byte stream (TCP, Bluetooth RFCOMM): read() to end, line iteration, shutdown.
    bool is_stream() const;

    // Endpoints: (host, port[, flow, scope]) for IP; for Bluetooth host is the device
    // address "XX:XX:XX:XX:XX:XX" and port the RFCOMM channel or L2CAP PSM.
    void bind(const Endpoint &ep);
    void connect(const Endpoint &ep, const Deadline &dl);
    void listen(int backlog);
    std::pair<std::unique_ptr<Socket>, std::string> accept(const Deadline &dl);

    // Streams: up to `max` bytes as soon as any arrive (kAll: to end of stream).
    // Datagram kinds: the next datagram, never cut (too long for `max` is an error).
    std::string read(size_t max, const Deadline &dl);
    // Streams only: the same as read(cap) into `into`, for a caller that owns the
    // memory (a bytes object no script can see yet); returns the bytes written, 0 at
    // end of stream. At most kIoChunk at a time.
    size_t read_into(char *into, size_t cap, const Deadline &dl);
    std::optional<std::string> read_line(const Deadline &dl);  // streams only
    // The same without a copy: the line goes to `take` (see TcpSocket::read_line_to).
    bool read_line_to(FunctionRef<void(std::string_view)> take, const Deadline &dl);
    void write(std::string_view data, const Deadline &dl);     // a stream: all; else one datagram
    void sendto(std::string_view data, const Endpoint &to, const Deadline &dl);
    std::pair<std::string, NamePort> recvfrom(size_t max, const Deadline &dl);
    void shutdown_write(const Deadline &dl);  // streams only

    void set_option(Option o, int64_t value);
    int64_t get_option(Option o) const;

    void close();
    bool eof();
    bool closed() const;
    // The OS descriptor (for a script to read, as kscript's `_fd`; the socket keeps
    // owning it), -1 once closed.
    int fileno() const;
    const char *state_name() const;

    // nullopt where there is none (never bound / not connected / closed).
    std::optional<NamePort> local_name() const;
    std::optional<NamePort> peer_name() const;
    // "fk=INET4 sk=TCP state=connected local=127.0.0.1:5000 peer=127.0.0.1:41234"
    std::string describe() const;

    // The default timeout of blocking calls; nullopt waits as long as it takes.
    void set_timeout(std::optional<Clock::duration> t);
    std::optional<Clock::duration> timeout() const;
    // The deadline of the script's current call: `override_timeout` if given, else the
    // default, counted from when the call began (Runtime::call_began).
    // Inline: every blocking call asks, and most sockets have no timeout (no clock read).
    Deadline deadline(std::optional<Clock::duration> override_timeout = std::nullopt) const {
        if (!override_timeout && timeout_ns_.load(std::memory_order_relaxed) < 0) return std::nullopt;
        return deadline_from(override_timeout);
    }

    // Live reload (ksp_handover), between Runtime::begin_handover and end_handover:
    // save() waits until no call uses the descriptor (at most `limit`) and describes the
    // socket for the next version, which restore()s it on its own runtime with its own
    // duplicate of the descriptor. end_handover(committed) tells this socket whether it
    // moved: calls still on their way back then raise Error(Moved) (the host calls the
    // next version), and close() leaves the connection to the duplicate.
    // Throws Error(Unsupported) for kinds that cannot move (raw and packet sockets).
    SocketState save(Clock::duration limit);
    static std::unique_ptr<Socket> restore(std::shared_ptr<Runtime> rt, const SocketState &s);
    void end_handover(bool committed);

private:
    // Which class serves this socket: set with base_, never changed.
    enum class Impl : uint8_t { Tcp, Udp, Poll };

    Socket(Family f, Kind k, Protocol p) : family_(f), kind_(k), protocol_(p) {}
    void set_impl(Impl impl, std::shared_ptr<SocketBase> base);
    // The kind's own class, for what only it has (impl_ tells which).
    TcpSocket &tcp() const;
    UdpSocket &udp() const;
    PollSocket &poll() const;
    NamePort name_port(const sockaddr_storage &ss) const;
    std::optional<NamePort> name_of(bool local) const;  // none without an address
    Deadline deadline_from(std::optional<Clock::duration> override_timeout) const;
    std::string combination() const;
    [[noreturn]] void not_for_kind(const char *op, const char *why) const;
    // listen() and accept(): not for a kind that carries datagrams (UDP, RAW, PACKET).
    void refuse_unless_connections(const char *op) const;

    Family family_;
    Kind kind_;
    Protocol protocol_;
    std::atomic<int64_t> timeout_ns_{-1};  // -1: none
    Impl impl_ = Impl::Poll;
    std::shared_ptr<SocketBase> base_;
    std::shared_ptr<Runtime> rt_;  // for deadlines, and resolving the addresses of poll sockets
};

}  // namespace ksnet
