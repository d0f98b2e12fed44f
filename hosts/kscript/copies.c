/* copies.c - the loaded copies of ksp_net.so: the first import's, then one per live
 * reload. Each copy counts the calls of its code in progress and the instances of its
 * types, so that a copy a reload replaced is torn down once its last call has returned
 * and unmapped once its last instance is gone. */
#include "adapter.h"  /* first: kscript defines _GNU_SOURCE for the system headers */
#include "plugin_file.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The newest ABI minor this adapter maps. The table it hands over ends at that minor's
 * last entry, so a plugin built against a newer header sees (KSP_HOST_HAS) which entries
 * are missing instead of calling past the end. */
#define KSK_ABI_MINOR 5
#define KSK_TABLE_SIZE (offsetof(ksp_host, raise_errno) + sizeof(((ksp_host *)0)->raise_errno))

static ksp_host host_table;

static void fill_table(void) {
    if (host_table.size) return;
    host_table.size = KSK_TABLE_SIZE;
    host_table.abi_major = KSP_ABI_MAJOR;
    host_table.abi_minor = KSK_ABI_MINOR;
    host_table.host_name = "kscript " KS_BUILD_CONFIGURE_SCRIPT;
    ksk_fill_values(&host_table);
    ksk_fill_types(&host_table);
    ksk_fill_errors(&host_table);
    ksk_fill_lock(&host_table);
}

/* No plugin comes near this; a larger file is not copied (the copy holds the lock). */
#define KSK_PLUGIN_FILE_MAX ((off_t)1 << 30)

/* `from` opened for reading, if it is a regular file of at most KSK_PLUGIN_FILE_MAX
 * bytes (a FIFO would block the open, a device copy without end) that passes the
 * plugin-file check (hosts/common/plugin_file.h); -1 with `err` filled otherwise. */
