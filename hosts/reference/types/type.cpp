// type.cpp - making types, instances and enum members; lookup along the base chain.
#include "types/type.hpp"

#include <cstddef>
#include <vector>

#include "errors.hpp"
#include "state.hpp"
#include "types/builtins.hpp"

namespace refhost {

namespace {

std::string copy_or_empty(const char* s) { return s ? std::string(s) : std::string(); }

TypeObject* as_type(ksp_value v) { return as<TypeObject>(v, ObjKind::Type); }

// A type made while the host runs a plugin's code belongs to that plugin: it is named
// after the plugin's module, and its functions become unavailable when it is unloaded.
void attribute_to_current_library(TypeObject* t) {
    Library* lib = current_library();
    if (!lib) return;
    t->lib = lib->shared_from_this();
    t->qualified_name = lib->name + "." + t->short_name;
    lib->types.push_back(t);
}

}  // namespace

void TypeObject::clear() {
    if (lib) std::erase(lib->types, static_cast<Object*>(this));
    member_slots_.clear();  // its keys view the bases' names
    next_slot_ = nullptr;
    decref(base);
    base = nullptr;
}

bool TypeObject::is_subtype_of(const TypeObject* other) const {
    for (const TypeObject* t = this; t; t = t->base)
        if (t == other) return true;
    return false;
}

// Lookup order: from this type to the root, the first match wins; within one type, an
// attribute lookup tries getters before methods.
void TypeObject::index_members() {
    member_slots_.clear();
    for (const TypeObject* t = this; t; t = t->base) {
        for (const Getter& g : t->getters) {
            MemberSlot& slot = member_slots_.slot_for(g.name);
            if (slot.getter) continue;
            slot.getter = &g;
            slot.getter_owner = t;
            if (!slot.method) slot.attribute_is_getter = true;
        }
        for (const Method& m : t->methods) {
            MemberSlot& slot = member_slots_.slot_for(m.name);
            if (slot.method) continue;
            slot.method = &m;
            slot.method_owner = t;
        }
    }
    next_slot_ = member_slots_.find("__next");
}

const Method* TypeObject::find_method(std::string_view name, const TypeObject** owner) const {
    const MemberSlot* slot = find_member_slot(name);
    if (!slot || !slot->method) return nullptr;
    if (owner) *owner = slot->method_owner;
    return slot->method;
}

const EnumEntry* TypeObject::find_member(std::string_view name) const {
    for (const EnumEntry& e : members)
        if (e.name == name) return &e;
    return nullptr;
}

const EnumEntry* TypeObject::find_member(int64_t value) const {
    for (const EnumEntry& e : members)
        if (e.value == value) return &e;
    return nullptr;
}

InstanceObject::InstanceObject(TypeObject* t, void* p)
    : Object(ObjKind::Instance), type(t), payload(p) {
    incref(type);
    if (type->lib) type->lib->instance_born(this);
}

void finalize_payload(TypeObject* t, void* payload) {
    if (!payload || !t->finalize) return;
    LibraryCall in(t->lib.get());
    try {
        t->finalize(t->ctx, payload);
    } catch (...) {
        fatal("finalizer of " + t->qualified_name + " threw a C++ exception");
    }
}

void InstanceObject::clear() {
    // The finalizer runs even after the plugin was unloaded: its library stays mapped
    // until this (and every other) instance is gone.
    finalize_payload(type, payload);
    payload = nullptr;
    std::shared_ptr<Library> lib = type->lib;  // keep it alive while we unmap it
    decref(type);
    type = nullptr;
    if (lib) lib->instance_gone(this);
}

EnumMemberObject::EnumMemberObject(TypeObject* t, size_t i)
    : Object(ObjKind::EnumMember), enum_type(t), index(i) {
    incref(enum_type);
}

void EnumMemberObject::clear() {
    decref(enum_type);
    enum_type = nullptr;
}

MethodObject::MethodObject(TypeObject* o, const Method* m, Object* s)
    : Object(ObjKind::Method), owner(o), method(m), self(s) {
    incref(owner);
    incref(self);
}

void MethodObject::clear() {
    decref(self);
    decref(owner);
    self = nullptr;
    owner = nullptr;
}

ksp_value make_type(const ksp_type_spec* spec) {
    if (!spec) return raise(KSP_ERR_VAL, "type_new: spec is NULL");
    if (spec->size < offsetof(ksp_type_spec, ctx) + sizeof(spec->ctx))
        return raise(KSP_ERR_VAL, "type_new: spec->size " + std::to_string(spec->size) +
                                      " is smaller than the ABI 1.0 ksp_type_spec");
    if (!spec->name || !*spec->name) return raise(KSP_ERR_VAL, "type_new: spec->name is empty");
    detail::HostState* st = detail::current_state();
    if (!st) return raise(KSP_ERR_ERROR, "type_new: no host exists");
    TypeObject* base = st->object_type;
    if (spec->base) {
        base = as_type(spec->base);
        if (!base || base->is_enum)
            return raise(KSP_ERR_TYPE, std::string("type_new: base of ") + spec->name + " is not a type");
    }
    if ((spec->nmethods && !spec->methods) || (spec->ngetters && !spec->getters))
        return raise(KSP_ERR_VAL, std::string("type_new: ") + spec->name + " has a count but no array");

    auto* t = new TypeObject();
    t->short_name = spec->name;
    t->qualified_name = spec->name;
    t->doc = copy_or_empty(spec->doc);
    t->base = base;
    incref(base);
    t->constructor = spec->constructor;
    t->constructor_signature = copy_or_empty(spec->constructor_signature);
    t->finalize = spec->finalize;
    t->ctx = spec->ctx;
    attribute_to_current_library(t);
    for (size_t i = 0; i < spec->nmethods; i++) {
        const ksp_method& m = spec->methods[i];
        if (!m.name || !m.fn) {
            decref(t);
            return raise(KSP_ERR_VAL, "type_new: method " + std::to_string(i) + " of " +
                                          t->short_name + " has no name or no function");
        }
        t->methods.push_back(Method{m.name, copy_or_empty(m.signature), copy_or_empty(m.doc), m.fn});
    }
    for (size_t i = 0; i < spec->ngetters; i++) {
        const ksp_getter& g = spec->getters[i];
        if (!g.name || !g.fn) {
            decref(t);
            return raise(KSP_ERR_VAL, "type_new: getter " + std::to_string(i) + " of " +
                                          t->short_name + " has no name or no function");
        }
        t->getters.push_back(Getter{g.name, copy_or_empty(g.doc), g.fn});
    }
    t->index_members();
    return as_val(t);
}

ksp_value make_enum(const char* name, const char* doc, const ksp_enum_member* members, size_t n) {
    if (!name || !*name) return raise(KSP_ERR_VAL, "enum_new: name is empty");
    if (n && !members) return raise(KSP_ERR_VAL, "enum_new: members is NULL");
    detail::HostState* st = detail::current_state();
    if (!st) return raise(KSP_ERR_ERROR, "enum_new: no host exists");
    auto* t = new TypeObject();
    t->is_enum = true;
    t->short_name = name;
    t->qualified_name = name;
    t->doc = copy_or_empty(doc);
    t->base = st->object_type;
    incref(t->base);
    attribute_to_current_library(t);
    for (size_t i = 0; i < n; i++) {
        if (!members[i].name) {
            decref(t);
            return raise(KSP_ERR_VAL, "enum_new: member " + std::to_string(i) + " has no name");
        }
        t->members.push_back(EnumEntry{members[i].name, members[i].value, copy_or_empty(members[i].doc)});
    }
    t->index_members();
    return as_val(t);
}

ksp_value make_instance(ksp_value type, void* payload) {
    TypeObject* t = as_type(type);
    if (!t || t->is_enum) return raise(KSP_ERR_TYPE, "object_new: not a type made by type_new");
    if (t->unloaded())
        return raise(KSP_ERR_ERROR, "object_new: module '" + t->lib->name + "' was unloaded");
    return as_val(new InstanceObject(t, payload));
}

ksp_value make_enum_member_at(TypeObject* enum_type, size_t index) {
    return as_val(new EnumMemberObject(enum_type, index));
}

ksp_value make_enum_member(ksp_value enum_type, int64_t value) {
    TypeObject* t = as_type(enum_type);
    if (!t || !t->is_enum) return raise(KSP_ERR_TYPE, "enum_member: not an enum type");
    for (size_t i = 0; i < t->members.size(); i++)
        if (t->members[i].value == value) return make_enum_member_at(t, i);
    return raise(KSP_ERR_VAL, t->qualified_name + " has no member with value " + std::to_string(value));
}

const TypeObject* serving_namesake(const TypeObject* t) {
    if (!t->unloaded()) return t;
    if (!t->lib->superseded || !t->lib->lineage) return nullptr;
    std::shared_ptr<Library> serving = t->lib->lineage->serving.lock();
    // The last of the live reloads from t's version was unloaded, or reloaded the old way.
    if (!serving || serving->torn_down.load()) return nullptr;
    for (Object* o : serving->types) {
        auto* now = static_cast<const TypeObject*>(o);
        if (now->qualified_name == t->qualified_name && now->is_enum == t->is_enum) return now;
    }
    return nullptr;
}

bool enum_value_of(ksp_value enum_type, ksp_value v, int64_t* out) {
    auto* m = as<EnumMemberObject>(v, ObjKind::EnumMember);
    if (!m || (as_obj(enum_type) != m->enum_type && serving_namesake(m->enum_type) != as_obj(enum_type))) return false;
    if (out) *out = m->entry().value;
    return true;
}

void* instance_payload(ksp_value obj, ksp_value type) {
    auto* inst = as<InstanceObject>(obj, ObjKind::Instance);
    TypeObject* t = as_type(type);
    if (!inst || !t || !inst->type->is_subtype_of(t)) return nullptr;
    return inst->payload;
}

void qualify_type(TypeObject* t, const std::string& module_name) {
    if (t->qualified_name.find('.') == std::string::npos)
        t->qualified_name = module_name + "." + t->short_name;
}

TypeObject* make_root_type() {
    auto* t = new TypeObject();
    t->short_name = t->qualified_name = "object";
    t->doc = "The root of every type.";
    t->index_members();
    return t;
}

}  // namespace refhost
