/* leader_follower.c - a prototype for issue 12: raw_c.c's ping-pong with both sockets
 * as uv_tcp_t on one uv_loop_t shared by the client thread and the server thread, and
 * no thread that owns the loop. One mutex guards every libuv call. A thread that needs
 * data and finds nobody running the loop becomes the leader: it waits in poll() on
 * uv_backend_fd() with the mutex released, then dispatches with uv_run(UV_RUN_NOWAIT)
 * holding it. Read callbacks append to the socket's buffer and wake the thread waiting
 * on it. Other waiting threads are followers, asleep on their own condition variable.
 * Writes go through uv_try_write, and uv_write for what the kernel did not take.
 *
 *   bench_leader_follower POLICY SIZE COUNT [gil] [adaptive] [spin=N] [send_unlocked] [slice_us=N]
 *
 * POLICY says what a leader does when its own data arrives while followers still wait:
 *   handoff  it makes the first follower the leader and wakes it.
 *   writer   it wakes nobody; a thread that writes while followers wait and nobody leads
 *            dispatches once (uv_run(UV_RUN_NOWAIT)) after its write, and a follower
 *            waits at most slice_us (default 1000) before it leads itself.
 *   direct   no leader at all: a thread waiting on one socket sleeps in poll() on that
 *            socket's descriptor (and its own eventfd) with the mutex released, so the
 *            kernel wakes exactly the thread whose data came, as with blocking sockets;
 *            it then dispatches with uv_run(UV_RUN_NOWAIT). Data that another thread's
 *            dispatch took for it is announced through the eventfd. (Waits on things
 *            without a descriptor, timers or name lookups, would still need a leader.)
 * `gil` adds an interpreter lock: each thread holds it except while it waits or writes,
 * as the plugin's script threads do. `adaptive` makes the loop's mutex spin a little
 * before it sleeps (glibc's PTHREAD_MUTEX_ADAPTIVE_NP); `spin=N` makes a thread try it
 * N times, pausing between tries, before it sleeps on it. `send_unlocked` makes a
 * write's first try a send() on the handle's descriptor without the mutex (the rest,
 * if any, still goes through uv_write): a write wakes the peer, which then needs the
 * mutex the writer would otherwise still hold.
 *
 * Prints "pingpong_SIZE metric value" lines like raw_c, plus context switches
 * (getrusage, the whole process) and the policy's own events per round trip. Exits 1
 * if either side counted fewer bytes than were sent. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>
#include <uv.h>

enum policy { POLICY_HANDOFF, POLICY_WRITER, POLICY_DIRECT };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int uv_code) {
    fprintf(stderr, "leader_follower: %s: %s\n", what, uv_code ? uv_strerror(uv_code) : strerror(errno));
    exit(2);
}

static void check(int rc, const char *what) {
    if (rc < 0) die(what, rc);
}

/* A thread waiting for something (data on a socket, a write's completion). */
struct waiter {
    pthread_cond_t cv;
    int signalled;          /* what it waits for may have happened */
    int lead;               /* it was made the leader while asleep */
    int queued;             /* in the shared loop's list of threads to wake */
    int efd;                /* direct policy: written to wake the thread from poll() */
    int in_poll;            /* direct policy: asleep in poll(), so the eventfd wakes it */
    int fd, events;         /* direct policy: the descriptor and events it waits for */
    struct waiter *next;    /* in the followers' list */
};

struct shared_loop {
    uv_loop_t loop;
    pthread_mutex_t mu;     /* guards the loop, every handle and everything below */
    struct waiter *leader;  /* the thread running the loop, or NULL */
    struct waiter *followers;
    enum policy policy;
    /* libuv tells epoll of a watcher that starts or stops only in its next uv_run, so a
     * leader that polls the backend descriptor first runs the loop once if a call may
     * have changed a watcher (uv_read_start, uv_read_stop, uv_write, a write's end). */
    int watchers_changed;
    uv_async_t kick;        /* wakes a leader asleep in poll() after such a change */
    long slice_us;          /* writer policy: a follower's longest sleep without a leader */
    /* Threads to wake once the mutex is released: a thread woken while the waker still
     * holds the mutex would sleep again at once, on the mutex. */
    struct waiter *to_wake[8];
    int n_to_wake;
    /* events, for the report */
    unsigned long leads, polls, dispatches, writer_dispatches, handoffs, fallback_leads;
};

