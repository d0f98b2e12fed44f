// process_census.hpp - counts what a test could leave behind: open descriptors,
// threads, and mappings of a file. Each case takes a census at its start and checks
// that the same holds at its end.
#pragma once

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

namespace census {

// Calls visit(name) for each entry of `dir` but "." and "..".
template <class Visit>
void for_each_entry(const char *dir, Visit &&visit) {
    if (DIR *d = opendir(dir)) {
        while (dirent *e = readdir(d)) {
            if (e->d_name[0] != '.') visit(e->d_name);
        }
        closedir(d);
    }
}

inline int count_entries(const char *dir) {
    int n = 0;
    for_each_entry(dir, [&](const char *) { ++n; });
    return n;
}

inline int open_fds() { return count_entries("/proc/self/fd") - 1; }  // less opendir's own

// Open descriptors that are sockets: what a case's own connections hold, apart from the
// runtime's and libuv's other descriptors.
inline int open_sockets() {
    int n = 0;
    for_each_entry("/proc/self/fd", [&](const char *name) {
        char target[64] = {};
        std::string link = std::string("/proc/self/fd/") + name;
        ssize_t len = readlink(link.c_str(), target, sizeof target - 1);
        if (len > 0 && std::string(target, static_cast<size_t>(len)).rfind("socket:", 0) == 0) ++n;
    });
    return n;
}
inline int threads() { return count_entries("/proc/self/task"); }

// The thread count once it has come down to `expected`, or after 1 s: a thread joined a
// moment ago may linger in /proc/self/task for a little while.
inline int threads_settled(int expected) {
    int n = threads();
    for (int i = 0; i < 100 && n > expected; ++i) {
        usleep(10000);
        n = threads();
    }
    return n;
}

// Lines of /proc/self/maps that mention `needle` (e.g. "ksp_net").
inline int mappings_of(const std::string &needle) {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    int n = 0;
    while (std::getline(maps, line)) {
        if (line.find(needle) != std::string::npos) ++n;
    }
    return n;
}

// libuv keeps a little process-wide state for as long as the process lives: its
// thread pool (started by the first getaddrinfo or work request) and the pipe of its
// signal machinery. The plugin never calls uv_library_shutdown, so that state is part
// of the baseline: start it once before the first census.
inline void warm_up_libuv() {
    static bool done = false;
    if (done) return;
    done = true;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_work_t work{};
    uv_queue_work(&loop, &work, [](uv_work_t *) {}, [](uv_work_t *, int) {});
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

// Fills this process's descriptor table (its limit lowered first, so that this is
// quick); returns the descriptors taken. For forked children that test running out.
inline std::vector<int> take_every_descriptor() {
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_cur, static_cast<rlim_t>(open_fds() + 64));
    setrlimit(RLIMIT_NOFILE, &lim);
    std::vector<int> taken;
    for (int fd; (fd = ::dup(0)) >= 0;) taken.push_back(fd);
    return taken;
}

struct Snapshot {
    int fds = (warm_up_libuv(), open_fds());
    int thread_count = threads();
};

}  // namespace census
