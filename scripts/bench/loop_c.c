/* loop_c.c - the kernel's floor for an event loop: the workloads of raw_c.c written the
 * way Node runs them, as one thread running one epoll loop with every socket
 * non-blocking and both ends (client and server) in that loop. No thread ever waits for
 * another to be scheduled, so a round trip costs system calls and no wake-ups. Prints
 * "workload metric value" lines, like raw_c.
 *
 *   bench_loop_c pingpong SIZE COUNT
 *   bench_loop_c bulk TOTAL CHUNK
 *   bench_loop_c lines COUNT
 *   bench_loop_c accept COUNT
 *   bench_loop_c fanin CONNS ROUNDS SIZE THREADS   (THREADS is ignored: one loop)
 *
 * Every count printed is what the receiving side counted, not the parameter. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "baseline.h"

/* ---- the loop: one epoll set; each registered descriptor has a peer record ---- */

/* One end of a connection. Output that the kernel did not take yet waits in `out`
 * (EPOLLOUT is asked for while any does). */
struct end {
    int fd;
    int is_client;
    size_t index;           /* fan-in: which connection */
    const char *out;
    size_t out_len, out_off;
    size_t got;             /* bytes received in the current message / in total */
    int closed;
};

static int epfd;
static struct sockaddr_in listen_addr;

static void watch(struct end *e, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = e};
    if (epoll_ctl(epfd, op, e->fd, &ev) < 0) die("epoll_ctl");
}

static int make_listener(int backlog) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (l < 0) die("socket");
    memset(&listen_addr, 0, sizeof listen_addr);
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0) die("bind");
    socklen_t len = sizeof listen_addr;
    if (getsockname(l, (struct sockaddr *)&listen_addr, &len) < 0) die("getsockname");
    if (listen(l, backlog) < 0) die("listen");
    return l;
}

/* A non-blocking connect to the listener (on loopback it completes or is in progress). */
static int start_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0 && errno != EINPROGRESS) die("connect");
    return fd;
}

/* A connected pair for setup (not timed): connect, then take it off the listener. */
static void connected_pair(int listener, struct end *client, struct end *server) {
    client->fd = start_connect();
    client->is_client = 1;
    for (;;) {
        server->fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (server->fd >= 0) break;
        if (errno != EAGAIN && errno != EINTR) die("accept");
        struct timespec pause = {0, 100000};
        nanosleep(&pause, NULL);  /* setup only: the handshake is still in flight */
    }
}

/* Writes what it can of e's pending output; asks for EPOLLOUT while some is left.
 * Returns 1 once all of it is out. */
static int flush(struct end *e, uint32_t read_events) {
    while (e->out_off < e->out_len) {
        ssize_t r = send(e->fd, e->out + e->out_off, e->out_len - e->out_off, MSG_NOSIGNAL);
        if (r > 0) {
            e->out_off += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) {
            watch(e, read_events | EPOLLOUT, EPOLL_CTL_MOD);
            return 0;
        }
        die("send");
    }
    return 1;
}

static void queue_output(struct end *e, const char *data, size_t len, uint32_t read_events) {
    e->out = data;
    e->out_len = len;
    e->out_off = 0;
    flush(e, read_events);
}

/* After an EPOLLOUT: carry on writing; stop asking once everything is out. */
static int resume_output(struct end *e, uint32_t read_events) {
    if (!flush(e, read_events)) return 0;
    watch(e, read_events, EPOLL_CTL_MOD);
    return 1;
}

static int wait_events(struct epoll_event *evs, int max) {
    for (;;) {
        int n = epoll_wait(epfd, evs, max, -1);
        if (n >= 0) return n;
        if (errno != EINTR) die("epoll_wait");
    }
}

/* ---- pingpong: the client sends SIZE bytes, the server echoes what arrives ---- */

static int run_pingpong(size_t size, size_t count) {
    int l = make_listener(16);
    struct end client = {0}, server = {0};
    connected_pair(l, &client, &server);
    watch(&client, EPOLLIN, EPOLL_CTL_ADD);
    watch(&server, EPOLLIN, EPOLL_CTL_ADD);
    char *msg = xmalloc(size), *buf = xmalloc(size > 65536 ? size : 65536);
    memset(msg, 'p', size);
    size_t rounds = 0, back = 0;
    struct epoll_event evs[4];
    double t0 = now_s();
    queue_output(&client, msg, size, EPOLLIN);
    while (rounds < count) {
        int n = wait_events(evs, 4);
        for (int i = 0; i < n; ++i) {
            struct end *e = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) {
                resume_output(e, EPOLLIN);
                continue;
            }
            if (e == &server) {
                /* echo: what the server read goes out before it reads again */
                if (server.out_off < server.out_len) continue;
                ssize_t r = recv(server.fd, buf, 65536, 0);
                if (r <= 0) die("pingpong: server recv");
                queue_output(&server, buf, (size_t)r, EPOLLIN);
            } else {
                char in[65536];
                ssize_t r = recv(client.fd, in, sizeof in, 0);
                if (r <= 0) die("pingpong: client recv");
                back += (size_t)r;
                client.got += (size_t)r;
                if (client.got >= size) {
                    client.got -= size;
                    if (++rounds < count) queue_output(&client, msg, size, EPOLLIN);
                }
            }
        }
    }
    double t = now_s() - t0;
    printf("pingpong_%zu rtt_us %.3f\n", size, t / (double)count * 1e6);
    printf("pingpong_%zu bytes %zu\n", size, back);
    close(client.fd);
    close(server.fd);
    close(l);
    free(msg);
    free(buf);
    return 0;
}

