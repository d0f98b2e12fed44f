// type.hpp - types (plugin-made, host-made and enums), their instances, enum members and
// method objects.
#ifndef REFHOST_TYPES_TYPE_HPP
#define REFHOST_TYPES_TYPE_HPP

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "library.hpp"
#include "object.hpp"
#include "types/member_table.hpp"

namespace refhost {

struct Method {
    std::string name, signature, doc;
    ksp_cfunc fn = nullptr;
};

struct Getter {
    std::string name, doc;
    ksp_getter_fn fn = nullptr;
};

struct EnumEntry {
    std::string name;
    int64_t value = 0;
    std::string doc;
};

struct TypeObject final : Object {
    TypeObject() : Object(ObjKind::Type) {}
    std::string type_name() const override { return "type"; }
    void clear() override;

    std::string short_name;      // "SocketIO"
    std::string qualified_name;  // "net.SocketIO" (once known)
    std::string doc;
    TypeObject* base = nullptr;  // owned reference; NULL only for the root type `object`
    ksp_cfunc constructor = nullptr;
    std::string constructor_signature;
    std::vector<Method> methods;  // never changed after index_members(): Method* stay valid
    std::vector<Getter> getters;
    ksp_finalizer_fn finalize = nullptr;
    void* ctx = nullptr;
    bool is_enum = false;
    std::vector<EnumEntry> members;  // enums only
    // The plugin copy whose code the functions above point into; NULL for host types.
    std::shared_ptr<Library> lib;

    bool is_subtype_of(const TypeObject* other) const;
    // Builds the name index once the type and its bases are complete (every maker of a
    // type calls it last): lookups are on every method call's path, and a type never
    // changes after it is made.
    void index_members();
    // The index entry for `name`; NULL if no type along the chain has it.
    const MemberSlot* find_member_slot(std::string_view name) const { return member_slots_.find(name); }
    // The slot of `__next`, found once by index_members (iteration calls it per item).
    const MemberSlot* next_slot() const { return next_slot_; }
    // Looks along the base chain; `owner` receives the type that defines it.
    const Method* find_method(std::string_view name, const TypeObject** owner) const;
    const EnumEntry* find_member(std::string_view name) const;
    const EnumEntry* find_member(int64_t value) const;
    // True if the code behind this type's functions has been torn down.
    bool unloaded() const { return lib && (lib->torn_down.load() || lib->superseded); }

private:
    // Keys view the names in `methods`/`getters` of this type and its bases (kept alive
    // by the reference to `base`).
    MemberTable member_slots_;
    const MemberSlot* next_slot_ = nullptr;  // in member_slots_, NULL if absent
};

// An instance of a plugin (or host) type, carrying the plugin's payload. A plugin
// type's instances are linked into its library's list; a live reload changes `type`
// and `payload` (and moves the links to the new library).
struct InstanceObject final : Object, InstanceLink {
    InstanceObject(TypeObject* t, void* payload);  // takes its own reference to t
    std::string type_name() const override { return type->qualified_name; }
    void clear() override;  // runs the finalizer
    TypeObject* type;
    void* payload;
};

// A member of an enum type (`net.FK.INET4`). Made on lookup and compared by type and
// value: the enum type cannot own its members without making a reference cycle.
struct EnumMemberObject final : Object {
    EnumMemberObject(TypeObject* t, size_t index);  // takes its own reference to t
    std::string type_name() const override { return enum_type->qualified_name; }
    void clear() override;
    const EnumEntry& entry() const { return enum_type->members[index]; }
    TypeObject* enum_type;
    size_t index;
};

// A method looked up as an attribute: bound to `self` (from an instance), or unbound
// (from the type: the first argument of the call becomes self).
struct MethodObject final : Object {
    MethodObject(TypeObject* owner, const Method* m, Object* self);  // takes references
    std::string type_name() const override { return "method"; }
    void clear() override;
    TypeObject* owner;
    const Method* method;
    Object* self;  // NULL when unbound
};

// Runs t's finalizer on `payload` (if both exist) as a call into t's library.
void finalize_payload(TypeObject* t, void* payload);

// ABI constructors; each returns a new reference or NULL after raising.
ksp_value make_type(const ksp_type_spec* spec);
ksp_value make_enum(const char* name, const char* doc, const ksp_enum_member* members, size_t n);
ksp_value make_instance(ksp_value type, void* payload);
ksp_value make_enum_member(ksp_value enum_type, int64_t value);
ksp_value make_enum_member_at(TypeObject* enum_type, size_t index);
// True if v is a member of enum_type, or of the enum a live reload replaced by it (a
// script that kept `net.FK` from before the reload still passes its members).
bool enum_value_of(ksp_value enum_type, ksp_value v, int64_t* out);
void* instance_payload(ksp_value obj, ksp_value type);

// What a script's reference to `t` stands for now: `t` while its version serves; after a
// live reload replaced that version, the type of the same name in the version serving
// the module now (as kscript's adapter forwards an old type's calls); NULL when there is
// none (the module was unloaded or reloaded the old way, or has no such type now).
const TypeObject* serving_namesake(const TypeObject* t);

// Gives an unqualified type its module's prefix (when added to a module).
void qualify_type(TypeObject* t, const std::string& module_name);

// The host's own types, made once per Host.
TypeObject* make_root_type();                      // "object"
TypeObject* make_base_io_type(TypeObject* root);   // "io.BaseIO" (see base_io.cpp)

}  // namespace refhost

#endif
