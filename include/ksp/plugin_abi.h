/*
 * ksp/plugin_abi.h - the whole contract between an interpreter (the host) and a
 * native module plugin such as ksp_net.so.
 *
 * Usable from C and C++. The plugin never links against the host's symbols and never
 * sees its struct layouts: everything it needs is reached through the `ksp_host` table
 * that the host hands to the plugin's single exported entry point.
 *
 * Versioning (after SQLite's sqlite3ext.h and HPy's universal ABI):
 *   - `KSP_ABI_MAJOR` changes only when an existing entry changes meaning or layout.
 *     A host refuses a plugin whose major differs from its own.
 *   - `KSP_ABI_MINOR` grows when entries are appended to the end of `ksp_host`.
 *     A host refuses a plugin that needs a newer minor than it provides; a plugin
 *     built against an older minor loads in a newer host.
 *   - `ksp_host.size` is sizeof(ksp_host) as the host was built. Before calling an entry
 *     added after 1.0, a plugin checks it with KSP_HOST_HAS(host, entry).
 *   - Entries are never removed or reordered; new ones go at the end, under a comment
 *     naming the version that added them.
 *
 * Ownership rules for values (`ksp_value`, an opaque handle):
 *   - Arguments passed to any function are BORROWED: the callee must not release them.
 *     If it keeps one beyond the call, it takes its own reference with `incref`.
 *   - Results returned by any function are NEW references: the caller releases each
 *     exactly once with `decref`, unless the entry says "borrowed".
 *   - A function that fails returns NULL (or -1) and has raised an error with `raise`.
 *   - Values may only be touched while holding the interpreter lock.
 *
 * Errors never cross the boundary as C++ exceptions: every function pointer in either
 * direction is `noexcept` in spirit, and the plugin catches everything at its edge.
 *
 * Life of a plugin (what the host guarantees and the plugin may rely on):
 *   - `init` and `teardown` are called on a thread that holds the interpreter lock, and
 *     return with it held. They may give it up and take it back like any other call.
 *   - Other threads may be inside the plugin when `teardown` starts: blocked in a call
 *     with the lock given up (release_lock), or waiting in acquire_lock to take it back.
 *     `teardown` must make those calls end (they raise and return after it) without
 *     waiting for anything such a thread does once it has the lock again: the thread
 *     running `teardown` holds that lock. The host keeps the plugin's code mapped until
 *     those calls have returned and every instance of its types is gone.
 *   - After `teardown` returns the host calls nothing of the plugin's (no method,
 *     getter, constructor or `init` result) except the finalizers of instances still
 *     alive. Such a finalizer runs with the lock held; it may use its payload and what the
 *     payload owns, and of this table incref and decref; it must not use `ctx`, which
 *     teardown may have freed (see ksp_type_spec.ctx).
 *   - If `init` fails, `teardown` is not called: init cleans up after itself. If `init`
 *     reports success but the host rejects what it returned, the host calls `teardown`
 *     at once.
 */
#ifndef KSP_PLUGIN_ABI_H
#define KSP_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KSP_ABI_MAJOR 1
#define KSP_ABI_MINOR 5

/* The one symbol a plugin exports. The loader resolves it with dlsym() and calls it
 * before anything else; its layout (`ksp_plugin_decl`'s first three fields) never
 * changes across majors, so any host can read any plugin's versions. */
#define KSP_PLUGIN_ENTRY_SYMBOL "ksp_plugin_entry"

/* An opaque reference to a host object. NULL means "no value" (an error was raised). */
typedef struct ksp_object_opaque *ksp_value;

/* What kind of built-in value a handle refers to (see `ksp_host.kind_of`). */
typedef enum ksp_kind {
    KSP_KIND_NONE = 0,
    KSP_KIND_BOOL = 1,
    KSP_KIND_INT = 2,
    KSP_KIND_FLOAT = 3,
    KSP_KIND_STR = 4,
    KSP_KIND_BYTES = 5,
    KSP_KIND_TUPLE = 6,
    KSP_KIND_LIST = 7,
    KSP_KIND_OTHER = 8 /* modules, types, enum members, instances, ... */
} ksp_kind;

