// describe.cpp - every member of a module: enums with their members, types with their
// constructor, getters and methods (signatures and docstrings), other values by repr.
#include "describe.hpp"

#include <set>
#include <string>

#include "repr.hpp"
#include "types/module.hpp"
#include "types/type.hpp"

namespace refhost {

namespace {

// Each line of `doc`, indented.
void put_doc(std::string& out, const std::string& doc, const std::string& indent) {
    if (doc.empty()) return;
    size_t start = 0;
    while (start <= doc.size()) {
        size_t end = doc.find('\n', start);
        if (end == std::string::npos) end = doc.size();
        out += indent + doc.substr(start, end - start) + "\n";
        start = end + 1;
    }
}

void describe_enum(std::string& out, const TypeObject* t) {
    out += "  enum " + t->qualified_name + "\n";
    put_doc(out, t->doc, "      ");
    for (const EnumEntry& e : t->members) {
        out += "      " + t->qualified_name + "." + e.name + " = " + std::to_string(e.value) + "\n";
        put_doc(out, e.doc, "          ");
    }
}

void describe_type(std::string& out, const TypeObject* t) {
    out += "  type " + t->qualified_name;
    if (t->base && t->base->base) out += " (base " + t->base->qualified_name + ")";
    out += "\n";
    put_doc(out, t->doc, "      ");
    if (t->constructor)
        out += "      constructor: " + (t->constructor_signature.empty() ? t->short_name + "(...)"
                                                                       : t->constructor_signature) + "\n";
    else
        out += "      (cannot be constructed by scripts)\n";
    if (!t->getters.empty()) out += "      attributes:\n";
    for (const Getter& g : t->getters) {
        out += "        ." + g.name + "\n";
        put_doc(out, g.doc, "            ");
    }
    if (!t->methods.empty()) out += "      methods:\n";
    for (const Method& m : t->methods) {
        out += "        " + (m.signature.empty() ? m.name + "(self, ...)" : m.signature) + "\n";
        put_doc(out, m.doc, "            ");
    }
    // What a base has and no nearer type overrides.
    std::set<std::string> nearer;
    for (const Method& m : t->methods) nearer.insert(m.name);
    for (const Getter& g : t->getters) nearer.insert("." + g.name);
    for (const TypeObject* b = t->base; b && b->base; b = b->base) {
        std::string names;
        auto add = [&](const std::string& name) {
            if (nearer.insert(name).second) names += (names.empty() ? "" : ", ") + name;
        };
        for (const Method& m : b->methods) add(m.name);
        for (const Getter& g : b->getters) add("." + g.name);
        if (!names.empty()) out += "      inherited from " + b->qualified_name + ": " + names + "\n";
    }
}

}  // namespace

bool describe_module(const ModuleObject* module, const Library* lib, std::string& out) {
    out += "module " + module->name + "\n";
    if (lib)
        out += "  version " + lib->version + ", from " + lib->source_path + "\n";
    put_doc(out, module->doc, "  ");
    for (const auto& [name, member] : module->members) {
        out += "\n" + name + ":\n";
        if (member->kind == ObjKind::Type) {
            auto* t = static_cast<const TypeObject*>(member);
            if (t->is_enum) describe_enum(out, t);
            else describe_type(out, t);
            continue;
        }
        std::string text;
        if (!repr_into(as_val(member), text)) return false;
        out += "  " + member->type_name() + " " + text + "\n";
    }
    return true;
}

}  // namespace refhost
