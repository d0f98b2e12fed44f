/* types.c - ksp_host's modules, enums and plugin types on kscript's type objects.
 *
 * kscript calls a C function with (nargs, args) and no context pointer, so each method
 * of a plugin type is a `partial` binding a small record (the method's name and its type)
 * as the first argument of one shared trampoline. After a live reload a record's type
 * may have been replaced (a script kept the old type or a bound method): the trampoline
 * then calls the method of that name on the newest type, never the retired copy. */
#include "adapter.h"  /* first: kscript defines _GNU_SOURCE for the system headers */
#include <string.h>

static ksk_copy *initializing = NULL;
static ks_module enum_source = NULL;
static struct ksk_object_s *live_first = NULL;

void ksk_set_initializing(ksk_copy *copy) { initializing = copy; }
void ksk_set_enum_source(ks_module module) { enum_source = module; }
ksk_object ksk_first_live(void) { return live_first; }

ksk_type_rec *ksk_current(ksk_type_rec *rec) {
    while (rec && rec->next) rec = rec->next;
    return rec;
}

static void link_live(ksk_object o) {
    o->prev_live = NULL;
    o->next_live = live_first;
    if (live_first) live_first->prev_live = o;
    live_first = o;
}

static void unlink_live(ksk_object o) {
    if (o->prev_live) o->prev_live->next_live = o->next_live;
    else if (live_first == o) live_first = o->next_live;
    if (o->next_live) o->next_live->prev_live = o->prev_live;
    o->prev_live = o->next_live = NULL;
}

static char module_name[64] = "net";
static char module_source[1024] = "";

void ksk_set_module_info(const char *name, const char *source) {
    snprintf(module_name, sizeof module_name, "%s", name);
    snprintf(module_source, sizeof module_source, "%s", source);
}

/* ---- the record a method's partial carries ---- */

typedef struct ksk_method_rec_s {
    KSO_BASE
    ksk_type_rec *rec;
    char *name;                /* the method's; NULL for the constructor */
    const ksp_method *method;  /* in rec's spec: valid while rec is the newest type */
} *ksk_method_rec;

static ks_type method_rec_type = NULL;

static KS_FUNC(method_rec_free) {
    free(((ksk_method_rec)_args[0])->name);
    KSO_DEL(_args[0]);
    KS_INCREF(KSO_NONE);
    return KSO_NONE;
}

static ks_type get_method_rec_type(void) {
    if (!method_rec_type) {
        method_rec_type = ks_type_new("net._method", kst_object, sizeof(struct ksk_method_rec_s), -1,
                                      "A method of a plugin type, as bound by the kscript adapter",
                                      KS_IKV({"__free", ksf_wrap(method_rec_free_, "__free(self)", "")}, ));
    }
    return method_rec_type;
}

static kso bind_record(ks_cfunc trampoline, const char *sig, const char *doc, ksk_type_rec *rec,
                       const ksp_method *method) {
    ksk_method_rec r = KSO_NEW(ksk_method_rec, get_method_rec_type());
    r->rec = rec;
    r->name = method ? strdup(method->name) : NULL;
    r->method = method;
    kso fn = ksf_wrap(trampoline, sig ? sig : "", doc ? doc : "");
    kso bound = (kso)ks_partial_new(fn, (kso)r);
    KS_DECREF(fn);
    KS_DECREF(r);
    return bound;
}

/* A getter of the type, by name. */
static const ksp_getter *find_getter(ksk_type_rec *rec, const char *name) {
    for (size_t i = 0; i < rec->spec.ngetters; i++)
        if (strcmp(rec->spec.getters[i].name, name) == 0) return &rec->spec.getters[i];
    return NULL;
}

static const ksp_method *find_method(ksk_type_rec *rec, const char *name) {
    if (!name) return NULL;  /* strdup failed: the method cannot be found again */
    for (size_t i = 0; i < rec->spec.nmethods; i++)
        if (strcmp(rec->spec.methods[i].name, name) == 0) return &rec->spec.methods[i];
    return NULL;
}

