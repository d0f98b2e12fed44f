/* lock.c - kscript's interpreter lock (the GIL, a plain mutex) for blocking calls, and
 * when each call began, for their timeouts. */
#include "adapter.h"  /* first: kscript defines _GNU_SOURCE for the system headers */
#include <string.h>
#include <time.h>

static void *l_release_lock(void) {
    KS_GIL_UNLOCK();
    return (void *)ksg_GIL;
}

static void l_acquire_lock(void *token) {
    (void)token;
    KS_GIL_LOCK();
}

/* kscript gives scripts no interrupt flag: a wait ends by its deadline or by close(). */
static int l_interrupted(void) { return 0; }

/* ABI 1.3. kscript never asks a running script to stop, so there is no interrupt to push:
 * the adapter declines every waker (as the ABI lets a host do), which spares the plugin a
 * SIGURG handler and a list of waiting threads that nothing would ever wake. */
static int l_set_interrupt_waker(void (*wake)(void *arg), void *arg) {
    (void)wake;
    (void)arg;
    return -1;
}

static char *l_strdup(const char *s) { return strdup(s ? s : ""); }

/* -1: no call of the plugin on this thread; 0: in one whose start nobody asked for yet
 * (the clock is read only when a plugin asks: most calls have no timeout). */
static _Thread_local int64_t call_began = -1;

int64_t ksk_call_clock_enter(void) {
    int64_t outer = call_began;
    call_began = 0;
    return outer;
}

void ksk_call_clock_leave(int64_t outer) { call_began = outer; }

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ABI 1.5: a method the adapter calls again after KSP_ERR_MOVED keeps its first start. */
static int64_t l_call_began_ns(void) {
    if (call_began < 0) return monotonic_ns();
    if (call_began == 0) call_began = monotonic_ns();
    return call_began;
}

void ksk_fill_lock(ksp_host *h) {
    h->release_lock = l_release_lock;
    h->acquire_lock = l_acquire_lock;
    h->interrupted = l_interrupted;
    h->set_interrupt_waker = l_set_interrupt_waker;
    h->strdup = l_strdup;
    h->call_began_ns = l_call_began_ns;
}
