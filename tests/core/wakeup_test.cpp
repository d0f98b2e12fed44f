// Blocked calls end at once when something ends them (close() from another thread,
// teardown, an interrupt the host pushes), not at the end of a wait slice: each case
// runs with a slice of an hour, so waiting for its end would hang the case.
#include <doctest/doctest.h>

#include <linux/if_packet.h>
#include <net/if.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

#include "busy_thread_pool.hpp"
#include "ksnet/error.hpp"
#include "ksnet/poll_socket.hpp"
#include "ksnet/tcp.hpp"
#include "ksnet/udp.hpp"
#include "loop_fixture.hpp"
#include "skip.hpp"
#include "waits.hpp"

using namespace ksnet;
using namespace std::chrono_literals;

namespace {

constexpr auto kHour = std::chrono::hours(1);

struct InterruptFlag : WaitHooks {
    std::atomic<bool> on{false};
    bool interrupted() override { return on; }
};

// Sees no interrupt at a waiting thread's `look`-th look at the flag, and is interrupted
// just after it (the host's interrupt thread would have set its flag and called
// wake_for_interrupt at that moment): the signal reaches the thread before its system
// call, so the call itself gets none. What runs after that look is `then` (by default the
// interrupt, on this thread: pthread_kill to oneself is delivered before it returns).
struct LateInterrupt : WaitHooks {
    Runtime *rt = nullptr;
    std::atomic<bool> on{false};
    std::atomic<int> looks_before{0};  // 0: not armed
    std::function<void()> then;
    bool interrupted() override {
        if (on) return true;
        if (looks_before.load() > 0 && --looks_before == 0) {
            if (then) then();
            else {
                on = true;
                rt->wake_for_interrupt();
            }
        }
        return false;
    }
};

// Runs `body` on a thread and waits up to 10 s for it; ends the process if it is still
// blocked then.
std::string error_within_10s(std::function<void()> body) {
    auto done = std::async(std::launch::async, [&] {
        try {
            body();
        } catch (const Error &e) {
            return std::string(e.what());
        }
        return std::string("no error");
    });
    if (done.wait_for(10s) != std::future_status::ready) {
        std::fprintf(stderr, "the blocked call was not woken: it waits for the end of its slice\n");
        std::_Exit(1);
    }
    return done.get();
}

// Runs `body` on a thread, calls end_it once that thread is blocked in the kernel, and
// waits up to 10 s for it; ends the process if it is still blocked then (a hang cannot be
// undone).
std::string error_of(std::function<void()> body, const std::function<void()> &end_it) {
    waits::ThreadMark mark;
    auto done = std::async(std::launch::async, [&] {
        try {
            mark.here();
            body();
        } catch (const Error &e) {
            return std::string(e.what());
        }
        return std::string("no error");
    });
    waits::wait_until_blocked(mark, "the call to end");
    end_it();
    if (done.wait_for(10s) != std::future_status::ready) {
        std::fprintf(stderr, "the blocked call was not woken: it waits for the end of its slice\n");
        std::_Exit(1);
    }
    return done.get();
}

std::shared_ptr<TcpSocket> connected(const std::shared_ptr<Runtime> &rt, std::shared_ptr<TcpSocket> &peer,
                                     std::shared_ptr<TcpSocket> &listener) {
    listener = TcpSocket::create(rt, Family::Inet4);
    listener->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    listener->listen(1);
    peer = TcpSocket::create(rt, Family::Inet4);
    peer->connect(Endpoint{Family::Inet4, "127.0.0.1", LoopFixture::port_of(*listener)});
    return listener->accept().first;
}

// An AF_PACKET socket on lo for an EtherType nothing here sends: its recv waits until
// something ends it, and shutdown() on it wakes nobody.
std::shared_ptr<PollSocket> quiet_packet_socket(const std::shared_ptr<Runtime> &rt) {
    constexpr uint16_t kLocalExperimental = 0x88B5;  // IEEE 802 local experimental EtherType
    auto p = PollSocket::create(rt, AF_PACKET, SOCK_RAW, htons(kLocalExperimental));
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(kLocalExperimental);
    ll.sll_ifindex = static_cast<int>(if_nametoindex("lo"));
    p->bind(reinterpret_cast<sockaddr *>(&ll), sizeof ll);
    return p;
}

}  // namespace

TEST_CASE("wakeup_pushed_interrupt_ends_a_blocked_tcp_read_at_once") {
    auto hooks = std::make_shared<InterruptFlag>();
    auto rt = Runtime::start(hooks, kHour);
    rt->set_interrupts_pushed(true);
    std::shared_ptr<TcpSocket> c, l;
    auto s = connected(rt, c, l);
    std::string error = error_of([&] { s->read(1); }, [&] {
        hooks->on = true;
        rt->wake_for_interrupt();
    });
    CHECK(error == "read: interrupted");
    hooks->on = false;
    c->write("x");  // the socket still works
    CHECK(s->read(1) == "x");
    CHECK(rt->shutdown() == 0);
}

