/* raw_c.c - the baseline: the workloads of plugin_bench.cpp on raw blocking sockets
 * (and one epoll loop for the fan-in server), on 127.0.0.1, server and client in this
 * process. Prints "workload metric value" lines; see scripts/bench.py for the meaning.
 *
 *   bench_raw_c pingpong SIZE COUNT
 *   bench_raw_c udp_pingpong SIZE COUNT
 *   bench_raw_c bulk TOTAL CHUNK
 *   bench_raw_c lines COUNT
 *   bench_raw_c accept COUNT
 *   bench_raw_c fanin CONNS ROUNDS SIZE THREADS
 *   bench_raw_c idle CONNS
 *
 * Every count printed is what the receiving side counted, not the parameter. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "baseline.h"

/* Reads exactly n bytes; returns how many arrived before end of stream. */
static size_t read_exact(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) die("read");
        if (r == 0) break;
        got += (size_t)r;
    }
    return got;
}

static void write_all(int fd, const char *buf, size_t n) {
    size_t put = 0;
    while (put < n) {
        ssize_t r = send(fd, buf + put, n - put, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("write");
        put += (size_t)r;
    }
}

static struct sockaddr_in listen_addr;

/* A socket of `type` bound to 127.0.0.1 on a port of the kernel's choice, given in `bound`. */
static int bound_loopback(int type, struct sockaddr_in *bound) {
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
    socklen_t len = sizeof *bound;
    getsockname(fd, (struct sockaddr *)bound, &len);
    return fd;
}

static int make_listener(int backlog) {
    int l = bound_loopback(SOCK_STREAM, &listen_addr);
    if (listen(l, backlog) < 0) die("listen");
    return l;
}

static int connect_client(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0) die("connect");
    return fd;
}

static int accept_one(int l) {
    for (;;) {
        int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) return fd;
        if (errno != EINTR) die("accept");
    }
}

/* ---- pingpong, bulk, lines: one connection, a server thread ---- */

struct job {
    int listener;
    const char *mode;
    size_t a, b;     /* the workload's two parameters */
    size_t count;    /* what the server counted: bytes or lines */
    size_t bytes;    /* lines: payload bytes without the newlines */
};

static void *serve_one(void *arg) {
    struct job *j = arg;
    int fd = accept_one(j->listener);
    if (strcmp(j->mode, "pingpong") == 0) {
        char *buf = xmalloc(j->a);
        for (size_t i = 0; i < j->b; ++i) {
            if (read_exact(fd, buf, j->a) != j->a) break;
            write_all(fd, buf, j->a);
        }
        free(buf);
    } else if (strcmp(j->mode, "bulk") == 0) {
        char *buf = xmalloc(65536);
        ssize_t r;
        while ((r = read(fd, buf, 65536)) > 0) j->count += (size_t)r;
        if (r < 0) die("read");
        free(buf);
    } else { /* lines: a simple buffered line splitter */
        size_t cap = 65536, have = 0;
        char *buf = xmalloc(cap);
        for (;;) {
            ssize_t r = read(fd, buf + have, cap - have);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) die("read");
            if (r == 0) break;
            have += (size_t)r;
            char *p = buf, *end = buf + have, *nl;
            while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
                j->count += 1;
                j->bytes += (size_t)(nl - p);
                p = nl + 1;
            }
            have = (size_t)(end - p);
            memmove(buf, p, have);
            if (have == cap) {
                cap *= 2;
                char *bigger = realloc(buf, cap);
                if (!bigger) die("realloc");
                buf = bigger;
            }
        }
        if (have > 0) { /* a last line without a newline */
            j->count += 1;
            j->bytes += have;
        }
        free(buf);
    }
    close(fd);
    return NULL;
}

