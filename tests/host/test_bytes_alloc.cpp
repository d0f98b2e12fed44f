// test_bytes_alloc.cpp - ABI 1.2: a plugin fills a new bytes in place (bytes_alloc) and
// cuts it to what it wrote (bytes_shrink), and the host refuses every unsafe shrink.
// Each refusal is checked with checking mode on and off: the checks are not debug-only.
#include <cstring>
#include <functional>
#include <string>

#include <doctest/doctest.h>

#include "refhost.hpp"
#include "support.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::Value;
using support::LeakGuard;
using support::contains;
using support::take_raised;

namespace {

// Runs `body` in a host with checking mode on, then in one with it off.
void in_both_modes(const std::function<void(Host&)>& body) {
    for (bool checking : {true, false}) {
        CAPTURE(checking);
        LeakGuard guard;
        refhost::HostOptions o = support::options_for("/nonexistent");
        o.checking = checking;
        Host h(o);
        Gil g(h);
        body(h);
    }
}

// A new bytes of `len` undefined bytes from the table, and where to write them.
Value alloc(Host& h, size_t len, char** data) {
    void* p = nullptr;
    Value b = Value::steal(h.table()->bytes_alloc(len, &p));
    REQUIRE(b);
    REQUIRE(p != nullptr);
    *data = static_cast<char*>(p);
    return b;
}

std::string bytes_of(Host& h, const Value& b) {
    const void* data = nullptr;
    size_t len = 0;
    REQUIRE(h.table()->bytes_get(b.get(), &data, &len) == 0);
    return std::string(static_cast<const char*>(data), len);
}

}  // namespace