/* The host's exception kinds, by which the plugin raises errors. The first twelve are
 * kscript's; a host maps each onto its own exception types. */
typedef enum ksp_error_kind {
    KSP_ERR_ERROR = 0,       /* Error: anything else */
    KSP_ERR_ARG = 1,         /* ArgError: wrong number of arguments */
    KSP_ERR_ATTR = 2,        /* AttrError */
    KSP_ERR_IO = 3,          /* IOError: the stream cannot do that (closed, cannot seek) */
    KSP_ERR_OS = 4,          /* OSError: a system call failed; the message names errno */
    KSP_ERR_IMPORT = 5,      /* ImportError */
    KSP_ERR_INDEX = 6,       /* IndexError */
    KSP_ERR_KEY = 7,         /* KeyError */
    KSP_ERR_OVERFLOW = 8,    /* OverflowError: a number does not fit */
    KSP_ERR_SIZE = 9,        /* SizeError: a sequence has the wrong length */
    KSP_ERR_TYPE = 10,       /* TypeError: an argument has the wrong type */
    KSP_ERR_VAL = 11,        /* ValError: right type, wrong value */
    KSP_ERR_TIMEOUT = 12,    /* a blocking call ran out of time (a host may make this an
                                OSError subtype) */
    KSP_ERR_STOP_ITER = 13,  /* not an error: `__next` raises it to end an iteration */
    KSP_ERR_INTERRUPT = 14,  /* the wait was interrupted (`ksp_host.interrupted`) */
    /* ABI 1.4. Not an error: the call's object was being handed to another version of
     * its plugin (live reload, see ksp_handover) while the call waited, and the call did
     * nothing the script could see. The host calls the same method again, by name, on
     * the object as it is now, with the same arguments; a script never sees this kind.
     * A plugin raises it only for an object whose handover has begun. */
    KSP_ERR_MOVED = 15
} ksp_error_kind;

/* A native function: a method (self is the instance), a type's constructor (self is
 * the type being called: the plugin's, or a host's subtype of it, e.g. a script's class
 * that extends it, whose instance the constructor makes) or a module function (self is
 * the module). Arguments are positional and
 * borrowed. Returns a new reference, or NULL after raising an error. `ctx` is the
 * pointer given in the spec that registered the function. */
typedef ksp_value (*ksp_cfunc)(void *ctx, ksp_value self, size_t nargs, const ksp_value *args);

/* An attribute getter: returns a new reference, or NULL after raising. */
typedef ksp_value (*ksp_getter_fn)(void *ctx, ksp_value self);

/* Called by the host exactly once when an instance is destroyed, with the lock held,
 * before or after the plugin's teardown (see "Life of a plugin" above: after teardown it
 * must not use `ctx`). After it returns the host forgets the payload. */
typedef void (*ksp_finalizer_fn)(void *ctx, void *payload);

/* A method of a type. Names `__iter`, `__next` and `__repr` are the host's iteration
 * and representation protocol. `signature` is for people, e.g. "read(self, sz=none)". */
typedef struct ksp_method {
    const char *name;
    ksp_cfunc fn;
    const char *signature;
    const char *doc;
} ksp_method;

/* A read-only attribute of an instance, computed by `fn`. */
typedef struct ksp_getter {
    const char *name;
    ksp_getter_fn fn;
    const char *doc;
} ksp_getter;

/* A member of an enum type (`ksp_host.enum_new`). */
typedef struct ksp_enum_member {
    const char *name;
    int64_t value;
    const char *doc;
} ksp_enum_member;

/* Describes a type the plugin defines. `size` is sizeof(ksp_type_spec) as the plugin
 * was built, so the struct can grow at its end. Every pointer is copied or must stay
 * valid until the plugin's teardown returns; `ctx` too, which every function of the type
 * receives until then, and which finalizers running later still receive but must not
 * use. */