/* ---- bulk and lines: the client streams a buffer out, then closes; the server counts ---- */

struct stream_count {
    size_t bytes, lines, line_bytes;
    char *pending;  /* lines: the part of a line not yet ended by '\n' */
    size_t have, cap;
};

static void count_lines(struct stream_count *c, const char *data, size_t n) {
    if (c->have + n > c->cap) {
        c->cap = (c->have + n) * 2;
        c->pending = realloc(c->pending, c->cap);
        if (!c->pending) die("realloc");
    }
    memcpy(c->pending + c->have, data, n);
    c->have += n;
    char *p = c->pending, *end = c->pending + c->have, *nl;
    while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        c->lines += 1;
        c->line_bytes += (size_t)(nl - p);
        p = nl + 1;
    }
    c->have = (size_t)(end - p);
    memmove(c->pending, p, c->have);
}

/* Sends `total` bytes of `data` (in writes of at most `chunk`, wrapping around `data`
 * of length `data_len`), closes, and returns the server's count once it sees the end. */
static struct stream_count stream_through(const char *data, size_t data_len, size_t total, size_t chunk,
                                          int split_lines, double *seconds) {
    int l = make_listener(16);
    struct end client = {0}, server = {0};
    connected_pair(l, &client, &server);
    watch(&client, 0, EPOLL_CTL_ADD);
    watch(&server, EPOLLIN, EPOLL_CTL_ADD);
    struct stream_count c = {0};
    char *buf = xmalloc(65536);
    size_t sent = 0;
    int done = 0;
    struct epoll_event evs[4];
    double t0 = now_s();
    /* The client writes until the kernel says EAGAIN, then waits for EPOLLOUT. */
    for (;;) {
        while (!client.closed && (client.out_off < client.out_len || sent < total)) {
            if (client.out_off == client.out_len) {
                size_t n = total - sent < chunk ? total - sent : chunk;
                size_t at = sent % data_len;
                if (n > data_len - at) n = data_len - at;
                client.out = data + at;
                client.out_len = n;
                client.out_off = 0;
                sent += n;
            }
            if (!flush(&client, 0)) break;
        }
        if (!client.closed && sent == total && client.out_off == client.out_len) {
            close(client.fd);
            client.closed = 1;
        }
        if (done) break;
        int n = wait_events(evs, 4);
        for (int i = 0; i < n; ++i) {
            struct end *e = evs[i].data.ptr;
            if (e == &client) {
                resume_output(&client, 0);
                continue;
            }
            for (;;) {
                ssize_t r = recv(server.fd, buf, 65536, 0);
                if (r > 0) {
                    c.bytes += (size_t)r;
                    if (split_lines) count_lines(&c, buf, (size_t)r);
                    continue;
                }
                if (r == 0) done = 1;
                else if (errno != EAGAIN && errno != EINTR) die("recv");
                break;
            }
        }
    }
    if (split_lines && c.have > 0) { /* a last line without a newline */
        c.lines += 1;
        c.line_bytes += c.have;
    }
    *seconds = now_s() - t0;
    close(server.fd);
    close(l);
    free(buf);
    free(c.pending);
    return c;
}

static int run_bulk(size_t total, size_t chunk) {
    char *data = xmalloc(chunk);
    memset(data, 'b', chunk);
    double t;
    struct stream_count c = stream_through(data, chunk, total, chunk, 0, &t);
    printf("bulk mib_per_s %.1f\n", (double)c.bytes / t / (1024.0 * 1024.0));
    printf("bulk bytes %zu\n", c.bytes);
    free(data);
    return c.bytes == total ? 0 : 1;
}

static int run_lines(size_t count) {
    size_t len;
    char *data = make_lines(count, &len);
    double t;
    struct stream_count c = stream_through(data, len ? len : 1, len, 65536, 1, &t);
    printf("lines lines_per_s %.0f\n", (double)c.lines / t);
    printf("lines lines %zu\n", c.lines);
    printf("lines bytes %zu\n", c.line_bytes);
    free(data);
    return c.lines == count ? 0 : 1;
}

/* ---- accept: connect; the server accepts and closes; the client sees the end ---- */

