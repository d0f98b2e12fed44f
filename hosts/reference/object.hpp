// object.hpp - the base of every host object, reference counting and the checking mode.
//
// A `ksp_value` handed to a plugin is a pointer to an Object cast to the opaque type.
// Counts are atomic so that a stray incref from another thread cannot corrupt them, but
// everything else assumes the interpreter lock (see gil.hpp).
//
// Checking mode (after HPy's debug context): released objects are not freed but kept in
// a quarantine with a poisoned magic field, so a second release or a later use of the
// handle is caught and reported with the object's type instead of corrupting memory.
#ifndef REFHOST_OBJECT_HPP
#define REFHOST_OBJECT_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ksp/plugin_abi.h"

namespace refhost {

enum class ObjKind : uint8_t {
    None, Bool, Int, Float, Str, Bytes, Tuple, List,
    Module, Type, EnumMember, Instance, Method, Exception, SeqIter
};

class Object {
public:
    static constexpr uint32_t kLiveMagic = 0x6b73704fu;   // "kspO"
    static constexpr uint32_t kFreedMagic = 0xdeadbeefu;

    explicit Object(ObjKind k);
    virtual ~Object();
    Object(const Object&) = delete;
    Object& operator=(const Object&) = delete;

    // The script-visible type name, e.g. "int" or "net.SocketIO".
    virtual std::string type_name() const = 0;
    // Drops what this object owns (references, payloads). Runs exactly once, when the
    // count reaches zero; the destructor then only frees plain memory.
    virtual void clear() {}

    // Objects' memory comes from object_pool.cpp (sized delete: the dynamic type's size).
    static void* operator new(size_t size);
    static void operator delete(void* p, size_t size) noexcept;

    uint32_t magic = kLiveMagic;
    const ObjKind kind;
    std::atomic<int64_t> refs{1};
};

inline Object* as_obj(ksp_value v) { return reinterpret_cast<Object*>(v); }
inline ksp_value as_val(Object* o) { return reinterpret_cast<ksp_value>(o); }

namespace detail {
// Memory for objects: small blocks are reused through a per-thread list (object_pool.cpp).
void* object_alloc(size_t size);
void object_free(void* p, size_t size) noexcept;
// Inline, as are the functions below that read it: they run several times per call.
inline std::atomic<bool> g_checking{false};
// The checks of check_handle once it knows checking mode is on.
void check_live_handle(ksp_value v, const char* what);
// Frees (or quarantines) an object whose count reached zero.
void destroy(Object* o);
}  // namespace detail

inline void* Object::operator new(size_t size) { return detail::object_alloc(size); }
inline void Object::operator delete(void* p, size_t size) noexcept { detail::object_free(p, size); }

// Checking mode is process-wide because objects may outlive the Host that made them.
void set_checking(bool on);
inline bool checking_enabled() { return detail::g_checking.load(std::memory_order_relaxed); }
// In checking mode: aborts with a clear message if `v` is not a live object. `what`
// names the operation, e.g. "int_get".
inline void check_handle(ksp_value v, const char* what) {
    if (v && checking_enabled()) detail::check_live_handle(v, what);
}

inline void incref(Object* o) {
    if (!o) return;
    check_handle(as_val(o), "incref");
    o->refs.fetch_add(1, std::memory_order_relaxed);
}
inline void decref(Object* o) {
    if (!o) return;
    check_handle(as_val(o), "decref");
    if (o->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) detail::destroy(o);
}
inline void incref(ksp_value v) { incref(as_obj(v)); }
inline void decref(ksp_value v) { decref(as_obj(v)); }

// Live objects in the process (created and not yet released).
size_t live_object_count();
// Frees every quarantined object (at host shutdown).
void drain_quarantine();

// Prints "refhost: <message>" to stderr and aborts: for plugin bugs that cannot be
// reported as script errors (the process state is no longer trustworthy).
[[noreturn]] void fatal(const std::string& message);

}  // namespace refhost

#endif
