// raw_sockets.hpp - plain blocking C sockets on loopback, for playing the misbehaving
// peer in fault tests (resets, full backlogs, unread data), and small RAII guards for
// process state a test changes (signal dispositions, RLIMIT_NOFILE).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace rawsock {

inline void die(const char *what) { throw std::runtime_error(std::string(what) + ": " + std::strerror(errno)); }

inline sockaddr_in loopback4(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

inline uint16_t local_port(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) < 0) die("getsockname");
    return ntohs(a.sin_port);
}

// A listening IPv4 socket on 127.0.0.1 and a free port.
inline int listener(int backlog = 16) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    sockaddr_in a = loopback4(0);
    if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0) die("bind");
    if (::listen(fd, backlog) < 0) die("listen");
    return fd;
}

// A blocking connect to 127.0.0.1:port.
inline int connect_to(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    sockaddr_in a = loopback4(port);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0) die("connect");
    return fd;
}

// Starts a non-blocking connect; returns the descriptor (the handshake may still run).
inline int start_connect(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    sockaddr_in a = loopback4(port);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0 && errno != EINPROGRESS) die("connect");
    return fd;
}

// Whether a non-blocking connect finished within `ms` milliseconds.
inline bool connected_within(int fd, int ms) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, ms) <= 0) return false;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err == 0;
}

inline int accept_from(int listen_fd) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) die("accept");
    return fd;
}

// Closes with SO_LINGER {on, 0}: the kernel sends RST instead of FIN.
inline void reset_close(int fd) {
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);
}

// Reads and drops up to `n` bytes (fewer at end of stream or on error).
inline size_t drain(int fd, size_t n) {
    char buf[65536];
    size_t got = 0;
    while (got < n) {
        ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - got), 0);
        if (r <= 0) break;
        got += static_cast<size_t>(r);
    }
    return got;
}

inline void send_all(int fd, const std::string &data) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t r = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (r < 0) die("send");
        off += static_cast<size_t>(r);
    }
}

// The TCP states (hex, as /proc/net/tcp shows them: 06 is TIME_WAIT, 08 CLOSE_WAIT, 0A
// LISTEN) of IPv4 sockets whose local port is `port` and, when `remote` is given, whose
// remote port is `remote` (0 for listeners). Other connections may share a local port
// number (ephemeral ports are reused towards other destinations, TIME_WAIT lingers).
inline std::string tcp_states_of_local_port(uint16_t port, int remote_port = -1) {
    std::ifstream in("/proc/net/tcp");
    std::string line, states;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string sl, local, remote, st;
        fields >> sl >> local >> remote >> st;
        size_t colon = local.find(':'), rcolon = remote.find(':');
        if (colon == std::string::npos || rcolon == std::string::npos) continue;
        if (std::stoul(local.substr(colon + 1), nullptr, 16) != port) continue;
        if (remote_port >= 0 && std::stoul(remote.substr(rcolon + 1), nullptr, 16) != static_cast<unsigned long>(remote_port)) continue;
        states += st + " ";
    }
    return states;
}

// Moves the calling thread (and every thread it starts later) into a new network
// namespace of its own, with its loopback up. For tests that count kernel state shared
// by the whole machine, such as TIME_WAIT entries: other tests running at the same time
// fill the table (net.ipv4.tcp_max_tw_buckets), and past that limit the kernel keeps no
// TIME_WAIT at all. False (and nothing changed) without the privilege.
inline bool own_network_namespace() {
    if (::unshare(CLONE_NEWNET) != 0) return false;
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    ifreq lo{};
    std::strncpy(lo.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(fd, SIOCGIFFLAGS, &lo) != 0) die("SIOCGIFFLAGS lo");
    lo.ifr_flags = static_cast<short>(lo.ifr_flags | IFF_UP);
    if (::ioctl(fd, SIOCSIFFLAGS, &lo) != 0) die("SIOCSIFFLAGS lo");
    ::close(fd);
    return true;
}

