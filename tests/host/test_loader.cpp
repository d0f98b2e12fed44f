// test_loader.cpp - discovery and every way an import can fail.
#include <elf.h>
#include <link.h>  // ElfW()

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "elf_check.hpp"
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

// The ImportError message of import(name), or "" if it imported.
std::string import_error(Host& h, const std::string& name) {
    try {
        h.import(name);
    } catch (const ScriptError& e) {
        CHECK(e.kind == KSP_ERR_IMPORT);
        return e.what();
    }
    return "";
}


// Restores KSPATH when the test ends.
struct KspathGuard {
    std::string saved;
    bool had;
    KspathGuard() : had(std::getenv("KSPATH") != nullptr) {
        if (had) saved = std::getenv("KSPATH");
    }
    ~KspathGuard() {
        if (had) setenv("KSPATH", saved.c_str(), 1);
        else unsetenv("KSPATH");
    }
};

}  // namespace

TEST_SUITE("loader") {

TEST_CASE("loader_imports_flat_layout_and_caches_module") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_ok"), "fixture_ok");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    size_t baseline = h.live_objects();
    {
        Value m = h.import("fixture_ok");
        CHECK(h.type_name(m) == "module");
        CHECK(h.repr(m) == "<module 'fixture_ok'>");
        CHECK(h.to_int(h.getattr(m, "version")) == 1);
        Value again = h.import("fixture_ok");
        CHECK(again.get() == m.get());
        CHECK(h.loaded_library_count() == 1);
    }
    h.unload("fixture_ok");
    CHECK(h.loaded_library_count() == 0);
    CHECK(h.live_objects() == baseline);
}

TEST_CASE("loader_not_found_lists_every_path_tried") {
    LeakGuard guard;
    KspathGuard kspath;
    TempDir a, b, c;
    setenv("KSPATH", (b.path() + "::" + c.path()).c_str(), 1);  // the empty entry is skipped
    refhost::HostOptions o = support::options_for(a.path());
    o.use_kspath = true;
    Host h(o);
    Gil g(h);
    std::string msg = import_error(h, "nothere");
    std::string expected = "no module named 'nothere': tried ";
    bool first = true;
    for (const TempDir* d : {&a, &b, &c}) {
        for (std::string p : {d->path() + "/ksp_nothere.so", d->path() + "/nothere/ksp_nothere.so"}) {
            expected += (first ? "" : ", ") + p;
            first = false;
        }
    }
    CHECK(msg == expected);
}

TEST_CASE("loader_finds_kspath_dir_and_nested_layout") {
    LeakGuard guard;
    KspathGuard kspath;
    TempDir empty, nested;
    nested.install(support::fixture_so("fixture_ok"), "fixture_ok", /*nested=*/true);
    setenv("KSPATH", nested.path().c_str(), 1);
    refhost::HostOptions o = support::options_for(empty.path());
    o.use_kspath = true;
    Host h(o);
    Gil g(h);
    Value m = h.import("fixture_ok");
    CHECK(contains(h.describe(m), nested.path() + "/fixture_ok/ksp_fixture_ok.so"));
}

TEST_CASE("loader_ignores_kspath_when_disabled") {
    LeakGuard guard;
    KspathGuard kspath;
    TempDir empty, other;
    other.install(support::fixture_so("fixture_ok"), "fixture_ok");
    setenv("KSPATH", other.path().c_str(), 1);
    Host h(support::options_for(empty.path()));  // use_kspath = false
    Gil g(h);
    CHECK(contains(import_error(h, "fixture_ok"), "no module named 'fixture_ok'"));
}

TEST_CASE("loader_prefers_flat_file_and_earlier_dir") {
    LeakGuard guard;
    TempDir first, second;
    first.install(support::fixture_so("fixture_ok"), "fixture_ok", /*nested=*/true);
    first.install(support::fixture_so("fixture_ok_v2"), "fixture_ok");  // flat wins in a dir
    second.install(support::fixture_so("fixture_ok"), "fixture_ok");
    refhost::HostOptions o = support::options_for(first.path());
    o.plugin_dirs.push_back(second.path());
    Host h(o);
    Gil g(h);
    Value m = h.import("fixture_ok");
    CHECK(h.to_int(h.getattr(m, "version")) == 2);
}

TEST_CASE("loader_refuses_other_abi_major") {
    LeakGuard guard;
    TempDir dir;
    std::string path = dir.install(support::fixture_so("fixture_major2"), "fixture_major2");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    std::string msg = import_error(h, "fixture_major2");
    CHECK(contains(msg, "plugin ABI 2.0, host ABI 1." + std::to_string(KSP_ABI_MINOR)));
    CHECK(contains(msg, path));
    CHECK(h.loaded_library_count() == 0);
}

TEST_CASE("loader_refuses_newer_minor") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_minor99"), "fixture_minor99");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    CHECK(contains(import_error(h, "fixture_minor99"), "plugin needs ABI 1.99, host provides 1." + std::to_string(KSP_ABI_MINOR)));
    CHECK(h.loaded_library_count() == 0);
}

TEST_CASE("loader_reports_missing_entry_symbol") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_noentry"), "fixture_noentry");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    CHECK(contains(import_error(h, "fixture_noentry"), "does not export ksp_plugin_entry"));
    CHECK(h.loaded_library_count() == 0);
}

TEST_CASE("loader_reports_init_failure_message") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_initfail"), "fixture_initfail");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    size_t baseline = h.live_objects();
    CHECK(contains(import_error(h, "fixture_initfail"), "init failed: cannot start: no widgets configured"));
    CHECK(h.loaded_library_count() == 0);
    CHECK(h.live_objects() == baseline);
}