typedef struct ksp_type_spec {
    size_t size;
    const char *name;          /* e.g. "SocketIO"; the host qualifies it by module */
    const char *doc;
    ksp_value base;            /* borrowed; NULL for the host's root object type */
    ksp_cfunc constructor;     /* called when the type itself is called; NULL: cannot */
    const char *constructor_signature;
    const ksp_method *methods;
    size_t nmethods;
    const ksp_getter *getters;
    size_t ngetters;
    ksp_finalizer_fn finalize; /* may be NULL when instances carry no payload */
    void *ctx;                 /* passed to every function above */
} ksp_type_spec;

/* The table a host hands to the plugin. Grows only at its end. */
typedef struct ksp_host {
    /* ---- ABI 1.0 ---- */
    size_t size;            /* sizeof(ksp_host) as the host was built */
    uint16_t abi_major;     /* the host's KSP_ABI_MAJOR */
    uint16_t abi_minor;     /* the host's KSP_ABI_MINOR */
    const char *host_name;  /* for messages, e.g. "refhost 0.1" */

    /* Reference counting. decref(NULL) and incref(NULL) do nothing. */
    void (*incref)(ksp_value v);
    void (*decref)(ksp_value v);

    /* Constructors. Each returns a new reference or NULL after raising. */
    ksp_value (*none)(void);
    ksp_value (*bool_new)(int truth);
    ksp_value (*int_new)(int64_t value);
    ksp_value (*float_new)(double value);
    /* Copies `len` bytes of UTF-8; raises ValError if they are not valid UTF-8. */
    ksp_value (*str_new)(const char *utf8, size_t len);
    ksp_value (*bytes_new)(const void *data, size_t len);
    /* Items are borrowed: the tuple/list takes its own references. */
    ksp_value (*tuple_new)(size_t n, const ksp_value *items);
    ksp_value (*list_new)(size_t n, const ksp_value *items);

    /* Inspection. None of these raise. */
    ksp_kind (*kind_of)(ksp_value v);
    /* The name of v's type, e.g. "int" or "net.SocketIO"; borrowed, lives as long as v. */
    const char *(*type_name)(ksp_value v);
    /* Read a built-in value. Return 0, or -1 if v is not of that kind (nothing raised,
     * so the plugin can name the argument in its own message). Pointers from str_get and
     * bytes_get are borrowed and live as long as v. Booleans are not ints here; enum members
     * are (as in kscript, an enum is a subtype of int), so int_get reads their value. An
     * int beyond int64_t reads as INT64_MIN or INT64_MAX, never wrapped: the plugin's range
     * checks then refuse it (the plugin asks repr for the number a message shows). */
    int (*int_get)(ksp_value v, int64_t *out);
    int (*float_get)(ksp_value v, double *out);
    int (*str_get)(ksp_value v, const char **utf8, size_t *len);
    int (*bytes_get)(ksp_value v, const void **data, size_t *len);
    /* Tuples and lists: length (0 for anything else) and a borrowed item (NULL if out of
     * range or not a sequence). */
    size_t (*seq_len)(ksp_value v);
    ksp_value (*seq_item)(ksp_value v, size_t index);
    /* The host's repr() of v as a new str, or NULL after raising. */
    ksp_value (*repr)(ksp_value v);

    /* Building a module. */
    ksp_value (*module_new)(const char *name, const char *doc);
    /* Adds `value` (borrowed) as attribute `name`; 0, or -1 after raising. */
    int (*module_add)(ksp_value module, const char *name, ksp_value value);
    /* A new enum type whose members are attributes of it (`net.FK.INET4`). */
    ksp_value (*enum_new)(const char *name, const char *doc, const ksp_enum_member *members,
                          size_t nmembers);
    /* 1 and *out set if v is a member of enum_type, else 0. Never raises. */
    int (*enum_value)(ksp_value enum_type, ksp_value v, int64_t *out);
    /* The member of enum_type with that value (new reference), or NULL after raising. */
    ksp_value (*enum_member)(ksp_value enum_type, int64_t value);
    /* The host's io.BaseIO type (borrowed), to use as a base. */
    ksp_value (*base_io_type)(void);
    /* A new type. Returns a new reference or NULL after raising. */
    ksp_value (*type_new)(const ksp_type_spec *spec);
    /* A new instance of `type` (which the plugin made with type_new) that owns
     * `payload`; the type's finalizer receives it when the instance dies. On failure
     * returns NULL after raising and the payload still belongs to the caller. */
    ksp_value (*object_new)(ksp_value type, void *payload);
    /* The payload of obj if obj is an instance of `type` (or of a subtype), else NULL.
     * Never raises. */
    void *(*object_payload)(ksp_value obj, ksp_value type);

    /* Errors. raise() sets the current error of this thread and returns NULL, so a
     * function can `return host->raise(KSP_ERR_VAL, "...")`. The message is copied. */
    ksp_value (*raise)(ksp_error_kind kind, const char *message);
    /* 1 if this thread has a current error. */
    int (*error_occurred)(void);

    /* Blocking. A plugin about to wait calls release_lock(), waits, then calls
     * acquire_lock() with the token it got, on the same thread. Between the two it must
     * not touch any value. acquire_lock may wait for as long as another thread holds the
     * lock, teardown included: let go of whatever teardown waits for before calling it. */
    void *(*release_lock)(void);
    void (*acquire_lock)(void *token);
    /* 1 if the script running on this thread has been asked to stop (e.g. SIGINT);
     * callable without the lock. A waiting plugin polls it and raises KSP_ERR_INTERRUPT. */
    int (*interrupted)(void);

    /* A copy of `s` in memory the host owns (and frees), for init's error message. */
    char *(*strdup)(const char *s);

    /* ---- added in ABI 1.1 (check with KSP_HOST_HAS before calling) ---- */

    /* Read a bool: 0 and *out = 0 or 1, or -1 if v is not a bool (nothing raised). */
    int (*bool_get)(ksp_value v, int *out);

    /* ---- added in ABI 1.2 (check with KSP_HOST_HAS before calling) ---- */

    /* Filling a bytes in place, so that received data is copied once (by the kernel),
     * not a second time into a bytes_new (after CPython's PyBytes_FromStringAndSize(NULL,
     * n) and _PyBytes_Resize). bytes_alloc returns a new bytes of `len` bytes whose
     * contents are undefined and sets *data to them; the plugin writes them (it may do so
     * with the lock released: no script can reach the value yet), then may cut the value
     * to its first `len` bytes with bytes_shrink, before handing it to anything else.
     * bytes_alloc returns NULL after raising; bytes_shrink returns 0, or -1 after raising
     * (not a bytes from bytes_alloc, shared already, or `len` longer than the value). */
    ksp_value (*bytes_alloc)(size_t len, void **data);
    int (*bytes_shrink)(ksp_value v, size_t len);

    /* ---- added in ABI 1.3 (check with KSP_HOST_HAS before calling) ---- */

    /* Interrupts pushed to the plugin. The plugin hands the host `wake`; the host calls
     * wake(arg) each time it asks a script to stop, right after interrupted() turned 1 for
     * that script's thread: from any thread, with or without the lock, never inside a
     * signal handler. `wake` must not block, touch values or call the host. The plugin
     * then ends the waits concerned at once, rather than at its next look at
     * interrupted() (which it keeps for hosts older than 1.3). Registrations go by `arg`:
     * a second call with the same arg replaces the first, and wake NULL removes it; once
     * that call returns, `wake` neither runs nor will run for that arg (teardown removes
     * its registration). Returns 0, or -1 if the host cannot take one more (nothing is
     * raised; the plugin then polls interrupted() as with an older host). */
    int (*set_interrupt_waker)(void (*wake)(void *arg), void *arg);

    /* ---- added in ABI 1.5 (check with KSP_HOST_HAS before calling) ---- */

    /* When the script's call running on this thread began, in nanoseconds of
     * clock_gettime(CLOCK_MONOTONIC): the time of the first ask within that call (a
     * plugin asks as the call starts; a host may read its clock only then). A method the
     * host calls again after KSP_ERR_MOVED is the same call and gets the same answer, so
     * that a timeout counted from it spans a live reload instead of starting over.
     * Outside a native call: the current time. Needs no lock, touches no value. */
    int64_t (*call_began_ns)(void);

    /* raise() for an error a failed system call caused, with its errno (`err` > 0), so
     * that the host gives the script the number (as OSError.errno) without reading it
     * out of the message. `err` <= 0 raises as raise() does. Returns NULL. */
    ksp_value (*raise_errno)(ksp_error_kind kind, int err, const char *message);
} ksp_host;

