/* reload.c - live reload of the plugin in a running ks: `net._reload(path=none)` loads a
 * fresh copy of ksp_net.so and moves every live socket to it, following the steps of
 * ksp_handover (ksp/plugin_abi.h), all with the interpreter lock held. The module object
 * keeps its identity and gets the new version's attributes; each instance gets the new
 * type and payload. On any failure the new version is dropped and the old one serves on. */
#include "adapter.h"  /* first: kscript defines _GNU_SOURCE for the system headers */
#include <stdlib.h>
#include <string.h>

static ks_module module = NULL;  /* borrowed: the loader keeps it */
static ksk_copy *serving = NULL;
static char first_path[KSK_PATH_CAP];
static int reloading = 0;  /* the plugin may give up the lock inside a step */

/* The message of the error raised on this thread (caught), for a message of our own. */
static void take_error(char *out, size_t cap) {
    ks_Exception e = kso_catch();
    snprintf(out, cap, "%s", e && e->what ? e->what->data : "no reason given");
    if (e) KS_DECREF(e);
}

/* The type of the same name in `copy`. */
static ksk_type_rec *same_name(ksk_copy *copy, ksk_type_rec *rec) {
    for (size_t i = 0; i < copy->ntypes; i++)
        if (strcmp(copy->types[i]->spec.name, rec->spec.name) == 0) return copy->types[i];
    return NULL;
}

typedef struct moving {
    ksk_object obj;   /* a reference of our own for the length of the reload */
    ksk_type_rec *to;
    void *payload;    /* what restore made; NULL until then */
} moving;

/* The live instances of `copy`, each with its type in `fresh`; NULL after raising (none
 * may be of a script's subtype: the new type could not take its place). */
static moving *collect(ksk_copy *copy, ksk_copy *fresh, size_t *n, char *why, size_t cap) {
    size_t count = 0;
    for (ksk_object o = ksk_first_live(); o; o = o->next_live)
        if (o->rec && o->rec->copy == copy) count++;
    moving *all = calloc(count ? count : 1, sizeof *all);
    if (!all) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    size_t i = 0;
    for (ksk_object o = ksk_first_live(); o; o = o->next_live) {
        if (!o->rec || o->rec->copy != copy) continue;
        const char *problem = NULL;
        if (o->type != o->rec->type) problem = "it is an instance of a script's subtype";
        else if (!(all[i].to = same_name(fresh, o->rec))) problem = "the new version has no type of that name";
        if (problem) {
            snprintf(why, cap, "%s %s cannot move: %s", o->rec->type->i__fullname->data, "instance", problem);
            for (size_t j = 0; j < i; j++) KS_DECREF(all[j].obj);
            free(all);
            return NULL;
        }
        KS_INCREF(o);
        all[i++].obj = o;
    }
    *n = count;
    return all;
}

/* Step 4: every instance takes its new type and payload; the old payloads are finalized. */
static void commit(ksk_copy *old, ksk_copy *fresh, moving *all, size_t n) {
    old->handover->end(old->ctx, 1);
    for (size_t i = 0; i < n; i++) {
        ksk_object o = all[i].obj;
        ksk_type_rec *from = o->rec;
        void *old_payload = o->payload;
        ks_type old_type = o->type;
        KS_INCREF(all[i].to->type);
        old_type->num_obs_del++;  /* kscript's counts of instances made and gone, per type */
        all[i].to->type->num_obs_new++;
        o->type = all[i].to->type;
        o->rec = all[i].to;
        o->payload = all[i].payload;
        fresh->instances++;
        KS_DECREF(old_type);
        if (old_payload && from->spec.finalize) {
            ksk_copy_enter(old);
            from->spec.finalize(from->spec.ctx, old_payload);
            ksk_copy_leave(old);
        }
        old->instances--;
    }
    for (size_t i = 0; i < old->ntypes; i++) old->types[i]->next = same_name(fresh, old->types[i]);
}

/* The module object keeps its identity: it takes the new module's attributes (kscript's
 * own __name, __src and __par stay). */
static void take_attributes(ks_module fresh, const char *path) {
    ks_dict from = fresh->attr;
    for (ks_size_t i = 0; i < from->len_ents; i++) {
        kso key = from->ents[i].key;
        if (!key || !kso_issub(key->type, kst_str)) continue;
        const char *k = ((ks_str)key)->data;
        if (strcmp(k, "__name") == 0 || strcmp(k, "__src") == 0 || strcmp(k, "__par") == 0) continue;
        ks_dict_set(module->attr, key, from->ents[i].val);
    }
    kso where = (kso)ks_str_new(-1, path);
    ks_dict_set_c(module->attr, "__plugin", where);
    KS_DECREF(where);
}

/* Rollback of a reload that got as far as `begun` (old->begin returned 0). */
static void roll_back(ksk_copy *old, ksk_copy *fresh, ks_module fresh_module, moving *all, size_t n,
                      int begun) {
    for (size_t i = 0; i < n; i++) {
        if (all[i].payload && all[i].to->spec.finalize) {
            ksk_copy_enter(fresh);
            all[i].to->spec.finalize(all[i].to->spec.ctx, all[i].payload);
            ksk_copy_leave(fresh);
        }
    }
    KS_DECREF(fresh_module);
    ksk_copy_discard(fresh);
    if (begun) old->handover->end(old->ctx, 0);
}