TEST_CASE("wakeup_pushed_interrupt_ends_a_blocked_accept_and_a_udp_read_at_once") {
    auto hooks = std::make_shared<InterruptFlag>();
    auto rt = Runtime::start(hooks, kHour);
    rt->set_interrupts_pushed(true);
    auto l = TcpSocket::create(rt, Family::Inet4);
    l->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    l->listen(1);
    auto u = UdpSocket::create(rt, Family::Inet4);
    u->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    auto interrupt = [&] {
        hooks->on = true;
        rt->wake_for_interrupt();
    };
    CHECK(error_of([&] { l->accept(); }, interrupt) == "accept: interrupted");
    hooks->on = false;
    CHECK(error_of([&] { u->recv(100); }, interrupt) == "read: interrupted");
    CHECK(rt->shutdown() == 0);
}

TEST_CASE("wakeup_close_from_another_thread_ends_a_blocked_read_at_once") {
    auto rt = Runtime::start(nullptr, kHour);
    std::shared_ptr<TcpSocket> c, l;
    auto s = connected(rt, c, l);
    std::string error = error_of([&] { s->read(1); }, [&] {
        s->close();
    });
    CHECK(error.find("read: ") == 0);
    CHECK(rt->shutdown() == 0);
}

TEST_CASE("wakeup_teardown_ends_a_blocked_read_at_once") {
    auto rt = Runtime::start(nullptr, kHour);
    std::shared_ptr<TcpSocket> c, l;
    auto s = connected(rt, c, l);
    std::string error = error_of([&] { s->read(1); }, [&] {
        CHECK(rt->shutdown() == 0);
    });
    CHECK(error == "read: socket closed because the net module was unloaded");
}

TEST_CASE("wakeup_close_from_another_thread_ends_a_blocked_packet_socket_recv_at_once") {
    SKIP_UNLESS(geteuid() == 0, "needs root for an AF_PACKET socket");
    auto rt = Runtime::start(nullptr, kHour);
    auto p = quiet_packet_socket(rt);
    CHECK(error_of([&] { p->recv(PollSocket::kAnySize); }, [&] { p->close(); }) == "read: the socket is closed");
    CHECK(rt->shutdown() == 0);
}

TEST_CASE("wakeup_teardown_ends_a_blocked_packet_socket_recv_at_once") {
    SKIP_UNLESS(geteuid() == 0, "needs root for an AF_PACKET socket");
    auto rt = Runtime::start(nullptr, kHour);
    auto p = quiet_packet_socket(rt);
    std::string error = error_of([&] { p->recv(PollSocket::kAnySize); }, [&] { CHECK(rt->shutdown() == 0); });
    CHECK(error == "read: socket closed because the net module was unloaded");
}

TEST_CASE("wakeup_pushed_interrupt_ends_a_blocked_packet_socket_recv_at_once") {
    SKIP_UNLESS(geteuid() == 0, "needs root for an AF_PACKET socket");
    auto hooks = std::make_shared<InterruptFlag>();
    auto rt = Runtime::start(hooks, kHour);
    rt->set_interrupts_pushed(true);
    auto p = quiet_packet_socket(rt);
    std::string error = error_of([&] { p->recv(PollSocket::kAnySize); }, [&] {
        hooks->on = true;
        rt->wake_for_interrupt();
    });
    CHECK(error == "read: interrupted");
    CHECK(rt->shutdown() == 0);
}

// A runtime with an hour-long slice whose host pushes its interrupts through `hooks`.
std::shared_ptr<Runtime> start_pushing(const std::shared_ptr<LateInterrupt> &hooks) {
    auto rt = Runtime::start(hooks, kHour);
    hooks->rt = rt.get();
    rt->set_interrupts_pushed(true);
    return rt;
}

// The wake-up signal of an interrupt can land after the thread's last look and before
// its system call, and is then missed by the call: the loop sends it again.
TEST_CASE("wakeup_interrupt_just_before_a_blocking_read_ends_it_at_once") {
    auto hooks = std::make_shared<LateInterrupt>();
    auto rt = start_pushing(hooks);
    std::shared_ptr<TcpSocket> c, l;
    auto s = connected(rt, c, l);
    hooks->looks_before = 1;  // the look before a blocking recv() with no deadline
    CHECK(error_within_10s([&] { s->read(1); }) == "read: interrupted");
    hooks->on = false;
    c->write("x");
    CHECK(s->read(1) == "x");
    CHECK(rt->shutdown() == 0);
}