/* 0 after raising if the type's version was replaced and nothing took its place. */
static int still_served(ksk_type_rec *rec) {
    if (!rec->copy->retired) return 1;
    KS_THROW(kst_IOError, "%s: its plugin version was replaced by a live reload of net, and the new one has no such type",
             rec->type->i__fullname->data);
    return 0;
}

static kso call_getter(ksk_type_rec *rec, const ksp_getter *g, kso self) {
    ksk_copy_enter(rec->copy);
    kso res = (kso)g->fn(rec->spec.ctx, (ksp_value)self);
    ksk_copy_leave(rec->copy);
    return res;
}

/* accept() of kscript's builtin names the client by its bare host: the adapter asks the
 * new socket for its peer's host (the plugin's own form is "host:port"). */
static kso bare_accept_name(ksk_type_rec *rec, kso res) {
    if (!res || !kso_issub(res->type, kst_tuple) || ((ks_tuple)res)->len != 2) return res;
    kso sock = ((ks_tuple)res)->elems[0];
    const ksp_getter *g = find_getter(rec, "peer_name");
    if (g) {
        kso host = call_getter(rec, g, sock);
        if (!host) return res;  /* keep the plugin's name; the error stays raised */
        ks_tuple t = ks_tuple_new(2, (kso[]){sock, host});
        KS_DECREF(host);
        KS_DECREF(res);
        return (kso)t;
    }
    return res;
}

/* A call that the plugin answers with KSP_ERR_MOVED (its object was handed to a new
 * version while it waited) is made again, on the object's type as it is now; the script
 * never sees it. */
static kso call_method_tries(ksk_method_rec r, int _nargs, kso *_args) {
    ksk_type_rec *rec = ksk_current(r->rec);
    if (_nargs < 2) {
        KS_THROW(kst_ArgError, "%s.%s() needs self: call it on a %s", rec->type->i__fullname->data,
                 r->name, rec->type->i__fullname->data);
        return NULL;
    }
    for (;;) {
        if (!still_served(rec)) return NULL;
        const ksp_method *m = rec == r->rec ? r->method : find_method(rec, r->name);
        if (!m) {
            KS_THROW(kst_AttrError, "%s has no method %s since the live reload of net",
                     rec->type->i__fullname->data, r->name);
            return NULL;
        }
        ksk_take_moved();
        ksk_copy_enter(rec->copy);
        kso res = (kso)m->fn(rec->spec.ctx, (ksp_value)_args[1], (size_t)(_nargs - 2),
                             (const ksp_value *)(_args + 2));
        int moved = !res && ksk_take_moved();
        ksk_type_rec *was = rec;
        if (moved) {
            kso_catch_ignore();
            rec = ksk_current(rec);
        } else if (res && rec->accept_bare_name && strcmp(r->name, "accept") == 0) {
            res = bare_accept_name(rec, res);
        }
        /* last: the copy's teardown may run here, once its last call is back */
        ksk_copy_leave(was->copy);
        if (!moved) return res;
    }
}

/* The tries of one call count its timeout from the first (ksp_host.call_began_ns). */
static kso call_method(ksk_method_rec r, int _nargs, kso *_args) {
    int64_t outer = ksk_call_clock_enter();
    kso res = call_method_tries(r, _nargs, _args);
    ksk_call_clock_leave(outer);
    return res;
}

/* args: record, self, arguments... The record is held for the call: kscript calls some
 * methods (__next for iteration) without holding the type's attribute that holds it, and
 * a live reload replaces those while the call waits. */
static KS_FUNC(method_trampoline) {
    ksk_method_rec r = (ksk_method_rec)_args[0];
    KS_INCREF(r);
    kso res = call_method(r, _nargs, _args);
    KS_DECREF(r);
    return res;
}

/* args: record, type, arguments... (kscript calls __new(tp, *args)). A script's type
 * that extends the plugin's gets an instance of itself; an old version's type kept
 * across a live reload gets one of the newest, and a script's type extending it a
 * TypeError. */
