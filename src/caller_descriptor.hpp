// caller_descriptor.hpp - making, and the mode of, a descriptor on which callers make
// their own blocking system calls (TcpSocket, UdpSocket).
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <chrono>

#include "ksnet/address.hpp"
#include "ksnet/error.hpp"
#include "ksnet/runtime.hpp"

namespace ksnet {

// Calls without a deadline block in the kernel, so the descriptor is in blocking mode
// with send and receive timeouts of one wait slice: the call comes back that often to
// look at close() and host interrupts. Accepted sockets inherit both from the listener.
inline void set_wait_slices(int fd, Clock::duration wait_slice) {
    using namespace std::chrono;
    auto us = duration_cast<microseconds>(wait_slice).count();
    timeval slice{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof slice);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &slice, sizeof slice);
}

// A new IP socket of `type` (SOCK_STREAM, SOCK_DGRAM) for `kind` ("TCP", "UDP", in the
// message of a family it does not take), set as above; made here rather than by libuv
// so that bind() reports its own errors at once and SO_REUSEADDR stays off unless asked
// for (libuv's binds turn it on).
inline int open_caller_descriptor(Runtime &rt, Family family, int type, const char *kind) {
    if (family != Family::Inet4 && family != Family::Inet6) {
        throw Error(ErrorKind::Unsupported,
                    std::string(kind) + " sockets need family INET4 or INET6, not " + family_name(family));
    }
    int fd = rt.open_descriptor([&] { return ::socket(family_to_af(family), type | SOCK_CLOEXEC, 0); });
    if (fd < 0) throw errno_error("socket", std::string(family_name(family)) + " " + kind, errno);
    set_wait_slices(fd, rt.wait_slice());
    return fd;
}

// Live reload: this version's own descriptor for the socket the one before handed over
// (the old version closes its own), set as above.
inline int duplicate_handed_over(Runtime &rt, int handed_over) {
    int fd = ::fcntl(handed_over, F_DUPFD_CLOEXEC, Runtime::kFirstDescriptor);
    if (fd < 0) throw errno_error("dup", "the socket handed over", errno);
    set_wait_slices(fd, rt.wait_slice());
    return fd;
}

// libuv makes every descriptor it takes non-blocking; these are switched back.
inline void set_blocking(int fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, on ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

}  // namespace ksnet
