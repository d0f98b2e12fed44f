/* preload.c - ksp_net_preload.so: `import net` reaches the plugin in an unmodified ks.
 *
 * kscript returns its compiled-in net before searching any folder. That module is built
 * by `_ksi_net`, an exported function of libks.so called through the PLT, so a library
 * preloaded into ks (LD_PRELOAD) that defines `_ksi_net` is called instead. This one loads
 * ksm_net.so from its own folder, as kscript's loader would, and returns its module. */
#include <ks/ks.h>  /* first: kscript defines _GNU_SOURCE for the system headers */
#include <dlfcn.h>
#include <string.h>

#include "own_folder.h"

/* Weak: LD_PRELOAD reaches every program the script starts too, and those have no
 * libks.so; there the references stay empty and _ksi_net is never called. */
#pragma weak kso_throw_c
#pragma weak kst_ImportError
#pragma weak ks_str_new
#pragma weak ks_dict_set_c
#pragma weak _kso_free

__attribute__((visibility("default"))) ks_module _ksi_net(void) {
    char path[4200];
    void *lib = open_beside("ksp_net_preload.so", "ksm_net.so", path, sizeof path);
    if (!lib) return NULL;
    struct ks_cextinit *init = (struct ks_cextinit *)dlsym(lib, "_ks_cextinit_this");
    if (!init || !init->loadfunc) {
        KS_THROW(kst_ImportError, "net: %s has no _ks_cextinit_this", path);
        return NULL;
    }
    ks_module m = init->loadfunc();
    if (m) {
        kso where = (kso)ks_str_new(-1, path);
        ks_dict_set_c(m->attr, "__src", where);
        KS_DECREF(where);
    }
    return m;
}
