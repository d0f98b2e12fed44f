#include "ksnet/socket.hpp"

#include <netinet/in.h>

#include <cstring>

#include "ksnet/bluetooth.hpp"
#include "ksnet/error.hpp"
#include "ksnet/poll_socket.hpp"
#include "ksnet/tcp.hpp"
#include "ksnet/udp.hpp"
#include "resolver.hpp"

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
    case Protocol::Icmp: return "ICMP";
    case Protocol::Icmpv6: return "ICMPV6";
    case Protocol::IpTcp: return "TCP";
    case Protocol::IpUdp: return "UDP";
    case Protocol::IpRaw: return "RAW";
    }
    return "?";
}

namespace {

bool is_bluetooth_protocol(Protocol p) { return p == Protocol::BtL2cap || p == Protocol::BtRfcomm; }

int os_type(Kind k) {
    switch (k) {
    case Kind::Tcp: return SOCK_STREAM;
    case Kind::Udp: return SOCK_DGRAM;
    case Kind::Raw: return SOCK_RAW;
    case Kind::Packet: return SOCK_PACKET;
    case Kind::PacketSeq: return SOCK_SEQPACKET;
    }
    return 0;
}

int os_protocol(Protocol p) {
    switch (p) {
    case Protocol::Auto: return 0;
    case Protocol::BtL2cap: return bt::kProtoL2cap;
    case Protocol::BtRfcomm: return bt::kProtoRfcomm;
    case Protocol::Icmp: return IPPROTO_ICMP;
    case Protocol::Icmpv6: return IPPROTO_ICMPV6;
    case Protocol::IpTcp: return IPPROTO_TCP;
    case Protocol::IpUdp: return IPPROTO_UDP;
    case Protocol::IpRaw: return IPPROTO_RAW;
    }
    return 0;
}

std::string combination_text(Family f, Kind k, Protocol p) {
    return std::string("fk=") + family_name(f) + ", sk=" + kind_name(k) + ", pk=" + protocol_name(p);
}

// The protocol a Bluetooth socket of this kind uses, or throws for a nonsense pair.
Protocol bluetooth_protocol(Family f, Kind k, Protocol p) {
    auto refuse = [&](const std::string &why) -> Protocol {
        throw Error(ErrorKind::Value, "SocketIO(" + combination_text(f, k, p) + "): " + why);
    };
    if (p != Protocol::Auto && !is_bluetooth_protocol(p)) refuse("fk=BT needs pk=AUTO, BT_RFCOMM or BT_L2CAP");
    if (k == Kind::Packet) refuse("SK.PACKET is not a Bluetooth socket kind");
    if (p == Protocol::BtRfcomm && k != Kind::Tcp) refuse("BT_RFCOMM is a stream protocol: it needs sk=TCP");
    if (p == Protocol::Auto) return k == Kind::Tcp ? Protocol::BtRfcomm : Protocol::BtL2cap;
    return p;
}

// Checks an IP combination before any system call.
void check_ip_combination(Family f, Kind k, Protocol p) {
    auto refuse = [&](const std::string &why) {
        throw Error(ErrorKind::Value, "SocketIO(" + combination_text(f, k, p) + "): " + why);
    };
    if (is_bluetooth_protocol(p)) refuse("Bluetooth protocols need fk=BT");
    if (k == Kind::Tcp && p != Protocol::Auto && p != Protocol::IpTcp) refuse("sk=TCP needs pk=AUTO or TCP");
    if (k == Kind::Udp && p != Protocol::Auto && p != Protocol::IpUdp) refuse("sk=UDP needs pk=AUTO or UDP");
    if (k == Kind::Raw && p == Protocol::Auto) {
        refuse("sk=RAW needs the IP protocol to carry: pk=ICMP, ICMPV6, TCP, UDP or RAW");
    }
    if (p == Protocol::Icmp && f != Family::Inet4) refuse("ICMP is IPv4's: use pk=ICMPV6 with fk=INET6");
    if (p == Protocol::Icmpv6 && f != Family::Inet6) refuse("ICMPV6 is IPv6's: use pk=ICMP with fk=INET4");
}

}  // namespace

