// test_objects.cpp - the object model as a plugin and a script see it.
#include <cmath>
#include <string>

#include <doctest/doctest.h>

#include "refhost.hpp"
#include "support.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::ScriptError;
using refhost::Value;
using support::LeakGuard;
using support::TempDir;
using support::error_of;
using support::contains;

namespace {

struct Fixture {
    LeakGuard guard;
    TempDir dir;
    Host h;
    Gil g;
    Fixture() : h((dir.install(support::fixture_so("fixture_ok"), "fixture_ok"), support::options_for(dir.path()))), g(h) {}
};


}  // namespace

TEST_SUITE("objects") {

TEST_CASE("abi_table_header_names_its_version") {
    LeakGuard guard;
    Host h(refhost::HostOptions{});
    const ksp_host* t = h.table();
    CHECK(t->size == sizeof(ksp_host));
    CHECK(t->abi_major == KSP_ABI_MAJOR);
    CHECK(t->abi_minor == KSP_ABI_MINOR);
    CHECK(KSP_HOST_HAS(t, strdup));
    CHECK(std::string(t->host_name).rfind("refhost", 0) == 0);
}

TEST_CASE("only_one_host_at_a_time") {
    LeakGuard guard;
    Host h(refhost::HostOptions{});
    CHECK_THROWS_AS(Host(refhost::HostOptions{}), std::logic_error);
}

TEST_CASE("repr_of_builtins_matches_python_style") {
    Fixture f;
    Host& h = f.h;
    CHECK(h.repr(h.none()) == "none");
    CHECK(h.repr(h.boolean(true)) == "true");
    CHECK(h.repr(h.integer(-42)) == "-42");
    CHECK(h.repr(h.floating(1.5)) == "1.5");
    CHECK(h.repr(h.floating(2)) == "2.0");
    CHECK(h.repr(h.floating(0.1)) == "0.1");
    CHECK(h.repr(h.floating(INFINITY)) == "inf");
    CHECK(h.repr(h.str("it's")) == "\"it's\"");
    CHECK(h.repr(h.str("a\n'\"\\")) == "'a\\n\\'\"\\\\'");
    CHECK(h.repr(h.str("h\xc3\xa9")) == "'h\xc3\xa9'");
    CHECK(h.repr(h.bytes(std::string("ab\x00\xff\r", 5))) == "b'ab\\x00\\xff\\r'");
    CHECK(h.repr(h.tuple({h.integer(1)})) == "(1,)");
    CHECK(h.repr(h.tuple({h.integer(1), h.str("x")})) == "(1, 'x')");
    CHECK(h.repr(h.list({h.none(), h.bytes("")})) == "[none, b'']");
    CHECK(h.repr(h.tuple({})) == "()");
    CHECK(h.repr(h.exception(KSP_ERR_VAL, "bad")) == "ValError('bad')");
}

TEST_CASE("type_names_are_qualified") {
    Fixture f;
    Host& h = f.h;
    Value m = h.import("fixture_ok");
    Value c = h.call(h.getattr(m, "Counter"));
    CHECK(h.type_name(c) == "fixture_ok.Counter");
    CHECK(std::string(h.table()->type_name(c.get())) == "fixture_ok.Counter");
    CHECK(h.repr(h.getattr(m, "Counter")) == "<type 'fixture_ok.Counter'>");
    CHECK(h.type_name(h.integer(1)) == "int");
    CHECK(h.type_name(h.str("")) == "str");
    CHECK(h.type_name(h.none()) == "none");
    Value s = h.call(h.getattr(m, "Stream"));
    CHECK(h.repr(s) == "<fixture_ok.Stream object>");  // no __repr
    CHECK(h.repr(c) == "Counter(0)");                  // its __repr
}

TEST_CASE("enum_members_repr_and_lookup") {
    Fixture f;
    Host& h = f.h;
    Value m = h.import("fixture_ok");
    Value color = h.getattr(m, "Color");
    Value red = h.getattr(color, "RED");
    CHECK(h.repr(red) == "fixture_ok.Color.RED");
    CHECK(h.type_name(red) == "fixture_ok.Color");
    int64_t v = 0;
    CHECK(h.table()->enum_value(color.get(), red.get(), &v) == 1);
    CHECK(v == 1);
    CHECK(h.table()->enum_value(color.get(), h.integer(1).get(), &v) == 0);
    Value blue = Value::steal(h.table()->enum_member(color.get(), 4));
    CHECK(h.repr(blue) == "fixture_ok.Color.BLUE");
    CHECK(h.repr(h.call(color, {h.integer(2)})) == "fixture_ok.Color.GREEN");
    ksp_error_kind kind;
    CHECK(error_of([&] { h.call(color, {h.integer(3)}); }, &kind) == "fixture_ok.Color has no member with value 3");
    CHECK(kind == KSP_ERR_VAL);
    CHECK(error_of([&] { h.getattr(color, "PINK"); }, &kind) == "type 'fixture_ok.Color' has no attribute 'PINK'");
    CHECK(kind == KSP_ERR_ATTR);
}

TEST_CASE("methods_getters_and_attribute_errors") {
    Fixture f;
    Host& h = f.h;
    Value m = h.import("fixture_ok");
    Value counter_type = h.getattr(m, "Counter");
    Value c = h.call(counter_type, {h.integer(10)});
    CHECK(h.to_int(h.call_method(c, "incr")) == 11);
    CHECK(h.to_int(h.call_method(c, "incr", {h.integer(5)})) == 16);
    CHECK(h.to_int(h.getattr(c, "value")) == 16);
    Value bound = h.getattr(c, "incr");
    CHECK(h.repr(bound) == "<method fixture_ok.Counter.incr>");
    CHECK(h.to_int(h.call(bound)) == 17);
    // Unbound, from the type: the first argument is self.
    CHECK(h.to_int(h.call(h.getattr(counter_type, "incr"), {c, h.integer(3)})) == 20);
    ksp_error_kind kind;
    CHECK(contains(error_of([&] { h.call(h.getattr(counter_type, "incr"), {h.integer(1)}); }, &kind),
                   "needs a 'fixture_ok.Counter'"));
    CHECK(kind == KSP_ERR_TYPE);
    CHECK(error_of([&] { h.getattr(c, "nope"); }, &kind) == "'fixture_ok.Counter' object has no attribute 'nope'");
    CHECK(kind == KSP_ERR_ATTR);
    CHECK(error_of([&] { h.getattr(m, "nope"); }) == "module 'fixture_ok' has no attribute 'nope'");
    CHECK(error_of([&] { h.call(h.integer(1)); }, &kind) == "'int' object is not callable");
    CHECK(kind == KSP_ERR_TYPE);
    // The plugin's own argument errors come through with their kind.
    CHECK(error_of([&] { h.call_method(c, "incr", {h.str("x")}); }, &kind) == "incr: by must be an int");
    CHECK(kind == KSP_ERR_TYPE);
}

TEST_CASE("native_null_without_error_is_reported") {
    Fixture f;
    Host& h = f.h;
    Value c = h.call(h.getattr(h.import("fixture_ok"), "Counter"));
    ksp_error_kind kind;
    CHECK(error_of([&] { h.call_method(c, "misbehave_null"); }, &kind) ==
          "native function fixture_ok.Counter.misbehave_null returned NULL without an error");
    CHECK(kind == KSP_ERR_ERROR);
}

TEST_CASE("native_value_with_error_is_reported") {
    Fixture f;
    Host& h = f.h;
    Value c = h.call(h.getattr(h.import("fixture_ok"), "Counter"));
    std::string msg = error_of([&] { h.call_method(c, "misbehave_value_with_error"); });
    CHECK(contains(msg, "native function fixture_ok.Counter.misbehave_value_with_error returned a value while an error was set"));
    CHECK(contains(msg, "ValError: this error is forgotten"));
    CHECK(h.table()->error_occurred() == 0);
}

TEST_CASE("str_new_rejects_invalid_utf8") {
    Fixture f;
    Host& h = f.h;
    const ksp_host* t = h.table();
    for (std::string bad : {std::string("\xff"), std::string("a\xc3"), std::string("\xc0\xaf"),
                            std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80")}) {
        CAPTURE(bad);
        CHECK(t->str_new(bad.data(), bad.size()) == nullptr);
        CHECK(t->error_occurred() == 1);
        ksp_error_kind kind;
        CHECK(contains(error_of([&] { h.str(bad); }, &kind), "invalid UTF-8"));
        CHECK(kind == KSP_ERR_VAL);
    }
    Value ok = h.str("\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK(h.len(ok) == 2);
}

TEST_CASE("abi_getters_read_builtins_and_refuse_other_kinds") {
    Fixture f;
    Host& h = f.h;
    const ksp_host* t = h.table();
    int64_t i = 0;
    double d = 0;
    CHECK(t->int_get(h.integer(7).get(), &i) == 0);
    CHECK(i == 7);
    CHECK(t->int_get(h.boolean(true).get(), &i) == -1);  // bools are not ints here
    CHECK(t->float_get(h.floating(0.5).get(), &d) == 0);
    CHECK(d == 0.5);
    CHECK(t->error_occurred() == 0);  // none of these raise
    Value tup = h.tuple({h.integer(1), h.str("two")});
    CHECK(t->seq_len(tup.get()) == 2);
    CHECK(t->kind_of(t->seq_item(tup.get(), 1)) == KSP_KIND_STR);
    CHECK(t->seq_item(tup.get(), 2) == nullptr);
    CHECK(t->kind_of(h.none().get()) == KSP_KIND_NONE);
    CHECK(h.to_float(h.integer(3)) == 3.0);
    CHECK(h.to_str(h.item(tup, 1)) == "two");
    ksp_error_kind kind;
    CHECK(error_of([&] { h.item(tup, 5); }, &kind) == "index 5 out of range for tuple of length 2");
    CHECK(kind == KSP_ERR_INDEX);
    CHECK(error_of([&] { h.to_int(h.str("1")); }, &kind) == "expected int, got str");
    CHECK(kind == KSP_ERR_TYPE);
}

TEST_CASE("describe_lists_members_methods_and_getters") {
    Fixture f;
    Host& h = f.h;
    std::string d = h.describe(h.import("fixture_ok"));
    CHECK(contains(d, "module fixture_ok"));
    CHECK(contains(d, "Fixture plugin for the reference host's tests."));
    CHECK(contains(d, "enum fixture_ok.Color"));
    CHECK(contains(d, "fixture_ok.Color.BLUE = 4"));
    CHECK(contains(d, "The colour blue."));
    CHECK(contains(d, "type fixture_ok.Counter"));
    CHECK(contains(d, "constructor: Counter(start=0, token=none)"));
    CHECK(contains(d, "incr(self, by=1)"));
    CHECK(contains(d, "Adds `by` and returns the new count."));
    CHECK(contains(d, ".value"));
    CHECK(contains(d, "The current count."));
    CHECK(contains(d, "type fixture_ok.Stream (base io.BaseIO)"));
    CHECK(contains(d, "inherited from io.BaseIO: printf, __iter"));
    CHECK(contains(d, "int 1"));
}

TEST_CASE("live_objects_return_to_baseline") {
    Fixture f;
    Host& h = f.h;
    size_t baseline = h.live_objects();
    {
        Value m = h.import("fixture_ok");
        Value c = h.call(h.getattr(m, "Counter"), {h.integer(1), h.tuple({h.str("a"), h.bytes("b")})});
        for (int i = 0; i < 10; i++) h.call_method(c, "incr");
        h.repr(c);
        h.describe(m);
        Value s = h.call(h.getattr(m, "Stream"));
        h.call_method(s, "printf", {h.str("%s %r\n"), h.integer(1), h.list({h.none()})});
        CHECK(h.live_objects() > baseline);
        h.unload("fixture_ok");
    }
    CHECK(h.live_objects() == baseline);
}

TEST_CASE("interrupted_flag_follows_request") {
    LeakGuard guard;
    Host h(refhost::HostOptions{});
    CHECK(h.table()->interrupted() == 0);
    h.request_interrupt(true);
    CHECK(h.table()->interrupted() == 1);
    h.request_interrupt(false);
    CHECK(h.table()->interrupted() == 0);
}

TEST_CASE("iteration_over_tuple_ends_with_empty_value") {
    Fixture f;
    Host& h = f.h;
    Value it = h.iter(h.tuple({h.integer(1), h.integer(2)}));
    CHECK(h.to_int(h.next(it)) == 1);
    CHECK(h.to_int(h.next(it)) == 2);
    CHECK(!h.next(it));
    CHECK(!h.next(it));
    CHECK(h.table()->error_occurred() == 0);
}

}  // TEST_SUITE