struct conn {
    uv_tcp_t tcp;
    struct shared_loop *sl;
    char *buf;
    size_t have, cap;
    int eof, err, reading;
    int fd;                 /* the handle's descriptor, for send_unlocked */
    struct waiter *reader;  /* the thread waiting for this socket's data */
};

enum { READ_ROOM = 65536, HIGH_WATER = 4 << 20 };

static struct shared_loop *the_loop;
static int spin_iterations;  /* `spin=N`: tries of the mutex before sleeping on it */

/* A thread woken by the kernel usually finds the mutex held by the thread whose write
 * woke it, for the rest of that system call; spinning a little can beat sleeping. */
static void lock_loop(struct shared_loop *sl) {
    for (int i = 0; i < spin_iterations; ++i) {
        if (pthread_mutex_trylock(&sl->mu) == 0) return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    pthread_mutex_lock(&sl->mu);
}

/* Sets the flag (under the mutex) and queues the thread to be woken when the mutex is
 * released; a leader checks the flag itself. Waiters live as long as their thread, so
 * a wake that comes late finds a condition variable still there. */
static void signal_waiter(struct waiter *w) {
    if (!w) return;
    struct shared_loop *sl = the_loop;
    w->signalled = 1;
    if (w->queued) return;
    if (sl->n_to_wake == (int)(sizeof sl->to_wake / sizeof sl->to_wake[0])) {
        pthread_cond_signal(&w->cv);
        return;
    }
    w->queued = 1;
    sl->to_wake[sl->n_to_wake++] = w;
}

/* Wakes the queued threads now, mutex held: for a thread about to sleep itself. */
static void wake_queued(struct shared_loop *sl) {
    for (int i = 0; i < sl->n_to_wake; ++i) {
        struct waiter *w = sl->to_wake[i];
        w->queued = 0;
        if (w->in_poll) {
            uint64_t one = 1;
            if (write(w->efd, &one, sizeof one) < 0) die("eventfd write", 0);
        } else {
            pthread_cond_signal(&w->cv);
        }
    }
    sl->n_to_wake = 0;
}

/* Releases the mutex, then wakes the threads queued meanwhile. */
static void unlock_and_wake(struct shared_loop *sl) {
    struct waiter *wake[sizeof sl->to_wake / sizeof sl->to_wake[0]];
    int by_fd[sizeof sl->to_wake / sizeof sl->to_wake[0]];
    int n = sl->n_to_wake;
    for (int i = 0; i < n; ++i) {
        wake[i] = sl->to_wake[i];
        wake[i]->queued = 0;
        by_fd[i] = wake[i]->in_poll;
    }
    sl->n_to_wake = 0;
    pthread_mutex_unlock(&sl->mu);
    for (int i = 0; i < n; ++i) {
        if (by_fd[i]) {
            uint64_t one = 1;
            if (write(wake[i]->efd, &one, sizeof one) < 0) die("eventfd write", 0);
        } else {
            pthread_cond_signal(&wake[i]->cv);
        }
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
    (void)suggested;
    struct conn *c = h->data;
    if (c->cap - c->have < READ_ROOM) {
        size_t cap = c->cap ? c->cap : READ_ROOM;
        while (cap - c->have < READ_ROOM) cap *= 2;
        char *bigger = realloc(c->buf, cap);
        if (!bigger) die("realloc", 0);
        c->buf = bigger;
        c->cap = cap;
    }
    *out = uv_buf_init(c->buf + c->have, (unsigned)(c->cap - c->have));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    (void)b;
    struct conn *c = s->data;
    if (n > 0) c->have += (size_t)n;
    else if (n == UV_EOF) c->eof = 1;
    else if (n < 0) c->err = (int)n;
    if (n < 0 || c->have >= HIGH_WATER) {  /* stop at end, error, or a full buffer */
        uv_read_stop(s);
        c->reading = 0;
        c->sl->watchers_changed = 1;
    }
    signal_waiter(c->reader);
}

/* A thread that is not the leader changed a watcher: the leader may be asleep in poll()
 * on a set that lacks it, so it is woken (the slow path: a partial write, a restart). */
static void note_watchers_changed(struct shared_loop *sl, struct waiter *me) {
    sl->watchers_changed = 1;
    if (sl->leader && sl->leader != me) uv_async_send(&sl->kick);
}

static void kick_cb(uv_async_t *a) { (void)a; }

typedef int (*ready_fn)(void *arg);

/* The leader: runs the loop until its own condition holds. Mutex held on entry and exit. */
static void lead_until(struct shared_loop *sl, struct waiter *me, ready_fn ready, void *arg) {
    sl->leader = me;
    sl->leads++;
    while (!ready(arg)) {
        if (sl->watchers_changed) {
            sl->watchers_changed = 0;
            sl->dispatches++;
            uv_run(&sl->loop, UV_RUN_NOWAIT);
            continue;
        }
        struct pollfd p = {.fd = uv_backend_fd(&sl->loop), .events = POLLIN};
        int timeout = uv_backend_timeout(&sl->loop);
        unlock_and_wake(sl);
        int r = poll(&p, 1, timeout);
        lock_loop(sl);
        if (r < 0 && errno != EINTR) die("poll", 0);
        sl->polls++;
        sl->dispatches++;
        uv_run(&sl->loop, UV_RUN_NOWAIT);
    }
}

/* The leader's condition holds: it stops leading. Under the handoff policy the first
 * follower whose own condition is not yet met becomes the leader. */
static void resign(struct shared_loop *sl) {
    sl->leader = NULL;
    if (sl->policy != POLICY_HANDOFF) return;
    for (struct waiter *f = sl->followers; f; f = f->next) {
        if (f->signalled) continue;
        f->lead = 1;
        sl->leader = f;  /* reserved now, so a thread arriving meanwhile follows */
        sl->handoffs++;
        signal_waiter(f);
        return;
    }
}

static void add_follower(struct shared_loop *sl, struct waiter *w) {
    w->next = sl->followers;
    sl->followers = w;
}

static void remove_follower(struct shared_loop *sl, struct waiter *w) {
    for (struct waiter **p = &sl->followers; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            return;
        }
    }
}

static void deadline_in(struct timespec *ts, long us) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += (us % 1000000) * 1000;
    ts->tv_sec += us / 1000000 + ts->tv_nsec / 1000000000;
    ts->tv_nsec %= 1000000000;
}

