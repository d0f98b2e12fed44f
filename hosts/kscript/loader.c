/* loader.c - ksm_net.so's one exported symbol: kscript's loader calls its load function,
 * which loads a private copy of ksp_net.so from this library's own folder, checks its
 * declaration and builds the module through the ksp_host table (copies.c). kscript never
 * unloads a module; a live reload (reload.c) replaces the plugin behind the same module
 * object. */
#include "adapter.h"  /* first: kscript defines _GNU_SOURCE for the system headers */
#include <string.h>

#include "own_folder.h"

#include <ks/cext.h>

static ks_module loaded = NULL;

static ks_module load_net(void) {
    if (loaded) {
        KS_INCREF(loaded);
        return loaded;
    }
    char path[4200];
    if (path_beside("ksm_net.so", "ksp_net.so", path, sizeof path) < 0) return NULL;
    ks_module m = NULL;
    /* A private copy, as for a reload: the installed file may then be rewritten in place
     * (`cp new.so ksp_net.so`) without touching the code ks runs. */
    ksk_copy *copy = ksk_copy_load(path, 1, &m);
    if (!copy) return NULL;
    kso where = (kso)ks_str_new(-1, path);
    kso host = (kso)ks_str_new(-1, "kscript adapter (ksm_net.so), plugin ABI 1.5");
    int ok = ksk_add_error_types(m) == 0 && ks_dict_set_c(m->attr, "__plugin", where) &&
             ks_dict_set_c(m->attr, "__host", host) && ksk_add_reload(m, copy) == 0;
    KS_DECREF(where);
    KS_DECREF(host);
    if (!ok) {
        KS_DECREF(m);
        ksk_copy_discard(copy);  /* init succeeded but the module is refused: teardown at once */
        return NULL;
    }
    loaded = m;
    KS_INCREF(loaded);  /* kept for a second load (the preload library and kscript's cache) */
    return m;
}

/* What kscript's loader looks up (KS_CEXT_DECL defines this data symbol); the preload
 * library finds the load function through it too. */
__attribute__((visibility("default"))) KS_CEXT_DECL(load_net);
