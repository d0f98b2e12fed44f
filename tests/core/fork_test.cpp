// fork() and exec(): what a real interpreter does with the process.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <future>
#include <string>
#include <thread>

#include "ksnet/error.hpp"
#include "ksnet/udp.hpp"
#include "loop_fixture.hpp"
#include "waits.hpp"

using namespace ksnet;

namespace {

// Runs `body` in a forked child, which leaves with _exit: no doctest, no destructors
// of the parent's objects. Exit status 0 means the body returned true.
template <class Body>
pid_t spawn_child(Body body) {
    pid_t pid = fork();
    if (pid == 0) {
        int rc = 1;
        try {
            rc = body() ? 0 : 2;
        } catch (const std::exception &e) {
            fprintf(stderr, "child: %s\n", e.what());
            rc = 3;
        }
        _exit(rc);
    }
    REQUIRE(pid > 0);
    return pid;
}

int exit_status_of(pid_t pid) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

// Every socket descriptor of this process, as numbers.
std::vector<int> socket_fds() {
    std::vector<int> fds;
    for (int fd = 0; fd < 1024; ++fd) {
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0 && std::string(target, static_cast<size_t>(n)).rfind("socket:", 0) == 0) fds.push_back(fd);
    }
    return fds;
}

}  // namespace

TEST_CASE("runtime_keeps_its_descriptors_off_0_to_2_closed_before_or_after_it_started") {
    // As a supervisor starts a process, and as a script that daemonizes closes stdin: the
    // loop's own descriptors and the sockets would otherwise take 0 and 1, which libuv
    // refuses to close (it aborts).
    pid_t pid = spawn_child([] {
        ::close(STDIN_FILENO);
        ::close(STDOUT_FILENO);
        {
            auto rt = Runtime::start();  // gives 0 and 1 /dev/null
            ::close(STDIN_FILENO);
            auto [client, server] = connected_pair(rt, Family::Inet4);
            client->close();
            server->close();
            auto udp = UdpSocket::create(rt, Family::Inet4);
            udp->close();
            if (rt->shutdown() != 0) return false;
        }
        char target[64]{};
        ssize_t n = ::readlink("/proc/self/fd/1", target, sizeof target - 1);
        if (n < 0 || std::string(target, static_cast<size_t>(n)) != "/dev/null") return false;
        return ::fcntl(STDIN_FILENO, F_GETFD) == -1;  // no socket took it
    });
    CHECK(exit_status_of(pid) == 0);
}

TEST_CASE("fork_child_uses_a_socket_made_before_the_fork") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    pid_t child = spawn_child([&, c = c] {
        c->write("from the child");
        return c->read(5) == "reply";
    });
    CHECK(s->read(14) == "from the child");
    s->write("reply");
    CHECK(exit_status_of(child) == 0);
    c->close();
    s->close();
}

TEST_CASE("fork_parent_keeps_working_after_the_child_exits") {
    LoopFixture fx;
    auto [c, s] = fx.pair();
    CHECK(exit_status_of(spawn_child([] { return true; })) == 0);
    c->write("still here");
    CHECK(s->read(10) == "still here");
    s->write("and here");
    CHECK(c->read(8) == "and here");
    c->close();
    s->close();
}

// A read on `s` with a deadline 1 s away, on a thread of its own: true if it timed out.
std::future<bool> read_until_timeout(TcpSocket &s, waits::ThreadMark &mark) {
    return std::async(std::launch::async, [&s, &mark] {
        mark.here();
        try {
            s.read(5, Clock::now() + std::chrono::seconds(1));
        } catch (const Error &e) {
            return e.kind() == ErrorKind::Timeout;
        }
        return false;
    });
}