std::unique_ptr<Socket> Socket::open(std::shared_ptr<Runtime> rt, Family family, Kind kind,
                                     Protocol protocol) {
    std::unique_ptr<Socket> s(new Socket(family, kind, protocol));
    s->rt_ = rt;
    if (family == Family::Bluetooth) {
        Protocol p = bluetooth_protocol(family, kind, protocol);
        s->protocol_ = p;
        s->set_impl(Impl::Poll, PollSocket::create(std::move(rt), bt::kAfBluetooth, os_type(kind), os_protocol(p)));
        return s;
    }
    check_ip_combination(family, kind, protocol);
    if (kind == Kind::Tcp) {
        s->set_impl(Impl::Tcp, TcpSocket::create(std::move(rt), family));
    } else if (kind == Kind::Udp) {
        s->set_impl(Impl::Udp, UdpSocket::create(std::move(rt), family));
    } else {
        s->set_impl(Impl::Poll,
                    PollSocket::create(std::move(rt), family_to_af(family), os_type(kind), os_protocol(protocol)));
    }
    return s;
}

Socket::~Socket() = default;

void Socket::set_impl(Impl impl, std::shared_ptr<SocketBase> base) {
    impl_ = impl;
    base_ = std::move(base);
}

TcpSocket &Socket::tcp() const { return static_cast<TcpSocket &>(*base_); }
UdpSocket &Socket::udp() const { return static_cast<UdpSocket &>(*base_); }
PollSocket &Socket::poll() const { return static_cast<PollSocket &>(*base_); }

bool Socket::is_stream() const { return impl_ == Impl::Tcp; }

std::string Socket::combination() const { return combination_text(family_, kind_, protocol_); }

void Socket::not_for_kind(const char *op, const char *why) const {
    throw Error(ErrorKind::State, std::string(op) + ": not for a " + kind_name(kind_) + " socket (" + why + ")");
}

// ---- addresses ----

namespace {

socklen_t sockaddr_for(SocketBase &socket, Family family, Protocol protocol, int type, const Endpoint &ep,
                       bool passive, const Deadline &dl, const char *op, sockaddr_storage &out) {
    if (family == Family::Bluetooth) {
        if (protocol == Protocol::BtRfcomm) return bt::make_rfcomm_sockaddr(ep.host, ep.port, out, passive);
        return bt::make_l2cap_sockaddr(ep.host, ep.port, out, passive);
    }
    return socket.resolve_endpoint(ep, type, passive, dl, op, out);
}

}  // namespace

void Socket::bind(const Endpoint &ep) {
    if (impl_ == Impl::Tcp) return tcp().bind(ep);
    if (impl_ == Impl::Udp) return udp().bind(ep);
    sockaddr_storage ss{};
    socklen_t len = sockaddr_for(*base_, family_, protocol_, os_type(kind_), ep, true, {}, "bind", ss);
    poll().bind(reinterpret_cast<sockaddr *>(&ss), len);
}

void Socket::connect(const Endpoint &ep, const Deadline &dl) {
    if (impl_ == Impl::Tcp) return tcp().connect(ep, dl);
    if (impl_ == Impl::Udp) return udp().connect(ep, dl);
    sockaddr_storage ss{};
    socklen_t len = sockaddr_for(*base_, family_, protocol_, os_type(kind_), ep, false, dl, "connect", ss);
    poll().connect(reinterpret_cast<sockaddr *>(&ss), len, dl);
}

void Socket::refuse_unless_connections(const char *op) const {
    if (kind_ == Kind::Udp) not_for_kind(op, "UDP is connectionless: use recvfrom() and sendto()");
    if (kind_ == Kind::Raw || kind_ == Kind::Packet) {
        not_for_kind(op, "it carries datagrams, not connections: use recvfrom() and sendto()");
    }
}

void Socket::listen(int backlog) {
    if (impl_ == Impl::Tcp) return tcp().listen(backlog);
    refuse_unless_connections("listen");
    poll().listen(backlog);
}

