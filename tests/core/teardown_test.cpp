// Teardown while callers are still inside the core: it must neither hang nor crash.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>
#include <vector>

#include "ksnet/error.hpp"
#include "ksnet/tcp.hpp"
#include "busy_thread_pool.hpp"
#include "loop_fixture.hpp"
#include "skip.hpp"

using namespace ksnet;
using namespace std::chrono_literals;

namespace {

// An interpreter lock for one script thread, with a hook that stops that thread just
// before it takes the lock back, so a test can take it first.
thread_local bool on_script_thread = false;

struct ScriptLock : WaitHooks {
    std::mutex gil;
    std::promise<void> at_reacquire;
    std::promise<void> go;
    std::atomic<bool> armed{false};

    void *release() override {
        if (on_script_thread) gil.unlock();
        return nullptr;
    }
    void reacquire(void *) override {
        if (!on_script_thread) return;
        if (armed.exchange(false)) {
            at_reacquire.set_value();
            go.get_future().wait();
        }
        gil.lock();
    }
};

// Runs `body` on a thread; gives it `limit`, then ends the process: a hang cannot be
// undone, and the next case must not inherit it.
void must_finish(const char *what, std::chrono::seconds limit, std::function<void()> body) {
    auto done = std::async(std::launch::async, std::move(body));
    if (done.wait_for(limit) != std::future_status::ready) {
        std::fprintf(stderr, "%s did not finish within %llds: deadlock\n", what,
                     static_cast<long long>(limit.count()));
        std::_Exit(1);
    }
    done.get();
}

}  // namespace

TEST_CASE("teardown_while_a_call_with_a_deadline_takes_the_lock_back_does_not_hang") {
    // The script thread's read gives up the lock for its recv() and stops before taking
    // it back; teardown then runs holding the lock, as a host's unload does. The read
    // must have let go of the descriptor already, or teardown waits for it forever.
    auto hooks = std::make_shared<ScriptLock>();
    auto rt = Runtime::start(hooks);
    auto [c, s] = connected_pair(rt);

    std::string error;
    std::thread script([&] {
        on_script_thread = true;
        std::lock_guard holds(hooks->gil);
        hooks->armed = true;
        try {
            // Big enough to give up the lock; it comes back for it at the latest when
            // the deadline has passed.
            s->read(kIoChunk, Clock::now() + 200ms);
        } catch (const Error &e) {
            error = e.what();
        }
        hooks->gil.unlock();
        hooks->gil.lock();  // the guard's
    });
    hooks->at_reacquire.get_future().wait();
    {
        std::lock_guard teardown_holds(hooks->gil);
        hooks->go.set_value();
        must_finish("shutdown", 10s, [&] { CHECK(rt->shutdown() == 0); });
    }
    script.join();
    CHECK((error == "read: socket closed because the net module was unloaded" || error == "read: timed out"));
}

namespace {

// Runs `child` in a forked process; its exit status (or 128 + the signal that ended it).
int in_child(const std::function<int()> &child) {
    pid_t pid = ::fork();
    if (pid == 0) std::_Exit(child());
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("runtime_start_with_too_few_descriptors_for_libuv_throws_instead_of_aborting") {
    // libuv makes a pipe the first time a loop starts in the process, and aborts if it
    // cannot: with one or two descriptors left, that is after the loop's own.
#if defined(__SANITIZE_ADDRESS__)  // the suite's sanitized builds have UBSan with ASan
    SKIP_UNLESS(false, "UBSan's vptr check makes a pipe of its own, which finds no descriptor here");
#endif
    for (int left : {1, 2}) {
        int status = in_child([left] {
            auto taken = census::take_every_descriptor();
            for (int i = 0; i < left; ++i) {
                ::close(taken.back());
                taken.pop_back();
            }
            try {
                Runtime::start();
                return 2;
            } catch (const Error &e) {
                return std::string(e.what()).rfind("uv_loop_init: EMFILE", 0) == 0 ? 0 : 3;
            }
        });
        CHECK_MESSAGE(status == 0, left, " descriptors left");  // 134 (SIGABRT) before the fix
    }
}

TEST_CASE("runtime_start_without_descriptors_throws_instead_of_crashing") {
    census::warm_up_libuv();  // libuv's process-wide pipe: it aborts if it cannot make it
    int status = in_child([] {
        auto taken = census::take_every_descriptor();
        try {
            Runtime::start();
            return 2;  // started without a descriptor?
        } catch (const Error &e) {
            return std::string(e.what()).rfind("uv_loop_init: EMFILE", 0) == 0 ? 0 : 3;
        }
    });
    CHECK(status == 0);  // 139 (SIGSEGV) before the fix
}


TEST_CASE("teardown_cancels_name_resolutions_instead_of_waiting_for_them") {
    BusyThreadPool pool;
    auto rt = Runtime::start();
    auto s = TcpSocket::create(rt, Family::Inet4);
    std::string error;
    std::thread caller([&] {
        try {
            s->connect(Endpoint{Family::Inet4, "localhost", 9});
        } catch (const Error &e) {
            error = e.what();
        }
    });
    // Tracked: the socket (handed over within kLazyDrain) and the resolution, queued for
    // the pool. (A core that does not track resolutions never gets there: the wait fails,
    // and its shutdown then hangs, which must_finish reports.)
    waits::wait_until([&] { return rt->tracked_count() >= 2; }, "the socket and its name resolution to be tracked");
    must_finish("shutdown", 10s, [&] { CHECK(rt->shutdown() == 0); });
    caller.join();
    // Whichever teardown reaches first: the lookup or the socket waiting for it.
    CHECK_MESSAGE((error == "connect localhost:9: name resolution cancelled: the net module was unloaded" ||
                   error == "connect: socket closed because the net module was unloaded"),
                  error);
}