static int run_accept(size_t count) {
    int l = make_listener(128);
    struct end listener = {.fd = l};
    watch(&listener, EPOLLIN, EPOLL_CTL_ADD);
    struct end client = {0};
    size_t accepted = 0, finished = 0;
    struct epoll_event evs[8];
    double t0 = now_s();
    client.fd = start_connect();
    watch(&client, EPOLLIN, EPOLL_CTL_ADD);
    while (finished < count) {
        int n = wait_events(evs, 8);
        for (int i = 0; i < n; ++i) {
            struct end *e = evs[i].data.ptr;
            if (e == &listener) {
                for (;;) {
                    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                    if (fd < 0) {
                        if (errno == EAGAIN) break;
                        if (errno == EINTR) continue;
                        die("accept");
                    }
                    accepted += 1;
                    close(fd);
                }
                continue;
            }
            char c;
            ssize_t r = recv(client.fd, &c, 1, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r != 0) die("accept: expected end of stream");
            close(client.fd);  /* also leaves the epoll set */
            if (++finished < count) {
                client.fd = start_connect();
                watch(&client, EPOLLIN, EPOLL_CTL_ADD);
            }
        }
    }
    double t = now_s() - t0;
    printf("accept conns_per_s %.0f\n", (double)accepted / t);
    printf("accept conns %zu\n", accepted);
    close(l);
    return accepted == count ? 0 : 1;
}

/* ---- fan-in: CONNS connections, each making ROUNDS round trips of SIZE bytes, all at once;
 * the server echoes what arrives, each client checks its echo ---- */

static void fanin_message(char *msg, size_t size, size_t conn) {
    memset(msg, 'x', size);
    char head[32];
    int n = snprintf(head, sizeof head, "%08zu", conn);
    memcpy(msg, head, (size_t)n < size ? (size_t)n : size);
}

static int run_fanin(size_t conns, size_t rounds, size_t size) {
    int l = make_listener(4096);
    struct end *clients = calloc(conns, sizeof *clients), *servers = calloc(conns, sizeof *servers);
    char *msgs = xmalloc(conns * size), *echoes = xmalloc(conns * size), *back = xmalloc(conns * size);
    size_t *done_rounds = calloc(conns, sizeof *done_rounds);
    if (!clients || !servers || !done_rounds) die("calloc");
    for (size_t i = 0; i < conns; ++i) {
        connected_pair(l, &clients[i], &servers[i]);
        clients[i].index = servers[i].index = i;
        fanin_message(msgs + i * size, size, i);
        watch(&clients[i], EPOLLIN, EPOLL_CTL_ADD);
        watch(&servers[i], EPOLLIN, EPOLL_CTL_ADD);
    }
    size_t verified = 0, finished = 0;
    struct epoll_event evs[256];
    double t0 = now_s();
    for (size_t i = 0; i < conns; ++i) queue_output(&clients[i], msgs + i * size, size, EPOLLIN);
    while (finished < conns) {
        int n = wait_events(evs, 256);
        for (int k = 0; k < n; ++k) {
            struct end *e = evs[k].data.ptr;
            size_t i = e->index;
            if (evs[k].events & EPOLLOUT) {
                resume_output(e, EPOLLIN);
                continue;
            }
            if (!e->is_client) {
                if (e->out_off < e->out_len) continue;  /* the last echo is still going out */
                ssize_t r = recv(e->fd, echoes + i * size, size, 0);
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                if (r <= 0) die("fanin: server recv");
                queue_output(e, echoes + i * size, (size_t)r, EPOLLIN);
                continue;
            }
            ssize_t r = recv(e->fd, back + i * size + e->got, size - e->got, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) die("fanin: client recv");
            e->got += (size_t)r;
            if (e->got < size) continue;
            e->got = 0;
            if (memcmp(back + i * size, msgs + i * size, size) == 0) ++verified;
            if (++done_rounds[i] < rounds) queue_output(e, msgs + i * size, size, EPOLLIN);
            else ++finished;
        }
    }
    double t = now_s() - t0;
    printf("fanin msgs_per_s %.0f\n", (double)verified / t);
    printf("fanin msgs %zu\n", verified);
    printf("fanin conns %zu\n", conns);
    for (size_t i = 0; i < conns; ++i) {
        close(clients[i].fd);
        close(servers[i].fd);
    }
    close(l);
    free(clients);
    free(servers);
    free(msgs);
    free(echoes);
    free(back);
    free(done_rounds);
    return verified == conns * rounds ? 0 : 1;
}

static size_t arg(char **argv, int i) { return strtoull(argv[i], NULL, 10); }

int main(int argc, char **argv) {
    const char *usage =
        "usage: %s pingpong SIZE COUNT | bulk TOTAL CHUNK | lines COUNT | accept COUNT |\n"
        "       fanin CONNS ROUNDS SIZE THREADS\n";
    if (argc < 2) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    raise_fd_limit();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    if (strcmp(mode, "pingpong") == 0 && argc == 4) return run_pingpong(arg(argv, 2), arg(argv, 3));
    if (strcmp(mode, "bulk") == 0 && argc == 4) return run_bulk(arg(argv, 2), arg(argv, 3));
    if (strcmp(mode, "lines") == 0 && argc == 3) return run_lines(arg(argv, 2));
    if (strcmp(mode, "accept") == 0 && argc == 3) return run_accept(arg(argv, 2));
    if (strcmp(mode, "fanin") == 0 && argc == 6) return run_fanin(arg(argv, 2), arg(argv, 3), arg(argv, 4));
    fprintf(stderr, usage, argv[0]);
    return 2;
}