/* Direct policy: sleeps in poll() on the waiter's own descriptor, dispatches when it
 * is ready. Mutex held on entry and exit. */
static void wait_direct(struct shared_loop *sl, struct waiter *me, ready_fn ready, void *arg) {
    while (!ready(arg)) {
        if (sl->watchers_changed) {  /* a restarted read must reach epoll before it can be dispatched */
            sl->watchers_changed = 0;
            sl->dispatches++;
            uv_run(&sl->loop, UV_RUN_NOWAIT);
            continue;
        }
        struct pollfd p[2] = {{.fd = me->fd, .events = (short)me->events}, {.fd = me->efd, .events = POLLIN}};
        me->in_poll = 1;
        unlock_and_wake(sl);
        int r = poll(p, 2, -1);
        lock_loop(sl);
        me->in_poll = 0;
        if (r < 0 && errno != EINTR) die("poll", 0);
        sl->polls++;
        if (p[1].revents) {  /* another thread's dispatch took data for us */
            uint64_t v;
            if (read(me->efd, &v, sizeof v) < 0 && errno != EAGAIN) die("eventfd read", 0);
        }
        if (p[0].revents && !ready(arg)) {
            sl->dispatches++;
            uv_run(&sl->loop, UV_RUN_NOWAIT);
        }
    }
}

/* Waits, leading or following, until ready(arg). Mutex held on entry and exit. */
static void wait_until(struct shared_loop *sl, struct waiter *me, ready_fn ready, void *arg) {
    me->signalled = 0;
    me->lead = 0;
    if (sl->policy == POLICY_DIRECT) {
        wait_direct(sl, me, ready, arg);
        return;
    }
    while (!ready(arg)) {
        if (sl->leader == NULL) {
            lead_until(sl, me, ready, arg);
            resign(sl);
            return;
        }
        if (sl->leader == me) {  /* made the leader by a resigning one */
            lead_until(sl, me, ready, arg);
            resign(sl);
            return;
        }
        add_follower(sl, me);
        wake_queued(sl);
        while (!me->signalled) {
            if (sl->policy == POLICY_WRITER) {
                struct timespec dl;
                deadline_in(&dl, sl->slice_us);
                int r = pthread_cond_timedwait(&me->cv, &sl->mu, &dl);
                if (r == ETIMEDOUT && sl->leader == NULL) {
                    sl->fallback_leads++;
                    break;
                }
            } else {
                pthread_cond_wait(&me->cv, &sl->mu);
            }
        }
        remove_follower(sl, me);
        me->signalled = 0;
    }
    if (sl->leader == me) resign(sl);  /* made the leader, but its data had come */
}

