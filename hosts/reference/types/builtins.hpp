// builtins.hpp - none, bool, int, float, str, bytes, tuple and list.
#ifndef REFHOST_TYPES_BUILTINS_HPP
#define REFHOST_TYPES_BUILTINS_HPP

#include <string>
#include <string_view>
#include <vector>

#include "object.hpp"

namespace refhost {

struct NoneObject final : Object {
    NoneObject() : Object(ObjKind::None) {}
    std::string type_name() const override { return "none"; }
};

struct BoolObject final : Object {
    explicit BoolObject(bool b) : Object(ObjKind::Bool), value(b) {}
    std::string type_name() const override { return "bool"; }
    const bool value;
};

struct IntObject final : Object {
    explicit IntObject(int64_t v) : Object(ObjKind::Int), value(v) {}
    std::string type_name() const override { return "int"; }
    const int64_t value;
};

struct FloatObject final : Object {
    explicit FloatObject(double v) : Object(ObjKind::Float), value(v) {}
    std::string type_name() const override { return "float"; }
    const double value;
};

// Always valid UTF-8 (checked on creation).
struct StrObject final : Object {
    explicit StrObject(std::string s) : Object(ObjKind::Str), value(std::move(s)) {}
    std::string type_name() const override { return "str"; }
    const std::string value;
};

// Immutable once shared. Its bytes can be made uninitialised and cut short (ABI 1.2's
// bytes_alloc and bytes_shrink, so a network read fills them without a memset or a
// second copy): they live in a malloc'd block, or inline when short, so that a short
// value (a line, a small message) costs one allocation.
struct BytesObject final : Object {
    static constexpr size_t kInlineCapacity = 16;

    // A new bytes (one reference) holding a copy of `data`. Throws std::bad_alloc.
    static BytesObject* copy_of(std::string_view data);
    // A new bytes of `len` bytes whose contents are undefined, to be filled through
    // data(). Throws std::bad_alloc.
    static BytesObject* uninitialised(size_t len);
    ~BytesObject() override;
    std::string type_name() const override { return "bytes"; }

    std::string_view view() const { return {data_, size_}; }
    size_t size() const { return size_; }
    // Writable only while the value is being filled (see shrink_to).
    char* data() { return data_; }
    // True for a value made by uninitialised(): the only kind that may be shrunk.
    bool fillable() const { return fillable_; }
    // Keeps the first `len` bytes; len <= size(). Never fails: a block that cannot be
    // shrunk in place is kept as it is.
    void shrink_to(size_t len);

private:
    // `block`: malloc'd storage for `len` bytes (owned from now on), or NULL when they fit inline.
    BytesObject(size_t len, char* block);
    bool is_inline() const { return data_ == inline_; }

    char* data_;
    size_t size_;
    bool fillable_ = false;
    char inline_[kInlineCapacity];
};

// A tuple or a list; each item is an owned reference.
struct SeqObject final : Object {
    SeqObject(ObjKind k, std::vector<Object*> items) : Object(k), items(std::move(items)) {}
    std::string type_name() const override { return kind == ObjKind::Tuple ? "tuple" : "list"; }
    void clear() override;
    std::vector<Object*> items;
};

// Iterates a tuple or list for Host::iter().
struct SeqIterObject final : Object {
    explicit SeqIterObject(Object* seq);  // takes its own reference
    std::string type_name() const override { return "iterator"; }
    void clear() override;
    Object* seq;
    size_t pos = 0;
};

// Constructors: each returns a new reference, or NULL after raising.
ksp_value make_none();
ksp_value make_bool(bool b);
ksp_value make_int(int64_t v);
ksp_value make_float(double v);
ksp_value make_str(std::string_view utf8);  // ValError if not valid UTF-8
ksp_value make_bytes(std::string_view data);
// `items` are borrowed; the sequence takes its own references.
ksp_value make_seq(ObjKind kind, size_t n, const ksp_value* items);

// Returns true if `s` is valid UTF-8; otherwise false and the offset of the first bad byte.
bool utf8_valid(std::string_view s, size_t* bad_at);
size_t utf8_length(std::string_view s);  // code points in valid UTF-8

// Typed views; NULL when `v` is not of that kind.
template <class T>
T* as(ksp_value v, ObjKind k) {
    Object* o = as_obj(v);
    return (o && o->kind == k) ? static_cast<T*>(o) : nullptr;
}

}  // namespace refhost

#endif