std::pair<std::unique_ptr<Socket>, std::string> Socket::accept(const Deadline &dl) {
    std::unique_ptr<Socket> s(new Socket(family_, kind_, protocol_));
    s->rt_ = rt_;
    s->timeout_ns_.store(timeout_ns_.load());
    if (impl_ == Impl::Tcp) {
        auto [client, name] = tcp().accept(dl);
        s->set_impl(Impl::Tcp, std::move(client));
        return {std::move(s), std::move(name)};
    }
    refuse_unless_connections("accept");
    auto [client, addr] = poll().accept(dl);
    s->set_impl(Impl::Poll, std::move(client));
    std::string name = format_any_sockaddr(reinterpret_cast<sockaddr *>(&addr), sizeof addr, os_type(kind_),
                                           os_protocol(protocol_));
    return {std::move(s), std::move(name)};
}

// ---- data ----

std::string Socket::read(size_t max, const Deadline &dl) {
    if (impl_ == Impl::Tcp) return tcp().read(max, dl);
    if (impl_ == Impl::Udp) return udp().recv(max, dl);
    return poll().recv(max, dl);
}

size_t Socket::read_into(char *into, size_t cap, const Deadline &dl) {
    if (!is_stream()) not_for_kind("read_into", "datagrams are read whole: use read()");
    cap = std::min(cap, kIoChunk);
    if (impl_ == Impl::Tcp) return tcp().read_into(into, cap, dl);
    std::string got = poll().recv(cap, dl);  // Bluetooth streams: rare enough for a copy
    std::memcpy(into, got.data(), got.size());
    return got.size();
}

std::optional<std::string> Socket::read_line(const Deadline &dl) {
    if (impl_ != Impl::Tcp) not_for_kind("line iteration", "lines need a byte stream: use read() for whole messages");
    return tcp().read_line(dl);
}

bool Socket::read_line_to(FunctionRef<void(std::string_view)> take, const Deadline &dl) {
    if (impl_ != Impl::Tcp) not_for_kind("line iteration", "lines need a byte stream: use read() for whole messages");
    return tcp().read_line_to(take, dl);
}

void Socket::write(std::string_view data, const Deadline &dl) {
    if (impl_ == Impl::Tcp) return tcp().write(data, dl);
    if (impl_ == Impl::Udp) return udp().send(data, dl);
    poll().send(data, dl);
}

void Socket::sendto(std::string_view data, const Endpoint &to, const Deadline &dl) {
    if (impl_ == Impl::Tcp) not_for_kind("sendto", "a TCP socket has one peer: connect() and write()");
    if (impl_ == Impl::Udp) return udp().sendto(data, to, dl);
    sockaddr_storage ss{};
    socklen_t len = sockaddr_for(*base_, family_, protocol_, os_type(kind_), to, false, dl, "sendto", ss);
    poll().sendto(data, reinterpret_cast<sockaddr *>(&ss), len, dl);
}

std::pair<std::string, NamePort> Socket::recvfrom(size_t max, const Deadline &dl) {
    if (impl_ == Impl::Tcp) not_for_kind("recvfrom", "a TCP socket has one peer: use read()");
    auto [data, from] = impl_ == Impl::Udp ? udp().recvfrom(max, dl) : poll().recvfrom(max, dl);
    return {std::move(data), name_port(from)};
}

void Socket::shutdown_write(const Deadline &dl) {
    if (impl_ != Impl::Tcp) not_for_kind("shutdown", "only a byte stream can be half-closed");
    tcp().shutdown_write(dl);
}

void Socket::set_option(Option o, int64_t value) {
    if (o == Option::LineMax && impl_ != Impl::Tcp) not_for_kind("setopt linemax", "only a byte stream has lines");
    base_->set_option(o, value);
}

int64_t Socket::get_option(Option o) const {
    if (o == Option::LineMax && impl_ != Impl::Tcp) not_for_kind("getopt linemax", "only a byte stream has lines");
    return base_->get_option(o);
}

// ---- state ----

void Socket::close() { base_->close(); }

bool Socket::eof() {
    if (impl_ == Impl::Tcp) return tcp().eof();
    return closed();  // datagrams have no end of stream
}

bool Socket::closed() const { return base_->closed(); }

int Socket::fileno() const { return base_->fileno(); }

const char *Socket::state_name() const { return base_->state_text(); }