TEST_CASE("wakeup_interrupt_just_before_the_poll_of_a_read_with_a_deadline_ends_it_at_once") {
    auto hooks = std::make_shared<LateInterrupt>();
    auto rt = start_pushing(hooks);
    std::shared_ptr<TcpSocket> c, l;
    auto s = connected(rt, c, l);
    hooks->looks_before = 2;  // the look after the non-blocking recv(), before poll()
    CHECK(error_within_10s([&] { s->read(1, Clock::now() + kHour); }) == "read: interrupted");
    CHECK(rt->shutdown() == 0);
}

// close() from another thread and teardown wake a packet socket's callers with a signal
// (its shutdown() wakes nobody): one that lands before the caller's poll() is sent again.
// What recv() raises when `then` runs just after the look that precedes its poll().
std::string packet_recv_error_when_just_before_poll(const std::shared_ptr<Runtime> &rt, LateInterrupt &hooks,
                                                    const std::function<void(PollSocket &)> &then) {
    auto p = quiet_packet_socket(rt);
    hooks.then = [&] { then(*p); };  // after the look at closing_ (wait_over looks there first)
    hooks.looks_before = 2;          // the look after the non-blocking recv(), before poll()
    std::string error = error_within_10s([&] { p->recv(PollSocket::kAnySize); });
    hooks.then = nullptr;  // it refers to p and to `then`
    return error;
}

TEST_CASE("wakeup_close_just_before_a_packet_socket_poll_ends_it_at_once") {
    SKIP_UNLESS(geteuid() == 0, "needs root for an AF_PACKET socket");
    auto hooks = std::make_shared<LateInterrupt>();
    auto rt = start_pushing(hooks);
    auto close_from_another_thread = [](PollSocket &p) { std::thread([&] { p.close(); }).join(); };
    CHECK(packet_recv_error_when_just_before_poll(rt, *hooks, close_from_another_thread) ==
          "read: the socket is closed");
    CHECK(rt->shutdown() == 0);
}

TEST_CASE("wakeup_teardown_just_before_a_packet_socket_poll_ends_it_at_once") {
    SKIP_UNLESS(geteuid() == 0, "needs root for an AF_PACKET socket");
    auto hooks = std::make_shared<LateInterrupt>();
    auto rt = start_pushing(hooks);
    std::thread teardown;
    auto begin_teardown = [&](PollSocket &p) {
        teardown = std::thread([&] { CHECK(rt->shutdown() == 0); });
        // Closed comes after marked closing (and the signal): teardown now waits for the caller.
        while (!p.closed()) std::this_thread::sleep_for(1ms);
    };
    CHECK(packet_recv_error_when_just_before_poll(rt, *hooks, begin_teardown) ==
          "read: socket closed because the net module was unloaded");
    teardown.join();
}

TEST_CASE("wakeup_pushed_interrupt_ends_a_bind_waiting_for_a_posted_close_at_once") {
    // bind() meets the port of a socket closed a moment ago, whose descriptor the loop
    // has not closed yet, and waits for the loop; here the loop is stuck.
    auto hooks = std::make_shared<InterruptFlag>();
    auto rt = Runtime::start(hooks, kHour);
    rt->set_interrupts_pushed(true);
    auto holder = UdpSocket::create(rt, Family::Inet4);
    holder->bind(Endpoint{Family::Inet4, "127.0.0.1", 0});
    auto held = holder->local_address();
    const uint16_t port = sockaddr_port(reinterpret_cast<sockaddr *>(&held));
    auto next = UdpSocket::create(rt, Family::Inet4);
    std::string error;
    {
        LoopStuck stuck(*rt);
        holder->close();
        error = error_of([&] { next->bind(Endpoint{Family::Inet4, "127.0.0.1", port}); }, [&] {
            hooks->on = true;
            rt->wake_for_interrupt();
        });
    }
    CHECK(error == "bind: interrupted");
    hooks->on = false;
    next->bind(Endpoint{Family::Inet4, "127.0.0.1", port});  // once the loop has closed it
    next->close();
    CHECK(rt->shutdown() == 0);
}

TEST_CASE("wakeup_close_from_another_thread_ends_a_name_lookup_at_once") {
    // The lookup waits in libuv's pool, which is busy: only the close can end the wait.
    BusyThreadPool pool;
    auto rt = Runtime::start(nullptr, kHour);
    auto tcp = TcpSocket::create(rt, Family::Inet4);
    CHECK(error_of([&] { tcp->connect(Endpoint{Family::Inet4, "localhost", 9}); }, [&] { tcp->close(); }) ==
          "connect: the socket is closed");
    auto udp = UdpSocket::create(rt, Family::Inet4);
    CHECK(error_of([&] { udp->sendto("x", Endpoint{Family::Inet4, "localhost", 9}); }, [&] { udp->close(); }) ==
          "sendto: the socket is closed");
    CHECK(rt->shutdown() == 0);
}