/* "line 0000000\n" ... : COUNT lines of 13 bytes. */
static int run_single(const char *mode, size_t a, size_t b) {
    struct job j = {0};
    j.mode = mode;
    j.a = a;
    j.b = b;
    j.listener = make_listener(16);
    pthread_t server;
    pthread_create(&server, NULL, serve_one, &j);
    int fd = connect_client();
    int rc = 0;
    if (strcmp(mode, "pingpong") == 0) {
        size_t size = a, count = b, back = 0;
        char *buf = xmalloc(size);
        memset(buf, 'p', size);
        double t0 = now_s();
        for (size_t i = 0; i < count; ++i) {
            write_all(fd, buf, size);
            back += read_exact(fd, buf, size);
        }
        double t = now_s() - t0;
        close(fd);
        pthread_join(server, NULL);
        printf("pingpong_%zu rtt_us %.3f\n", size, t / (double)count * 1e6);
        printf("pingpong_%zu bytes %zu\n", size, back);
        free(buf);
    } else if (strcmp(mode, "bulk") == 0) {
        size_t total = a, chunk = b;
        char *buf = xmalloc(chunk);
        memset(buf, 'b', chunk);
        double t0 = now_s();
        for (size_t sent = 0; sent < total; sent += chunk) write_all(fd, buf, chunk < total - sent ? chunk : total - sent);
        close(fd);
        pthread_join(server, NULL);
        double t = now_s() - t0;
        if (j.count != total) {
            fprintf(stderr, "bulk: received %zu of %zu bytes\n", j.count, total);
            rc = 1;
        }
        printf("bulk mib_per_s %.1f\n", (double)j.count / t / (1024.0 * 1024.0));
        printf("bulk bytes %zu\n", j.count);
        free(buf);
    } else {
        size_t len;
        char *data = make_lines(a, &len);
        double t0 = now_s();
        for (size_t off = 0; off < len; off += 65536) write_all(fd, data + off, len - off < 65536 ? len - off : 65536);
        close(fd);
        pthread_join(server, NULL);
        double t = now_s() - t0;
        if (j.count != a) {
            fprintf(stderr, "lines: received %zu of %zu lines\n", j.count, a);
            rc = 1;
        }
        printf("lines lines_per_s %.0f\n", (double)j.count / t);
        printf("lines lines %zu\n", j.count);
        printf("lines bytes %zu\n", j.bytes);
        free(data);
    }
    close(j.listener);
    return rc;
}

/* ---- accept: connect, accept and close COUNT connections, one after another ---- */

struct accept_job {
    int listener;
    size_t count, accepted;
};

static void *accept_loop(void *arg) {
    struct accept_job *j = arg;
    for (size_t i = 0; i < j->count; ++i) {
        int fd = accept_one(j->listener);
        j->accepted += 1;
        close(fd);
    }
    return NULL;
}

static int run_accept(size_t count) {
    struct accept_job j = {make_listener(128), count, 0};
    pthread_t server;
    pthread_create(&server, NULL, accept_loop, &j);
    char c;
    double t0 = now_s();
    for (size_t i = 0; i < count; ++i) {
        int fd = connect_client();
        if (read(fd, &c, 1) != 0) die("accept: expected end of stream");  /* the server closed it */
        close(fd);
    }
    pthread_join(server, NULL);
    double t = now_s() - t0;
    printf("accept conns_per_s %.0f\n", (double)j.accepted / t);
    printf("accept conns %zu\n", j.accepted);
    close(j.listener);
    return j.accepted == count ? 0 : 1;
}

/* ---- fan-in: CONNS connections, ROUNDS round trips each ----
 * The server is one epoll loop echoing whatever arrives. The clients are THREADS
 * threads; each owns every THREADS-th connection and, per round, writes a message to
 * each of its connections, then reads each echo back and checks it. */

struct fanin {
    int listener, epfd;
    size_t conns, rounds, size, threads;
    int *client_fds;
    size_t accepted;
    atomic_int stop;
    size_t verified[64];
};

static void *fanin_server(void *arg) {
    struct fanin *f = arg;
    char buf[65536];
    struct epoll_event evs[256];
    while (!atomic_load(&f->stop)) {
        int n = epoll_wait(f->epfd, evs, 256, 50);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int i = 0; i < n; ++i) {
            int fd = evs[i].data.fd;
            if (fd == f->listener) {
                int c = accept_one(f->listener);
                f->accepted += 1;
                struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
                if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, c, &ev) < 0) die("epoll_ctl");
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                epoll_ctl(f->epfd, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                continue;
            }
            write_all(fd, buf, (size_t)r);
        }
    }
    return NULL;
}

