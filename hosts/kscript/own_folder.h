/* own_folder.h - the folder the including library was loaded from, so that each kscript
 * library finds its neighbour (ksm_net.so finds ksp_net.so, the preload finds ksm_net.so).
 * Static: dladdr must be given an address inside the library asking. */
#ifndef KSK_OWN_FOLDER_H
#define KSK_OWN_FOLDER_H

#include <dlfcn.h>
#include <string.h>

/* 0 and the folder in `out`, or -1 if dladdr cannot tell or `cap` is too small. */
static int own_folder(char *out, size_t cap) {
    Dl_info info;
    if (!dladdr((void *)&own_folder, &info) || !info.dli_fname) return -1;
    const char *slash = strrchr(info.dli_fname, '/');
    size_t n = slash ? (size_t)(slash - info.dli_fname) : 1;
    if (n + 1 > cap) return -1;
    memcpy(out, slash ? info.dli_fname : ".", n);
    out[n] = '\0';
    return 0;
}

#endif
