/* adapter.h - the kscript host of the plugin ABI: what its files share.
 *
 * Only this folder sees kscript's headers and struct layouts; ksp_net.so sees the
 * ksp_host table alone, so rebuilding kscript means rebuilding this adapter only. */
#ifndef KSK_ADAPTER_H
#define KSK_ADAPTER_H

#include <ks/ks.h>

#include "ksp/plugin_abi.h"

#define KSK_HIDDEN __attribute__((visibility("hidden")))

/* What the adapter keeps of a type the plugin made (never freed: kscript never
 * unloads a module, so a type lives as long as the process). */
typedef struct ksk_type_rec {
    ks_type type;
    ksp_type_spec spec;        /* the plugin's pointers stay valid: teardown never runs */
    int accept_bare_name;      /* accept() hands back the bare host, as kscript's builtin */
} ksk_type_rec;

/* An instance of a plugin type. */
typedef struct ksk_object_s {
    KSO_BASE
    void *payload;
    ksk_type_rec *rec;
} *ksk_object;

/* values.c */
KSK_HIDDEN void ksk_fill_values(ksp_host *h);

/* types.c */
KSK_HIDDEN void ksk_fill_types(ksp_host *h);
/* The module name that plugin types and enums are qualified with ("net"). */
KSK_HIDDEN void ksk_set_module_info(const char *name, const char *source);

/* errors.c */
KSK_HIDDEN void ksk_fill_errors(ksp_host *h);
/* net.SocketError and net.TimeoutError, added to the module by the loader. */
KSK_HIDDEN int ksk_add_error_types(ks_module module);

/* lock.c */
KSK_HIDDEN void ksk_fill_lock(ksp_host *h);

#endif
