// builtins.cpp - constructors of the built-in values and UTF-8 validation.
#include "types/builtins.hpp"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "errors.hpp"
#include "state.hpp"

namespace refhost {

void SeqObject::clear() {
    for (Object* item : items) decref(item);
    items.clear();
}

SeqIterObject::SeqIterObject(Object* s) : Object(ObjKind::SeqIter), seq(s) { incref(seq); }

void SeqIterObject::clear() {
    decref(seq);
    seq = nullptr;
}

// none, true and false are singletons owned by the host (see state.cpp).
ksp_value make_none() {
    detail::HostState* st = detail::current_state();
    if (!st) return raise(KSP_ERR_ERROR, "no host exists");
    Object* o = st->none;
    incref(o);
    return as_val(o);
}

ksp_value make_bool(bool b) {
    detail::HostState* st = detail::current_state();
    if (!st) return raise(KSP_ERR_ERROR, "no host exists");
    Object* o = b ? st->true_obj : st->false_obj;
    incref(o);
    return as_val(o);
}

ksp_value make_int(int64_t v) { return as_val(new IntObject(v)); }
ksp_value make_float(double v) { return as_val(new FloatObject(v)); }

ksp_value make_str(std::string_view utf8) {
    size_t bad = 0;
    if (!utf8_valid(utf8, &bad))
        return raise(KSP_ERR_VAL, "str: invalid UTF-8 at byte " + std::to_string(bad));
    return as_val(new StrObject(std::string(utf8)));
}

namespace {

struct FreeBlock {
    void operator()(char* p) const { std::free(p); }
};
using Block = std::unique_ptr<char, FreeBlock>;

// The storage for `len` bytes when they do not fit inline (NULL when they do), not
// zeroed. Made before the object: a constructor that threw would leave the live-object
// count, which Object's constructor already raised, too high.
Block block_for(size_t len) {
    if (len <= BytesObject::kInlineCapacity) return nullptr;
    Block b(static_cast<char*>(std::malloc(len)));
    if (!b) throw std::bad_alloc();
    return b;
}

}  // namespace

BytesObject::BytesObject(size_t len, char* block)
    : Object(ObjKind::Bytes), data_(block ? block : inline_), size_(len) {}

BytesObject* BytesObject::uninitialised(size_t len) {
    Block block = block_for(len);
    auto* b = new BytesObject(len, block.get());
    block.release();  // b owns it now
    b->fillable_ = true;
    return b;
}

BytesObject* BytesObject::copy_of(std::string_view data) {
    if (data.size() <= kInlineCapacity) {  // the usual short value (a line): no block to make
        auto* b = new BytesObject(data.size(), nullptr);
        if (!data.empty()) std::memcpy(b->data_, data.data(), data.size());
        return b;
    }
    BytesObject* b = uninitialised(data.size());
    b->fillable_ = false;
    if (!data.empty()) std::memcpy(b->data_, data.data(), data.size());
    return b;
}

BytesObject::~BytesObject() {
    if (!is_inline()) std::free(data_);
}

void BytesObject::shrink_to(size_t len) {
    if (len >= size_) return;
    if (!is_inline()) {
        if (len <= kInlineCapacity) {
            // Short now: give the block back and keep the bytes inline.
            std::memcpy(inline_, data_, len);
            std::free(data_);
            data_ = inline_;
        } else if (void* smaller = std::realloc(data_, len)) {
            data_ = static_cast<char*>(smaller);
        }
    }
    size_ = len;
}

ksp_value make_bytes(std::string_view data) { return as_val(BytesObject::copy_of(data)); }

ksp_value make_seq(ObjKind kind, size_t n, const ksp_value* items) {
    std::vector<Object*> owned;
    owned.reserve(n);
    for (size_t i = 0; i < n; i++) {
        if (!items[i]) return raise(KSP_ERR_VAL, "sequence item " + std::to_string(i) + " is NULL");
    }
    for (size_t i = 0; i < n; i++) {
        incref(items[i]);
        owned.push_back(as_obj(items[i]));
    }
    return as_val(new SeqObject(kind, std::move(owned)));
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool utf8_valid(std::string_view s, size_t* bad_at) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t n = s.size(), i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else { *bad_at = i; return false; }
        if (i + len > n) { *bad_at = i; return false; }
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) { *bad_at = i; return false; }
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) { *bad_at = i; return false; }
        i += len;
    }
    return true;
}

size_t utf8_length(std::string_view s) {
    size_t count = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) count++;
    return count;
}

}  // namespace refhost
