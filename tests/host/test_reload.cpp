// test_reload.cpp - hot-swapping: reload, unload, and objects that outlive their code.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include <doctest/doctest.h>

#include "refhost.hpp"
#include "process_census.hpp"
#include "support.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::ScriptError;
using refhost::Value;
using support::LeakGuard;
using support::TempDir;
using support::error_of;

// A host that imported fixture_ok from a directory of its own. The guard, destroyed
// last, checks that nothing of the plugin stays mapped after ~Host.
struct Imported {
    LeakGuard guard;
    TempDir dir;
    Host h{installed(dir)};
    Gil g{h};

    Imported() { h.import("fixture_ok"); }
    static refhost::HostOptions installed(TempDir& d) {
        d.install(support::fixture_so("fixture_ok"), "fixture_ok");
        return support::options_for(d.path());
    }
};

TEST_SUITE("reload") {

TEST_CASE("reload_serves_new_copy_and_unmaps_old") {
    Imported f;
    Host& h = f.h;
    TempDir& dir = f.dir;
    Value m1 = h.import("fixture_ok");  // the module already loaded
    CHECK(h.to_int(h.getattr(m1, "version")) == 1);
    const std::string copies = h.copy_dir() + "/";
    int maps_one = census::mappings_of(copies);
    CHECK(maps_one > 0);

    dir.install(support::fixture_so("fixture_ok_v2"), "fixture_ok");  // "rebuilt"
    Value m2 = h.reload("fixture_ok");
    CHECK(m2.get() != m1.get());
    CHECK(h.to_int(h.getattr(m2, "version")) == 2);
    CHECK(h.import("fixture_ok").get() == m2.get());
    Value c = h.call(h.getattr(m2, "Counter"));
    CHECK(h.to_int(h.getattr(c, "version")) == 2);
    // The old copy is gone from memory: only the new one is mapped.
    CHECK(h.loaded_library_count() == 1);
    CHECK(census::mappings_of(copies) == maps_one);
    CHECK(census::mappings_of("ksp_fixture_ok.1.so") == 0);
    CHECK(census::mappings_of("ksp_fixture_ok.2.so") == maps_one);
}

TEST_CASE("reload_after_the_copy_directory_was_removed_makes_it_again") {
    Imported f;
    Host& h = f.h;
    TempDir& dir = f.dir;
    // As a cleaner of /tmp does under a long-running host: the copy stays mapped.
    std::filesystem::remove_all(h.copy_dir());
    dir.install(support::fixture_so("fixture_ok_v2"), "fixture_ok");
    Value m2 = h.reload("fixture_ok");
    CHECK(h.to_int(h.getattr(m2, "version")) == 2);
    CHECK(std::filesystem::is_directory(h.copy_dir()));
    // Whatever takes the name meanwhile (here a directory anyone may write to) is not
    // used: a copy there could be swapped before dlopen().
    const std::string gone = h.copy_dir();
    std::filesystem::remove_all(gone);
    std::filesystem::create_directory(gone);
    std::filesystem::permissions(gone, std::filesystem::perms::all);
    h.reload("fixture_ok");
    CHECK(h.copy_dir() != gone);
    std::filesystem::remove_all(gone);
}

TEST_CASE("failed_reload_keeps_old_version_serving") {
    Imported f;
    Host& h = f.h;
    TempDir& dir = f.dir;
    Value m = h.import("fixture_ok");  // the module already loaded
    Value c = h.call(h.getattr(m, "Counter"), {h.integer(5)});
    std::string dest = dir.path() + "/ksp_fixture_ok.so";

    auto still_serving = [&] {
        CHECK(h.import("fixture_ok").get() == m.get());
        CHECK(h.to_int(h.call_method(c, "incr")) > 5);
        CHECK(h.repr(h.call(h.getattr(m, "Counter"), {h.integer(1)})) == "Counter(1)");
        CHECK(h.loaded_library_count() == 1);
    };
    ksp_error_kind kind = KSP_ERR_ERROR;

    support::copy_truncated(support::fixture_so("fixture_ok"), dest, support::file_size(dest) / 2);
    CHECK(error_of([&] { h.reload("fixture_ok"); }, &kind).find("not a loadable plugin") != std::string::npos);
    CHECK(kind == KSP_ERR_IMPORT);
    still_serving();

    support::copy_file(support::fixture_source("ksp_garbage.so"), dest);
    CHECK(error_of([&] { h.reload("fixture_ok"); }).find("not an ELF file") != std::string::npos);
    still_serving();

    support::copy_file(support::fixture_so("fixture_noentry"), dest);
    CHECK(error_of([&] { h.reload("fixture_ok"); }).find("does not export") != std::string::npos);
    still_serving();

    support::copy_file(support::fixture_so("fixture_initfail"), dest);  // declares another name
    CHECK(error_of([&] { h.reload("fixture_ok"); }).find("declares module 'fixture_initfail'") != std::string::npos);
    still_serving();

    std::remove(dest.c_str());
    CHECK(error_of([&] { h.reload("fixture_ok"); }).find("no module named") != std::string::npos);
    still_serving();
}

TEST_CASE("method_after_unload_is_clear_error") {
    Imported f;
    Host& h = f.h;
    Value m = h.import("fixture_ok");  // the module already loaded
    Value counter_type = h.getattr(m, "Counter");
    Value c = h.call(counter_type, {h.integer(3)});
    Value bound = h.getattr(c, "incr");
    h.unload("fixture_ok");
    CHECK(h.loaded_library_count() == 1);  // c is alive: its finalizer's code stays mapped

    ksp_error_kind kind = KSP_ERR_IMPORT;
    CHECK(error_of([&] { h.call_method(c, "incr"); }, &kind) ==
          "module 'fixture_ok' was unloaded; Counter.incr is no longer available");
    CHECK(kind == KSP_ERR_ERROR);
    CHECK(error_of([&] { h.call(bound); }) == "module 'fixture_ok' was unloaded; Counter.incr is no longer available");
    CHECK(error_of([&] { h.getattr(c, "value"); }) == "module 'fixture_ok' was unloaded; Counter.value is no longer available");
    CHECK(error_of([&] { h.repr(c); }) == "module 'fixture_ok' was unloaded; Counter.__repr is no longer available");
    CHECK(error_of([&] { h.call(counter_type); }) == "module 'fixture_ok' was unloaded; Counter is no longer available");
    // The module object itself is plain host data and still readable.
    CHECK(h.to_int(h.getattr(m, "version")) == 1);
}

TEST_CASE("finalizer_runs_after_unload") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_ok"), "fixture_ok");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    size_t baseline = h.live_objects();
    {
        Value c;
        {
            Value m = h.import("fixture_ok");
            // The token is only kept alive by the Counter's payload: the finalizer
            // releasing it is what brings the count back.
            c = h.call(h.getattr(m, "Counter"), {h.integer(1), h.str("token")});
        }
        h.unload("fixture_ok");
        CHECK(h.loaded_library_count() == 1);
        CHECK(h.live_objects() > baseline);
    }
    CHECK(h.live_objects() == baseline);   // token released by the finalizer
    CHECK(h.loaded_library_count() == 0);  // and then the code was unmapped
}