NamePort Socket::name_port(const sockaddr_storage &ss) const {
    auto *sa = reinterpret_cast<const sockaddr *>(&ss);
    if (family_ == Family::Bluetooth) {
        bt::BtEndpoint e = bt::decode_sockaddr(sa, os_protocol(protocol_));
        return {e.address, e.port};
    }
    if (kind_ == Kind::Packet) return {packet_device(sa), 0};
    unsigned port = kind_ == Kind::Tcp || kind_ == Kind::Udp ? sockaddr_port(sa) : 0;
    return {format_host(sa), port};
}

namespace {
std::optional<sockaddr_storage> address_of(const SocketBase &s, bool local) {
    try {
        return local ? s.local_address() : s.peer_address();
    } catch (const Error &) {
        return std::nullopt;
    }
}
}  // namespace

std::optional<NamePort> Socket::name_of(bool local) const {
    auto a = address_of(*base_, local);
    if (!a) return std::nullopt;
    NamePort np = name_port(*a);
    if (kind_ == Kind::Packet && np.host.empty()) return std::nullopt;  // on no device
    return np;
}

std::optional<NamePort> Socket::local_name() const { return name_of(true); }

std::optional<NamePort> Socket::peer_name() const { return name_of(false); }

std::string Socket::describe() const {
    std::string out = std::string("fk=") + family_name(family_) + " sk=" + kind_name(kind_);
    if (protocol_ != Protocol::Auto) out += std::string(" pk=") + protocol_name(protocol_);
    out += std::string(" state=") + state_name();
    auto text = [&](const NamePort &np) {
        bool v6 = family_ == Family::Inet6;
        std::string host = v6 ? "[" + np.host + "]" : np.host;
        if (kind_ == Kind::Tcp || kind_ == Kind::Udp || family_ == Family::Bluetooth) {
            return host + ":" + std::to_string(np.port);
        }
        return host;
    };
    if (auto a = local_name()) out += " local=" + text(*a);
    if (auto a = peer_name()) out += " peer=" + text(*a);
    return out;
}

// ---- timeouts ----

// ---- live reload ----

SocketState Socket::save(Clock::duration limit) {
    SocketState out;
    out.family = static_cast<uint8_t>(family_);
    out.kind = static_cast<uint8_t>(kind_);
    out.protocol = static_cast<uint8_t>(protocol_);
    out.timeout_ns = timeout_ns_.load();
    base_->save(out, limit);
    return out;
}

std::unique_ptr<Socket> Socket::restore(std::shared_ptr<Runtime> rt, const SocketState &s) {
    auto family = static_cast<Family>(s.family);
    auto kind = static_cast<Kind>(s.kind);
    if (family > Family::Bluetooth || kind > Kind::PacketSeq ||
        ((kind == Kind::Tcp || kind == Kind::Udp) && family == Family::Bluetooth)) {
        throw Error(ErrorKind::Value, "socket state: family " + std::to_string(s.family) + " and kind " +
                                          std::to_string(s.kind) + " are no socket of net");
    }
    std::unique_ptr<Socket> sock(new Socket(family, kind, static_cast<Protocol>(s.protocol)));
    sock->rt_ = rt;
    sock->timeout_ns_.store(s.timeout_ns);
    if (family == Family::Bluetooth || (kind != Kind::Tcp && kind != Kind::Udp)) {
        sock->set_impl(Impl::Poll, PollSocket::restore(std::move(rt), s));
    } else if (kind == Kind::Tcp) {
        sock->set_impl(Impl::Tcp, TcpSocket::restore(std::move(rt), family, s));
    } else {
        sock->set_impl(Impl::Udp, UdpSocket::restore(std::move(rt), family, s));
    }
    return sock;
}

void Socket::end_handover(bool committed) { base_->end_handover(committed); }

void Socket::set_timeout(std::optional<Clock::duration> t) {
    timeout_ns_.store(t ? std::chrono::duration_cast<std::chrono::nanoseconds>(*t).count() : -1);
}

std::optional<Clock::duration> Socket::timeout() const {
    int64_t ns = timeout_ns_.load();
    if (ns < 0) return std::nullopt;
    return std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns));
}

Deadline Socket::deadline_from(std::optional<Clock::duration> override_timeout) const {
    auto t = override_timeout ? override_timeout : timeout();
    if (!t) return std::nullopt;
    return rt_->call_began() + *t;
}

}  // namespace ksnet