/* Under the writer policy, a writer that finds followers waiting and nobody leading
 * dispatches once: on loopback its write has usually just delivered their data. */
static void dispatch_for_followers(struct shared_loop *sl) {
    if (sl->policy == POLICY_WRITER && sl->followers && sl->leader == NULL) {
        sl->writer_dispatches++;
        sl->dispatches++;
        uv_run(&sl->loop, UV_RUN_NOWAIT);
    }
}

/* ---- the blocking calls a script would make ---- */

struct read_want {
    struct conn *c;
    size_t n;
};

static int read_ready(void *arg) {
    struct read_want *w = arg;
    return w->c->have >= w->n || w->c->eof || w->c->err;
}

/* Reads exactly n bytes into dst; returns how many arrived before end of stream. A
 * message larger than the buffer's high-water mark is taken out in parts. */
static size_t conn_read_exact(struct conn *c, struct waiter *me, char *dst, size_t n) {
    struct shared_loop *sl = c->sl;
    size_t got = 0;
    lock_loop(sl);
    while (got < n) {
        size_t left = n - got;
        struct read_want want = {c, left < HIGH_WATER / 2 ? left : HIGH_WATER / 2};
        c->reader = me;
        me->events = POLLIN;
        uv_fileno((uv_handle_t *)&c->tcp, &me->fd);
        wait_until(sl, me, read_ready, &want);
        c->reader = NULL;
        size_t take = c->have < left ? c->have : left;
        memcpy(dst + got, c->buf, take);
        memmove(c->buf, c->buf + take, c->have - take);
        c->have -= take;
        got += take;
        if (!c->reading && !c->eof && !c->err && c->have < HIGH_WATER / 2) {
            check(uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb), "uv_read_start");
            c->reading = 1;
            note_watchers_changed(sl, me);
        }
        if (take == 0) break;  /* end of stream or an error */
    }
    unlock_and_wake(sl);
    return got;
}

struct write_op {
    uv_write_t req;
    struct waiter *writer;
    int done, status;
};

static void write_cb(uv_write_t *req, int status) {
    struct write_op *op = req->data;
    op->done = 1;
    the_loop->watchers_changed = 1;
    op->status = status;
    signal_waiter(op->writer);
}

static int write_ready(void *arg) { return ((struct write_op *)arg)->done; }

static int send_unlocked;  /* `send_unlocked`: the first try is send(), without the mutex */

static void conn_write_all(struct conn *c, struct waiter *me, const char *src, size_t n) {
    struct shared_loop *sl = c->sl;
    uv_buf_t b;
    size_t put = 0;
    if (send_unlocked) {
        /* Sound only because nothing else writes to this descriptor meanwhile: one
         * writer per socket, and its uv_write (below) is done before the call returns. */
        ssize_t r = send(c->fd, src, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0 && errno != EAGAIN && errno != EINTR) die("send", 0);
        put = r > 0 ? (size_t)r : 0;
        if (put == n && sl->policy != POLICY_WRITER) return;
        lock_loop(sl);
    } else {
        lock_loop(sl);
        b = uv_buf_init((char *)src, (unsigned)n);
        int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (r < 0 && r != UV_EAGAIN) die("uv_try_write", r);
        put = r > 0 ? (size_t)r : 0;
    }
    if (put < n) {  /* the kernel took part of it: queue the rest and wait for it */
        struct write_op op = {.writer = me};
        op.req.data = &op;
        b = uv_buf_init((char *)src + put, (unsigned)(n - put));
        check(uv_write(&op.req, (uv_stream_t *)&c->tcp, &b, 1, write_cb), "uv_write");
        note_watchers_changed(sl, me);
        me->events = POLLOUT;
        uv_fileno((uv_handle_t *)&c->tcp, &me->fd);
        wait_until(sl, me, write_ready, &op);
        if (op.status < 0) die("write", op.status);
    }
    dispatch_for_followers(sl);
    unlock_and_wake(sl);
}

/* ---- the simulated interpreter lock ---- */

static int use_gil;
static pthread_mutex_t gil = PTHREAD_MUTEX_INITIALIZER;

