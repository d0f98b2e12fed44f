/* raw_c.c - the baseline: the same workloads as plugin_bench.cpp on raw blocking
 * sockets, a server thread and a client on 127.0.0.1. Prints "workload metric value". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void read_exact(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) die("read");
        got += (size_t)r;
    }
}

static void write_all(int fd, const char *buf, size_t n) {
    size_t put = 0;
    while (put < n) {
        ssize_t r = send(fd, buf + put, n - put, MSG_NOSIGNAL);
        if (r <= 0) die("write");
        put += (size_t)r;
    }
}

struct job {
    int listener;
    const char *mode;
    size_t size, count;
    size_t received;
};

static void *serve(void *arg) {
    struct job *j = arg;
    int fd = accept(j->listener, NULL, NULL);
    if (fd < 0) die("accept");
    if (strcmp(j->mode, "pingpong") == 0) {
        char *buf = malloc(j->size);
        for (size_t i = 0; i < j->count; ++i) {
            read_exact(fd, buf, j->size);
            write_all(fd, buf, j->size);
        }
        free(buf);
    } else {
        char *buf = malloc(65536);
        ssize_t r;
        while ((r = read(fd, buf, 65536)) > 0) j->received += (size_t)r;
        free(buf);
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s pingpong SIZE COUNT | bulk TOTAL CHUNK\n", argv[0]);
        return 2;
    }
    struct job j = {0};
    j.mode = argv[1];
    j.size = strtoull(argv[2], NULL, 10);
    j.count = strtoull(argv[3], NULL, 10);

    j.listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(j.listener, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
    if (listen(j.listener, 16) < 0) die("listen");
    getsockname(j.listener, (struct sockaddr *)&sa, &len);

    pthread_t server;
    pthread_create(&server, NULL, serve, &j);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");

    if (strcmp(j.mode, "pingpong") == 0) {
        char *buf = calloc(1, j.size);
        double t0 = now_s();
        for (size_t i = 0; i < j.count; ++i) {
            write_all(fd, buf, j.size);
            read_exact(fd, buf, j.size);
        }
        double t = now_s() - t0;
        printf("pingpong_%zu rtt_us %.3f\n", j.size, t / j.count * 1e6);
        free(buf);
        close(fd);
        pthread_join(server, NULL);
    } else {
        size_t total = j.size, chunk = j.count;
        char *buf = calloc(1, chunk);
        double t0 = now_s();
        for (size_t sent = 0; sent < total; sent += chunk) write_all(fd, buf, chunk);
        close(fd);
        pthread_join(server, NULL);
        double t = now_s() - t0;
        if (j.received != total) {
            fprintf(stderr, "bulk: received %zu of %zu bytes\n", j.received, total);
            return 1;
        }
        printf("bulk mib_per_s %.1f\n", total / t / (1024.0 * 1024.0));
        printf("bulk bytes %zu\n", j.received);
        free(buf);
    }
    close(j.listener);
    return 0;
}
