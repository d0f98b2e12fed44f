// test_abi_matrix.cpp - the ABI compatibility matrix: the plugin fixture_minor_n.c built
// for each minor from 1.0 to 1.5, in reference hosts presenting each minor
// (HostOptions::abi_minor), every pair: what loads, what table it gets, how it reloads.
#include <cstddef>
#include <cstdint>
#include <functional>
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

namespace {

constexpr uint16_t kOldest = 0;
constexpr uint16_t kHandover = 4;  // the minor that added ksp_handover
constexpr uint16_t kNewest = 5;
static_assert(KSP_ABI_MINOR == kNewest, "a new minor: add its build to the matrix (tests/host/meson.build)");

// The build of the matrix's plugin for `minor` (version 2 is the second 1.4 build).
std::string build_of(uint16_t minor, int version = 1) {
    std::string name = "fixture_minor_" + std::to_string(minor);
    return support::fixture_so(version == 1 ? name : name + "_v" + std::to_string(version));
}

// Where the table of a host of that minor ends, from the header's version comments.
size_t table_size_of(uint16_t minor) {
    switch (minor) {
    case 0: return offsetof(ksp_host, bool_get);
    case 1: return offsetof(ksp_host, bytes_alloc);
    case 2: return offsetof(ksp_host, set_interrupt_waker);
    case 3:
    case 4: return offsetof(ksp_host, call_began_ns);  // 1.4 appended to ksp_init_result only
    default: return sizeof(ksp_host);
    }
}

refhost::HostOptions host_of(const std::string& dir, uint16_t minor) {
    refhost::HostOptions o = support::options_for(dir);
    o.abi_minor = minor;
    return o;
}

std::string v(uint16_t minor) { return "1." + std::to_string(minor); }

// A host presenting `host_minor` that imported build `from` of the matrix's plugin, with
// one Tally holding 42, ready to have build `to` copied over the plugin file.
struct Reloading {
    Reloading(uint16_t host_minor, uint16_t from, int from_version = 1)
        : h(host_of(dir.path(), host_minor)), g(h) {
        file = dir.install(build_of(from, from_version), "fixture_minor");
        module = h.import("fixture_minor");
        tally = h.call(h.getattr(module, "Tally"), {h.integer(40)});
        h.call_method(tally, "add", {h.integer(2)});
    }
    void rebuild_as(uint16_t to, int to_version = 1) { support::copy_file(build_of(to, to_version), file); }
    // Rebuilds as `to` and reloads, which must go the old way: what the host said.
    refhost::ReloadResult reload_the_old_way_to(uint16_t to) {
        rebuild_as(to);
        refhost::ReloadResult res = h.reload_live("fixture_minor");
        CHECK_FALSE(res.live);
        CHECK(res.moved == 0);
        CHECK(h.to_int(h.getattr(res.module, "built_minor")) == to);
        return res;
    }

    TempDir dir;
    std::string file;
    Host h;
    Gil g;
    Value module, tally;
};

// Runs `check` for every pair (host minor, plugin minor), or only those where the plugin
// loads (its minor at most the host's), in a host presenting that minor whose plugin
// folder has the build of that minor.
using PairCheck = std::function<void(uint16_t host_minor, uint16_t plugin_minor, Host &, const TempDir &)>;
void for_each_pair(bool loadable_only, const PairCheck &check) {
    for (uint16_t host_minor = kOldest; host_minor <= kNewest; host_minor++) {
        for (uint16_t plugin_minor = kOldest; plugin_minor <= (loadable_only ? host_minor : kNewest); plugin_minor++) {
            CAPTURE(host_minor);
            CAPTURE(plugin_minor);
            TempDir dir;
            dir.install(build_of(plugin_minor), "fixture_minor");
            Host h(host_of(dir.path(), host_minor));
            Gil g(h);
            check(host_minor, plugin_minor, h, dir);
        }
    }
}

// The same for the pairs that load, with the module imported (and unloaded after, unless
// the check did).
void for_each_loaded_pair(const std::function<void(uint16_t host_minor, uint16_t plugin_minor, Host &, Value &)> &check) {
    for_each_pair(true, [&](uint16_t host_minor, uint16_t plugin_minor, Host &h, const TempDir &) {
        Value m = h.import("fixture_minor");
        check(host_minor, plugin_minor, h, m);
        if (!m) return;
        m = Value();
        h.unload("fixture_minor");
    });
}

}  // namespace

