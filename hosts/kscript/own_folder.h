/* own_folder.h - the folder the including library was loaded from, so that each kscript
 * library finds its neighbour (ksm_net.so copies ksp_net.so, the preload opens ksm_net.so).
 * Static (inline: each library uses some of them): dladdr must be given an address
 * inside the library asking. Include it after kscript's headers (path_beside raises
 * kscript's ImportError). */
#ifndef KSK_OWN_FOLDER_H
#define KSK_OWN_FOLDER_H

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* 0 and the folder in `out`, or -1 if dladdr cannot tell or `cap` is too small. */
static inline int own_folder(char *out, size_t cap) {
    Dl_info info;
    if (!dladdr((void *)&own_folder, &info) || !info.dli_fname) return -1;
    const char *slash = strrchr(info.dli_fname, '/');
    size_t n = slash ? (size_t)(slash - info.dli_fname) : 1;
    if (n + 1 > cap) return -1;
    memcpy(out, slash ? info.dli_fname : ".", n);
    out[n] = '\0';
    return 0;
}

/* The full name of `file` in this library's folder, in `path`: 0, or -1 with ImportError
 * raised (naming `who`, the library asking) if dladdr cannot tell. */
static inline int path_beside(const char *who, const char *file, char *path, size_t cap) {
    char dir[4096];
    if (own_folder(dir, sizeof dir) < 0) {
        KS_THROW(kst_ImportError, "net: %s cannot find its own folder (dladdr)", who);
        return -1;
    }
    snprintf(path, cap, "%s/%s", dir, file);
    return 0;
}

/* dlopen()s `file` from this library's folder, its full name left in `path`; NULL with
 * ImportError raised if it cannot. */
static inline void *open_beside(const char *who, const char *file, char *path, size_t cap) {
    if (path_beside(who, file, path, cap) < 0) return NULL;
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) KS_THROW(kst_ImportError, "net: %s cannot load %s: %s", who, path, dlerror());
    return lib;
}

#endif
