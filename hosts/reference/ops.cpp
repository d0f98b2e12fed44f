// ops.cpp - attribute lookup, calling and iteration.
#include "ops.hpp"

#include <time.h>

#include <vector>

#include "errors.hpp"
#include "types/builtins.hpp"
#include "types/module.hpp"
#include "types/type.hpp"

namespace refhost {

namespace {

// -1: no native call on this thread; 0: in one whose start no plugin has asked for yet.
constinit thread_local int64_t t_call_began_ns = -1;

int64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// One script-level call into native code, however many tries it takes. The clock is
// read only if the plugin asks (most calls have no timeout).
class CallClock {
public:
    CallClock() : outer_(t_call_began_ns) { t_call_began_ns = 0; }
    ~CallClock() { t_call_began_ns = outer_; }
    CallClock(const CallClock&) = delete;
    CallClock& operator=(const CallClock&) = delete;

private:
    int64_t outer_;  // a call that called into the host, which called this one
};

// Checks the result of a native function against the ABI's rules: NULL exactly when an
// error was raised. A violation is a plugin bug; the host makes it visible as an Error
// rather than crashing or silently dropping it.
std::string qualified(const TypeObject* t, const std::string& member) {
    return t->qualified_name + "." + member;
}

// What a native function is called in messages: "net.SocketIO.read", or the type's
// name for its constructor (member == nullptr). Built only when a message needs it:
// this is on every call's path.
std::string native_name(const TypeObject* owner, const std::string* member) {
    return member ? qualified(owner, *member) : owner->qualified_name;
}

ksp_value check_result(ksp_value result, const TypeObject* owner, const std::string* member) {
    if (!result && !error_occurred())
        return raise(KSP_ERR_ERROR, "native function " + native_name(owner, member) +
                                        " returned NULL without an error");
    if (result && error_occurred()) {
        PendingError e = take_error();
        decref(result);
        return raise(KSP_ERR_ERROR, "native function " + native_name(owner, member) +
                                        " returned a value while an error was set (" + error_kind_name(e.kind) +
                                        ": " + e.message + ")");
    }
    return result;
}

// "module 'net' was unloaded; SocketIO.read is no longer available"
std::nullptr_t raise_unloaded(const TypeObject* t, const std::string& member) {
    return raise(KSP_ERR_ERROR, "module '" + t->lib->name + "' was unloaded; " + t->short_name +
                                    (member.empty() ? "" : "." + member) + " is no longer available");
}

// Runs a native function of `owner`. The caller holds a LibraryCall for owner's library.
ksp_value run_native(const TypeObject* owner, const std::string* member, ksp_cfunc fn, ksp_value self,
                     size_t nargs, const ksp_value* args) {
    // A stale error would be misread as this call's error.
    clear_error();
    ksp_value result;
    try {
        result = fn(owner->ctx, self, nargs, args);
    } catch (...) {
        // Should never happen: the ABI forbids exceptions crossing it.
        clear_error();
        return raise(KSP_ERR_ERROR, "native function " + native_name(owner, member) + " let a C++ exception escape");
    }
    if ((result != nullptr) != error_occurred()) return result;  // as the ABI says: nothing to check
    return check_result(result, owner, member);
}

// KSP_ERR_MOVED is for methods only: a constructor, getter or module function has no
// object to call again, so raising it there is a plugin bug.
ksp_value refuse_moved(ksp_value result, const TypeObject* owner, const std::string* member) {
    if (result || !error_is(KSP_ERR_MOVED)) return result;
    PendingError e = take_error();
    return raise(KSP_ERR_ERROR, "native function " + native_name(owner, member) +
                                    " raised KSP_ERR_MOVED, which only a method may raise (" + e.message + ")");
}

ksp_value invoke_getter(const TypeObject* owner, const Getter* g, ksp_value self) {
    if (owner->unloaded()) return raise_unloaded(owner, g->name);
    LibraryCall in(owner->lib.get());
    clear_error();
    ksp_value result;
    try {
        result = g->fn(owner->ctx, self);
    } catch (...) {
        clear_error();
        return raise(KSP_ERR_ERROR, "getter " + qualified(owner, g->name) + " let a C++ exception escape");
    }
    return refuse_moved(check_result(result, owner, &g->name), owner, &g->name);
}

// True if `old` is a type of a version a live reload replaced and `t` (or a base) is
// what became of it.
bool moved_from(const TypeObject* t, const TypeObject* old) {
    if (!old->unloaded()) return false;
    const TypeObject* now = serving_namesake(old);
    for (; now && t; t = t->base)
        if (t == now) return true;
    return false;
}

// After a live reload `self` is an instance of the new version's type: its method
// `name`, if that type has one and is not unloaded itself.
bool method_now(ksp_value self, const std::string& name, const TypeObject*& owner, const Method*& m) {
    auto* inst = as<InstanceObject>(self, ObjKind::Instance);
    if (!inst) return false;
    const TypeObject* found_owner = nullptr;
    const Method* found = inst->type->find_method(name, &found_owner);
    if (!found || found_owner->unloaded()) return false;
    owner = found_owner;
    m = found;
    return true;
}

std::nullptr_t no_attr(ksp_value obj, std::string_view name) {
    return raise(KSP_ERR_ATTR, "'" + as_obj(obj)->type_name() + "' object has no attribute '" +
                                   std::string(name) + "'");
}

ksp_value instance_attr(InstanceObject* inst, std::string_view name) {
    const MemberSlot* slot = inst->type->find_member_slot(name);
    if (!slot) return no_attr(as_val(inst), name);
    if (slot->attribute_is_getter) return invoke_getter(slot->getter_owner, slot->getter, as_val(inst));
    return as_val(new MethodObject(const_cast<TypeObject*>(slot->method_owner), slot->method, inst));
}

ksp_value type_attr(TypeObject* type, std::string_view name) {
    if (type->is_enum) {
        for (size_t i = 0; i < type->members.size(); i++)
            if (type->members[i].name == name) return make_enum_member_at(type, i);
    }
    const TypeObject* owner = nullptr;
    if (const Method* m = type->find_method(name, &owner))
        return as_val(new MethodObject(const_cast<TypeObject*>(owner), m, nullptr));
    return raise(KSP_ERR_ATTR, "type '" + type->qualified_name + "' has no attribute '" + std::string(name) + "'");
}

ksp_value call_type(TypeObject* t, size_t nargs, const ksp_value* args) {
    if (t->is_enum) {
        // `net.FK(2)` looks a member up by value.
        int64_t v;
        auto* i = nargs == 1 ? as<IntObject>(args[0], ObjKind::Int) : nullptr;
        if (!i) return raise(KSP_ERR_ARG, t->qualified_name + "() takes one int");
        v = i->value;
        return make_enum_member(as_val(t), v);
    }
    if (t->unloaded()) {  // a script kept the type from before a live reload: its namesake now
        const TypeObject* now = serving_namesake(t);
        if (!now) return raise_unloaded(t, "");
        t = const_cast<TypeObject*>(now);
    }
    if (!t->constructor) return raise(KSP_ERR_TYPE, "cannot construct '" + t->qualified_name + "' objects");
    LibraryCall in(t->lib.get());
    CallClock clock;
    return refuse_moved(run_native(t, nullptr, t->constructor, as_val(t), nargs, args), t, nullptr);
}

}  // namespace

// A method whose object was handed to another version of its plugin while the call
// waited returns KSP_ERR_MOVED: it is called again, by name, on the object as it is now.
// A method bound before a live reload is looked up again the same way.
ksp_value call_bound(const TypeObject* owner, const Method* m, ksp_value self, size_t nargs,
                     const ksp_value* args) {
    if (owner->unloaded() && !method_now(self, m->name, owner, m)) return raise_unloaded(owner, m->name);
    CallClock clock;  // the tries after KSP_ERR_MOVED are the same call
    for (;;) {
        Library* lib = owner->lib.get();
        // Counted until the method is looked up again: owner and m may belong to an old
        // version, which stays mapped (with its types) while the count is not zero.
        LibraryCall in(lib);
        const uint64_t handovers = lib ? lib->handovers_begun : 0;
        ksp_value result = run_native(owner, &m->name, m->fn, self, nargs, args);
        if (result || !error_is(KSP_ERR_MOVED)) return result;
        PendingError moved = take_error();
        if (!lib || lib->handovers_begun == handovers)
            return raise(KSP_ERR_ERROR, "native function " + qualified(owner, m->name) +
                                            " raised KSP_ERR_MOVED, but no live reload of its object began (" +
                                            moved.message + ")");
        if (!method_now(self, m->name, owner, m))
            return raise(KSP_ERR_ERROR, "native function " + qualified(owner, m->name) +
                                            " raised KSP_ERR_MOVED, but its object now has no method '" +
                                            m->name + "' to call again");
    }
}

ksp_value getattr(ksp_value obj, std::string_view name) {
    Object* o = as_obj(obj);
    switch (o->kind) {
    case ObjKind::Instance: return instance_attr(static_cast<InstanceObject*>(o), name);
    case ObjKind::Type: return type_attr(static_cast<TypeObject*>(o), name);
    case ObjKind::Module: {
        Object* member = static_cast<ModuleObject*>(o)->find(name);
        if (!member)
            return raise(KSP_ERR_ATTR, "module '" + static_cast<ModuleObject*>(o)->name +
                                           "' has no attribute '" + std::string(name) + "'");
        incref(member);
        return as_val(member);
    }
    default: return no_attr(obj, name);
    }
}

ksp_value call(ksp_value callable, size_t nargs, const ksp_value* args) {
    Object* o = as_obj(callable);
    if (o->kind == ObjKind::Type) return call_type(static_cast<TypeObject*>(o), nargs, args);
    if (o->kind == ObjKind::Method) {
        auto* m = static_cast<MethodObject*>(o);
        if (m->self) return call_bound(m->owner, m->method, as_val(m->self), nargs, args);
        // Unbound: `T.method(obj, ...)`; obj must be a T, or what became of a T when a
        // live reload moved it to the new version of T.
        auto* self = nargs ? as<InstanceObject>(args[0], ObjKind::Instance) : nullptr;
        if (!self || !(self->type->is_subtype_of(m->owner) || moved_from(self->type, m->owner)))
            return raise(KSP_ERR_TYPE, qualified(m->owner, m->method->name) + " needs a '" +
                                           m->owner->qualified_name + "' as its first argument, not " +
                                           (nargs ? as_obj(args[0])->type_name() : std::string("nothing")));
        return call_bound(m->owner, m->method, args[0], nargs - 1, args + 1);
    }
    return raise(KSP_ERR_TYPE, "'" + o->type_name() + "' object is not callable");
}

ksp_value call_method(ksp_value obj, std::string_view name, size_t nargs, const ksp_value* args) {
    // Fast path for the common case, an instance's method: no method object. The
    // attribute would be that method bound to obj, so calling it directly is the same.
    if (auto* inst = as<InstanceObject>(obj, ObjKind::Instance)) {
        const MemberSlot* slot = inst->type->find_member_slot(name);
        if (slot && !slot->attribute_is_getter) return call_bound(slot->method_owner, slot->method, obj, nargs, args);
    }
    ksp_value f = getattr(obj, name);
    if (!f) return nullptr;
    ksp_value result = call(f, nargs, args);
    decref(f);
    return result;
}

ksp_value iter(ksp_value obj) {
    Object* o = as_obj(obj);
    if (o->kind == ObjKind::Tuple || o->kind == ObjKind::List) return as_val(new SeqIterObject(o));
    if (o->kind == ObjKind::SeqIter) {
        incref(o);
        return obj;
    }
    if (o->kind == ObjKind::Instance) return call_method(obj, "__iter", 0, nullptr);
    return raise(KSP_ERR_TYPE, "'" + o->type_name() + "' object is not iterable");
}

ksp_value next(ksp_value iterator) {
    Object* o = as_obj(iterator);
    if (o->kind == ObjKind::SeqIter) {
        auto* it = static_cast<SeqIterObject*>(o);
        auto* seq = static_cast<SeqObject*>(it->seq);
        if (it->pos >= seq->items.size()) return raise(KSP_ERR_STOP_ITER, "end of iteration");
        Object* item = seq->items[it->pos++];
        incref(item);
        return as_val(item);
    }
    if (o->kind == ObjKind::Instance) {
        // Found when the type was made: no lookup by name per item.
        const MemberSlot* slot = static_cast<InstanceObject*>(o)->type->next_slot();
        if (slot && !slot->attribute_is_getter) return call_bound(slot->method_owner, slot->method, iterator, 0, nullptr);
        return call_method(iterator, "__next", 0, nullptr);
    }
    return raise(KSP_ERR_TYPE, "'" + o->type_name() + "' object is not an iterator");
}

int64_t call_began_ns() {
    if (t_call_began_ns < 0) return monotonic_ns();
    if (t_call_began_ns == 0) t_call_began_ns = monotonic_ns();
    return t_call_began_ns;
}

}  // namespace refhost
