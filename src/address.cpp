#include "ksnet/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <uv.h>

#include <cstdlib>
#include <cstring>

#include "ksnet/error.hpp"

namespace ksnet {

const char *family_name(Family f) {
    switch (f) {
    case Family::Inet4: return "INET4";
    case Family::Inet6: return "INET6";
    case Family::Bluetooth: return "BT";
    }
    return "?";
}

int family_to_af(Family f) {
    switch (f) {
    case Family::Inet4: return AF_INET;
    case Family::Inet6: return AF_INET6;
    case Family::Bluetooth: return 31;  // AF_BLUETOOTH, not in every libc header set
    }
    return AF_UNSPEC;
}

uint16_t check_port(int64_t port, FunctionRef<std::string()> what) {
    if (port < 0 || port > 65535) {
        throw Error(ErrorKind::Value, what() + ": port " + std::to_string(port) +
                                          " is out of range (expected 0..65535)");
    }
    return static_cast<uint16_t>(port);
}

void check_host(std::string_view host, FunctionRef<std::string()> what) {
    if (host.find('\0') != std::string_view::npos) {
        throw Error(ErrorKind::Value, what() + ": host name contains a NUL byte");
    }
    if (host.size() > 255) {
        throw Error(ErrorKind::Value, what() + ": host name is " +
                                          std::to_string(host.size()) +
                                          " bytes long (at most 255)");
    }
}

bool parse_numeric(const Endpoint &ep, sockaddr_storage &out, socklen_t &len) {
    std::memset(&out, 0, sizeof out);
    if (ep.family == Family::Inet4) {
        auto *sin = reinterpret_cast<sockaddr_in *>(&out);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(ep.port);
        len = sizeof *sin;
        if (ep.host.empty()) {
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
            return true;
        }
        return inet_pton(AF_INET, ep.host.c_str(), &sin->sin_addr) == 1;
    }
    if (ep.family == Family::Inet6) {
        auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&out);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(ep.port);
        sin6->sin6_flowinfo = htonl(ep.flow);
        sin6->sin6_scope_id = ep.scope;
        len = sizeof *sin6;
        if (ep.host.empty()) {
            sin6->sin6_addr = in6addr_any;
            return true;
        }
        size_t percent = ep.host.find('%');
        if (percent == std::string::npos) return inet_pton(AF_INET6, ep.host.c_str(), &sin6->sin6_addr) == 1;
        // "fe80::1%eth0" or "fe80::1%2", as format_host writes a scoped address.
        uint32_t zone = interface_index(ep.host.substr(percent + 1));
        if (zone == 0) return false;  // left to the resolver, whose error names the host
        if (ep.scope == 0) sin6->sin6_scope_id = zone;
        return inet_pton(AF_INET6, ep.host.substr(0, percent).c_str(), &sin6->sin6_addr) == 1;
    }
    return false;
}

std::string packet_device(const sockaddr *sa) {
    return std::string(sa->sa_data, strnlen(sa->sa_data, sizeof sa->sa_data));
}

std::string interface_name(unsigned index) {
    char name[IF_NAMESIZE];
    return index > 0 && if_indextoname(index, name) ? name : "";
}

uint32_t interface_index(const std::string &zone) {
    if (zone.empty()) return 0;
    // A name first, as getaddrinfo reads a zone: an interface may be called "3".
    if (uint32_t index = if_nametoindex(zone.c_str())) return index;
    if (zone.find_first_not_of("0123456789") != std::string::npos || zone.size() > 10) return 0;
    unsigned long n = std::strtoul(zone.c_str(), nullptr, 10);
    return n <= UINT32_MAX ? static_cast<uint32_t>(n) : 0;
}

namespace {

// "a.b.c.d" by hand: inet_ntop (and uv_ip4_name) go through sprintf, a tenth of the
// plugin's own instructions per accepted connection.
std::string format_ipv4(const in_addr &a) {
    const auto *b = reinterpret_cast<const unsigned char *>(&a.s_addr);  // network order
    char buf[16];
    char *p = buf;
    for (int i = 0; i < 4; ++i) {
        unsigned v = b[i];
        if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
        if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
        *p++ = static_cast<char>('0' + v % 10);
        if (i < 3) *p++ = '.';
    }
    return std::string(buf, static_cast<size_t>(p - buf));
}

}  // namespace

std::string format_host(const sockaddr *sa) {
    char buf[INET6_ADDRSTRLEN] = "";
    if (sa->sa_family == AF_INET) {
        return format_ipv4(reinterpret_cast<const sockaddr_in *>(sa)->sin_addr);
    }
    if (sa->sa_family != AF_INET6) return buf;
    const auto *sin6 = reinterpret_cast<const sockaddr_in6 *>(sa);
    uv_ip6_name(sin6, buf, sizeof buf);
    if (sin6->sin6_scope_id == 0) return buf;
    // A link-local address means nothing without its interface: keep it, as Node does,
    // so that the name works as an address again.
    std::string zone = interface_name(sin6->sin6_scope_id);
    return std::string(buf) + "%" + (zone.empty() ? std::to_string(sin6->sin6_scope_id) : zone);
}

uint16_t sockaddr_port(const sockaddr *sa) {
    if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in *>(sa)->sin_port);
    if (sa->sa_family == AF_INET6) {
        return ntohs(reinterpret_cast<const sockaddr_in6 *>(sa)->sin6_port);
    }
    return 0;
}

std::string format_sockaddr(const sockaddr *sa) {
    std::string out = sa->sa_family == AF_INET6 ? "[" + format_host(sa) + "]" : format_host(sa);
    out += ':';
    out += std::to_string(sockaddr_port(sa));
    return out;
}

std::string format_endpoint(const Endpoint &ep) {
    bool bracket = ep.family == Family::Inet6 && ep.host.find(':') != std::string::npos;
    std::string host = ep.host.empty() ? (ep.family == Family::Inet6 ? "::" : "0.0.0.0") : ep.host;
    if (ep.family == Family::Inet6 && ep.scope != 0) {
        host = host.substr(0, host.find('%')) + "%" + std::to_string(ep.scope);
    }
    if (bracket || (ep.family == Family::Inet6 && ep.host.empty())) host = "[" + host + "]";
    return host + ":" + std::to_string(ep.port);
}

sockaddr_storage local_sockaddr(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len) < 0) {
        throw errno_error("getsockname", "", errno);
    }
    return ss;
}

sockaddr_storage peer_sockaddr(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr *>(&ss), &len) < 0) {
        if (errno == ENOTCONN) throw Error(ErrorKind::State, "getpeername: socket is not connected");
        throw errno_error("getpeername", "", errno);
    }
    return ss;
}

sockaddr_storage peer_sockaddr_or_none(int fd) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len) < 0) peer.ss_family = AF_UNSPEC;
    return peer;
}

}  // namespace ksnet
