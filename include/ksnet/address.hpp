// ksnet/address.hpp - socket addresses: checking, parsing literals, formatting.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "ksnet/function_ref.hpp"

namespace ksnet {

enum class Family { Inet4, Inet6, Bluetooth };

const char *family_name(Family f);  // "INET4", "INET6", "BT"
int family_to_af(Family f);         // AF_INET, ...

// An address as a script gives it: a host name or literal and a port, plus the IPv6
// flow information and scope id. The host is resolved later, on the loop thread.
struct Endpoint {
    Family family = Family::Inet4;
    std::string host;   // "" means any address (bind) / loopback is not implied
    uint16_t port = 0;
    uint32_t flow = 0;
    uint32_t scope = 0;
};

// Throw ksnet::Error(Value) naming `what` unless the value fits.
// `what` names the argument in the error; it is only put together for an error.
uint16_t check_port(int64_t port, FunctionRef<std::string()> what);
void check_host(std::string_view host, FunctionRef<std::string()> what);  // <=255 bytes, no NUL
inline uint16_t check_port(int64_t port, std::string_view what) {
    return check_port(port, [what] { return std::string(what); });
}
inline void check_host(std::string_view host, std::string_view what) {
    check_host(host, [what] { return std::string(what); });
}

// Fills `out` if ep.host is a numeric address of ep.family ("" = any address). An IPv6
// host may end in "%zone", an interface's name or index, which gives the scope unless
// ep.scope does. Returns false for names that need resolving.
bool parse_numeric(const Endpoint &ep, sockaddr_storage &out, socklen_t &len);

// A network interface's name ("" if there is none with that index), and the index of a
// zone as an IPv6 host writes it after '%': a name or a number (0 if there is none).
std::string interface_name(unsigned index);
uint32_t interface_index(const std::string &zone);
// The device a SOCK_PACKET address (struct sockaddr_pkt) names, "" for none. Its family
// field holds the device's hardware type (ARPHRD_*) on receive, not AF_PACKET.
std::string packet_device(const sockaddr *sa);

// getsockname / getpeername of `fd`. Throw Error(State) "getpeername: socket is not
// connected" for a socket without a peer, os_error for anything else.
sockaddr_storage local_sockaddr(int fd);
sockaddr_storage peer_sockaddr(int fd);
// The same without throwing: family 0 (AF_UNSPEC) if it has no peer (any more).
sockaddr_storage peer_sockaddr_or_none(int fd);

// "127.0.0.1:80", "[::1]:80", "[fe80::1%eth0]:80" (a scoped address keeps its interface,
// by name where it has one); the host part alone with format_host.
std::string format_sockaddr(const sockaddr *sa);
std::string format_host(const sockaddr *sa);
uint16_t sockaddr_port(const sockaddr *sa);
// How a script's endpoint reads in messages, before resolution: "localhost:80".
std::string format_endpoint(const Endpoint &ep);

// How error messages name the socket on `fd`, of any kind: its peer's address, else its
// own once bound, else "". `type` and `protocol` are the socket's (SOCK_STREAM, ...).
std::string name_for_errors(int fd, int type, int protocol);

}  // namespace ksnet