struct fanin_client {
    struct fanin *f;
    size_t index;
};

static void fanin_message(char *msg, size_t size, size_t conn) {
    memset(msg, 'x', size);
    char head[32];
    int n = snprintf(head, sizeof head, "%08zu", conn);
    memcpy(msg, head, (size_t)n < size ? (size_t)n : size);
}

static void *fanin_client_main(void *arg) {
    struct fanin_client *c = arg;
    struct fanin *f = c->f;
    size_t mine = 0;
    for (size_t i = c->index; i < f->conns; i += f->threads) ++mine;
    char *msgs = xmalloc(mine * f->size);
    char *back = xmalloc(f->size);
    for (size_t k = 0, i = c->index; i < f->conns; i += f->threads, ++k) fanin_message(msgs + k * f->size, f->size, i);
    size_t ok = 0;
    for (size_t r = 0; r < f->rounds; ++r) {
        for (size_t k = 0, i = c->index; i < f->conns; i += f->threads, ++k) write_all(f->client_fds[i], msgs + k * f->size, f->size);
        for (size_t k = 0, i = c->index; i < f->conns; i += f->threads, ++k) {
            if (read_exact(f->client_fds[i], back, f->size) == f->size && memcmp(back, msgs + k * f->size, f->size) == 0) ++ok;
        }
    }
    f->verified[c->index] = ok;
    free(msgs);
    free(back);
    return NULL;
}

static int run_fanin(size_t conns, size_t rounds, size_t size, size_t threads) {
    if (threads < 1 || threads > 64) threads = 64;
    struct fanin f = {0};
    f.conns = conns;
    f.rounds = rounds;
    f.size = size;
    f.threads = threads;
    f.listener = make_listener(4096);
    f.epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = f.listener};
    epoll_ctl(f.epfd, EPOLL_CTL_ADD, f.listener, &ev);
    f.client_fds = xmalloc(conns * sizeof(int));
    pthread_t server;
    pthread_create(&server, NULL, fanin_server, &f);
    for (size_t i = 0; i < conns; ++i) f.client_fds[i] = connect_client();

    pthread_t *ts = xmalloc(threads * sizeof(pthread_t));
    struct fanin_client *cs = xmalloc(threads * sizeof *cs);
    double t0 = now_s();
    for (size_t k = 0; k < threads; ++k) {
        cs[k].f = &f;
        cs[k].index = k;
        pthread_create(&ts[k], NULL, fanin_client_main, &cs[k]);
    }
    for (size_t k = 0; k < threads; ++k) pthread_join(ts[k], NULL);
    double t = now_s() - t0;
    size_t total = 0;
    for (size_t k = 0; k < threads; ++k) total += f.verified[k];
    for (size_t i = 0; i < conns; ++i) close(f.client_fds[i]);
    atomic_store(&f.stop, 1);
    pthread_join(server, NULL);
    printf("fanin msgs_per_s %.0f\n", (double)total / t);
    printf("fanin msgs %zu\n", total);
    printf("fanin conns %zu\n", f.accepted);
    close(f.epfd);
    close(f.listener);
    free(ts);
    free(cs);
    free(f.client_fds);
    return total == conns * rounds ? 0 : 1;
}

/* ---- idle: user-space memory held per open, idle, accepted connection ---- */

static size_t heap_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static int run_idle(size_t conns) {
    int l = make_listener(4096);
    int *clients = xmalloc(conns * sizeof(int));
    int *servers = xmalloc(conns * sizeof(int));
    size_t heap0 = heap_in_use(), rss0 = rss_bytes();
    size_t open = 0;
    for (size_t i = 0; i < conns; ++i) {
        clients[i] = connect_client();
        servers[i] = accept_one(l);
    }
    size_t heap1 = heap_in_use(), rss1 = rss_bytes();
    for (size_t i = 0; i < conns; ++i) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        if (getpeername(servers[i], (struct sockaddr *)&peer, &len) == 0) ++open;
    }
    printf("idle heap_bytes_per_conn %.1f\n", ((double)heap1 - (double)heap0) / (double)conns);
    printf("idle rss_bytes_per_conn %.1f\n", ((double)rss1 - (double)rss0) / (double)conns);
    printf("idle conns %zu\n", open);
    for (size_t i = 0; i < conns; ++i) {
        close(clients[i]);
        close(servers[i]);
    }
    free(clients);
    free(servers);
    close(l);
    return open == conns ? 0 : 1;
}

