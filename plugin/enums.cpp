#include "enums.hpp"

#include "module.hpp"
#include "values.hpp"

namespace netplug {

namespace {

const ksp_enum_member kFamilies[] = {
    {"INET4", fk::INET4, "IPv4 addresses: a tuple (host, port). C-equivalent: AF_INET"},
    {"INET6", fk::INET6,
     "IPv6 addresses: a tuple (host, port, flow, scope) or (host, port). C-equivalent: AF_INET6"},
    {"BT", fk::BT,
     "Bluetooth addresses: a tuple (address, port), address 'XX:XX:XX:XX:XX:XX' and port the RFCOMM "
     "channel (1..30) or L2CAP PSM (odd). Where the kernel has no Bluetooth, SocketIO() raises "
     "OSError. C-equivalent: AF_BLUETOOTH"},
};

const ksp_enum_member kKinds[] = {
    {"RAW", sk::RAW, "Raw socket kind, which sends raw packets. C-equivalent: SOCK_RAW"},
    {"TCP", sk::TCP, "TCP/IP stream socket kind. C-equivalent: SOCK_STREAM"},
    {"UDP", sk::UDP, "UDP datagram socket kind. C-equivalent: SOCK_DGRAM"},
    {"PACKET", sk::PACKET, "Packet socket kind (deprecated). C-equivalent: SOCK_PACKET"},
    {"PACKET_SEQ", sk::PACKET_SEQ, "Sequential packet socket kind. C-equivalent: SOCK_SEQPACKET"},
};

const ksp_enum_member kProtocols[] = {
    {"AUTO", pk::AUTO, "Automatic protocol (a safe default). C-equivalent: 0"},
    {"BT_L2CAP", pk::BT_L2CAP,
     "Bluetooth L2CAP. C-equivalent: BTPROTO_L2CAP (value 0x100 here: BTPROTO_L2CAP is 0, like AUTO)"},
    {"BT_RFCOMM", pk::BT_RFCOMM, "Bluetooth RFCOMM. C-equivalent: BTPROTO_RFCOMM"},
    {"ICMP", pk::ICMP, "ICMP, for sk=RAW with fk=INET4 (an addition to the spec). C-equivalent: IPPROTO_ICMP"},
    {"ICMPV6", pk::ICMPV6,
     "ICMPv6, for sk=RAW with fk=INET6 (an addition to the spec). C-equivalent: IPPROTO_ICMPV6"},
    {"TCP", pk::TCP, "TCP, for sk=RAW (or sk=TCP) (an addition to the spec). C-equivalent: IPPROTO_TCP"},
    {"UDP", pk::UDP, "UDP, for sk=RAW (or sk=UDP) (an addition to the spec). C-equivalent: IPPROTO_UDP"},
    {"RAW", pk::RAW,
     "Raw IP: send whole IP packets with sk=RAW (an addition to the spec). C-equivalent: IPPROTO_RAW"},
};

template <size_t N>
void add_enum(const ksp_host *h, ksp_value module, const char *name, const char *doc,
              const ksp_enum_member (&members)[N], ksp_value &keep) {
    Ref e = checked(h, h->enum_new(name, doc, members, N));
    if (h->module_add(module, name, e.get()) < 0) throw AlreadyRaised{};
    keep = e.release();
}

}  // namespace

void add_enums(NetModule &m, ksp_value module) {
    add_enum(m.host, module, "FK", "Family kind: the type of address of a socket.", kFamilies, m.fk_enum);
    add_enum(m.host, module, "SK", "Socket kind: stream, datagram, raw, ...", kKinds, m.sk_enum);
    add_enum(m.host, module, "PK", "Protocol kind.", kProtocols, m.pk_enum);
}

ksnet::Family to_family(int64_t v) {
    if (v == fk::INET6) return ksnet::Family::Inet6;
    if (v == fk::BT) return ksnet::Family::Bluetooth;
    return ksnet::Family::Inet4;
}

ksnet::Kind to_kind(int64_t v) {
    switch (v) {
    case sk::UDP: return ksnet::Kind::Udp;
    case sk::RAW: return ksnet::Kind::Raw;
    case sk::PACKET: return ksnet::Kind::Packet;
    case sk::PACKET_SEQ: return ksnet::Kind::PacketSeq;
    default: return ksnet::Kind::Tcp;
    }
}

ksnet::Protocol to_protocol(int64_t v) {
    switch (v) {
    case pk::BT_L2CAP: return ksnet::Protocol::BtL2cap;
    case pk::BT_RFCOMM: return ksnet::Protocol::BtRfcomm;
    case pk::ICMP: return ksnet::Protocol::Icmp;
    case pk::ICMPV6: return ksnet::Protocol::Icmpv6;
    case pk::TCP: return ksnet::Protocol::IpTcp;
    case pk::UDP: return ksnet::Protocol::IpUdp;
    case pk::RAW: return ksnet::Protocol::IpRaw;
    default: return ksnet::Protocol::Auto;
    }
}

int64_t from_family(ksnet::Family f) {
    switch (f) {
    case ksnet::Family::Inet4: return fk::INET4;
    case ksnet::Family::Inet6: return fk::INET6;
    case ksnet::Family::Bluetooth: return fk::BT;
    }
    return fk::INET4;
}

int64_t from_kind(ksnet::Kind k) {
    switch (k) {
    case ksnet::Kind::Tcp: return sk::TCP;
    case ksnet::Kind::Udp: return sk::UDP;
    case ksnet::Kind::Raw: return sk::RAW;
    case ksnet::Kind::Packet: return sk::PACKET;
    case ksnet::Kind::PacketSeq: return sk::PACKET_SEQ;
    }
    return sk::TCP;
}

int64_t from_protocol(ksnet::Protocol p) {
    switch (p) {
    case ksnet::Protocol::Auto: return pk::AUTO;
    case ksnet::Protocol::BtL2cap: return pk::BT_L2CAP;
    case ksnet::Protocol::BtRfcomm: return pk::BT_RFCOMM;
    case ksnet::Protocol::Icmp: return pk::ICMP;
    case ksnet::Protocol::Icmpv6: return pk::ICMPV6;
    case ksnet::Protocol::IpTcp: return pk::TCP;
    case ksnet::Protocol::IpUdp: return pk::UDP;
    case ksnet::Protocol::IpRaw: return pk::RAW;
    }
    return pk::AUTO;
}

}  // namespace netplug
