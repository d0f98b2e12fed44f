/* adapter.h - the kscript host of the plugin ABI: what its files share.
 *
 * Only this folder sees kscript's headers and struct layouts; ksp_net.so sees the
 * ksp_host table alone, so rebuilding kscript means rebuilding this adapter only. */
#ifndef KSK_ADAPTER_H
#define KSK_ADAPTER_H

#include <ks/ks.h>

#include "ksp/plugin_abi.h"

#define KSK_HIDDEN __attribute__((visibility("hidden")))

/* The longest plugin path kept, with its NUL. */
#define KSK_PATH_CAP 4096

/* One loaded copy of ksp_net.so: the first import, then one per live reload. */
typedef struct ksk_copy {
    void *lib;                      /* dlopen handle; NULL once unmapped */
    char path[KSK_PATH_CAP];        /* the file it was loaded from (a reload's copy is private) */
    const ksp_plugin_decl *decl;
    void (*teardown)(void *ctx);
    void *ctx;
    const ksp_handover *handover;   /* NULL: the plugin cannot be reloaded live */
    long calls;                     /* calls of its code in progress */
    long instances;                 /* live instances of its types */
    int retired;                    /* replaced by a reload: torn down once no call is left */
    int torn_down;
    struct ksk_type_rec **types;    /* the types it made */
    size_t ntypes;
} ksk_copy;

/* What the adapter keeps of a type the plugin made. Never freed (a few words per type
 * and reload): a script may keep the type object, or a method of it, past a reload; its
 * calls then go to `next`. */
typedef struct ksk_type_rec {
    ks_type type;
    ksp_type_spec spec;        /* the plugin's pointers: used only while copy is not retired */
    int accept_bare_name;      /* accept() hands back the bare host, as kscript's builtin */
    ksk_copy *copy;            /* the copy whose type this is */
    struct ksk_type_rec *next; /* after a reload: the type of the same name that replaced it */
} ksk_type_rec;

/* An instance of a plugin type, in the registry of live instances (for the reload). */
typedef struct ksk_object_s {
    KSO_BASE
    void *payload;
    ksk_type_rec *rec;
    struct ksk_object_s *prev_live, *next_live;
} *ksk_object;

/* values.c */
KSK_HIDDEN void ksk_fill_values(ksp_host *h);

/* types.c */
KSK_HIDDEN void ksk_fill_types(ksp_host *h);
/* The copy whose init is running: the types it makes belong to it. */
KSK_HIDDEN void ksk_set_initializing(ksk_copy *copy);
/* The newest type of a chain of reloads. */
KSK_HIDDEN ksk_type_rec *ksk_current(ksk_type_rec *rec);
/* The first of the live instances (walk with next_live). */
KSK_HIDDEN ksk_object ksk_first_live(void);
/* The enums of the module the next init replaces: an identical enum is reused, so that
 * members a script holds stay members of the module's enum. */
KSK_HIDDEN void ksk_set_enum_source(ks_module module);
/* The module name that plugin types and enums are qualified with ("net"). */
KSK_HIDDEN void ksk_set_module_info(const char *name, const char *source);

/* errors.c */
KSK_HIDDEN void ksk_fill_errors(ksp_host *h);
/* 1 if the plugin raised KSP_ERR_MOVED on this thread since the last call (clears it). */
KSK_HIDDEN int ksk_take_moved(void);
/* net.SocketError and net.TimeoutError, added to the module by the loader. */
KSK_HIDDEN int ksk_add_error_types(ks_module module);

/* copies.c */
/* Loads a private copy of `path` (the first import and each live reload), checks its
 * declaration and inits it; NULL with ImportError raised naming `path`. Where no copy
 * can be made and `in_place_if_no_copy` (the first import), the file itself. *module
 * gets the new module. */
KSK_HIDDEN ksk_copy *ksk_copy_load(const char *path, int in_place_if_no_copy, ks_module *module);
/* A call of the copy's code begins / has returned (lock held). The last call of a
 * retired copy runs its teardown; a torn-down copy with no instance left is unmapped. */
KSK_HIDDEN void ksk_copy_enter(ksk_copy *copy);
KSK_HIDDEN void ksk_copy_leave(ksk_copy *copy);
/* An instance of one of its types is gone. */
KSK_HIDDEN void ksk_copy_instance_gone(ksk_copy *copy);
/* Marks it replaced: teardown now if no call is in progress, else by the last one. */
KSK_HIDDEN void ksk_copy_retire(ksk_copy *copy);
/* Tears down a copy that never served (a failed reload) and unmaps it. */
KSK_HIDDEN void ksk_copy_discard(ksk_copy *copy);

/* reload.c */
/* The module's `_reload` function, added by the loader. */
KSK_HIDDEN int ksk_add_reload(ks_module module, ksk_copy *first);

/* lock.c */
KSK_HIDDEN void ksk_fill_lock(ksp_host *h);
/* One script-level call of the plugin's code, however many tries it takes: enter
 * returns the clock of a call this one is inside of, for leave to put back. */
KSK_HIDDEN int64_t ksk_call_clock_enter(void);
KSK_HIDDEN void ksk_call_clock_leave(int64_t outer);

#endif