/* ---- udp_pingpong: one datagram each way per round trip, a server thread ---- */

struct udp_job {
    int fd;
    size_t size, count;
};

/* A datagram lost on loopback would hang the round trips: give up after 10 s instead. */
static void set_receive_limit(int fd) {
    struct timeval tv = {10, 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) die("setsockopt");
}

static int udp_socket(struct sockaddr_in *bound) {
    int fd = bound_loopback(SOCK_DGRAM, bound);
    set_receive_limit(fd);
    return fd;
}

static void *serve_udp(void *arg) {
    struct udp_job *j = arg;
    char *buf = xmalloc(j->size);
    for (size_t i = 0; i < j->count; ++i) {
        struct sockaddr_storage from;
        socklen_t len = sizeof from;
        ssize_t r = recvfrom(j->fd, buf, j->size, 0, (struct sockaddr *)&from, &len);
        if (r < 0 && errno == EINTR) { --i; continue; }
        if (r < 0) die("recvfrom");
        if (sendto(j->fd, buf, (size_t)r, 0, (struct sockaddr *)&from, len) < 0) die("sendto");
    }
    free(buf);
    return NULL;
}

static int run_udp_pingpong(size_t size, size_t count) {
    struct sockaddr_in server_addr, client_addr;
    struct udp_job j = {udp_socket(&server_addr), size, count};
    int fd = udp_socket(&client_addr);
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0) die("connect");
    pthread_t server;
    pthread_create(&server, NULL, serve_udp, &j);
    char *buf = xmalloc(size);
    memset(buf, 'u', size);
    size_t back = 0;
    double t0 = now_s();
    for (size_t i = 0; i < count; ++i) {
        if (send(fd, buf, size, 0) < 0) die("send");
        ssize_t r;
        while ((r = recv(fd, buf, size, 0)) < 0 && errno == EINTR) {}
        if (r < 0) die("recv");
        back += (size_t)r;
    }
    double t = now_s() - t0;
    pthread_join(server, NULL);
    close(fd);
    close(j.fd);
    free(buf);
    printf("udp_pingpong_%zu rtt_us %.3f\n", size, t / (double)count * 1e6);
    printf("udp_pingpong_%zu bytes %zu\n", size, back);
    return back == size * count ? 0 : 1;
}

static size_t arg(char **argv, int i) { return strtoull(argv[i], NULL, 10); }

int main(int argc, char **argv) {
    const char *usage =
        "usage: %s pingpong SIZE COUNT | udp_pingpong SIZE COUNT | bulk TOTAL CHUNK |\n"
        "       lines COUNT | accept COUNT | fanin CONNS ROUNDS SIZE THREADS | idle CONNS\n";
    if (argc < 2) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    raise_fd_limit();
    if (strcmp(mode, "idle") == 0 && argc == 3) {
        mallopt(M_ARENA_MAX, 1);  /* one arena: mallinfo2() then sees every thread's blocks */
        return run_idle(arg(argv, 2));
    }
    if ((strcmp(mode, "pingpong") == 0 || strcmp(mode, "bulk") == 0) && argc == 4) return run_single(mode, arg(argv, 2), arg(argv, 3));
    if (strcmp(mode, "udp_pingpong") == 0 && argc == 4) return run_udp_pingpong(arg(argv, 2), arg(argv, 3));
    if (strcmp(mode, "lines") == 0 && argc == 3) return run_single(mode, arg(argv, 2), 0);
    if (strcmp(mode, "accept") == 0 && argc == 3) return run_accept(arg(argv, 2));
    if (strcmp(mode, "fanin") == 0 && argc == 6) return run_fanin(arg(argv, 2), arg(argv, 3), arg(argv, 4), arg(argv, 5));
    fprintf(stderr, usage, argv[0]);
    return 2;
}