static KS_FUNC(constructor_trampoline) {
    ksk_method_rec r = (ksk_method_rec)_args[0];
    ksk_type_rec *rec = ksk_current(r->rec);
    if (!still_served(rec)) return NULL;
    if (!rec->spec.constructor) {
        KS_THROW(kst_TypeError, "%s cannot be created directly", rec->type->i__fullname->data);
        return NULL;
    }
    /* kscript passes the type called; a script calling __new itself must pass it too. */
    ks_type tp = _nargs >= 2 && kso_issub(_args[1]->type, kst_type) ? (ks_type)_args[1] : NULL;
    if (tp && !kso_issub(tp, rec->type) && kso_issub(tp, r->rec->type)) {
        /* A script's type keeps the base it was made from: its instances could not move
         * at a reload either, so say so rather than make one of the plain newest type. */
        if (tp != r->rec->type) {
            KS_THROW(kst_TypeError,
                     "%s extends %s of a version of net that a live reload replaced: define it again "
                     "from the %s the module has now",
                     tp->i__fullname->data, r->rec->type->i__fullname->data, rec->type->i__fullname->data);
            return NULL;
        }
        tp = rec->type;
    }
    if (!tp || !kso_issub(tp, rec->type)) {
        KS_THROW(kst_TypeError, "%s.__new() needs the type to make first (%s or a type that extends it)",
                 rec->type->i__fullname->data, rec->type->i__fullname->data);
        return NULL;
    }
    ksk_copy_enter(rec->copy);
    int64_t outer = ksk_call_clock_enter();
    kso res = (kso)rec->spec.constructor(rec->spec.ctx, (ksp_value)tp, (size_t)(_nargs - 2),
                                         (const ksp_value *)(_args + 2));
    ksk_call_clock_leave(outer);
    ksk_copy_leave(rec->copy);
    return res;
}

/* kscript calls __init(self, *args) after __new; the constructor did everything. */
static KS_FUNC(init_nothing) {
    KS_INCREF(KSO_NONE);
    return KSO_NONE;
}

static KS_FUNC(object_free) {
    ksk_object self = (ksk_object)_args[0];
    ksk_type_rec *rec = self->rec;
    unlink_live(self);
    if (self->payload && rec && rec->spec.finalize) {
        ksk_copy_enter(rec->copy);
        rec->spec.finalize(rec->spec.ctx, self->payload);
        ksk_copy_leave(rec->copy);
    }
    self->payload = NULL;
    KSO_DEL(self);
    if (rec) ksk_copy_instance_gone(rec->copy);
    KS_INCREF(KSO_NONE);
    return KSO_NONE;
}

/* Getters first (with the builtin's names as aliases), then methods, bound to self. */
static const char *builtin_alias(const char *attr) {
    if (strcmp(attr, "name") == 0) return "local_name";
    if (strcmp(attr, "port") == 0) return "local_port";
    return attr;
}

static KS_FUNC(object_getattr) {
    if (_nargs != 2 || !kso_issub(_args[1]->type, kst_str)) {
        KS_THROW(kst_ArgError, "__getattr(self, attr) takes an object and a str");
        return NULL;
    }
    ksk_object self = (ksk_object)_args[0];
    ks_str attr = (ks_str)_args[1];
    ksk_type_rec *rec = self->rec;
    if (rec && !rec->copy->torn_down) {
        const ksp_getter *g = find_getter(rec, builtin_alias(attr->data));
        if (g) return call_getter(rec, g, (kso)self);
    }
    kso fn = ks_type_get(self->type, attr);
    if (fn) {
        kso bound = (kso)ks_partial_new(fn, (kso)self);
        KS_DECREF(fn);
        return bound;
    }
    kso_catch_ignore();
    KS_THROW(kst_AttrError, "'%s' object has no attribute %R", self->type->i__fullname->data, attr);
    return NULL;
}

