/* lock.c - kscript's interpreter lock (the GIL, a plain mutex) for blocking calls. */
#include "adapter.h"  /* first: kscript defines _GNU_SOURCE for the system headers */
#include <string.h>

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

void ksk_fill_lock(ksp_host *h) {
    h->release_lock = l_release_lock;
    h->acquire_lock = l_acquire_lock;
    h->interrupted = l_interrupted;
    h->set_interrupt_waker = l_set_interrupt_waker;
    h->strdup = l_strdup;
}
