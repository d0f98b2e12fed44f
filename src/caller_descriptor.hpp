// caller_descriptor.hpp - the mode of a descriptor on which callers make their own
// blocking system calls (TcpSocket, UdpSocket).
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <chrono>

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

// libuv makes every descriptor it takes non-blocking; these are switched back.
inline void set_blocking(int fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, on ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

}  // namespace ksnet