TEST_CASE("loader_reports_garbage_file") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_source("ksp_garbage.so"), "garbage");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    std::string msg = import_error(h, "garbage");
    CHECK(contains(msg, "not a loadable plugin"));
    CHECK(contains(msg, "not an ELF file"));
}

TEST_CASE("loader_names_the_cpu_a_plugin_was_built_for") {
    LeakGuard guard;
    TempDir dir;
    std::string path = dir.install(support::fixture_so("fixture_ok"), "fixture_ok");
#if defined(__aarch64__)
    const uint16_t foreign = EM_X86_64;
    const std::string expected = "built for x86_64, this host is aarch64";
#else
    const uint16_t foreign = EM_AARCH64;
    const std::string expected = "built for aarch64, this host is " + refhost::elf_machine_name(support::native_machine());
#endif
    support::patch_elf_machine(path, foreign);
    Host h(support::options_for(dir.path()));
    Gil g(h);
    std::string msg = import_error(h, "fixture_ok");
    CHECK(contains(msg, expected));
    CHECK(contains(msg, path));
    REQUIRE(!h.copy_dir().empty());
    CHECK(!contains(msg, h.copy_dir()));  // where the private copies live
    CHECK(h.loaded_library_count() == 0);
}

TEST_CASE("loader_dlopen_message_names_the_users_file") {
    LeakGuard guard;
    TempDir dir;
    std::string path = dir.install(support::fixture_so("fixture_undefined"), "fixture_undefined");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    std::string msg = import_error(h, "fixture_undefined");
    CHECK(contains(msg, "dlopen: " + path + ": undefined symbol: fixture_undefined_nowhere"));
    REQUIRE(!h.copy_dir().empty());
    CHECK(!contains(msg, h.copy_dir()));
    CHECK(h.loaded_library_count() == 0);
}

TEST_CASE("loader_reports_a_directory_named_like_the_plugin") {
    LeakGuard guard;
    TempDir dir;
    std::string impostor = dir.path() + "/ksp_fixture_ok.so";
    std::filesystem::create_directory(impostor);
    Host h(support::options_for(dir.path()));
    Gil g(h);
    std::string msg = import_error(h, "fixture_ok");
    CHECK(msg == "cannot import 'fixture_ok' from " + impostor +
                     ": it is a directory (or other non-file), not a plugin file");
}

TEST_CASE("loader_refuses_a_file_cut_short_or_not_written_to_the_end") {
    LeakGuard guard;
    TempDir dir;
    std::string good = support::fixture_so("fixture_ok");
    std::string dest = dir.path() + "/ksp_fixture_ok.so";
    Host h(support::options_for(dir.path()));
    Gil g(h);
    auto refused = [&](const std::string& why) {
        std::string msg = import_error(h, "fixture_ok");
        CHECK(contains(msg, "not a loadable plugin"));
        CHECK(contains(msg, why));
        CHECK(h.loaded_library_count() == 0);
    };
    // Cut at several points, as a copy in progress leaves it: inside the headers,
    // mid-file, just before the end.
    size_t size = support::file_size(good);
    for (size_t cut : {size_t(10), size_t(200), size / 2, size - 1}) {
        CAPTURE(cut);
        support::copy_truncated(good, dest, cut);
        refused(cut < 64 ? "too short to be an ELF file" : "truncated: ");
    }
    // Of full size with zeros after some point, as a linker that sized its output first
    // leaves it: from inside the program headers, and from past the first page (dlopen()
    // crashed relocating through a dynamic section of zeros).
    for (size_t written : {size_t(80), size_t(4096)}) {
        CAPTURE(written);
        support::copy_written_up_to(good, dest, written);
        refused("its dynamic section is missing or unfinished (still being written?)");
    }
    // Everything but the section headers, which linkers write last.
    ElfW(Ehdr) eh{};
    FILE* f = std::fopen(good.c_str(), "rb");
    REQUIRE(f);
    REQUIRE(std::fread(&eh, sizeof eh, 1, f) == 1);
    std::fclose(f);
    REQUIRE(eh.e_shoff > 0);
    support::copy_written_up_to(good, dest, eh.e_shoff);
    refused("its section headers are unfinished (still being written?)");
}

TEST_CASE("loader_refuses_name_mismatch") {
    LeakGuard guard;
    TempDir dir;
    dir.install(support::fixture_so("fixture_ok"), "other");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    CHECK(contains(import_error(h, "other"), "the plugin declares module 'fixture_ok', not 'other'"));
    CHECK(h.loaded_library_count() == 0);
}

TEST_CASE("loader_refuses_invalid_module_names") {
    LeakGuard guard;
    TempDir dir;
    Host h(support::options_for(dir.path()));
    Gil g(h);
    CHECK(contains(import_error(h, "../etc"), "invalid module name"));
    CHECK(contains(import_error(h, ""), "invalid module name"));
}

TEST_CASE("unload_of_unknown_module_is_import_error") {
    LeakGuard guard;
    TempDir dir;
    Host h(support::options_for(dir.path()));
    Gil g(h);
    try {
        h.unload("nothere");
        FAIL("unload did not throw");
    } catch (const ScriptError& e) {
        CHECK(e.kind == KSP_ERR_IMPORT);
        CHECK(std::string(e.what()) == "module 'nothere' is not loaded");
    }
}

}  // TEST_SUITE