/* ---- ksp_host entries ---- */

static ksp_value t_module_new(const char *name, const char *doc) {
    return (ksp_value)ks_module_new(name, module_source, doc ? doc : "", KS_IKV());
}

static int t_module_add(ksp_value module, const char *name, ksp_value value) {
    kso m = (kso)module;
    if (!m || !kso_issub(m->type, kst_module)) {
        KS_THROW(kst_TypeError, "module_add: not a module");
        return -1;
    }
    return ks_dict_set_c(((ks_module)m)->attr, name, (kso)value) ? 0 : -1;
}

static ks_cint dict_len_of(ks_type t, const char *name) {
    kso d = ks_dict_get_c(t->attr, name);
    if (!d) {
        kso_catch_ignore();
        return -1;
    }
    ks_cint n = kso_issub(d->type, kst_dict) ? (ks_cint)((ks_dict)d)->len_real : -1;
    KS_DECREF(d);
    return n;
}

/* During a reload: the module's enum `name` (new reference) if it has exactly the members
 * of `fresh`, so that members a script holds stay members of the module's enum. */
static ks_type same_enum(ks_type fresh, const char *name, const ksp_enum_member *members, size_t n) {
    if (!enum_source) return NULL;
    kso old = ks_dict_get_c(enum_source->attr, name);
    if (!old) {
        kso_catch_ignore();
        return NULL;
    }
    int same = kso_issub(old->type, kst_type) && kso_issub((ks_type)old, kst_enum) &&
               dict_len_of((ks_type)old, "_v2m") == dict_len_of(fresh, "_v2m");
    for (size_t i = 0; same && i < n; i++) {
        ks_enum e = ks_enum_get((ks_type)old, (ks_cint)members[i].value);
        if (!e) {
            kso_catch_ignore();
            same = 0;
            break;
        }
        same = strcmp(e->name->data, members[i].name) == 0;
        KS_DECREF(e);
    }
    if (!same) {
        KS_DECREF(old);
        return NULL;
    }
    return (ks_type)old;
}

