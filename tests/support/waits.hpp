// waits.hpp - waiting for a condition instead of sleeping and hoping: another thread
// blocked in the kernel, the loop having closed a descriptor, the kernel having taken
// a packet. Every wait has a generous limit; past it the case fails, naming what it
// waited for. The waits never throw (a failed CHECK, then false), so they are safe on
// any thread and with other threads still to join.
//
// These waits do not know about an interpreter lock: a plugin case waits through
// NetFixture::wait_until / wait_until_blocked, which release it first.
#pragma once

#include <doctest/doctest.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace waits {

constexpr std::chrono::milliseconds kLimit{10000};

// Checks `done` until it holds; false (and a failed check naming `what`) after `limit`.
template <class Done>
bool wait_until(Done &&done, const std::string &what, std::chrono::milliseconds limit = kLimit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (int round = 0;; ++round) {
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= until) {
            CHECK_MESSAGE(false, "gave up after ", limit.count(), " ms waiting for ", what);
            return false;
        }
        // The interval at which the condition is looked at again, not a guess at a delay.
        if (round < 100) std::this_thread::yield();
        else std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

// Who a thread is, so that another can watch it: the thread calls here() itself, just
// before the call it is expected to block in.
struct ThreadMark {
    std::atomic<pid_t> tid{0};
    std::atomic<pthread_t> handle{};
    void here() {
        handle = pthread_self();
        tid = static_cast<pid_t>(::syscall(SYS_gettid));
    }
    bool set() const { return tid.load() != 0; }
};

// What /proc says a thread is doing: its state letter, the system call it is blocked
// in ("running" when it is on a CPU), and how often it has given up the CPU.
struct TaskState {
    char state = '?';
    std::string syscall;
    long switches = -1;
    bool blocked() const { return (state == 'S' || state == 'D') && !syscall.empty() && syscall != "running" && syscall != "-1"; }
};

inline TaskState task_state(pid_t tid) {
    const std::string dir = "/proc/self/task/" + std::to_string(tid) + "/";
    TaskState t;
    std::ifstream stat(dir + "stat");
    std::string line;
    if (std::getline(stat, line)) {
        size_t paren = line.rfind(')');  // the name in parentheses may hold spaces
        if (paren != std::string::npos && paren + 2 < line.size()) t.state = line[paren + 2];
    }
    std::ifstream sys(dir + "syscall");
    sys >> t.syscall;
    std::ifstream status(dir + "status");
    while (std::getline(status, line)) {
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0) t.switches = std::stol(line.substr(line.find(':') + 1));
    }
    return t;
}

// Blocked in one system call, and still in the same one a moment later without having
// run in between: a thread passing through a short lock on its way does not count.
inline bool blocked_in_the_kernel(pid_t tid) {
    TaskState a = task_state(tid);
    if (!a.blocked()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the moment it must stay blocked for
    TaskState b = task_state(tid);
    return b.blocked() && b.syscall == a.syscall && b.switches == a.switches;
}

// Waits until the marked thread has reached its mark and is blocked in the kernel.
inline bool wait_until_blocked(const ThreadMark &mark, const std::string &what,
                               std::chrono::milliseconds limit = kLimit) {
    return wait_until([&] { return mark.set() && blocked_in_the_kernel(mark.tid.load()); },
                      "a thread blocked in " + what, limit);
}

}  // namespace waits
