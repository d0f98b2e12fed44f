// module.hpp - module objects: a name, a doc and ordered members.
#ifndef REFHOST_TYPES_MODULE_HPP
#define REFHOST_TYPES_MODULE_HPP

#include <string>
#include <utility>
#include <vector>

#include "object.hpp"

namespace refhost {

struct ModuleObject final : Object {
    ModuleObject(std::string n, std::string d) : Object(ObjKind::Module), name(std::move(n)), doc(std::move(d)) {}
    std::string type_name() const override { return "module"; }
    void clear() override;

    Object* find(std::string_view member) const;  // borrowed, NULL if absent

    std::string name, doc;
    std::vector<std::pair<std::string, Object*>> members;  // in insertion order, owned
};

// Gives `into` the doc and members of `from` in place of its own (a live reload keeps
// the module object a script holds and gives it the new version's attributes).
void adopt_members(ModuleObject* into, const ModuleObject* from);

ksp_value make_module(const char* name, const char* doc);
// Adds (or replaces) a member; `value` is borrowed. 0, or -1 after raising.
int module_add(ksp_value module, const char* name, ksp_value value);

}  // namespace refhost

#endif