static ksp_value t_enum_new(const char *name, const char *doc, const ksp_enum_member *members,
                            size_t n) {
    (void)doc;  /* kscript's enums carry no docstrings */
    struct ks_eikv *eikv = calloc(n + 1, sizeof *eikv);
    if (!eikv) {
        KS_THROW(kst_Error, "enum_new: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        eikv[i].key = members[i].name;
        eikv[i].val = (ks_cint)members[i].value;
    }
    char qual[256];
    snprintf(qual, sizeof qual, "%s.%s", module_name, name);
    ks_type t = ks_enum_make(qual, eikv);
    free(eikv);
    ks_type same = same_enum(t, name, members, n);
    if (same) {
        KS_DECREF(t);
        return (ksp_value)same;
    }
    return (ksp_value)t;
}

static int t_enum_value(ksp_value enum_type, ksp_value v, int64_t *out) {
    kso o = (kso)v;
    if (!o || !enum_type || !kso_issub(o->type, (ks_type)enum_type) || o->type == kst_bool) return 0;
    ks_cint ci = 0;
    if (!kso_get_ci(o, &ci)) {
        kso_catch_ignore();
        return 0;
    }
    if (out) *out = (int64_t)ci;
    return 1;
}

static ksp_value t_enum_member(ksp_value enum_type, int64_t value) {
    ks_enum e = ks_enum_get((ks_type)enum_type, (ks_cint)value);
    if (!e) {
        kso_catch_ignore();
        KS_THROW(kst_ValError, "%R has no member of value %l", (kso)enum_type, (ks_cint)value);
    }
    return (ksp_value)e;
}

static ksp_value t_base_io_type(void) { return (ksp_value)ksiot_BaseIO; }

/* ks_type_set takes its own reference to val; this lets go of ours. */
static void set_owned(ks_type t, const char *name, kso val) {
    ks_type_set_c(t, name, val);
    KS_DECREF(val);
}

static ksp_value t_type_new(const ksp_type_spec *spec) {
    if (!spec || spec->size < offsetof(ksp_type_spec, ctx) + sizeof(void *) || !spec->name) {
        KS_THROW(kst_ValError, "type_new: an incomplete ksp_type_spec");
        return NULL;
    }
    ksk_type_rec *rec = calloc(1, sizeof *rec);
    if (!rec) {
        KS_THROW(kst_Error, "type_new: out of memory");
        return NULL;
    }
    rec->spec = *spec;
    rec->copy = initializing;
    if (!rec->copy) {
        free(rec);
        KS_THROW(kst_Error, "type_new: only during the plugin's init");
        return NULL;
    }
    ksk_type_rec **grown = realloc(rec->copy->types, (rec->copy->ntypes + 1) * sizeof *grown);
    if (!grown) {
        free(rec);
        KS_THROW(kst_Error, "type_new: out of memory");
        return NULL;
    }
    grown[rec->copy->ntypes++] = rec;
    rec->copy->types = grown;
    char qual[256];
    snprintf(qual, sizeof qual, "%s.%s", module_name, spec->name);
    ks_type base = spec->base ? (ks_type)spec->base : kst_object;
    ks_type t = ks_type_new(qual, base, sizeof(struct ksk_object_s), -1, spec->doc ? spec->doc : "",
                            KS_IKV());
    rec->type = t;
    rec->accept_bare_name = kso_issub(base, ksiot_BaseIO);

    set_owned(t, "__new", bind_record(constructor_trampoline_, spec->constructor_signature,
                                      spec->doc, rec, NULL));
    set_owned(t, "__init", ksf_wrap(init_nothing_, "__init(self, *args)", ""));
    set_owned(t, "__free", ksf_wrap(object_free_, "__free(self)", ""));
    set_owned(t, "__getattr", ksf_wrap(object_getattr_, "__getattr(self, attr)", ""));
    for (size_t i = 0; i < spec->nmethods; i++) {
        const ksp_method *m = &spec->methods[i];
        set_owned(t, m->name, bind_record(method_trampoline_, m->signature, m->doc, rec, m));
        /* kscript's print() and str() use __str, which would not reach __repr by itself */
        if (strcmp(m->name, "__repr") == 0)
            set_owned(t, "__str", bind_record(method_trampoline_, m->signature, m->doc, rec, m));
    }
    return (ksp_value)t;
}

static ksp_value t_object_new(ksp_value type, void *payload) {
    ks_type t = (ks_type)type;
    if (!t || !kso_issub(t->type, kst_type) || t->ob_sz < (ks_cint)sizeof(struct ksk_object_s)) {
        KS_THROW(kst_TypeError, "object_new: not a type made by type_new");
        return NULL;
    }
    ksk_object o = KSO_NEW(ksk_object, t);
    o->payload = payload;
    /* The record of the nearest plugin type: found through the type's __new partial. */
    o->rec = NULL;
    kso nw = t->i__new;
    if (nw && kso_issub(nw->type, kst_partial) && ((ks_partial)nw)->n_args == 1) {
        kso r = ((ks_partial)nw)->args[0].val;
        if (r->type == get_method_rec_type()) o->rec = ((ksk_method_rec)r)->rec;
    }
    if (o->rec) o->rec->copy->instances++;
    link_live(o);
    return (ksp_value)o;
}

static void *t_object_payload(ksp_value obj, ksp_value type) {
    kso o = (kso)obj;
    if (!o || !type || !kso_issub(o->type, (ks_type)type)) return NULL;
    return ((ksk_object)o)->payload;
}

void ksk_fill_types(ksp_host *h) {
    h->module_new = t_module_new;
    h->module_add = t_module_add;
    h->enum_new = t_enum_new;
    h->enum_value = t_enum_value;
    h->enum_member = t_enum_member;
    h->base_io_type = t_base_io_type;
    h->type_new = t_type_new;
    h->object_new = t_object_new;
    h->object_payload = t_object_payload;
}
