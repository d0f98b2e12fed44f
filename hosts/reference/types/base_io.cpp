// base_io.cpp - the host's io.BaseIO type, base of every stream type a plugin defines
// (net.SocketIO). The host implements the methods that only need the subtype's own
// `write`/`__next`: printf() formats and calls self.write(); __iter() returns self.
#include <string>

#include "errors.hpp"
#include "ops.hpp"
#include "repr.hpp"
#include "types/builtins.hpp"
#include "types/type.hpp"

namespace refhost {

namespace {

// printf(self, fmt, *args): %s (str of the arg), %d and %i (int), %r (repr), %%.
ksp_value base_io_printf(void*, ksp_value self, size_t nargs, const ksp_value* args) {
    auto* fmt = nargs ? as<StrObject>(args[0], ObjKind::Str) : nullptr;
    if (!fmt) return raise(KSP_ERR_ARG, "printf(self, fmt, *args): fmt must be a str");
    const std::string& f = fmt->value;
    std::string out;
    size_t next_arg = 1;
    for (size_t i = 0; i < f.size(); i++) {
        if (f[i] != '%') {
            out += f[i];
            continue;
        }
        if (++i == f.size()) return raise(KSP_ERR_VAL, "printf: format ends with a lone '%'");
        char spec = f[i];
        if (spec == '%') {
            out += '%';
            continue;
        }
        if (spec != 's' && spec != 'd' && spec != 'i' && spec != 'r')
            return raise(KSP_ERR_VAL, std::string("printf: unknown format '%") + spec + "'");
        if (next_arg >= nargs)
            return raise(KSP_ERR_ARG, "printf: not enough arguments for the format");
        ksp_value arg = args[next_arg++];
        bool ok = true;
        if (spec == 's') {
            ok = str_into(arg, out);
        } else if (spec == 'r') {
            ok = repr_into(arg, out);
        } else if (auto* n = as<IntObject>(arg, ObjKind::Int)) {
            out += std::to_string(n->value);
        } else {
            return raise(KSP_ERR_TYPE, std::string("printf: %") + spec + " needs an int, got " +
                                           as_obj(arg)->type_name());
        }
        if (!ok) return nullptr;
    }
    if (next_arg < nargs) return raise(KSP_ERR_ARG, "printf: not all arguments were used by the format");
    ksp_value text = make_str(out);
    if (!text) return nullptr;
    ksp_value result = call_method(self, "write", 1, &text);
    decref(text);
    return result;
}

ksp_value base_io_iter(void*, ksp_value self, size_t nargs, const ksp_value*) {
    if (nargs) return raise(KSP_ERR_ARG, "__iter(self) takes no arguments");
    incref(self);
    return self;
}

}  // namespace

TypeObject* make_base_io_type(TypeObject* root) {
    auto* t = new TypeObject();
    t->short_name = "BaseIO";
    t->qualified_name = "io.BaseIO";
    t->doc = "Abstract base of streams. Subtypes provide read, write and the rest; the host "
             "provides printf and iteration on top of them.";
    t->base = root;
    incref(root);
    t->methods.push_back(Method{"printf", "printf(self, fmt, *args)",
                                "Formats fmt with args (%s str, %d/%i int, %r repr, %% a percent sign) "
                                "and writes the result with self.write().",
                                base_io_printf});
    t->methods.push_back(Method{"__iter", "__iter(self)", "A stream is its own iterator.", base_io_iter});
    t->index_members();
    return t;
}

}  // namespace refhost
