/* loader.c - ksm_net.so's one exported symbol: kscript's loader calls its load function,
 * which opens ksp_net.so from this library's own folder, checks its declaration and
 * builds the module through the ksp_host table. kscript never unloads a module, so the
 * plugin's teardown is never called and its library stays open. */
#include "adapter.h"  /* first: kscript defines _GNU_SOURCE for the system headers */
#include <dlfcn.h>
#include <string.h>

#include "own_folder.h"

#include <ks/cext.h>

/* The newest ABI minor this adapter maps. The table it hands over ends at that minor's
 * last entry, so a plugin built against a newer header sees (KSP_HOST_HAS) which entries
 * are missing instead of calling past the end. */
#define KSK_ABI_MINOR 3
#define KSK_TABLE_SIZE \
    (offsetof(ksp_host, set_interrupt_waker) + sizeof(((ksp_host *)0)->set_interrupt_waker))

static ksp_host host_table;
static ks_module loaded = NULL;

static void fill_table(void) {
    memset(&host_table, 0, sizeof host_table);
    host_table.size = KSK_TABLE_SIZE;
    host_table.abi_major = KSP_ABI_MAJOR;
    host_table.abi_minor = KSK_ABI_MINOR;
    host_table.host_name = "kscript " KS_BUILD_CONFIGURE_SCRIPT;
    ksk_fill_values(&host_table);
    ksk_fill_types(&host_table);
    ksk_fill_errors(&host_table);
    ksk_fill_lock(&host_table);
}

static ks_module load_net(void) {
    if (loaded) {
        KS_INCREF(loaded);
        return loaded;
    }
    char path[4200];
    void *lib = open_beside("ksm_net.so", "ksp_net.so", path, sizeof path);
    if (!lib) return NULL;
    ksp_plugin_entry_fn entry = (ksp_plugin_entry_fn)dlsym(lib, KSP_PLUGIN_ENTRY_SYMBOL);
    const ksp_plugin_decl *decl = entry ? entry() : NULL;
    if (!decl) {
        KS_THROW(kst_ImportError, "net: %s has no %s: not a ksp plugin", path, KSP_PLUGIN_ENTRY_SYMBOL);
        dlclose(lib);
        return NULL;
    }
    if (decl->abi_major != KSP_ABI_MAJOR || decl->abi_minor > KSK_ABI_MINOR) {
        KS_THROW(kst_ImportError,
                 "net: %s needs plugin ABI %i.%i, and this kscript adapter provides %i.%i", path,
                 (int)decl->abi_major, (int)decl->abi_minor, KSP_ABI_MAJOR, KSK_ABI_MINOR);
        dlclose(lib);
        return NULL;
    }
    if (!decl->name || strcmp(decl->name, "net") != 0) {
        KS_THROW(kst_ImportError, "net: %s is the plugin of module '%s', not 'net'", path,
                 decl->name ? decl->name : "?");
        dlclose(lib);
        return NULL;
    }
    fill_table();
    ksk_set_module_info("net", path);
    ksp_init_result result;
    memset(&result, 0, sizeof result);
    result.size = sizeof result;
    if (decl->init(&host_table, &result) != 0 || !result.module) {
        if (ksos_thread_get()->exc) kso_catch_ignore();
        KS_THROW(kst_ImportError, "net: the plugin %s failed to start: %s", path,
                 result.error ? result.error : "no reason given");
        free(result.error);
        return NULL;  /* the library stays open: init may have left threads behind */
    }
    ks_module m = (ks_module)result.module;
    kso where = (kso)ks_str_new(-1, path);
    kso host = (kso)ks_str_new(-1, "kscript adapter (ksm_net.so), plugin ABI 1.3");
    int ok = ksk_add_error_types(m) == 0 && ks_dict_set_c(m->attr, "__plugin", where) &&
             ks_dict_set_c(m->attr, "__host", host);
    KS_DECREF(where);
    KS_DECREF(host);
    if (!ok) {
        KS_DECREF(m);
        return NULL;
    }
    loaded = m;
    KS_INCREF(loaded);  /* kept for a second load (the preload library and kscript's cache) */
    return m;
}

/* What kscript's loader looks up (KS_CEXT_DECL defines this data symbol); the preload
 * library finds the load function through it too. */
__attribute__((visibility("default"))) KS_CEXT_DECL(load_net);
