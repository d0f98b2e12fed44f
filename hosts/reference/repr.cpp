// repr.cpp - repr() of every kind of object.
#include "repr.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "errors.hpp"
#include "ops.hpp"
#include "types/builtins.hpp"
#include "types/exception.hpp"
#include "types/module.hpp"
#include "types/type.hpp"

namespace refhost {

namespace {

void hex_escape(std::string& out, unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
}

// Escapes shared by str and bytes; returns false if `c` needs no escape.
bool common_escape(std::string& out, unsigned char c, char quote) {
    switch (c) {
    case '\\': out += "\\\\"; return true;
    case '\n': out += "\\n"; return true;
    case '\r': out += "\\r"; return true;
    case '\t': out += "\\t"; return true;
    default: break;
    }
    if (c == static_cast<unsigned char>(quote)) {
        out += '\\';
        out += quote;
        return true;
    }
    if (c < 0x20 || c == 0x7f) {
        hex_escape(out, c);
        return true;
    }
    return false;
}

// As Python: single quotes unless the text has a ' and no ".
char pick_quote(std::string_view s) {
    return (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
}

// An instance shows its __repr if its type has one.
bool instance_repr(InstanceObject* inst, std::string& out) {
    const TypeObject* owner = nullptr;
    const Method* m = inst->type->find_method("__repr", &owner);
    if (!m) {
        out += "<" + inst->type->qualified_name + " object>";
        return true;
    }
    ksp_value r = call_bound(owner, m, as_val(inst), 0, nullptr);
    if (!r) return false;
    auto* s = as<StrObject>(r, ObjKind::Str);
    if (!s) {
        std::string got = as_obj(r)->type_name();
        decref(r);
        raise(KSP_ERR_TYPE, inst->type->qualified_name + ".__repr returned " + got + ", not str");
        return false;
    }
    out += s->value;
    decref(r);
    return true;
}

bool seq_repr(SeqObject* seq, std::string& out) {
    bool tuple = seq->kind == ObjKind::Tuple;
    out += tuple ? '(' : '[';
    for (size_t i = 0; i < seq->items.size(); i++) {
        if (i) out += ", ";
        if (!repr_into(as_val(seq->items[i]), out)) return false;
    }
    if (tuple && seq->items.size() == 1) out += ',';
    out += tuple ? ')' : ']';
    return true;
}

}  // namespace

std::string quote_str(const std::string& s) {
    char q = pick_quote(s);
    std::string out(1, q);
    for (unsigned char c : s)
        if (!common_escape(out, c, q)) out += static_cast<char>(c);  // UTF-8 kept as is
    out += q;
    return out;
}

std::string quote_bytes(std::string_view b) {
    char q = pick_quote(b);
    std::string out = "b";
    out += q;
    for (unsigned char c : b) {
        if (common_escape(out, c, q)) continue;
        if (c >= 0x80) hex_escape(out, c);
        else out += static_cast<char>(c);
    }
    out += q;
    return out;
}

// The shortest text that reads back as the same double, with ".0" for whole numbers.
std::string format_float(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, d);
    std::string s(buf, res.ptr);
    if (s.find_first_of(".en") == std::string::npos) s += ".0";
    return s;
}

bool repr_into(ksp_value v, std::string& out) {
    Object* o = as_obj(v);
    switch (o->kind) {
    // kscript spells these in lower case.
    case ObjKind::None: out += "none"; return true;
    case ObjKind::Bool: out += static_cast<BoolObject*>(o)->value ? "true" : "false"; return true;
    case ObjKind::Int: out += std::to_string(static_cast<IntObject*>(o)->value); return true;
    case ObjKind::Float: out += format_float(static_cast<FloatObject*>(o)->value); return true;
    case ObjKind::Str: out += quote_str(static_cast<StrObject*>(o)->value); return true;
    case ObjKind::Bytes: out += quote_bytes(static_cast<BytesObject*>(o)->view()); return true;
    case ObjKind::Tuple:
    case ObjKind::List: return seq_repr(static_cast<SeqObject*>(o), out);
    case ObjKind::Module: out += "<module '" + static_cast<ModuleObject*>(o)->name + "'>"; return true;
    case ObjKind::Type: out += "<type '" + static_cast<TypeObject*>(o)->qualified_name + "'>"; return true;
    case ObjKind::EnumMember: {
        auto* m = static_cast<EnumMemberObject*>(o);
        out += m->enum_type->qualified_name + "." + m->entry().name;
        return true;
    }
    case ObjKind::Instance: return instance_repr(static_cast<InstanceObject*>(o), out);
    case ObjKind::Method: {
        auto* m = static_cast<MethodObject*>(o);
        out += "<method " + m->owner->qualified_name + "." + m->method->name + ">";
        return true;
    }
    case ObjKind::Exception: {
        auto* e = static_cast<ExceptionObject*>(o);
        out += std::string(error_kind_name(e->error_kind)) + "(" + quote_str(e->message) + ")";
        return true;
    }
    case ObjKind::SeqIter: out += "<iterator>"; return true;
    }
    out += "<?>";
    return true;
}

bool str_into(ksp_value v, std::string& out) {
    if (auto* s = as<StrObject>(v, ObjKind::Str)) {
        out += s->value;
        return true;
    }
    return repr_into(v, out);
}

ksp_value repr_value(ksp_value v) {
    std::string text;
    if (!repr_into(v, text)) return nullptr;
    return as_val(new StrObject(std::move(text)));
}

}  // namespace refhost