/* 1 if the host table is large enough to contain `entry`. */
#define KSP_HOST_HAS(host, entry) \
    ((host)->size >= offsetof(ksp_host, entry) + sizeof((host)->entry))

/* Live reload (ABI 1.4): one version of a plugin hands its live instances, with what
 * they hold (descriptors, buffered bytes, calls in progress), to the next version loaded
 * beside it in the same process. The host drives every step with the lock held:
 *   1. It loads and inits the new version (init as for an import).
 *   2. old->begin(old ctx): from now on, calls of the old version that are waiting
 *      (lock released) leave their objects: each either completes (its result no longer
 *      needs the object) or raises KSP_ERR_MOVED once it has the lock again.
 *   3. For every live instance of the old version's types, in no particular order:
 *      state = old->save(old ctx, old type, payload), a new bytes value the old version
 *      writes in a format of its own (with a version in it); then
 *      payload' = new->restore(new ctx, new type, state), where the new type is the new
 *      version's type of the same name. save and restore may refuse by raising.
 *   4. Commit, if every save and restore succeeded: old->end(old ctx, 1); each instance
 *      now has the new type and payload'; the old type's finalizer runs on each old
 *      payload (it must not release what the new payload took over); the module object
 *      keeps its identity and gets the new version's attributes. Calls of the old version
 *      still on their way back (step 2) then complete or raise KSP_ERR_MOVED; the old
 *      version's teardown runs once the last of them has returned (at once if none is in
 *      progress), so they may still use the old ctx.
 *      Rollback, on any failure (including the new version's load or init): the new
 *      type's finalizer runs on each payload' (it releases only what restore made: the
 *      old version still owns what it saved), the new version is torn down, and
 *      old->end(old ctx, 0): the old version serves every object as before.
 * A plugin that cannot do this leaves `handover` NULL; the host then reloads it the old
 * way (teardown first: its objects are closed) and says so. */