static void gil_release(void) {
    if (use_gil) pthread_mutex_unlock(&gil);
}

static void gil_acquire(void) {
    if (use_gil) pthread_mutex_lock(&gil);
}

/* A script's read and write: the lock is released while the call waits or writes. */
static size_t script_read(struct conn *c, struct waiter *me, char *dst, size_t n) {
    gil_release();
    size_t got = conn_read_exact(c, me, dst, n);
    gil_acquire();
    return got;
}

static void script_write(struct conn *c, struct waiter *me, const char *src, size_t n) {
    gil_release();
    conn_write_all(c, me, src, n);
    gil_acquire();
}

/* ---- setup: a listener, a client and the accepted server side, on one loop ---- */

static void conn_init(struct shared_loop *sl, struct conn *c) {
    memset(c, 0, sizeof *c);
    c->sl = sl;
    check(uv_tcp_init(&sl->loop, &c->tcp), "uv_tcp_init");
    c->tcp.data = c;
}

struct setup {
    struct conn *server;
    int accepted, connected;
};

static void on_connection(uv_stream_t *listener, int status) {
    check(status, "listen");
    struct setup *s = listener->data;
    check(uv_accept(listener, (uv_stream_t *)&s->server->tcp), "uv_accept");
    s->accepted = 1;
}

static void on_connect(uv_connect_t *req, int status) {
    check(status, "connect");
    ((struct setup *)req->data)->connected = 1;
}

static void start_reading(struct conn *c) {
    check(uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb), "uv_read_start");
    c->reading = 1;
}

/* ---- ping-pong ---- */

struct server_job {
    struct conn *c;
    size_t size, count, got;
    struct waiter *me;  /* outlives the thread: a wake queued for it may come late */
};

static void *server_main(void *arg) {
    struct server_job *j = arg;
    char *buf = malloc(j->size);
    if (!buf) die("malloc", 0);
    gil_acquire();
    for (size_t i = 0; i < j->count; ++i) {
        size_t got = script_read(j->c, j->me, buf, j->size);
        j->got += got;
        if (got != j->size) break;
        script_write(j->c, j->me, buf, j->size);
    }
    gil_release();
    free(buf);
    return NULL;
}

static void close_cb(uv_handle_t *h) { (void)h; }

static void waiter_init(struct waiter *w) {
    memset(w, 0, sizeof *w);
    pthread_condattr_t ca;  /* deadlines are on CLOCK_MONOTONIC (deadline_in) */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->efd < 0) die("eventfd", 0);
}