// Renames the interface `from` to `to` (taken down for it, then up again), in the
// calling thread's namespace. False if the kernel refuses.
inline bool rename_interface(const char *from, const char *to) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    ifreq req{};
    std::strncpy(req.ifr_name, from, IFNAMSIZ - 1);
    bool done = ::ioctl(fd, SIOCGIFFLAGS, &req) == 0;
    short flags = req.ifr_flags;
    req.ifr_flags = static_cast<short>(flags & ~IFF_UP);
    done = done && ::ioctl(fd, SIOCSIFFLAGS, &req) == 0;
    std::strncpy(req.ifr_newname, to, IFNAMSIZ - 1);
    done = done && ::ioctl(fd, SIOCSIFNAME, &req) == 0;
    std::memset(req.ifr_name, 0, IFNAMSIZ);
    std::strncpy(req.ifr_name, to, IFNAMSIZ - 1);
    req.ifr_flags = flags;
    done = done && ::ioctl(fd, SIOCSIFFLAGS, &req) == 0;
    ::close(fd);
    return done;
}

// Gives the interface `dev` the IPv6 address `ip`/`prefix` (as `ip -6 addr add`), in
// the calling thread's namespace: for addresses only a namespace of the test's own may
// have, such as a link-local one on its loopback. False if the kernel refuses (no IPv6).
inline bool add_ipv6_address(const char *dev, const char *ip, uint32_t prefix) {
    struct {  // linux/ipv6.h's in6_ifreq, whose header clashes with netinet/in.h
        in6_addr addr;
        uint32_t prefixlen;
        int ifindex;
    } req{};
    if (::inet_pton(AF_INET6, ip, &req.addr) != 1) die("inet_pton");
    req.prefixlen = prefix;
    req.ifindex = static_cast<int>(::if_nametoindex(dev));
    if (req.ifindex == 0) die("if_nametoindex");
    int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool added = ::ioctl(fd, SIOCSIFADDR, &req) == 0;
    // The kernel adds it tentative and clears that from a work queue a moment later
    // (no duplicate detection on lo): until then a bind to it fails with EADDRNOTAVAIL.
    sockaddr_in6 at{};
    at.sin6_family = AF_INET6;
    at.sin6_addr = req.addr;
    at.sin6_scope_id = static_cast<uint32_t>(req.ifindex);
    for (int tries = 0; added && tries < 1000; ++tries) {
        if (::bind(fd, reinterpret_cast<sockaddr *>(&at), sizeof at) == 0 || errno != EADDRNOTAVAIL) break;
        ::usleep(2000);
    }
    ::close(fd);
    return added;
}

// Sets SIGPIPE to SIG_DFL and unblocks it in the calling thread; restores both.
// With this in place an unguarded write to a dead peer kills the process.
class SigpipeDefault {
public:
    SigpipeDefault() {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGPIPE, &dfl, &old_action_);
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_UNBLOCK, &pipe, &old_mask_);
    }
    ~SigpipeDefault() {
        pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
        sigaction(SIGPIPE, &old_action_, nullptr);
    }
    SigpipeDefault(const SigpipeDefault &) = delete;
    SigpipeDefault &operator=(const SigpipeDefault &) = delete;

private:
    struct sigaction old_action_ {};
    sigset_t old_mask_{};
};

// Lowers (or raises) RLIMIT_NOFILE's soft limit; restores the old limits on scope exit.
class FdLimit {
public:
    explicit FdLimit(rlim_t soft) {
        if (::getrlimit(RLIMIT_NOFILE, &old_) < 0) die("getrlimit");
        rlimit now = old_;
        now.rlim_cur = std::min(soft, old_.rlim_max);
        if (::setrlimit(RLIMIT_NOFILE, &now) < 0) die("setrlimit");
    }
    ~FdLimit() { ::setrlimit(RLIMIT_NOFILE, &old_); }
    FdLimit(const FdLimit &) = delete;
    FdLimit &operator=(const FdLimit &) = delete;
    rlim_t old_soft() const { return old_.rlim_cur; }
    rlim_t hard() const { return old_.rlim_max; }

private:
    rlimit old_{};
};

// CPU time (user + system) this process has used, in seconds.
inline double cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace rawsock