TEST_SUITE("abi_matrix") {

TEST_CASE("matrix_a_plugin_for_1_n_loads_in_every_host_of_1_n_or_newer_and_older_hosts_refuse_it_naming_both_versions") {
    LeakGuard guard;
    for_each_pair(false, [](uint16_t host_minor, uint16_t plugin_minor, Host &h, const TempDir &dir) {
        ksp_error_kind kind = KSP_ERR_ERROR;
        std::string error = support::error_of([&] { h.import("fixture_minor"); }, &kind);
        if (plugin_minor <= host_minor) {
            CHECK(error == "");
            CHECK(h.loaded_library_count() == 1);
            h.unload("fixture_minor");
        } else {
            CHECK(contains(error, "plugin needs ABI " + v(plugin_minor) + ", host provides " + v(host_minor)));
            CHECK(contains(error, dir.path() + "/ksp_fixture_minor.so"));  // the user's file
            CHECK(kind == KSP_ERR_IMPORT);
            CHECK(h.loaded_library_count() == 0);
        }
    });
}

TEST_CASE("matrix_every_loaded_plugin_gets_the_table_of_its_hosts_minor_and_the_entries_of_its_own_minor_work") {
    LeakGuard guard;
    for_each_loaded_pair([](uint16_t host_minor, uint16_t plugin_minor, Host &h, Value &m) {
        CHECK(h.to_int(h.getattr(m, "built_minor")) == plugin_minor);
        // init saw the host's minor and a table cut where a host of that minor ends it,
        // not the newest table (the plugin may use what its own minor has).
        CHECK(h.to_int(h.getattr(m, "host_minor")) == host_minor);
        CHECK(h.to_int(h.getattr(m, "host_size")) == static_cast<int64_t>(table_size_of(host_minor)));
        CHECK(h.table()->size == table_size_of(host_minor));
        // The init result of a host before 1.4 ends before `handover`, as it was built.
        CHECK(h.to_int(h.getattr(m, "result_size")) ==
              static_cast<int64_t>(host_minor >= 4 ? sizeof(ksp_init_result) : offsetof(ksp_init_result, handover)));
        if (plugin_minor >= 1) CHECK(h.to_int(h.getattr(m, "bool_get_read")) == 1);
        if (plugin_minor >= 2) CHECK(h.to_bytes(h.getattr(m, "alloc_bytes")) == "minor");
        if (plugin_minor >= 3) {
            CHECK(h.to_int(h.getattr(m, "waker_registered")) == 1);
            CHECK(h.interrupt_wakers() == 1);
        } else {
            CHECK(h.interrupt_wakers() == 0);
        }
        if (plugin_minor >= 5) CHECK(h.to_int(h.getattr(m, "call_began_read")) == 1);
        Value t = h.call(h.getattr(m, "Tally"), {h.integer(40)});
        CHECK(h.to_int(h.call_method(t, "add", {h.integer(2)})) == 42);
        CHECK(h.to_str(h.getattr(t, "version")) == v(plugin_minor) + " build 1");
        if (plugin_minor >= 5) {
            try {
                h.call_method(t, "refuse", {h.integer(111)});
                FAIL("refuse() raised nothing");
            } catch (const refhost::ScriptError &e) {
                CHECK(e.kind == KSP_ERR_OS);
                CHECK(e.os_errno == 111);
                CHECK(std::string(e.what()) == "refused");
            }
        }
        t = Value();
        m = Value();
        h.unload("fixture_minor");
        CHECK(h.interrupt_wakers() == 0);  // the 1.3+ build's teardown removed its waker
    });
}

TEST_CASE("matrix_only_builds_of_1_4_or_newer_in_hosts_of_1_4_or_newer_offer_a_handover") {
    LeakGuard guard;
    for_each_loaded_pair([](uint16_t host_minor, uint16_t plugin_minor, Host &h, Value &m) {
        CHECK(h.to_int(h.getattr(m, "handover_offered")) == (plugin_minor >= kHandover && host_minor >= kHandover ? 1 : 0));
    });
}

TEST_CASE("matrix_reload_live_between_two_1_4_builds_in_a_1_4_host_is_live_and_a_tally_keeps_its_total_on_the_new_code") {
    LeakGuard guard;
    Reloading r(kHandover, kHandover, 1);
    Host& h = r.h;
    for (int to_version : {2, 1, 2}) {  // there and back, and there again
        CAPTURE(to_version);
        r.rebuild_as(kHandover, to_version);
        refhost::ReloadResult res = h.reload_live("fixture_minor");
        CHECK(res.live);
        CHECK(res.moved == 1);  // the one Tally
        CHECK(contains(res.message, "handed 1 objects over to version '1.4 build " + std::to_string(to_version) + "'"));
        CHECK(res.module.get() == r.module.get());  // the module keeps its identity
        CHECK(h.to_int(h.getattr(r.module, "version")) == to_version);
        CHECK(h.to_str(h.getattr(r.tally, "version")) == "1.4 build " + std::to_string(to_version));
        CHECK(h.to_int(h.getattr(r.tally, "n")) == 42);
        CHECK(h.to_int(h.call_method(r.tally, "add", {h.integer(0)})) == 42);
        CHECK(h.loaded_library_count() == 1);  // the old copy is unmapped
    }
}

TEST_CASE("matrix_reload_live_from_a_1_4_build_to_a_1_5_build_in_a_1_5_host_is_live") {
    LeakGuard guard;
    Reloading r(5, kHandover);
    r.rebuild_as(5);
    refhost::ReloadResult res = r.h.reload_live("fixture_minor");
    CHECK(res.live);
    CHECK(res.moved == 1);
    CHECK(r.h.to_str(r.h.getattr(r.tally, "version")) == "1.5 build 1");
    CHECK(r.h.to_int(r.h.getattr(r.tally, "n")) == 42);
}

TEST_CASE("matrix_reload_live_in_a_1_4_host_from_or_to_a_build_before_1_4_is_the_old_way_and_says_which_build_cannot_hand_over") {
    LeakGuard guard;
    for (uint16_t from = kOldest; from <= kHandover; from++) {
        for (uint16_t to = kOldest; to <= kHandover; to++) {
            if (from == kHandover && to == kHandover) continue;  // the live case, above
            CAPTURE(from);
            CAPTURE(to);
            Reloading r(kHandover, from);
            Host& h = r.h;
            refhost::ReloadResult res = r.reload_the_old_way_to(to);
            CHECK(contains(res.message, "handover"));
            // The build that cannot hand over is named by its version string.
            const uint16_t lacking = from < kHandover ? from : to;
            CHECK(contains(res.message, v(lacking) + " build 1"));
            // The old version's objects were closed with it; new ones run the new build.
            CHECK(contains(support::error_of([&] { h.call_method(r.tally, "add", {h.integer(1)}); }), "unloaded"));
            Value fresh = h.call(h.getattr(res.module, "Tally"), {h.integer(7)});
            CHECK(h.to_str(h.getattr(fresh, "version")) == v(to) + " build 1");
        }
    }
}

TEST_CASE("matrix_reload_live_in_a_host_before_1_4_is_always_the_old_way_and_names_the_hosts_version") {
    LeakGuard guard;
    for (uint16_t host_minor = kOldest; host_minor < kHandover; host_minor++) {
        for (uint16_t from = kOldest; from <= host_minor; from++) {
            for (uint16_t to = kOldest; to <= host_minor; to++) {
                CAPTURE(host_minor);
                CAPTURE(from);
                CAPTURE(to);
                Reloading r(host_minor, from);
                Host& h = r.h;
                refhost::ReloadResult res = r.reload_the_old_way_to(to);
                CHECK(contains(res.message, "ABI " + v(host_minor)));
                CHECK(h.to_int(h.getattr(res.module, "host_minor")) == host_minor);
                CHECK(contains(support::error_of([&] { h.getattr(r.tally, "n"); }), "unloaded"));
            }
        }
    }
}

TEST_CASE("matrix_reload_live_to_a_build_newer_than_the_host_fails_naming_both_versions_and_the_old_build_keeps_serving") {
    LeakGuard guard;
    for (uint16_t host_minor = kOldest; host_minor < kNewest; host_minor++) {
        for (uint16_t to = host_minor + 1; to <= kNewest; to++) {
            CAPTURE(host_minor);
            CAPTURE(to);
            Reloading r(host_minor, host_minor);
            Host& h = r.h;
            r.rebuild_as(to);
            ksp_error_kind kind = KSP_ERR_ERROR;
            std::string error = support::error_of([&] { h.reload_live("fixture_minor"); }, &kind);
            CHECK(kind == KSP_ERR_IMPORT);
            CHECK(contains(error, "plugin needs ABI " + v(to) + ", host provides " + v(host_minor)));
            CHECK(contains(error, r.file));
            CHECK(h.import("fixture_minor").get() == r.module.get());
            CHECK(h.to_int(h.getattr(r.module, "built_minor")) == host_minor);
            CHECK(h.to_int(h.call_method(r.tally, "add", {h.integer(1)})) == 43);
            CHECK(h.loaded_library_count() == 1);
        }
    }
}

}  // TEST_SUITE
