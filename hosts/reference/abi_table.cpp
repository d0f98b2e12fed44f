// abi_table.cpp - fills ksp_host.
//
// Each entry is a thin C-ABI shell over the object model. The shells:
//   - never let a C++ exception out (a plugin may be C; an exception crossing the
//     boundary is undefined behaviour): everything is caught and raised as an Error;
//   - in checking mode, verify that every handle is a live object and that the calling
//     thread holds the interpreter lock, and abort with a clear message otherwise.
#include "abi_table.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "errors.hpp"
#include "ops.hpp"
#include "repr.hpp"
#include "state.hpp"
#include "types/builtins.hpp"
#include "types/exception.hpp"
#include "types/module.hpp"
#include "types/type.hpp"

namespace refhost {

namespace {

using detail::current_state;

// Checking mode only.
void require_lock(const char* what) {
    detail::HostState* st = current_state();
    if (!st) fatal(std::string(what) + " called while no host exists");
    if (!detail::gil_held_by_me(st))
        fatal(std::string(what) + " called without holding the interpreter lock (values may only be "
                                  "touched between acquire_lock and release_lock)");
}

// Entry guard: lock and handle checks, then `body`, with every exception turned into a
// raised Error and `failed` returned.
template <class R, class F>
R guarded(const char* what, R failed, F&& body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        raise(KSP_ERR_ERROR, std::string(what) + ": out of memory");
    } catch (const std::exception& e) {
        raise(KSP_ERR_ERROR, std::string(what) + ": " + e.what());
    } catch (...) {
        raise(KSP_ERR_ERROR, std::string(what) + ": unexpected exception in the host");
    }
    return failed;
}

// Every entry starts here: one flag test outside checking mode.
inline void enter(const char* what, ksp_value v = nullptr, ksp_value w = nullptr) {
    if (!checking_enabled()) return;
    require_lock(what);
    check_handle(v, what);
    check_handle(w, what);
}

std::nullptr_t null_arg(const char* what) {
    return raise(KSP_ERR_VAL, std::string(what) + ": a value argument is NULL");
}

// Type names as C strings that live as long as the value.
const char* type_name_cstr(Object* o) {
    switch (o->kind) {
    case ObjKind::None: return "none";
    case ObjKind::Bool: return "bool";
    case ObjKind::Int: return "int";
    case ObjKind::Float: return "float";
    case ObjKind::Str: return "str";
    case ObjKind::Bytes: return "bytes";
    case ObjKind::Tuple: return "tuple";
    case ObjKind::List: return "list";
    case ObjKind::Module: return "module";
    case ObjKind::Type: return "type";
    case ObjKind::EnumMember: return static_cast<EnumMemberObject*>(o)->enum_type->qualified_name.c_str();
    case ObjKind::Instance: return static_cast<InstanceObject*>(o)->type->qualified_name.c_str();
    case ObjKind::Method: return "method";
    case ObjKind::Exception: return error_kind_name(static_cast<ExceptionObject*>(o)->error_kind);
    case ObjKind::SeqIter: return "iterator";
    }
    return "?";
}

// ---- reference counting ----
void t_incref(ksp_value v) {
    enter("incref", v);
    incref(v);
}
void t_decref(ksp_value v) {
    enter("decref", v);
    // A finalizer may run here; it is plugin code and must not throw, but be safe.
    try {
        decref(v);
    } catch (...) {
        fatal("exception while releasing an object");
    }
}

// ---- constructors ----
ksp_value t_none() {
    enter("none");
    return make_none();
}
ksp_value t_bool_new(int truth) {
    enter("bool_new");
    return make_bool(truth != 0);
}
ksp_value t_int_new(int64_t value) {
    enter("int_new");
    return guarded<ksp_value>("int_new", nullptr, [&] { return make_int(value); });
}
ksp_value t_float_new(double value) {
    enter("float_new");
    return guarded<ksp_value>("float_new", nullptr, [&] { return make_float(value); });
}
ksp_value t_str_new(const char* utf8, size_t len) {
    enter("str_new");
    if (!utf8 && len) return raise(KSP_ERR_VAL, "str_new: NULL text with a nonzero length");
    return guarded<ksp_value>("str_new", nullptr, [&] { return make_str(std::string_view(utf8 ? utf8 : "", len)); });
}
ksp_value t_bytes_new(const void* data, size_t len) {
    enter("bytes_new");
    if (!data && len) return raise(KSP_ERR_VAL, "bytes_new: NULL data with a nonzero length");
    return guarded<ksp_value>("bytes_new", nullptr, [&] {
        return make_bytes(std::string_view(static_cast<const char*>(data ? data : ""), len));
    });
}
ksp_value seq_new(const char* what, ObjKind kind, size_t n, const ksp_value* items) {
    enter(what);
    if (n && !items) return raise(KSP_ERR_VAL, std::string(what) + ": NULL items with a nonzero count");
    for (size_t i = 0; i < n; i++) check_handle(items[i], what);
    return guarded<ksp_value>(what, nullptr, [&] { return make_seq(kind, n, items); });
}
ksp_value t_tuple_new(size_t n, const ksp_value* items) { return seq_new("tuple_new", ObjKind::Tuple, n, items); }
ksp_value t_list_new(size_t n, const ksp_value* items) { return seq_new("list_new", ObjKind::List, n, items); }

// ---- inspection ----
ksp_kind t_kind_of(ksp_value v) {
    enter("kind_of", v);
    if (!v) return KSP_KIND_OTHER;
    switch (as_obj(v)->kind) {
    case ObjKind::None: return KSP_KIND_NONE;
    case ObjKind::Bool: return KSP_KIND_BOOL;
    case ObjKind::Int: return KSP_KIND_INT;
    case ObjKind::Float: return KSP_KIND_FLOAT;
    case ObjKind::Str: return KSP_KIND_STR;
    case ObjKind::Bytes: return KSP_KIND_BYTES;
    case ObjKind::Tuple: return KSP_KIND_TUPLE;
    case ObjKind::List: return KSP_KIND_LIST;
    default: return KSP_KIND_OTHER;
    }
}
const char* t_type_name(ksp_value v) {
    enter("type_name", v);
    return v ? type_name_cstr(as_obj(v)) : "NULL";
}
int t_int_get(ksp_value v, int64_t* out) {
    enter("int_get", v);
    if (auto* e = as<EnumMemberObject>(v, ObjKind::EnumMember)) {
        if (out) *out = e->entry().value;
        return 0;
    }
    auto* i = as<IntObject>(v, ObjKind::Int);
    if (!i) return -1;
    if (out) *out = i->value;
    return 0;
}
int t_float_get(ksp_value v, double* out) {
    enter("float_get", v);
    auto* f = as<FloatObject>(v, ObjKind::Float);
    if (!f) return -1;
    if (out) *out = f->value;
    return 0;
}
int t_str_get(ksp_value v, const char** utf8, size_t* len) {
    enter("str_get", v);
    auto* s = as<StrObject>(v, ObjKind::Str);
    if (!s) return -1;
    if (utf8) *utf8 = s->value.c_str();
    if (len) *len = s->value.size();
    return 0;
}
int t_bytes_get(ksp_value v, const void** data, size_t* len) {
    enter("bytes_get", v);
    auto* b = as<BytesObject>(v, ObjKind::Bytes);
    if (!b) return -1;
    if (data) *data = b->view().data();
    if (len) *len = b->size();
    return 0;
}
SeqObject* as_seq(ksp_value v) {
    Object* o = as_obj(v);
    return (o && (o->kind == ObjKind::Tuple || o->kind == ObjKind::List)) ? static_cast<SeqObject*>(o) : nullptr;
}
size_t t_seq_len(ksp_value v) {
    enter("seq_len", v);
    SeqObject* s = as_seq(v);
    return s ? s->items.size() : 0;
}
ksp_value t_seq_item(ksp_value v, size_t index) {
    enter("seq_item", v);
    SeqObject* s = as_seq(v);
    return (s && index < s->items.size()) ? as_val(s->items[index]) : nullptr;  // borrowed
}
ksp_value t_repr(ksp_value v) {
    enter("repr", v);
    if (!v) return null_arg("repr");
    return guarded<ksp_value>("repr", nullptr, [&] { return repr_value(v); });
}

// ---- modules and types ----
ksp_value t_module_new(const char* name, const char* doc) {
    enter("module_new");
    return guarded<ksp_value>("module_new", nullptr, [&] { return make_module(name, doc); });
}
int t_module_add(ksp_value module, const char* name, ksp_value value) {
    enter("module_add", module, value);
    if (!module) return null_arg("module_add"), -1;
    return guarded<int>("module_add", -1, [&] { return module_add(module, name, value); });
}
ksp_value t_enum_new(const char* name, const char* doc, const ksp_enum_member* members, size_t n) {
    enter("enum_new");
    return guarded<ksp_value>("enum_new", nullptr, [&] { return make_enum(name, doc, members, n); });
}
int t_enum_value(ksp_value enum_type, ksp_value v, int64_t* out) {
    enter("enum_value", enum_type, v);
    return enum_value_of(enum_type, v, out) ? 1 : 0;
}
ksp_value t_enum_member(ksp_value enum_type, int64_t value) {
    enter("enum_member", enum_type);
    if (!enum_type) return null_arg("enum_member");
    return guarded<ksp_value>("enum_member", nullptr, [&] { return make_enum_member(enum_type, value); });
}
ksp_value t_base_io_type() {
    enter("base_io_type");
    return as_val(current_state()->base_io_type);  // borrowed
}
ksp_value t_type_new(const ksp_type_spec* spec) {
    enter("type_new");
    if (spec) check_handle(spec->base, "type_new");
    return guarded<ksp_value>("type_new", nullptr, [&] { return make_type(spec); });
}
ksp_value t_object_new(ksp_value type, void* payload) {
    enter("object_new", type);
    if (!type) return null_arg("object_new");
    return guarded<ksp_value>("object_new", nullptr, [&] { return make_instance(type, payload); });
}
void* t_object_payload(ksp_value obj, ksp_value type) {
    enter("object_payload", obj, type);
    return instance_payload(obj, type);
}

// ---- errors ----
ksp_value t_raise(ksp_error_kind kind, const char* message) {
    if (static_cast<unsigned>(kind) > KSP_ERR_MOVED) kind = KSP_ERR_ERROR;
    return guarded<ksp_value>("raise", nullptr, [&] { return raise(kind, message ? message : ""); });
}
ksp_value t_raise_errno(ksp_error_kind kind, int err, const char* message) {
    if (static_cast<unsigned>(kind) > KSP_ERR_MOVED) kind = KSP_ERR_ERROR;
    return guarded<ksp_value>("raise_errno", nullptr,
                              [&] { return raise(kind, message ? message : "", err > 0 ? err : 0); });
}
int t_error_occurred() { return error_occurred() ? 1 : 0; }

// ---- blocking ----
void* t_release_lock() {
    detail::HostState* st = current_state();
    if (!st) fatal("release_lock called while no host exists");
    if (!detail::gil_held_by_me(st)) fatal("release_lock called by a thread that does not hold the interpreter lock");
    detail::gil_unlock(st);
    return st;  // the token: which host's lock to take back
}
void t_acquire_lock(void* token) {
    detail::HostState* st = current_state();
    if (!st || token != st) fatal("acquire_lock called with a token that release_lock did not return");
    if (detail::gil_held_by_me(st)) fatal("acquire_lock called by a thread that already holds the interpreter lock");
    detail::gil_lock(st);
}
int t_interrupted() {
    detail::HostState* st = current_state();
    return (st && st->interrupt.load()) ? 1 : 0;
}

int64_t t_call_began_ns() { return call_began_ns(); }

int t_set_interrupt_waker(void (*wake)(void*), void* arg) {
    detail::HostState* st = current_state();
    if (!st) return -1;
    std::lock_guard lk(st->wakers_mu);
    auto& w = st->interrupt_wakers;
    for (auto it = w.begin(); it != w.end(); ++it) {
        if (it->second != arg) continue;
        if (wake) it->first = wake;
        else w.erase(it);
        return 0;
    }
    if (wake) w.emplace_back(wake, arg);
    return 0;
}

char* t_strdup(const char* s) {
    if (!s) return nullptr;
    size_t n = std::strlen(s) + 1;
    auto* copy = static_cast<char*>(std::malloc(n));  // init's caller frees it with free()
    if (copy) std::memcpy(copy, s, n);
    return copy;
}

int t_bool_get(ksp_value v, int* out) {
    enter("bool_get", v);
    auto* b = as<BoolObject>(v, ObjKind::Bool);
    if (!b) return -1;
    if (out) *out = b->value ? 1 : 0;
    return 0;
}

// ---- 1.2: filling a bytes in place ----
ksp_value t_bytes_alloc(size_t len, void** data) {
    enter("bytes_alloc");
    if (!data) return raise(KSP_ERR_VAL, "bytes_alloc: argument data is NULL (it receives the bytes to fill)");
    *data = nullptr;
    // Larger than any allocation can be; malloc would fail, but say why.
    if (len > static_cast<size_t>(PTRDIFF_MAX))
        return raise(KSP_ERR_VAL, "bytes_alloc: argument len is " + std::to_string(len) + ", too large for a bytes");
    return guarded<ksp_value>("bytes_alloc", nullptr, [&] {
        BytesObject* b = BytesObject::uninitialised(len);
        *data = b->data();
        return as_val(b);
    });
}

// Raises and returns -1, for the entries that report failure that way.
int fail(ksp_error_kind kind, const std::string& message) {
    raise(kind, message);
    return -1;
}

// Cutting a value is safe only while nothing else can see it: its maker holds the only
// reference and it came from bytes_alloc (scripts treat a bytes as immutable, and one
// from bytes_new may already be shared).
int t_bytes_shrink(ksp_value v, size_t len) {
    enter("bytes_shrink", v);
    if (!v) return null_arg("bytes_shrink"), -1;
    auto* b = as<BytesObject>(v, ObjKind::Bytes);
    if (!b)
        return fail(KSP_ERR_TYPE,
                    std::string("bytes_shrink: argument v is a ") + type_name_cstr(as_obj(v)) + ", not a bytes");
    if (!b->fillable())
        return fail(KSP_ERR_VAL, "bytes_shrink: argument v is a bytes that bytes_alloc did not make "
                                 "(only a new bytes from bytes_alloc may be shrunk)");
    int64_t refs = b->refs.load(std::memory_order_relaxed);
    if (refs != 1)
        return fail(KSP_ERR_VAL, "bytes_shrink: argument v is shared (" + std::to_string(refs) +
                                     " references); shrink it before handing it to anything else");
    if (len > b->size())
        return fail(KSP_ERR_VAL, "bytes_shrink: argument len is " + std::to_string(len) +
                                     ", longer than the bytes (" + std::to_string(b->size()) + ")");
    b->shrink_to(len);
    return 0;
}

// Designated initializers: C++20 requires them in declaration order, so the compiler
// checks this list against the header.
const ksp_host kTable = {
    .size = sizeof(ksp_host),
    .abi_major = KSP_ABI_MAJOR,
    .abi_minor = KSP_ABI_MINOR,
    .host_name = "refhost 0.1",
    .incref = t_incref,
    .decref = t_decref,
    .none = t_none,
    .bool_new = t_bool_new,
    .int_new = t_int_new,
    .float_new = t_float_new,
    .str_new = t_str_new,
    .bytes_new = t_bytes_new,
    .tuple_new = t_tuple_new,
    .list_new = t_list_new,
    .kind_of = t_kind_of,
    .type_name = t_type_name,
    .int_get = t_int_get,
    .float_get = t_float_get,
    .str_get = t_str_get,
    .bytes_get = t_bytes_get,
    .seq_len = t_seq_len,
    .seq_item = t_seq_item,
    .repr = t_repr,
    .module_new = t_module_new,
    .module_add = t_module_add,
    .enum_new = t_enum_new,
    .enum_value = t_enum_value,
    .enum_member = t_enum_member,
    .base_io_type = t_base_io_type,
    .type_new = t_type_new,
    .object_new = t_object_new,
    .object_payload = t_object_payload,
    .raise = t_raise,
    .error_occurred = t_error_occurred,
    .release_lock = t_release_lock,
    .acquire_lock = t_acquire_lock,
    .interrupted = t_interrupted,
    .strdup = t_strdup,
    // 1.1
    .bool_get = t_bool_get,
    // 1.2
    .bytes_alloc = t_bytes_alloc,
    .bytes_shrink = t_bytes_shrink,
    // 1.3
    .set_interrupt_waker = t_set_interrupt_waker,
    // 1.5
    .call_began_ns = t_call_began_ns,
    .raise_errno = t_raise_errno,
};

// What a host of ABI 1.`minor` reports as its size: where the entries it lacks begin.
constexpr size_t size_of_table(uint16_t minor) {
    static_assert(KSP_ABI_MINOR == 5, "a new minor: name its first entry here");
    switch (minor) {
    case 0: return offsetof(ksp_host, bool_get);
    case 1: return offsetof(ksp_host, bytes_alloc);
    case 2: return offsetof(ksp_host, set_interrupt_waker);
    case 3:
    case 4: return offsetof(ksp_host, call_began_ns);  // 1.4 added no entry (see ksp_handover)
    default: return sizeof(ksp_host);
    }
}

// kTable cut to what a host of that minor has; the entries past its size are NULL.
ksp_host table_of_minor(uint16_t minor) {
    ksp_host t{};
    std::memcpy(&t, &kTable, size_of_table(minor));
    t.size = size_of_table(minor);
    t.abi_minor = minor;
    return t;
}

}  // namespace

const ksp_host* abi_table(uint16_t minor) {
    static const auto tables = [] {
        std::array<ksp_host, KSP_ABI_MINOR + 1> all{};
        for (uint16_t m = 0; m <= KSP_ABI_MINOR; m++) all[m] = table_of_minor(m);
        return all;
    }();
    if (minor > KSP_ABI_MINOR) fatal("abi_table: no ABI 1." + std::to_string(minor) + " in this host");
    return &tables[minor];
}

}  // namespace refhost