static kso fail(const char *path, const char *step, const char *why) {
    KS_THROW(kst_Error, "net._reload: live reload from %s failed at %s: %s; the old version (net %s from %s) still serves",
             path, step, why, serving->decl->version ? serving->decl->version : "?", serving->path);
    return NULL;
}

static kso reload_from(const char *path);

static KS_FUNC(reload) {
    if (_nargs > 1) {
        KS_THROW(kst_ArgError, "net._reload(path=none) takes at most 1 argument (%i given)", (int)_nargs);
        return NULL;
    }
    if (_nargs == 1 && _args[0] != KSO_NONE && !kso_issub(_args[0]->type, kst_str)) {
        KS_THROW(kst_TypeError, "net._reload(path=none): 'path' must be a str (the plugin file), not %R",
                 (kso)_args[0]->type);
        return NULL;
    }
    if (reloading) {
        KS_THROW(kst_Error, "net._reload: a live reload is in progress in another thread");
        return NULL;
    }
    const char *path = first_path;
    if (_nargs == 1 && _args[0] != KSO_NONE) {
        ks_str s = (ks_str)_args[0];
        if (strlen(s->data) != (size_t)s->len_b) {
            KS_THROW(kst_ValError, "net._reload(path=none): 'path' contains a NUL byte: %R", (kso)s);
            return NULL;
        }
        if ((size_t)s->len_b >= KSK_PATH_CAP) {
            KS_THROW(kst_ValError, "net._reload(path=none): 'path' is %i bytes long, more than %i", (int)s->len_b,
                     KSK_PATH_CAP - 1);
            return NULL;
        }
        path = s->data;
    }
    reloading = 1;
    kso res = reload_from(path);
    reloading = 0;
    return res;
}

static kso reload_from(const char *path) {
    ksk_copy *old = serving;
    char why[4400];
    if (!old->handover) return fail(path, "step 0 (the serving version)", "it offers no live reload (ksp_handover)");

    ksk_set_enum_source(module);
    ks_module fresh_module = NULL;
    ksk_copy *fresh = ksk_copy_load(path, 0, &fresh_module);
    ksk_set_enum_source(NULL);
    if (!fresh) {
        take_error(why, sizeof why);
        return fail(path, "step 1 (load and init)", why);
    }
    if (!fresh->handover) {
        roll_back(old, fresh, fresh_module, NULL, 0, 0);
        return fail(path, "step 1 (load and init)", "the new version offers no live reload (ksp_handover)");
    }
    size_t n = 0;
    moving *all = collect(old, fresh, &n, why, sizeof why);
    if (!all) {
        roll_back(old, fresh, fresh_module, NULL, 0, 0);
        return fail(path, "step 1 (matching types)", why);
    }

    ksk_copy_enter(old);
    int begun = old->handover->begin(old->ctx) == 0;
    ksk_copy_leave(old);
    const char *step = begun ? NULL : "step 2 (begin)";
    if (!begun) take_error(why, sizeof why);

    for (size_t i = 0; !step && i < n; i++) {
        ksk_object o = all[i].obj;
        ksk_copy_enter(old);
        ksp_value state = old->handover->save(old->ctx, (ksp_value)o->rec->type, o->payload);
        ksk_copy_leave(old);
        if (!state) {
            step = "step 3 (save)";
            take_error(why, sizeof why);
            break;
        }
        ksk_copy_enter(fresh);
        all[i].payload = fresh->handover->restore(fresh->ctx, (ksp_value)all[i].to->type, state);
        ksk_copy_leave(fresh);
        KS_DECREF((kso)state);
        if (!all[i].payload) {
            step = "step 3 (restore)";
            take_error(why, sizeof why);
        }
    }
    if (step) {
        roll_back(old, fresh, fresh_module, all, n, begun);
        for (size_t i = 0; i < n; i++) KS_DECREF(all[i].obj);
        free(all);
        return fail(path, step, why);
    }

    commit(old, fresh, all, n);
    take_attributes(fresh_module, path);
    KS_DECREF(fresh_module);
    serving = fresh;
    long waiting = old->calls;
    ksk_copy_retire(old);
    for (size_t i = 0; i < n; i++) KS_DECREF(all[i].obj);
    free(all);

    char report[4600];
    int len = snprintf(report, sizeof report, "net %s: live reload from %s, %zu socket%s moved",
                       fresh->decl->version ? fresh->decl->version : "?", path, n, n == 1 ? "" : "s");
    if (waiting > 0 && len > 0 && (size_t)len < sizeof report)
        snprintf(report + len, sizeof report - (size_t)len,
                 "; the old version's teardown waits for %ld call%s on its way back", waiting,
                 waiting == 1 ? "" : "s");
    return (kso)ks_str_new(-1, report);
}

int ksk_add_reload(ks_module m, ksk_copy *first) {
    module = m;
    serving = first;
    snprintf(first_path, sizeof first_path, "%s", first->path);
    kso fn = ksf_wrap(reload_,
                      "net._reload(path=none)",
                      "Live reload: loads a fresh copy of the plugin (path: ksp_net.so, by default the "
                      "file first loaded) and moves every socket to it, open, with its unread bytes and "
                      "the calls waiting on it; returns what happened. On failure the old version "
                      "serves on and the error names the file and the step");
    int ok = ks_dict_set_c(m->attr, "_reload", fn);
    KS_DECREF(fn);
    return ok ? 0 : -1;
}
