// ksnet/socket.hpp - one socket of any family, kind and protocol: what the binding's
// SocketIO wraps. It checks the combination before any system call and forwards each
// operation to the implementation for that kind (TcpSocket for SK.TCP).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ksnet/address.hpp"
#include "ksnet/runtime.hpp"
#include "ksnet/tcp.hpp"

namespace ksnet {

enum class Kind { Tcp, Udp, Raw, Packet, PacketSeq };
enum class Protocol { Auto, BtL2cap, BtRfcomm };

const char *kind_name(Kind k);          // "TCP", ...
const char *protocol_name(Protocol p);  // "AUTO", ...

class Socket {
public:
    // Throws Error(Value) for a combination that makes no sense and
    // Error(Unsupported) for one this system or version cannot do.
    static std::unique_ptr<Socket> open(std::shared_ptr<Runtime> rt, Family family, Kind kind,
                                        Protocol protocol);

    Family family() const { return family_; }
    Kind kind() const { return kind_; }
    Protocol protocol() const { return protocol_; }

    void bind(const Endpoint &ep) { tcp_->bind(ep); }
    void connect(const Endpoint &ep, const Deadline &dl = {}) { tcp_->connect(ep, dl); }
    void listen(int backlog) { tcp_->listen(backlog); }
    std::pair<std::unique_ptr<Socket>, std::string> accept(const Deadline &dl = {});
    std::string read(size_t max, const Deadline &dl = {}) { return tcp_->read(max, dl); }
    std::optional<std::string> read_line(const Deadline &dl = {}) { return tcp_->read_line(dl); }
    void write(std::string_view data, const Deadline &dl = {}) { tcp_->write(data, dl); }
    void close() { tcp_->close(); }
    bool eof() { return tcp_->eof(); }
    bool closed() const { return tcp_->state() == TcpSocket::State::Closed; }
    const char *state_name() const { return TcpSocket::state_name(tcp_->state()); }

    // nullopt where there is none (never bound / not connected / closed).
    std::optional<sockaddr_storage> local_address() const;
    std::optional<sockaddr_storage> peer_address() const;
    // "<fk=INET4 sk=TCP state=connected local=127.0.0.1:5000 peer=127.0.0.1:41234>" body
    std::string describe() const;

private:
    Socket(Family f, Kind k, Protocol p, std::shared_ptr<TcpSocket> tcp)
        : family_(f), kind_(k), protocol_(p), tcp_(std::move(tcp)) {}

    Family family_;
    Kind kind_;
    Protocol protocol_;
    std::shared_ptr<TcpSocket> tcp_;
};

}  // namespace ksnet
