// loop_fixture.hpp - a runtime for one core test case, and loopback TCP pairs.
// At the end of the case every handle, fd and thread it made must be gone.
#pragma once

#include <doctest/doctest.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <utility>

#include "ksnet/runtime.hpp"
#include "ksnet/tcp.hpp"
#include "process_census.hpp"
#include "waits.hpp"

namespace ksnet {

// A connected (client, server-side) pair over loopback on `rt`, e.g. a runtime a case
// started with hooks of its own.
inline std::pair<std::shared_ptr<TcpSocket>, std::shared_ptr<TcpSocket>> connected_pair(
    const std::shared_ptr<Runtime> &rt, Family f = Family::Inet4) {
    const char *host = f == Family::Inet6 ? "::1" : "127.0.0.1";
    auto l = TcpSocket::create(rt, f);
    l->bind(Endpoint{f, host, 0});
    l->listen(1);
    auto c = TcpSocket::create(rt, f);
    auto local = l->local_address();
    c->connect(Endpoint{f, host, sockaddr_port(reinterpret_cast<sockaddr *>(&local))});
    auto [server, name] = l->accept();
    l->close();
    return {c, server};
}

// A runtime for one case; at the end every handle, fd and thread must be gone.
struct LoopFixture {
    census::Snapshot before;
    std::shared_ptr<Runtime> rt = Runtime::start();

    ~LoopFixture() {
        CHECK(rt->shutdown() == 0);
        rt.reset();
        CHECK(census::open_fds() == before.fds);
        CHECK(census::threads_settled(before.thread_count) == before.thread_count);
    }

    std::shared_ptr<TcpSocket> listener(Family f = Family::Inet4, const char *host = "127.0.0.1") {
        auto s = TcpSocket::create(rt, f);
        s->bind(Endpoint{f, host, 0});
        s->listen(16);
        return s;
    }

    static uint16_t port_of(const TcpSocket &s) {
        auto a = s.local_address();
        return sockaddr_port(reinterpret_cast<sockaddr *>(&a));
    }

    // A connected (client, server-side) pair over loopback.
    std::pair<std::shared_ptr<TcpSocket>, std::shared_ptr<TcpSocket>> pair(Family f = Family::Inet4) {
        return connected_pair(rt, f);
    }
};

// Keeps the runtime's loop thread busy in a task for its lifetime: what works meanwhile
// needs no loop thread (no hand-off to it).
class LoopStuck {
public:
    explicit LoopStuck(Runtime &rt) {
        rt.post([this] {
            std::unique_lock lk(mu_);
            stuck_ = true;
            cv_.notify_all();
            cv_.wait(lk, [this] { return release_; });
            left_ = true;  // the task touches nothing of this object after unlocking
            cv_.notify_all();
        });
        std::unique_lock lk(mu_);
        cv_.wait(lk, [this] { return stuck_; });
    }
    // Waits until the task has left: it still reads release_ when woken.
    ~LoopStuck() {
        std::unique_lock lk(mu_);
        release_ = true;
        cv_.notify_all();
        cv_.wait(lk, [this] { return left_; });
    }
    LoopStuck(const LoopStuck &) = delete;
    LoopStuck &operator=(const LoopStuck &) = delete;

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool stuck_ = false, release_ = false, left_ = false;
};

}  // namespace ksnet
