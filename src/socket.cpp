#include "ksnet/socket.hpp"

#include "ksnet/error.hpp"

namespace ksnet {

const char *kind_name(Kind k) {
    switch (k) {
    case Kind::Tcp: return "TCP";
    case Kind::Udp: return "UDP";
    case Kind::Raw: return "RAW";
    case Kind::Packet: return "PACKET";
    case Kind::PacketSeq: return "PACKET_SEQ";
    }
    return "?";
}

const char *protocol_name(Protocol p) {
    switch (p) {
    case Protocol::Auto: return "AUTO";
    case Protocol::BtL2cap: return "BT_L2CAP";
    case Protocol::BtRfcomm: return "BT_RFCOMM";
    }
    return "?";
}

namespace {

std::string combination(Family f, Kind k, Protocol p) {
    return std::string("fk=") + family_name(f) + ", sk=" + kind_name(k) + ", pk=" + protocol_name(p);
}

bool is_bluetooth_protocol(Protocol p) { return p == Protocol::BtL2cap || p == Protocol::BtRfcomm; }

}  // namespace

std::unique_ptr<Socket> Socket::open(std::shared_ptr<Runtime> rt, Family family, Kind kind,
                                     Protocol protocol) {
    std::string combo = combination(family, kind, protocol);
    if (is_bluetooth_protocol(protocol) && family != Family::Bluetooth) {
        throw Error(ErrorKind::Value, "SocketIO(" + combo + "): Bluetooth protocols need fk=BT");
    }
    if (family == Family::Bluetooth) {
        throw Error(ErrorKind::Unsupported,
                    "SocketIO(" + combo + "): Bluetooth sockets are not supported by this version of net");
    }
    if (kind != Kind::Tcp) {
        throw Error(ErrorKind::Unsupported, "SocketIO(" + combo + "): " + kind_name(kind) +
                                                " sockets are not supported by this version of net "
                                                "(supported: sk=TCP)");
    }
    auto tcp = TcpSocket::create(std::move(rt), family);
    return std::unique_ptr<Socket>(new Socket(family, kind, protocol, std::move(tcp)));
}

std::pair<std::unique_ptr<Socket>, std::string> Socket::accept(const Deadline &dl) {
    auto [client, name] = tcp_->accept(dl);
    std::unique_ptr<Socket> s(new Socket(family_, kind_, protocol_, std::move(client)));
    return {std::move(s), std::move(name)};
}

std::optional<sockaddr_storage> Socket::local_address() const {
    try {
        return tcp_->local_address();
    } catch (const Error &) {
        return std::nullopt;
    }
}

std::optional<sockaddr_storage> Socket::peer_address() const {
    try {
        return tcp_->peer_address();
    } catch (const Error &) {
        return std::nullopt;
    }
}

std::string Socket::describe() const {
    std::string out = std::string("fk=") + family_name(family_) + " sk=" + kind_name(kind_) +
                      " state=" + state_name();
    if (auto a = local_address()) out += " local=" + format_sockaddr(reinterpret_cast<sockaddr *>(&*a));
    if (auto a = peer_address()) out += " peer=" + format_sockaddr(reinterpret_cast<sockaddr *>(&*a));
    return out;
}

}  // namespace ksnet