TEST_SUITE("bytes") {

TEST_CASE("abi_table_is_1_2_or_newer_and_has_bytes_shrink") {
    LeakGuard guard;
    Host h(refhost::HostOptions{});
    const ksp_host* t = h.table();
    CHECK(t->abi_minor >= 2);
    CHECK(KSP_HOST_HAS(t, bytes_alloc));
    CHECK(KSP_HOST_HAS(t, bytes_shrink));
    CHECK((t->bytes_alloc != nullptr && t->bytes_shrink != nullptr));
}

TEST_CASE("bytes_alloc_then_shrink_gives_the_written_prefix") {
    in_both_modes([](Host& h) {
        const ksp_host* t = h.table();
        // A 64 KiB read that got one short line: from a block down to inline storage.
        char* p = nullptr;
        Value line = alloc(h, 65536, &p);
        std::memcpy(p, "line 1\n", 7);
        CHECK(t->bytes_shrink(line.get(), 7) == 0);
        CHECK(bytes_of(h, line) == "line 1\n");
        CHECK(h.to_bytes(line) == "line 1\n");
        CHECK(h.len(line) == 7);
        CHECK(h.repr(line) == "b'line 1\\n'");
        // A longer prefix stays in a (smaller) block.
        Value block = alloc(h, 65536, &p);
        std::string text(5000, 'x');
        for (size_t i = 0; i < text.size(); i++) text[i] = static_cast<char>('a' + i % 26);
        std::memcpy(p, text.data(), text.size());
        CHECK(t->bytes_shrink(block.get(), text.size()) == 0);
        CHECK(bytes_of(h, block) == text);
        // Short from the start: inline storage, cut again.
        Value small = alloc(h, 16, &p);
        std::memcpy(p, "0123456789abcdef", 16);
        CHECK(bytes_of(h, small) == "0123456789abcdef");
        CHECK(t->bytes_shrink(small.get(), 10) == 0);
        CHECK(t->bytes_shrink(small.get(), 3) == 0);
        CHECK(bytes_of(h, small) == "012");
        // The same length: nothing to cut, not an error.
        CHECK(t->bytes_shrink(small.get(), 3) == 0);
        CHECK(bytes_of(h, small) == "012");
        CHECK(t->error_occurred() == 0);
    });
}

TEST_CASE("bytes_shrink_refuses_a_bytes_from_bytes_new") {
    in_both_modes([](Host& h) {
        const ksp_host* t = h.table();
        Value b = Value::steal(t->bytes_new("abcdef", 6));
        CHECK(t->bytes_shrink(b.get(), 3) == -1);
        ksp_error_kind kind = KSP_ERR_ERROR;
        CHECK(take_raised(&kind) == "bytes_shrink: argument v is a bytes that bytes_alloc did not make "
                                    "(only a new bytes from bytes_alloc may be shrunk)");
        CHECK(kind == KSP_ERR_VAL);
        CHECK(h.to_bytes(b) == "abcdef");  // untouched
        // Not a bytes at all.
        Value s = h.str("abcdef");
        CHECK(t->bytes_shrink(s.get(), 3) == -1);
        CHECK(take_raised(&kind) == "bytes_shrink: argument v is a str, not a bytes");
        CHECK(kind == KSP_ERR_TYPE);
        CHECK(t->bytes_shrink(nullptr, 0) == -1);
        CHECK(take_raised(&kind) == "bytes_shrink: a value argument is NULL");
        CHECK(kind == KSP_ERR_VAL);
    });
}

TEST_CASE("bytes_shrink_refuses_a_shared_bytes") {
    in_both_modes([](Host& h) {
        const ksp_host* t = h.table();
        char* p = nullptr;
        Value b = alloc(h, 8, &p);
        std::memcpy(p, "abcdefgh", 8);
        Value copy = b;  // a second reference
        CHECK(t->bytes_shrink(b.get(), 4) == -1);
        ksp_error_kind kind = KSP_ERR_ERROR;
        CHECK(take_raised(&kind) ==
              "bytes_shrink: argument v is shared (2 references); shrink it before handing it to anything else");
        CHECK(kind == KSP_ERR_VAL);
        // Handed to a tuple: shared too.
        copy = Value();
        Value tup = h.tuple({b});
        CHECK(t->bytes_shrink(b.get(), 4) == -1);
        CHECK(contains(take_raised(), "is shared (2 references)"));
        tup = Value();
        CHECK(h.to_bytes(b) == "abcdefgh");  // untouched by the refusals
        // The only reference again: allowed.
        CHECK(t->bytes_shrink(b.get(), 4) == 0);
        CHECK(h.to_bytes(b) == "abcd");
    });
}

TEST_CASE("bytes_shrink_refuses_growing") {
    in_both_modes([](Host& h) {
        const ksp_host* t = h.table();
        char* p = nullptr;
        Value b = alloc(h, 100, &p);
        std::memset(p, 'z', 100);
        CHECK(t->bytes_shrink(b.get(), 101) == -1);
        ksp_error_kind kind = KSP_ERR_ERROR;
        CHECK(take_raised(&kind) == "bytes_shrink: argument len is 101, longer than the bytes (100)");
        CHECK(kind == KSP_ERR_VAL);
        // Once cut, the bytes past the cut are gone for good.
        CHECK(t->bytes_shrink(b.get(), 40) == 0);
        CHECK(t->bytes_shrink(b.get(), 41) == -1);
        CHECK(take_raised() == "bytes_shrink: argument len is 41, longer than the bytes (40)");
        CHECK(h.to_bytes(b) == std::string(40, 'z'));
    });
}

TEST_CASE("bytes_alloc_of_zero_length") {
    in_both_modes([](Host& h) {
        const ksp_host* t = h.table();
        char* p = nullptr;
        Value b = alloc(h, 0, &p);  // a usable pointer even for nothing
        CHECK(t->kind_of(b.get()) == KSP_KIND_BYTES);
        CHECK(bytes_of(h, b).empty());
        CHECK(h.repr(b) == "b''");
        CHECK(t->bytes_shrink(b.get(), 0) == 0);
        CHECK(t->bytes_shrink(b.get(), 1) == -1);
        CHECK(take_raised() == "bytes_shrink: argument len is 1, longer than the bytes (0)");
    });
}

TEST_CASE("bytes_alloc_refuses_a_null_data_pointer_and_impossible_sizes") {
    in_both_modes([](Host& h) {
        const ksp_host* t = h.table();
        ksp_error_kind kind = KSP_ERR_ERROR;
        CHECK(t->bytes_alloc(10, nullptr) == nullptr);
        CHECK(take_raised(&kind) == "bytes_alloc: argument data is NULL (it receives the bytes to fill)");
        CHECK(kind == KSP_ERR_VAL);
        void* p = &kind;
        CHECK(t->bytes_alloc(SIZE_MAX, &p) == nullptr);
        CHECK(p == nullptr);
        CHECK(take_raised(&kind) == "bytes_alloc: argument len is " + std::to_string(SIZE_MAX) +
                                        ", too large for a bytes");
        CHECK(kind == KSP_ERR_VAL);
    });
}

}  // TEST_SUITE
