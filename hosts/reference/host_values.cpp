// host_values.cpp - refhost::Host: calling, making and reading values.
// Each method is the C-convention operation (ops.hpp, types/) plus a throw on failure.
#include <vector>

#include "errors.hpp"
#include "ops.hpp"
#include "refhost.hpp"
#include "types/type.hpp"
#include "repr.hpp"
#include "types/builtins.hpp"
#include "types/exception.hpp"

namespace refhost {

namespace {

// The handles of a call's arguments (borrowed from the Values). On the stack for the
// usual few: this is on every call's path.
class RawArgs {
public:
    RawArgs(const Value* begin, const Value* end) : size_(static_cast<size_t>(end - begin)) {
        ksp_value* out = small_;
        if (size_ > kSmall) {
            large_.resize(size_);
            out = large_.data();
        }
        for (size_t i = 0; i < size_; i++) out[i] = begin[i].get();
        data_ = out;
    }
    RawArgs(const RawArgs&) = delete;
    RawArgs& operator=(const RawArgs&) = delete;
    const ksp_value* data() const { return data_; }
    size_t size() const { return size_; }

private:
    static constexpr size_t kSmall = 8;
    ksp_value small_[kSmall];
    std::vector<ksp_value> large_;
    const ksp_value* data_;
    size_t size_;
};

// A usable handle, or a TypeError instead of a crash on an empty Value.
ksp_value need(const Value& v, const char* what) {
    if (!v) throw ScriptError(KSP_ERR_TYPE, std::string(what) + ": empty Value");
    return v.get();
}

[[noreturn]] void wrong_kind(const char* expected, const Value& v) {
    throw ScriptError(KSP_ERR_TYPE, std::string("expected ") + expected + ", got " + as_obj(v.get())->type_name());
}

template <class T>
T* need_kind(const Value& v, ObjKind k, const char* expected) {
    auto* o = as<T>(need(v, expected), k);
    if (!o) wrong_kind(expected, v);
    return o;
}

}  // namespace

Value Host::call(const Value& callable, std::initializer_list<Value> args) {
    RawArgs a(args.begin(), args.end());
    return Value::steal(checked(refhost::call(need(callable, "call"), a.size(), a.data())));
}

Value Host::call(const Value& callable, const std::vector<Value>& args) {
    RawArgs a(args.data(), args.data() + args.size());
    return Value::steal(checked(refhost::call(need(callable, "call"), a.size(), a.data())));
}

Value Host::call_method(const Value& obj, const std::string& name, std::initializer_list<Value> args) {
    RawArgs a(args.begin(), args.end());
    return Value::steal(checked(refhost::call_method(need(obj, "call_method"), name, a.size(), a.data())));
}

Value Host::call_method(const Value& obj, const std::string& name, const std::vector<Value>& args) {
    RawArgs a(args.data(), args.data() + args.size());
    return Value::steal(checked(refhost::call_method(need(obj, "call_method"), name, a.size(), a.data())));
}

Value Host::getattr(const Value& obj, const std::string& name) {
    return Value::steal(checked(refhost::getattr(need(obj, "getattr"), name)));
}

Value Host::iter(const Value& obj) { return Value::steal(checked(refhost::iter(need(obj, "iter")))); }

Value Host::next(const Value& iterator) {
    ksp_value v = refhost::next(need(iterator, "next"));
    if (!v && error_is(KSP_ERR_STOP_ITER)) {
        clear_error();
        return Value();
    }
    return Value::steal(checked(v));
}

Value Host::none() { return Value::steal(checked(make_none())); }
Value Host::boolean(bool b) { return Value::steal(checked(make_bool(b))); }
Value Host::integer(int64_t i) { return Value::steal(make_int(i)); }
Value Host::floating(double d) { return Value::steal(make_float(d)); }
Value Host::str(std::string_view utf8) { return Value::steal(checked(make_str(utf8))); }
Value Host::bytes(std::string_view data) { return Value::steal(make_bytes(data)); }

Value Host::tuple(std::initializer_list<Value> items) {
    RawArgs a(items.begin(), items.end());
    return Value::steal(checked(make_seq(ObjKind::Tuple, a.size(), a.data())));
}

Value Host::tuple(const std::vector<Value>& items) {
    RawArgs a(items.data(), items.data() + items.size());
    return Value::steal(checked(make_seq(ObjKind::Tuple, a.size(), a.data())));
}

Value Host::list(const std::vector<Value>& items) {
    RawArgs a(items.data(), items.data() + items.size());
    return Value::steal(checked(make_seq(ObjKind::List, a.size(), a.data())));
}

Value Host::exception(ksp_error_kind kind, std::string_view message) {
    return Value::steal(make_exception(kind, std::string(message)));
}

// Enum members are ints with a name, as in kscript.
int64_t Host::to_int(const Value& v) {
    if (auto* e = as<EnumMemberObject>(v.get(), ObjKind::EnumMember)) return e->entry().value;
    return need_kind<IntObject>(v, ObjKind::Int, "int")->value;
}
std::string Host::to_str(const Value& v) { return need_kind<StrObject>(v, ObjKind::Str, "str")->value; }
std::string Host::to_bytes(const Value& v) { return std::string(need_kind<BytesObject>(v, ObjKind::Bytes, "bytes")->view()); }
bool Host::to_bool(const Value& v) { return need_kind<BoolObject>(v, ObjKind::Bool, "bool")->value; }

double Host::to_float(const Value& v) {
    if (auto* i = as<IntObject>(need(v, "float"), ObjKind::Int)) return static_cast<double>(i->value);
    return need_kind<FloatObject>(v, ObjKind::Float, "float")->value;
}

bool Host::is_none(const Value& v) { return as_obj(need(v, "is_none"))->kind == ObjKind::None; }

size_t Host::len(const Value& v) {
    Object* o = as_obj(need(v, "len"));
    switch (o->kind) {
    case ObjKind::Tuple:
    case ObjKind::List: return static_cast<SeqObject*>(o)->items.size();
    case ObjKind::Bytes: return static_cast<BytesObject*>(o)->size();
    case ObjKind::Str: return utf8_length(static_cast<StrObject*>(o)->value);
    default: wrong_kind("a tuple, list, str or bytes", v);
    }
}

Value Host::item(const Value& v, size_t index) {
    Object* o = as_obj(need(v, "item"));
    if (o->kind != ObjKind::Tuple && o->kind != ObjKind::List) wrong_kind("a tuple or list", v);
    auto* seq = static_cast<SeqObject*>(o);
    if (index >= seq->items.size())
        throw ScriptError(KSP_ERR_INDEX, "index " + std::to_string(index) + " out of range for " + o->type_name() +
                                             " of length " + std::to_string(seq->items.size()));
    return Value::borrow(as_val(seq->items[index]));
}

std::string Host::repr(const Value& v) {
    std::string out;
    if (!repr_into(need(v, "repr"), out)) throw_current_error();
    return out;
}

std::string Host::type_name(const Value& v) { return as_obj(need(v, "type_name"))->type_name(); }

}  // namespace refhost