static void waiter_destroy(struct waiter *w) {
    pthread_cond_destroy(&w->cv);
    close(w->efd);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s handoff|writer|direct SIZE COUNT [gil] [adaptive] [spin=N] [send_unlocked] [slice_us=N]\n", argv[0]);
        return 2;
    }
    struct shared_loop sl;
    memset(&sl, 0, sizeof sl);
    if (strcmp(argv[1], "handoff") == 0) sl.policy = POLICY_HANDOFF;
    else if (strcmp(argv[1], "writer") == 0) sl.policy = POLICY_WRITER;
    else if (strcmp(argv[1], "direct") == 0) sl.policy = POLICY_DIRECT;
    else {
        fprintf(stderr, "leader_follower: POLICY must be handoff, writer or direct, not '%s'\n", argv[1]);
        return 2;
    }
    size_t size = strtoull(argv[2], NULL, 10), count = strtoull(argv[3], NULL, 10);
    if (size == 0 || size > (1u << 30) || count == 0) {
        fprintf(stderr, "leader_follower: SIZE must be 1 to 2^30 and COUNT at least 1\n");
        return 2;
    }
    sl.slice_us = 1000;
    int adaptive = 0;
    for (int i = 4; i < argc; ++i) {
        if (strcmp(argv[i], "gil") == 0) use_gil = 1;
        else if (strcmp(argv[i], "adaptive") == 0) adaptive = 1;
        else if (strcmp(argv[i], "send_unlocked") == 0) send_unlocked = 1;
        else if (strncmp(argv[i], "spin=", 5) == 0) spin_iterations = atoi(argv[i] + 5);
        else if (strncmp(argv[i], "slice_us=", 9) == 0) sl.slice_us = strtol(argv[i] + 9, NULL, 10);
        else {
            fprintf(stderr, "leader_follower: unknown option '%s' (expected gil, adaptive, spin=N, send_unlocked or slice_us=N)\n", argv[i]);
            return 2;
        }
    }
    if (sl.slice_us < 1) sl.slice_us = 1;

    check(uv_loop_init(&sl.loop), "uv_loop_init");
    the_loop = &sl;
    check(uv_async_init(&sl.loop, &sl.kick, kick_cb), "uv_async_init");
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    if (adaptive) pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&sl.mu, &ma);
    pthread_mutexattr_destroy(&ma);

    /* Setup runs on this thread alone, before the server thread exists. */
    uv_tcp_t listener;
    struct conn client, server;
    check(uv_tcp_init(&sl.loop, &listener), "uv_tcp_init");
    conn_init(&sl, &client);
    conn_init(&sl, &server);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    check(uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0), "bind");
    check(uv_listen((uv_stream_t *)&listener, 16, on_connection), "listen");
    int len = sizeof addr;
    check(uv_tcp_getsockname(&listener, (struct sockaddr *)&addr, &len), "getsockname");
    struct setup st = {.server = &server};
    listener.data = &st;
    uv_connect_t creq;
    creq.data = &st;
    check(uv_tcp_connect(&creq, &client.tcp, (const struct sockaddr *)&addr, on_connect), "connect");
    while (!st.accepted || !st.connected) uv_run(&sl.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&listener, close_cb);
    start_reading(&client);
    start_reading(&server);
    check(uv_fileno((uv_handle_t *)&client.tcp, &client.fd), "uv_fileno");
    check(uv_fileno((uv_handle_t *)&server.tcp, &server.fd), "uv_fileno");

    struct waiter server_waiter, me;
    waiter_init(&server_waiter);
    waiter_init(&me);
    struct server_job job = {&server, size, count, 0, &server_waiter};
    pthread_t server_thread;
    if (pthread_create(&server_thread, NULL, server_main, &job) != 0) die("pthread_create", 0);

    char *buf = malloc(size);
    if (!buf) die("malloc", 0);
    memset(buf, 'p', size);
    size_t back = 0;
    gil_acquire();
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now_s();
    for (size_t i = 0; i < count; ++i) {
        script_write(&client, &me, buf, size);
        size_t got = script_read(&client, &me, buf, size);
        back += got;
        if (got != size) break;
    }
    double t = now_s() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    gil_release();
    pthread_join(server_thread, NULL);

    uv_close((uv_handle_t *)&client.tcp, close_cb);
    uv_close((uv_handle_t *)&server.tcp, close_cb);
    uv_close((uv_handle_t *)&sl.kick, close_cb);
    uv_run(&sl.loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&sl.loop);

    double n = (double)count;
    printf("pingpong_%zu rtt_us %.3f\n", size, t / n * 1e6);
    printf("pingpong_%zu bytes %zu\n", size, back);
    printf("pingpong_%zu server_bytes %zu\n", size, job.got);
    printf("pingpong_%zu vcsw_per_rt %.3f\n", size, (double)(ru1.ru_nvcsw - ru0.ru_nvcsw) / n);
    printf("pingpong_%zu ivcsw_per_rt %.3f\n", size, (double)(ru1.ru_nivcsw - ru0.ru_nivcsw) / n);
    printf("pingpong_%zu leads_per_rt %.3f\n", size, (double)sl.leads / n);
    printf("pingpong_%zu polls_per_rt %.3f\n", size, (double)sl.polls / n);
    printf("pingpong_%zu dispatches_per_rt %.3f\n", size, (double)sl.dispatches / n);
    printf("pingpong_%zu writer_dispatches_per_rt %.3f\n", size, (double)sl.writer_dispatches / n);
    printf("pingpong_%zu handoffs_per_rt %.3f\n", size, (double)sl.handoffs / n);
    printf("pingpong_%zu fallback_leads_per_rt %.3f\n", size, (double)sl.fallback_leads / n);
    free(buf);
    free(client.buf);
    free(server.buf);
    waiter_destroy(&me);
    waiter_destroy(&server_waiter);
    pthread_mutex_destroy(&sl.mu);
    if (closed != 0) {
        fprintf(stderr, "leader_follower: uv_loop_close: %s\n", uv_strerror(closed));
        return 1;
    }
    size_t want = size * count;
    if (back != want || job.got != want) {
        fprintf(stderr, "leader_follower: client got %zu, server got %zu, of %zu bytes\n", back, job.got, want);
        return 1;
    }
    return 0;
}