TEST_CASE("finalized_count_is_visible_while_loaded") {
    Imported f;
    Host& h = f.h;
    Value m = h.import("fixture_ok");  // the module already loaded
    Value finalized = h.getattr(m, "finalized");
    int64_t before = h.to_int(h.call(finalized));
    { Value c = h.call(h.getattr(m, "Counter")); }
    CHECK(h.to_int(h.call(finalized)) == before + 1);
}

TEST_CASE("unload_reload_100_times_no_fd_or_map_growth") {
    Imported f;
    Host& h = f.h;
    const std::string copies = h.copy_dir() + "/";
    const int fds = census::open_fds();
    const int maps = census::mappings_of(copies);
    const size_t objects = h.live_objects();
    for (int i = 0; i < 100; i++) {
        if (i % 2) {
            h.unload("fixture_ok");
            CHECK(h.loaded_library_count() == 0);
            Value m = h.import("fixture_ok");
            Value c = h.call(h.getattr(m, "Counter"), {h.integer(i)});
            CHECK(h.to_int(h.call_method(c, "incr")) == i + 1);
        } else {
            Value m = h.reload("fixture_ok");
            CHECK(h.to_int(h.getattr(m, "version")) == 1);
        }
        CHECK(h.loaded_library_count() == 1);
    }
    CHECK(census::open_fds() == fds);
    CHECK(census::mappings_of(copies) == maps);
    CHECK(h.live_objects() == objects);
}

TEST_CASE("host_destructor_unloads_everything") {
    Imported f;
    Host& h = f.h;
    CHECK(h.loaded_library_count() == 1);
}

}  // TEST_SUITE
