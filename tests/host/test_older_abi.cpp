// test_older_abi.cpp - a host presenting an older ABI minor (HostOptions::abi_minor)
// hands plugins the table a host of that version would, and checks their needs against it.
#include <cstddef>
#include <stdexcept>
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
using support::contains;

namespace {

refhost::HostOptions presenting(const std::string& dir, uint16_t minor) {
    refhost::HostOptions o = support::options_for(dir);
    o.abi_minor = minor;
    return o;
}

}  // namespace

TEST_SUITE("older_abi") {

TEST_CASE("a_host_presenting_1_0_hands_out_a_table_that_ends_before_bool_get") {
    LeakGuard guard;
    Host h(presenting("/nonexistent", 0));
    const ksp_host* t = h.table();
    CHECK(t->abi_major == KSP_ABI_MAJOR);
    CHECK(t->abi_minor == 0);
    CHECK(t->size == offsetof(ksp_host, bool_get));
    CHECK(KSP_HOST_HAS(t, strdup));
    CHECK((t->strdup != nullptr));
    CHECK_FALSE(KSP_HOST_HAS(t, bool_get));
    CHECK_FALSE(KSP_HOST_HAS(t, bytes_alloc));
    CHECK_FALSE(KSP_HOST_HAS(t, bytes_shrink));
    CHECK((t->bool_get == nullptr && t->bytes_alloc == nullptr && t->bytes_shrink == nullptr));
}

TEST_CASE("a_host_presenting_1_1_hands_out_a_table_that_ends_before_bytes_alloc") {
    LeakGuard guard;
    Host h(presenting("/nonexistent", 1));
    const ksp_host* t = h.table();
    CHECK(t->abi_minor == 1);
    CHECK(t->size == offsetof(ksp_host, bytes_alloc));
    CHECK(KSP_HOST_HAS(t, bool_get));
    CHECK((t->bool_get != nullptr));
    CHECK_FALSE(KSP_HOST_HAS(t, bytes_alloc));
    CHECK_FALSE(KSP_HOST_HAS(t, bytes_shrink));
    CHECK((t->bytes_alloc == nullptr && t->bytes_shrink == nullptr));
}

TEST_CASE("a_host_presenting_1_0_refuses_a_plugin_needing_1_1_and_a_1_1_host_loads_it") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_minor1"), "fixture_minor1");
    dir.install(support::fixture_so("fixture_major2"), "fixture_major2");
    {
        Host h(presenting(dir.path(), 0));
        Gil g(h);
        ksp_error_kind kind = KSP_ERR_ERROR;
        CHECK(contains(support::error_of([&] { h.import("fixture_minor1"); }, &kind),
                       "plugin needs ABI 1.1, host provides 1.0"));
        CHECK(kind == KSP_ERR_IMPORT);
        CHECK(contains(support::error_of([&] { h.import("fixture_major2"); }), "plugin ABI 2.0, host ABI 1.0"));
        CHECK(h.loaded_library_count() == 0);
    }
    {
        Host h(presenting(dir.path(), 1));
        Gil g(h);
        Value m = h.import("fixture_minor1");
        // init got the 1.1 table, not the host's newest.
        CHECK(h.to_int(h.getattr(m, "host_minor")) == 1);
        CHECK(h.to_int(h.getattr(m, "host_size")) == static_cast<int64_t>(offsetof(ksp_host, bytes_alloc)));
        m = Value();
        h.unload("fixture_minor1");
    }
}

TEST_CASE("abi_minor_above_the_hosts_own_is_refused") {
    LeakGuard guard;
    refhost::HostOptions o = presenting("/nonexistent", KSP_ABI_MINOR + 1);
    std::string message;
    try {
        Host h(o);
    } catch (const std::invalid_argument& e) {
        message = e.what();
    }
    CHECK(message == "refhost: HostOptions::abi_minor is " + std::to_string(KSP_ABI_MINOR + 1) +
                         ", but this host implements ABI 1." + std::to_string(KSP_ABI_MINOR) + " at most");
    Host fine(presenting("/nonexistent", KSP_ABI_MINOR));  // the failed one left no host behind
    CHECK(fine.table()->size == sizeof(ksp_host));
}

}  // TEST_SUITE
