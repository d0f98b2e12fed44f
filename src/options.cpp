#include "ksnet/options.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <uv.h>

#include <cerrno>
#include <limits>

#include "ksnet/error.hpp"

namespace ksnet {

namespace {

struct OptionInfo {
    Option option;
    const char *name;
    int64_t max;  // the largest value setopt takes (0 is the smallest)
};

constexpr int64_t kBoolean = 1;
constexpr int64_t kBufferMax = std::numeric_limits<int>::max() / 2;  // the kernel doubles it
constexpr int64_t kKeepIdleMax = 32767;  // Linux's MAX_TCP_KEEPIDLE, in seconds

constexpr OptionInfo kOptions[] = {
    {Option::NoDelay, "nodelay", kBoolean},      {Option::KeepAlive, "keepalive", kKeepIdleMax},
    {Option::ReuseAddr, "reuseaddr", kBoolean},  {Option::RecvBuffer, "rcvbuf", kBufferMax},
    {Option::SendBuffer, "sndbuf", kBufferMax},  {Option::Broadcast, "broadcast", kBoolean},
    {Option::LineMax, "linemax", std::numeric_limits<int>::max()},
    {Option::V6Only, "v6only", kBoolean},
};

const OptionInfo &info(Option o) {
    for (const auto &i : kOptions)
        if (i.option == o) return i;
    return kOptions[0];
}

void set_int(int fd, int level, int name, int value, const char *opt, std::string_view where) {
    if (::setsockopt(fd, level, name, &value, sizeof value) < 0) {
        throw errno_error(std::string("setopt ") + opt, where, errno);
    }
}

int get_int(int fd, int level, int name, const char *opt, std::string_view where) {
    int value = 0;
    socklen_t len = sizeof value;
    if (::getsockopt(fd, level, name, &value, &len) < 0) {
        throw errno_error(std::string("getopt ") + opt, where, errno);
    }
    return value;
}

// The name as a message shows it: printable, with other bytes as \xNN (a NUL would end
// the message when it crosses the C ABI), and at most 64 bytes of it.
std::string shown(std::string_view name) {
    std::string out;
    for (char c : name.substr(0, 64)) {
        auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f && c != '\\') {
            out += c;
        } else {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 0xF];
        }
    }
    if (name.size() > 64) out += "...";
    return out;
}

}  // namespace

Option option_from_name(std::string_view name, std::string_view what) {
    for (const auto &i : kOptions)
        if (name == i.name) return i.option;
    throw Error(ErrorKind::Value, std::string(what) + " is '" + shown(name) +
                                      "' (expected one of " + option_names() + ")");
}

const char *option_name(Option o) { return info(o).name; }

std::string option_names() {
    std::string out;
    for (const auto &i : kOptions) out += (out.empty() ? "" : ", ") + std::string(i.name);
    return out;
}

namespace {
void check_range(const OptionInfo &i, int64_t value, int64_t min, int64_t max) {
    if (value < min || value > max) {
        throw Error(ErrorKind::Value, std::string("setopt: the value of '") + i.name + "' is " + std::to_string(value) +
                                          " (expected " + std::to_string(min) + ".." + std::to_string(max) + ")");
    }
}
}  // namespace

size_t line_max_from(int64_t value) {
    const OptionInfo &i = info(Option::LineMax);
    check_range(i, value, 1, i.max);
    return static_cast<size_t>(value);
}

void set_option(int fd, Option o, int64_t value, std::string_view where) {
    const OptionInfo &i = info(o);
    check_range(i, value, 0, i.max);
    int v = static_cast<int>(value);
    switch (o) {
    case Option::NoDelay: return set_int(fd, IPPROTO_TCP, TCP_NODELAY, v, i.name, where);
    case Option::KeepAlive:
        // The idle time first: where the kernel refuses it (not TCP), nothing has changed.
        if (v > 0) set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, v, i.name, where);
        return set_int(fd, SOL_SOCKET, SO_KEEPALIVE, v > 0, i.name, where);
    case Option::ReuseAddr: return set_int(fd, SOL_SOCKET, SO_REUSEADDR, v, i.name, where);
    case Option::RecvBuffer: return set_int(fd, SOL_SOCKET, SO_RCVBUF, v, i.name, where);
    case Option::SendBuffer: return set_int(fd, SOL_SOCKET, SO_SNDBUF, v, i.name, where);
    case Option::Broadcast: return set_int(fd, SOL_SOCKET, SO_BROADCAST, v, i.name, where);
    case Option::V6Only: return set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, v, i.name, where);
    case Option::LineMax: break;  // the socket's own
    }
}

int64_t get_option(int fd, Option o, std::string_view where) {
    const char *n = option_name(o);
    switch (o) {
    case Option::NoDelay: return get_int(fd, IPPROTO_TCP, TCP_NODELAY, n, where) != 0;
    case Option::KeepAlive:
        if (!get_int(fd, SOL_SOCKET, SO_KEEPALIVE, n, where)) return 0;
        return get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, n, where);
    case Option::ReuseAddr: return get_int(fd, SOL_SOCKET, SO_REUSEADDR, n, where) != 0;
    case Option::RecvBuffer: return get_int(fd, SOL_SOCKET, SO_RCVBUF, n, where);
    case Option::SendBuffer: return get_int(fd, SOL_SOCKET, SO_SNDBUF, n, where);
    case Option::Broadcast: return get_int(fd, SOL_SOCKET, SO_BROADCAST, n, where) != 0;
    case Option::V6Only: return get_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, n, where) != 0;
    case Option::LineMax: break;  // the socket's own
    }
    return 0;
}

}  // namespace ksnet
