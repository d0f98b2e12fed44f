/* values.c - ksp_host's values on kscript's objects: make, inspect, read. */
#include "adapter.h"

static void v_incref(ksp_value v) {
    if (v) KS_INCREF((kso)v);
}
static void v_decref(ksp_value v) {
    if (v) KS_DECREF((kso)v);
}

static ksp_value v_none(void) {
    KS_INCREF(KSO_NONE);
    return (ksp_value)KSO_NONE;
}
static ksp_value v_bool_new(int truth) {
    kso b = KSO_BOOL(truth);
    KS_INCREF(b);
    return (ksp_value)b;
}
static ksp_value v_int_new(int64_t value) { return (ksp_value)ks_int_new((ks_cint)value); }
static ksp_value v_float_new(double value) { return (ksp_value)ks_float_new(value); }

/* kscript's str does not check its bytes, so the host does (as the ABI asks). */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static ksp_value v_str_new(const char *utf8, size_t len) {
    if (!valid_utf8((const unsigned char *)utf8, len)) {
        KS_THROW(kst_ValError, "str_new: %i bytes that are not valid UTF-8", (int)len);
        return NULL;
    }
    return (ksp_value)ks_str_new((ks_ssize_t)len, utf8);
}
static ksp_value v_bytes_new(const void *data, size_t len) {
    return (ksp_value)ks_bytes_new((ks_ssize_t)len, (const char *)data);
}
static ksp_value v_tuple_new(size_t n, const ksp_value *items) {
    return (ksp_value)ks_tuple_new((ks_ssize_t)n, (kso *)items);
}
static ksp_value v_list_new(size_t n, const ksp_value *items) {
    return (ksp_value)ks_list_new((ks_ssize_t)n, (kso *)items);
}

/* bool and enums derive from int in kscript: bool is tested first. */
static ksp_kind v_kind_of(ksp_value v) {
    kso o = (kso)v;
    if (!o || o == KSO_NONE) return KSP_KIND_NONE;
    ks_type t = o->type;
    if (kso_issub(t, kst_bool)) return KSP_KIND_BOOL;
    if (kso_issub(t, kst_int)) return KSP_KIND_INT;
    if (kso_issub(t, kst_float)) return KSP_KIND_FLOAT;
    if (kso_issub(t, kst_str)) return KSP_KIND_STR;
    if (kso_issub(t, kst_bytes)) return KSP_KIND_BYTES;
    if (kso_issub(t, kst_tuple)) return KSP_KIND_TUPLE;
    if (kso_issub(t, kst_list)) return KSP_KIND_LIST;
    return KSP_KIND_OTHER;
}

static const char *v_type_name(ksp_value v) {
    return v ? ((kso)v)->type->i__fullname->data : "NULL";
}

/* A value beyond int64 is clamped, so the plugin's range check names it as too big. */
static int v_int_get(ksp_value v, int64_t *out) {
    kso o = (kso)v;
    if (!o || kso_issub(o->type, kst_bool) || !kso_issub(o->type, kst_int)) return -1;
    ks_int i = (ks_int)o;
    int64_t r;
    if (mpz_fits_slong_p(i->val)) r = (int64_t)mpz_get_si(i->val);
    else r = mpz_sgn(i->val) < 0 ? INT64_MIN : INT64_MAX;
    if (out) *out = r;
    return 0;
}
static int v_bool_get(ksp_value v, int *out) {
    kso o = (kso)v;
    if (!o || !kso_issub(o->type, kst_bool)) return -1;
    if (out) *out = o == KSO_TRUE;
    return 0;
}
static int v_float_get(ksp_value v, double *out) {
    kso o = (kso)v;
    if (!o || !kso_issub(o->type, kst_float)) return -1;
    if (out) *out = ((ks_float)o)->val;
    return 0;
}
static int v_str_get(ksp_value v, const char **utf8, size_t *len) {
    kso o = (kso)v;
    if (!o || !kso_issub(o->type, kst_str)) return -1;
    if (utf8) *utf8 = ((ks_str)o)->data;
    if (len) *len = ((ks_str)o)->len_b;
    return 0;
}
static int v_bytes_get(ksp_value v, const void **data, size_t *len) {
    kso o = (kso)v;
    if (!o || !kso_issub(o->type, kst_bytes)) return -1;
    if (data) *data = ((ks_bytes)o)->data;
    if (len) *len = ((ks_bytes)o)->len_b;
    return 0;
}

static size_t v_seq_len(ksp_value v) {
    kso o = (kso)v;
    if (!o) return 0;
    if (kso_issub(o->type, kst_tuple)) return ((ks_tuple)o)->len;
    if (kso_issub(o->type, kst_list)) return ((ks_list)o)->len;
    return 0;
}
static ksp_value v_seq_item(ksp_value v, size_t index) {
    kso o = (kso)v;
    if (!o) return NULL;
    if (kso_issub(o->type, kst_tuple))
        return index < ((ks_tuple)o)->len ? (ksp_value)((ks_tuple)o)->elems[index] : NULL;
    if (kso_issub(o->type, kst_list))
        return index < ((ks_list)o)->len ? (ksp_value)((ks_list)o)->elems[index] : NULL;
    return NULL;
}

static ksp_value v_repr(ksp_value v) { return (ksp_value)kso_repr((kso)v); }

/* kscript hashes a bytes when it is made; one filled in place is hashed again when the
 * plugin cuts it to size (bytes_shrink, which the plugin always calls before handing it on). */
static ksp_value v_bytes_alloc(size_t len, void **data) {
    char *buf = ks_malloc(len ? len : 1);
    if (!buf) {
        KS_THROW(kst_Error, "bytes_alloc: out of memory for %i bytes", (int)len);
        return NULL;
    }
    ks_bytes b = ks_bytes_newn((ks_ssize_t)len, buf);
    if (data) *data = buf;
    return (ksp_value)b;
}
static int v_bytes_shrink(ksp_value v, size_t len) {
    kso o = (kso)v;
    if (!o || o->type != kst_bytes || o->refs != 1) {
        KS_THROW(kst_ValError, "bytes_shrink: not a fresh bytes from bytes_alloc");
        return -1;
    }
    ks_bytes b = (ks_bytes)o;
    if (len > b->len_b) {
        KS_THROW(kst_ValError, "bytes_shrink: %i is longer than the value (%i bytes)", (int)len,
                 (int)b->len_b);
        return -1;
    }
    b->len_b = len;
    b->v_hash = ks_hash_bytes((ks_ssize_t)len, b->data);
    return 0;
}

void ksk_fill_values(ksp_host *h) {
    h->incref = v_incref;
    h->decref = v_decref;
    h->none = v_none;
    h->bool_new = v_bool_new;
    h->int_new = v_int_new;
    h->float_new = v_float_new;
    h->str_new = v_str_new;
    h->bytes_new = v_bytes_new;
    h->tuple_new = v_tuple_new;
    h->list_new = v_list_new;
    h->kind_of = v_kind_of;
    h->type_name = v_type_name;
    h->int_get = v_int_get;
    h->float_get = v_float_get;
    h->str_get = v_str_get;
    h->bytes_get = v_bytes_get;
    h->seq_len = v_seq_len;
    h->seq_item = v_seq_item;
    h->repr = v_repr;
    h->bool_get = v_bool_get;
    h->bytes_alloc = v_bytes_alloc;
    h->bytes_shrink = v_bytes_shrink;
}