TEST_CASE("fork_child_is_not_held_up_by_calls_the_parent_had_in_progress") {
    // When the process forks, one parent thread is blocked reading and another waits for
    // the reader's turn. The child has neither thread, so their calls must not keep the
    // turn, make the child's close() shut the connection down under the parent, keep the
    // child's teardown waiting for them to leave, or keep the socket's destruction
    // waiting for the waiter of its condition variable.
    LoopFixture fx;
    auto pair = fx.pair();
    auto &c = pair.first;
    auto &s = pair.second;
    waits::ThreadMark first, second;
    auto reader = read_until_timeout(*s, first);
    REQUIRE(waits::wait_until_blocked(first, "the read"));
    auto waiter = read_until_timeout(*s, second);
    REQUIRE(waits::wait_until_blocked(second, "the wait for the reader's turn"));
    pid_t child = spawn_child([&] {
        alarm(20);  // a hang ends the child with SIGALRM, and the case fails
        bool got = false;
        try {
            got = s->read(5, Clock::now() + std::chrono::seconds(10)) == "hello";  // written once the parent's reads are over
        } catch (const Error &e) {
            fprintf(stderr, "child: %s\n", e.what());
        }
        s->close();
        s.reset();  // the child's last reference: the socket is destroyed in teardown
        return fx.rt->shutdown() == 0 && got;
    });
    CHECK(reader.get());
    CHECK(waiter.get());
    c->write("hello");
    CHECK(exit_status_of(child) == 0);
    c->write("again");
    CHECK(s->read(5) == "again");  // the child's close() left the connection up
    c->close();
    s->close();
}

TEST_CASE("fork_child_reader_holds_its_turn_from_its_first_call") {
    // The child's first call on a socket made before the fork forgets the parent's calls;
    // it must not forget its own turn with them, or a second reader would share the
    // receive buffer with it. The second waits for the turn (a futex), not in the kernel.
    LoopFixture fx;
    auto pair = fx.pair();
    auto &c = pair.first;
    auto &s = pair.second;
    pid_t child = spawn_child([&] {
        alarm(20);
        waits::ThreadMark first, second;
        auto a = std::async(std::launch::async, [&] {
            first.here();
            return s->read(1);
        });
        bool ok = waits::wait_until_blocked(first, "the first read");
        auto b = std::async(std::launch::async, [&] {
            second.here();
            return s->read(1, Clock::now() + std::chrono::seconds(10));
        });
        ok = ok && waits::wait_until_blocked(second, "the second read");
        std::string where = waits::task_state(second.tid.load()).syscall;
        if (where != std::to_string(SYS_futex)) {
            fprintf(stderr, "child: the second reader waits in system call %s, not futex\n", where.c_str());
            ok = false;
        }
        c->write("ab");
        ok = ok && a.get() == "a" && b.get() == "b";
        c->close();
        s->close();
        return fx.rt->shutdown() == 0 && ok;
    });
    CHECK(exit_status_of(child) == 0);
    c->close();
    s->close();
}

TEST_CASE("fork_child_can_open_resolve_and_connect_new_sockets") {
    LoopFixture fx;
    auto l = fx.listener();
    uint16_t port = LoopFixture::port_of(*l);
    pid_t child = spawn_child([&] {
        l->close();  // the child's copy: the parent serves
        auto c = TcpSocket::create(fx.rt, Family::Inet4);
        c->connect(Endpoint{Family::Inet4, "localhost", port});  // uv_getaddrinfo: threadpool
        c->write("new");
        c->close();
        return true;
    });
    auto [s, name] = l->accept(Clock::now() + std::chrono::seconds(10));
    CHECK(s->read(TcpSocket::kReadAll) == "new");
    CHECK(exit_status_of(child) == 0);
    s->close();
    l->close();
}

TEST_CASE("sockets_are_close_on_exec") {
    LoopFixture fx;
    auto l = fx.listener();
    auto [c, s] = fx.pair();
    auto fds = socket_fds();
    CHECK(fds.size() >= 3);
    for (int fd : fds) {
        CAPTURE(fd);
        CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    }
    c->close();
    s->close();
    l->close();
}
