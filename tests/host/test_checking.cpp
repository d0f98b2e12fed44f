// test_checking.cpp - checking mode turns plugin bugs into clear aborts (death tests:
// each bug is committed in a forked child).
#include <string>

#include <doctest/doctest.h>

#include "refhost.hpp"
#include "support.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::Value;
using support::LeakGuard;
using support::TempDir;
using support::contains;

TEST_SUITE("checking") {

TEST_CASE("checking_mode_catches_double_release") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_ok"), "fixture_ok");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    Value c = h.call(h.getattr(h.import("fixture_ok"), "Counter"));
    support::ChildResult r = support::run_in_child([&] {
        const ksp_host* t = h.table();
        ksp_value raw = c.release();  // the only reference
        t->decref(raw);               // finalized and released
        t->decref(raw);  // the bug
    });
    CHECK(r.aborted);
    CHECK(contains(r.err, "refhost: decref on a released object (type fixture_ok.Counter)"));
    CHECK(contains(r.err, "double release"));
}

TEST_CASE("checking_mode_catches_use_of_freed_handle") {
    LeakGuard guard;
    Host h(support::options_for("/nonexistent"));
    Gil g(h);
    support::ChildResult r = support::run_in_child([&] {
        ksp_value raw = h.str("short-lived").release();
        h.table()->decref(raw);
        const char* s = nullptr;
        size_t n = 0;
        h.table()->str_get(raw, &s, &n);  // the bug
    });
    CHECK(r.aborted);
    CHECK(contains(r.err, "refhost: str_get on a released object (type str)"));
}

TEST_CASE("checking_mode_catches_values_touched_without_lock") {
    LeakGuard guard;
    Host h(support::options_for("/nonexistent"));
    support::ChildResult r = support::run_in_child([&] {
        ksp_value v = h.table()->int_new(1);  // no Gil held: the bug
        h.table()->decref(v);
    });
    CHECK(r.aborted);
    CHECK(contains(r.err, "int_new called without holding the interpreter lock"));
}

TEST_CASE("checking_mode_off_does_not_quarantine") {
    LeakGuard guard;
    refhost::HostOptions o;
    o.use_kspath = false;
    Host h(o);
    Gil g(h);
    CHECK(!h.checking());
    size_t before = h.live_objects();
    { Value v = h.str("x"); }
    CHECK(h.live_objects() == before);
}

}  // TEST_SUITE