static int open_plugin_file(const char *from, char *err, size_t cap) {
    int in = open(from, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0) {
        snprintf(err, cap, "cannot open it: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(err, cap, "it is not a regular file");
    } else if (st.st_size > KSK_PLUGIN_FILE_MAX) {
        snprintf(err, cap, "it is %lld bytes, more than a plugin's %lld", (long long)st.st_size,
                 (long long)KSK_PLUGIN_FILE_MAX);
    } else if (!ksp_plugin_file_problem(in, err, cap)) {
        return in;
    }
    if (in >= 0) close(in);
    return -1;
}

/* Copies the file open as `in` into a new private folder and dlopen()s the copy: glibc
 * hands back the library it has mapped for a path or file it knows, and the point is a
 * fresh one. The copy is checked again (the file may have changed since it was): that is
 * what dlopen() maps. The copy is removed at once (the mapping keeps it). NULL with
 * `err` filled if it cannot. */
static void *open_private_copy(int in, char *err, size_t cap) {
    const char *tmp = getenv("TMPDIR");
    char dir[4096], to[4200];
    snprintf(dir, sizeof dir, "%s/ksm_net-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        snprintf(err, cap, "cannot make a private folder for the copy (%s): %s", dir, strerror(errno));
        return NULL;
    }
    snprintf(to, sizeof to, "%s/ksp_net.so", dir);
    void *lib = NULL;
    int out = open(to, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    if (out < 0) {
        snprintf(err, cap, "cannot copy it to %s: %s", to, strerror(errno));
    } else {
        char buf[1 << 16];
        ssize_t n;
        int ok = 1;
        while (ok && (n = read(in, buf, sizeof buf)) != 0) {
            if (n < 0 && errno == EINTR) continue;
            for (ssize_t done = 0; ok && n > 0 && done < n;) {
                ssize_t w = write(out, buf + done, (size_t)(n - done));
                if (w < 0 && errno == EINTR) continue;
                if (w < 0) ok = 0;
                else done += w;
            }
            if (n < 0) ok = 0;
        }
        if (!ok) snprintf(err, cap, "cannot copy it to %s: %s", to, strerror(errno));
        int whole = ok && !ksp_plugin_file_problem(out, err, cap);
        if (close(out) != 0 && whole) {
            snprintf(err, cap, "cannot copy it to %s: %s", to, strerror(errno));
            whole = 0;
        }
        out = -1;
        if (whole && !(lib = dlopen(to, RTLD_NOW | RTLD_LOCAL)))
            snprintf(err, cap, "dlopen of its private copy: %s", dlerror());
    }
    if (out >= 0) close(out);
    unlink(to);
    rmdir(dir);
    return lib;
}

ksk_copy *ksk_copy_load(const char *path, int in_place_if_no_copy, ks_module *module) {
    char err[4400];
    int in = open_plugin_file(path, err, sizeof err);
    int usable = in >= 0;  /* a regular file of a plugin's size: only the copy failed */
    void *lib = usable ? open_private_copy(in, err, sizeof err) : NULL;
    if (usable) close(in);
    if (!lib && usable && in_place_if_no_copy) {
        /* $TMPDIR not writable, or mounted noexec: the installed file itself, as any library */
        size_t used = strlen(err);
        if (!(lib = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
            snprintf(err + used, sizeof err - used, "; nor could the file itself be loaded: %s", dlerror());
    }
    if (!lib) {
        KS_THROW(kst_ImportError, "net: cannot load %s: %s", path, err);
        return NULL;
    }
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
    ksk_copy *copy = calloc(1, sizeof *copy);
    if (!copy) {
        KS_THROW(kst_ImportError, "net: out of memory loading %s", path);
        dlclose(lib);
        return NULL;
    }
    copy->lib = lib;
    copy->decl = decl;
    snprintf(copy->path, sizeof copy->path, "%s", path);
    fill_table();
    ksk_set_module_info("net", path);
    ksk_set_initializing(copy);
    ksp_init_result result;
    memset(&result, 0, sizeof result);
    result.size = sizeof result;
    copy->calls++;
    int rc = decl->init(&host_table, &result);
    copy->calls--;
    ksk_set_initializing(NULL);
    if (rc != 0 || !result.module) {
        if (ksos_thread_get()->exc) kso_catch_ignore();
        KS_THROW(kst_ImportError, "net: the plugin %s failed to start: %s", path,
                 result.error ? result.error : "no reason given");
        free(result.error);
        /* The library stays open (init may have left threads behind); the types it made,
         * if any, stay with this copy, which is kept, retired, for them. */
        copy->retired = copy->torn_down = 1;
        return NULL;
    }
    copy->teardown = result.teardown;
    copy->ctx = result.ctx;
    copy->handover = result.handover;
    *module = (ks_module)result.module;
    return copy;
}

/* Unmaps a torn-down copy that nothing runs or refers to any more. */
static void unmap_if_unused(ksk_copy *copy) {
    if (!copy->torn_down || copy->calls > 0 || copy->instances > 0 || !copy->lib) return;
    dlclose(copy->lib);
    copy->lib = NULL;
}

static void settle(ksk_copy *copy) {
    if (copy->retired && !copy->torn_down && copy->calls == 0) {
        copy->torn_down = 1;
        copy->calls++;  /* teardown is a call of its code too */
        if (copy->teardown) copy->teardown(copy->ctx);
        copy->calls--;
    }
    unmap_if_unused(copy);
}

void ksk_copy_enter(ksk_copy *copy) { copy->calls++; }

void ksk_copy_leave(ksk_copy *copy) {
    copy->calls--;
    settle(copy);
}

void ksk_copy_instance_gone(ksk_copy *copy) {
    copy->instances--;
    settle(copy);
}

void ksk_copy_retire(ksk_copy *copy) {
    copy->retired = 1;
    settle(copy);
}

void ksk_copy_discard(ksk_copy *copy) {
    copy->handover = NULL;
    ksk_copy_retire(copy);
}
