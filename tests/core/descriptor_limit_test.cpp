// Out of descriptors: close() leaves a socket's descriptor to the loop, which closes it a
// moment later; a socket made or accepted meanwhile must still find it free, as in C, and
// a bind() meanwhile the port it held.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ksnet/error.hpp"
#include "ksnet/poll_socket.hpp"
#include "ksnet/udp.hpp"
#include "loop_fixture.hpp"
#include "raw_sockets.hpp"

using namespace ksnet;
using namespace std::chrono_literals;

namespace {

// Lowers RLIMIT_NOFILE to the descriptors open now plus a few and takes those few, so
// the next descriptor made fails with EMFILE; gives everything back at the end.
class OutOfDescriptors {
public:
    OutOfDescriptors() : limit_(highest_open() + 8) {
        for (;;) {
            int fd = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
            if (fd < 0) break;
            fillers_.push_back(fd);
        }
    }
    ~OutOfDescriptors() {
        for (int fd : fillers_) ::close(fd);
    }

private:
    static rlim_t highest_open() {
        int highest = 0;
        for (int fd = 0; fd < 65536; ++fd) {
            if (::fcntl(fd, F_GETFD) >= 0) highest = fd;
        }
        return static_cast<rlim_t>(highest);
    }
    rawsock::FdLimit limit_;
    std::vector<int> fillers_;
};

// Closes `victim` (a UDP socket, whose descriptor libuv owns) while the loop is stuck,
// runs `make` (which needs its descriptor or its port) on a thread of its own, lets the loop go on a
// moment later, and returns what `make` raised ("" if nothing). Without the wait for
// posted closes `make` fails at once, whenever the loop goes on; with it, `make` waits
// for the loop (up to Runtime::kCloseWaitLimit). This thread cannot watch the other in
// /proc: every file it opened would take the descriptor the close let go of.
std::string make_after_a_close_the_loop_has_not_done(LoopFixture &fx, std::shared_ptr<UdpSocket> victim,
                                                     const std::function<void()> &make) {
    std::optional<LoopStuck> stuck(std::in_place, *fx.rt);
    victim->close();
    std::string error;
    std::atomic<bool> done{false};
    std::thread maker([&] {
        try {
            make();
        } catch (const Error &e) {
            error = e.what();
        }
        done = true;
    });
    for (int i = 0; i < 50 && !done; ++i) std::this_thread::sleep_for(1ms);
    stuck.reset();
    maker.join();
    return error;
}

}  // namespace

TEST_CASE("descriptors_a_new_socket_finds_the_descriptor_a_close_let_go_of") {
    LoopFixture fx;
    std::vector<std::shared_ptr<UdpSocket>> victims;
    for (int i = 0; i < 3; ++i) victims.push_back(UdpSocket::create(fx.rt, Family::Inet4));
    std::shared_ptr<SocketBase> made;
    {
        OutOfDescriptors out;
        CHECK_THROWS_WITH_AS(UdpSocket::create(fx.rt, Family::Inet4), doctest::Contains("socket INET4 UDP: EMFILE"), Error);
        CHECK(make_after_a_close_the_loop_has_not_done(fx, victims[0], [&] {
                  made = UdpSocket::create(fx.rt, Family::Inet4);
              }) == "");
        REQUIRE(made);
        made->close();
        CHECK(make_after_a_close_the_loop_has_not_done(fx, victims[1], [&] {
                  made = TcpSocket::create(fx.rt, Family::Inet4);
              }) == "");
        REQUIRE(made);
        made->close();
        CHECK(make_after_a_close_the_loop_has_not_done(fx, victims[2], [&] {
                  made = PollSocket::create(fx.rt, AF_INET, SOCK_DGRAM, 0);
              }) == "");
        REQUIRE(made);
        made->close();
    }
}

TEST_CASE("descriptors_accept_finds_the_descriptor_a_close_let_go_of") {
    LoopFixture fx;
    auto victim = UdpSocket::create(fx.rt, Family::Inet4);
    auto l = fx.listener();
    int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(client >= 0);
    sockaddr_in to = rawsock::loopback4(LoopFixture::port_of(*l));
    REQUIRE(::connect(client, reinterpret_cast<sockaddr *>(&to), sizeof to) == 0);
    std::shared_ptr<TcpSocket> accepted;
    {
        OutOfDescriptors out;
        CHECK(make_after_a_close_the_loop_has_not_done(fx, victim, [&] {
                  accepted = l->accept(Clock::now() + 5s).first;
              }) == "");
        REQUIRE(accepted);
        accepted->close();
    }
    ::close(client);
    l->close();
}

TEST_CASE("descriptors_bind_finds_the_port_a_close_let_go_of") {
    LoopFixture fx;
    auto victim = UdpSocket::create(fx.rt, Family::Inet4);
    victim->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    auto held = victim->local_address();
    const uint16_t port = sockaddr_port(reinterpret_cast<sockaddr *>(&held));
    auto next = UdpSocket::create(fx.rt, Family::Inet4);
    CHECK(make_after_a_close_the_loop_has_not_done(fx, victim, [&] {
              next->bind(Endpoint{Family::Inet4, "127.0.0.1", port});
          }) == "");
    next->close();
}
