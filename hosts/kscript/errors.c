/* errors.c - the plugin's error kinds as kscript exceptions.
 *
 * kscript's builtin net raises IOError for every failed system call, and kscript's
 * OSError is IOError's sibling, so `catch IOError` would miss an OSError. The adapter
 * raises a failed system call as net.SocketError[errno], a subtype of IOError that is
 * templated by errno the way kscript's own OSError is (KS_THROW_ERRNO): `catch IOError`,
 * `catch net.SocketError` and `catch net.SocketError[111]` all hold, and `e.errno` reads
 * the number. A timeout is net.TimeoutError, a net.SocketError with errno ETIMEDOUT. */
#include "adapter.h"  /* first: kscript defines _GNU_SOURCE for the system headers */
#include <ctype.h>
#include <string.h>

static ks_type socket_error = NULL;
static ks_type timeout_error = NULL;

/* The errno the plugin's message names: "connect 127.0.0.1:9: ECONNREFUSED (...)". Only
 * the name after the last ": " counts, so a host name in the address (which comes before
 * it) never sets the number. The names are libuv's: where one differs from glibc's, the
 * alias gives the number. */
static int errno_in_message(const char *msg) {
    static const struct {
        const char *name;
        int value;
    } aliases[] = {{"ENOTSUP", EOPNOTSUPP}};
    const char *p = NULL;
    for (const char *q = strstr(msg, ": "); q; q = strstr(q + 1, ": ")) p = q + 2;
    if (!p || *p != 'E') return 0;
    size_t n = 1;
    while (isupper((unsigned char)p[n]) || isdigit((unsigned char)p[n])) n++;
    if (n < 3 || strncmp(p + n, " (", 2) != 0) return 0;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strlen(aliases[i].name) == n && strncmp(aliases[i].name, p, n) == 0) return aliases[i].value;
    }
    for (int e = 1; e < 256; e++) {
        const char *name = strerrorname_np(e);
        if (name && strlen(name) == n && strncmp(name, p, n) == 0) return e;
    }
    return 0;
}

static int errno_of_type(ks_type t) {
    for (; t && t != kst_object; t = t->i__base) {
        if (t == timeout_error) return ETIMEDOUT;
        ks_tuple tpl = t->i__template;
        if (tpl && tpl->len == 1 && kso_issub(tpl->elems[0]->type, kst_int)) {
            ks_cint v = 0;
            if (kso_get_ci(tpl->elems[0], &v)) return (int)v;
            kso_catch_ignore();
        }
        if (t->i__base == t) break;
    }
    return 0;
}

static KS_FUNC(socket_error_getattr) {
    if (_nargs == 2 && kso_issub(_args[1]->type, kst_str) &&
        ks_str_eq_c((ks_str)_args[1], "errno", 5)) {
        int e = errno_of_type(_args[0]->type);
        if (e) return (kso)ks_int_new(e);
        KS_INCREF(KSO_NONE);
        return KSO_NONE;
    }
    KS_THROW(kst_AttrError, "no such attribute");  /* kscript then looks in the type */
    return NULL;
}

/* Sets *owned when the type returned is a new reference (an errno template). `err`: the
 * errno of a failed system call, 0 if none is known. */
static ks_type error_type_for(ksp_error_kind kind, int err, int *owned) {
    switch (kind) {
    case KSP_ERR_ARG: return kst_ArgError;
    case KSP_ERR_ATTR: return kst_AttrError;
    case KSP_ERR_IO: return kst_IOError;
    case KSP_ERR_IMPORT: return kst_ImportError;
    case KSP_ERR_INDEX: return kst_IndexError;
    case KSP_ERR_KEY: return kst_KeyError;
    case KSP_ERR_OVERFLOW: return kst_OverflowError;
    case KSP_ERR_SIZE: return kst_SizeError;
    case KSP_ERR_TYPE: return kst_TypeError;
    case KSP_ERR_VAL: return kst_ValError;
    case KSP_ERR_STOP_ITER: return kst_OutOfIterException;
    case KSP_ERR_TIMEOUT: return timeout_error ? timeout_error : kst_IOError;
    case KSP_ERR_OS:
    case KSP_ERR_INTERRUPT: {
        if (!socket_error) return kst_IOError;
        int e = kind == KSP_ERR_INTERRUPT ? EINTR : err;
        if (!e) return socket_error;
        ks_int eo = ks_int_new(e);
        ks_type t = ks_type_template(socket_error, 1, (kso[]){(kso)eo});
        KS_DECREF(eo);
        if (!t) {
            kso_catch_ignore();
            return socket_error;
        }
        *owned = 1;
        return t;
    }
    case KSP_ERR_ERROR:
    default: return kst_Error;
    }
}

/* KSP_ERR_MOVED is raised as a plain Error for the trampoline to catch: this flag says
 * which, and the trampoline calls the method again (types.c). */
static __thread int moved_raised = 0;

int ksk_take_moved(void) {
    int was = moved_raised;
    moved_raised = 0;
    return was;
}

static ksp_value e_raise_errno(ksp_error_kind kind, int err, const char *message) {
    moved_raised = kind == KSP_ERR_MOVED;
    /* err <= 0: as raise(), which reads an OSError's errno from the message */
    if (err <= 0) err = kind == KSP_ERR_OS && message ? errno_in_message(message) : 0;
    int owned = 0;
    ks_type t = error_type_for(kind, err, &owned);
    kso_throw_c(t, __FILE__, __func__, __LINE__, "%s", message ? message : "");
    if (owned) KS_DECREF(t);
    return NULL;
}

/* A plugin of ABI 1.5 passes the errno (raise_errno); an older one only names it in the
 * message. */
static ksp_value e_raise(ksp_error_kind kind, const char *message) { return e_raise_errno(kind, 0, message); }

static int e_error_occurred(void) { return ksos_thread_get()->exc != NULL; }

int ksk_add_error_types(ks_module module) {
    if (!socket_error) {
        socket_error = ks_type_new(
            "net.SocketError", kst_IOError, 0, 0,
            "A system call failed: an IOError (as kscript's builtin net raises), templated by "
            "errno as kscript's OSError is (net.SocketError[errno]); e.errno is the number",
            KS_IKV());
        kso tpl = (kso)ks_tuple_new(1, (kso[]){KSO_NONE});
        ks_type_set_c(socket_error, "__template", tpl);
        KS_DECREF(tpl);
        kso ga = ksf_wrap(socket_error_getattr_, "__getattr(self, attr)", "");
        ks_type_set_c(socket_error, "__getattr", ga);
        KS_DECREF(ga);
        timeout_error = ks_type_new("net.TimeoutError", socket_error, 0, 0,
                                    "A blocking call ran out of time (errno ETIMEDOUT)", KS_IKV());
        /* Filled in, so it is no template of its own (its errno is ETIMEDOUT). */
        kso eo = (kso)ks_int_new(ETIMEDOUT);
        kso tpl2 = (kso)ks_tuple_new(1, (kso[]){eo});
        ks_type_set_c(timeout_error, "__template", tpl2);
        KS_DECREF(tpl2);
        KS_DECREF(eo);
    }
    return ks_dict_set_c(module->attr, "SocketError", (kso)socket_error) &&
                   ks_dict_set_c(module->attr, "TimeoutError", (kso)timeout_error)
               ? 0
               : -1;
}

void ksk_fill_errors(ksp_host *h) {
    h->raise = e_raise;
    h->error_occurred = e_error_occurred;
    h->raise_errno = e_raise_errno;
}