typedef struct ksp_handover {
    size_t size;  /* sizeof(ksp_handover) as the plugin was built */
    /* 0, or -1 after raising (the plugin refuses to hand over now). */
    int (*begin)(void *ctx);
    ksp_value (*save)(void *ctx, ksp_value type, void *payload);
    void *(*restore)(void *ctx, ksp_value type, ksp_value state);
    void (*end)(void *ctx, int committed);
} ksp_handover;

/* What init hands back. On success `module` is a new reference and `teardown` is
 * called exactly once, with `ctx` and the lock held, when the host unloads the plugin:
 * it must end the calls in progress, stop every thread, close every handle and free
 * everything except payloads of objects still alive (their finalizers run later, and
 * must then work without the runtime). A host that never unloads (kscript) calls it only
 * for a version that a live reload replaced. On failure `error` is a message made with host->strdup (the host frees it). */
typedef struct ksp_init_result {
    size_t size;                 /* sizeof(ksp_init_result) as the host was built */
    ksp_value module;
    void (*teardown)(void *ctx);
    void *ctx;
    char *error;
    /* ---- added in ABI 1.4: a plugin sets it only if `size` covers it ---- */
    const ksp_handover *handover;  /* NULL: the plugin cannot be reloaded live */
} ksp_init_result;

/* The plugin's declaration, returned by the entry symbol. The first three fields keep
 * this layout in every ABI major. */
typedef struct ksp_plugin_decl {
    size_t size;                 /* sizeof(ksp_plugin_decl) as the plugin was built */
    uint16_t abi_major;          /* KSP_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor;          /* the oldest host minor it needs */
    const char *name;            /* module name, e.g. "net" */
    const char *version;         /* the plugin's own version, for messages */
    /* Builds the module. Returns 0 on success, -1 on failure (with out->error set). */
    int (*init)(const ksp_host *host, ksp_init_result *out);
} ksp_plugin_decl;

/* Signature of the exported entry symbol. */
typedef const ksp_plugin_decl *(*ksp_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* KSP_PLUGIN_ABI_H */
