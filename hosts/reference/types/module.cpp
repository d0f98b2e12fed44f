// module.cpp - module objects.
#include "types/module.hpp"

#include <utility>

#include "errors.hpp"
#include "types/builtins.hpp"
#include "types/type.hpp"

namespace refhost {

void ModuleObject::clear() {
    for (auto& member : members) decref(member.second);
    members.clear();
}

Object* ModuleObject::find(std::string_view member) const {
    for (const auto& m : members)
        if (m.first == member) return m.second;
    return nullptr;
}

void adopt_members(ModuleObject* into, const ModuleObject* from) {
    for (const auto& member : from->members) incref(member.second);
    auto dropped = std::exchange(into->members, from->members);
    into->doc = from->doc;
    for (auto& member : dropped) decref(member.second);
}

ksp_value make_module(const char* name, const char* doc) {
    if (!name || !*name) return raise(KSP_ERR_VAL, "module_new: name is empty");
    return as_val(new ModuleObject(name, doc ? doc : ""));
}

int module_add(ksp_value module, const char* name, ksp_value value) {
    auto* m = as<ModuleObject>(module, ObjKind::Module);
    if (!m) return raise(KSP_ERR_TYPE, "module_add: not a module"), -1;
    if (!name || !*name) return raise(KSP_ERR_VAL, "module_add: name is empty"), -1;
    if (!value) return raise(KSP_ERR_VAL, std::string("module_add: value of '") + name + "' is NULL"), -1;
    // A type added to a module takes the module's name as its prefix ("net.SocketIO").
    if (auto* t = as<TypeObject>(value, ObjKind::Type)) qualify_type(t, m->name);
    incref(value);
    for (auto& member : m->members) {
        if (member.first == name) {
            decref(member.second);
            member.second = as_obj(value);
            return 0;
        }
    }
    m->members.emplace_back(name, as_obj(value));
    return 0;
}

}  // namespace refhost
