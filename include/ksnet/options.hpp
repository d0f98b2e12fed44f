// ksnet/options.hpp - the socket options a script may set, by name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ksnet {

enum class Option {
    NoDelay,     // TCP_NODELAY: bool
    KeepAlive,   // SO_KEEPALIVE (+ TCP_KEEPIDLE): 0 = off, n > 0 = probe after n idle seconds
    ReuseAddr,   // SO_REUSEADDR: bool; off unless asked for; set it before bind()
    RecvBuffer,  // SO_RCVBUF: bytes (the kernel may round or double it)
    SendBuffer,  // SO_SNDBUF: bytes
    Broadcast,   // SO_BROADCAST: bool (datagram sockets)
    LineMax,     // not the kernel's: the longest line line iteration buffers (streams)
    V6Only,      // IPV6_V6ONLY: bool (INET6); set it before bind()
};

// linemax's default: far above any text protocol's lines, and it bounds what a peer
// that never sends a newline can make a socket hold (docs/design.md).
constexpr size_t kDefaultLineMax = 1024 * 1024;
// The value of linemax checked: Error(Value) naming the option and the range.
size_t line_max_from(int64_t value);

// "nodelay", "keepalive", "reuseaddr", "rcvbuf", "sndbuf", "broadcast", "linemax", "v6only".
// Throws Error(Value) listing the known names.
Option option_from_name(std::string_view name, std::string_view what);
const char *option_name(Option o);
// The names, comma-separated, for messages and docs.
std::string option_names();

// setsockopt/getsockopt on `fd` (not for LineMax, which the socket keeps itself); `where` names the socket in errors. Values are checked
// (Error(Value) naming the option and the range) before any system call.
void set_option(int fd, Option o, int64_t value, std::string_view where);
int64_t get_option(int fd, Option o, std::string_view where);

}  // namespace ksnet
