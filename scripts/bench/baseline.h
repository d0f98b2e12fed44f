/* baseline.h - what the two C baselines (raw_c.c, blocking; loop_c.c, one epoll loop)
 * share: the clock, dying on a failed call, the fd limit, and the lines workload's data,
 * so that both measure the same bytes. Header-only: each baseline is one program. */
#ifndef KSNET_BENCH_BASELINE_H
#define KSNET_BENCH_BASELINE_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("malloc");
    return p;
}

static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* `count` lines of 13 bytes, "line 0000000\n" on; *len is their length. */
static char *make_lines(size_t count, size_t *len) {
    *len = count * 13;
    char *data = xmalloc(*len + 1);
    for (size_t i = 0; i < count; ++i) snprintf(data + i * 13, 14, "line %07zu\n", i % 10000000);
    return data;
}

#endif
