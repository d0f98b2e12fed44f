// fork() and exec(): what a real interpreter does with the process.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <future>
#include <string>
#include <thread>

#include "ksnet/error.hpp"
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

TEST_CASE("fork_child_is_not_held_up_by_a_call_the_parent_had_in_progress") {
    // The parent's reader is blocked when the process forks; the child has no such
    // thread, so that call must neither keep the reader's turn, nor make close() shut the
    // connection down under the parent, nor keep teardown waiting for it to leave.
    LoopFixture fx;
    auto [c, s] = fx.pair();
    waits::ThreadMark mark;
    auto reader = std::async(std::launch::async, [&, s = s.get()] {
        mark.here();
        try {
            s->read(5, Clock::now() + std::chrono::milliseconds(400));
        } catch (const Error &e) {
            return e.kind() == ErrorKind::Timeout;
        }
        return false;
    });
    REQUIRE(waits::wait_until_blocked(mark, "the read"));
    pid_t child = spawn_child([&, s = s] {
        alarm(20);  // a hang ends the child with SIGALRM, and the case fails
        std::this_thread::sleep_for(std::chrono::milliseconds(600));  // the parent's reader has left
        bool got = false;
        try {
            got = s->read(5, Clock::now() + std::chrono::seconds(10)) == "hello";
        } catch (const Error &e) {
            fprintf(stderr, "child: %s\n", e.what());
        }
        s->close();
        return fx.rt->shutdown() == 0 && got;
    });
    CHECK(reader.get());
    c->write("hello");
    CHECK(exit_status_of(child) == 0);
    c->write("again");
    CHECK(s->read(5) == "again");  // the child's close() left the connection up
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
