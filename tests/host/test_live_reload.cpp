// test_live_reload.cpp - Host::reload_live (ABI 1.4 ksp_handover): the new version of a
// plugin takes over the old one's objects, or the old one keeps serving and the reload
// says why, or (without a handover on either side) it reloads the old way and says so.
#include <functional>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "process_census.hpp"
#include "refhost.hpp"
#include "support.hpp"
#include "waits.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::ReloadResult;
using refhost::ScriptError;
using refhost::Value;
using support::contains;
using support::error_of;
using support::LeakGuard;
using support::TempDir;

namespace {

const std::string kName = "fixture_handover";

// Makes `variant` (a build of fixtures/fixture_handover.c) the plugin in `dir`.
void install(const TempDir& dir, const std::string& variant) { dir.install(support::fixture_so(variant), kName); }

refhost::HostOptions options_presenting(const std::string& dir, uint16_t minor) {
    refhost::HostOptions options = support::options_for(dir);
    options.abi_minor = minor;
    return options;
}

// A host (checking mode on) with build `variant` of fixture_handover imported as `m`,
// the lock held.
struct Loaded {
    explicit Loaded(const std::string& variant, uint16_t minor = KSP_ABI_MINOR)
        : h((install(dir, variant), options_presenting(dir.path(), minor))), g(h), m(h.import(kName)) {}
    LeakGuard guard;
    TempDir dir;
    Host h;
    Gil g;
    Value m;
};

// The cases' fixtures: the version each starts from.
struct HandoverV1 : Loaded {
    HandoverV1() : Loaded("fixture_handover") {}
};
struct HandoverWithout : Loaded {  // a version without ksp_handover
    HandoverWithout() : Loaded("fixture_handover_no_handover") {}
};
struct HandoverIn13 : Loaded {  // in a host presenting ABI 1.3
    HandoverIn13() : Loaded("fixture_handover", 3) {}
};

Value new_pipe(Host& h, const Value& module, int64_t start) {
    return h.call(h.getattr(module, "Pipe"), {h.integer(start)});
}

// wait_read's result: (version of the code that ran it, data).
struct Read {
    int64_t version = 0;
    std::string data;
};
Read wait_read(Host& h, const Value& pipe) {
    Value got = h.call_method(pipe, "wait_read", {h.integer(100)});
    return Read{h.to_int(h.item(got, 0)), h.to_bytes(h.item(got, 1))};
}

// Waits, with the lock given up, until `n` wait_read calls of the module's version wait.
void wait_for_waiting(Host& h, const Value& module, int64_t n) {
    const ksp_host* t = h.table();
    void* token = t->release_lock();
    waits::wait_until(
        [&] {
            t->acquire_lock(token);
            bool done;
            {
                Value count = h.call(h.getattr(module, "waiting"));
                done = h.to_int(count) == n;
            }
            token = t->release_lock();
            return done;
        },
        std::to_string(n) + " wait_read calls waiting");
    t->acquire_lock(token);
}

// Runs wait_read on `pipe` on another thread; `result` or `error` is set when it ends.
struct WaitingCall {
    WaitingCall(Host& h, const Value& pipe)
        : thread([this, &h, pipe] {
              Gil g(h);
              try {
                  result = wait_read(h, pipe);
              } catch (const ScriptError& e) {
                  error = e.what();
              }
          }) {}
    Read result;
    std::string error;
    std::thread thread;
};

// Joins `call` with the lock given up (the call needs it to finish).
void join(Host& h, WaitingCall& call) {
    const ksp_host* t = h.table();
    void* token = t->release_lock();
    call.thread.join();
    t->acquire_lock(token);
}

// `call`, still waiting on `pipe`, gets `text` once it is written, from `version`.
void check_call_gets(Host& h, const Value& module, WaitingCall& call, const Value& pipe, const std::string& text,
                     int64_t version) {
    wait_for_waiting(h, module, 1);
    h.call_method(pipe, "write", {h.bytes(text)});
    join(h, call);
    CHECK(call.error == "");
    CHECK(call.result.version == version);
    CHECK(call.result.data == text);
}

// The old version still serves `pipe` (made with `start`, incremented `incrs` times) and
// the module: nothing changed but the failed reload.
void check_old_serves(Host& h, const Value& module, const Value& pipe, int64_t expected) {
    CHECK(h.import(kName).get() == module.get());
    CHECK(h.to_int(h.getattr(module, "version")) == 1);
    CHECK(h.to_int(h.call_method(pipe, "version")) == 1);
    CHECK(h.to_int(h.call_method(pipe, "incr")) == expected);
    h.call_method(pipe, "write", {h.bytes("still")});
    Read r = wait_read(h, pipe);
    CHECK(r.version == 1);
    CHECK(r.data == "still");
    CHECK(h.to_int(h.call_method(new_pipe(h, module, 5), "incr")) == 6);
    CHECK(h.loaded_library_count() == 1);
}

// A reload that must fail: its message, which names `step` and says the old version serves.
std::string failed_reload(Host& h, const std::string& step) {
    ksp_error_kind kind = KSP_ERR_ERROR;
    std::string message = error_of([&] { h.reload_live(kName); }, &kind);
    CHECK(kind == KSP_ERR_IMPORT);
    CHECK_MESSAGE(contains(message, "live reload of 'fixture_handover' "), message);
    CHECK_MESSAGE(contains(message, " failed at " + step), message);
    CHECK_MESSAGE(contains(message, "; version 'fixture_handover 1' keeps serving"), message);
    return message;
}

// Imports `old_variant`, makes a Pipe, then installs `new_variant`, whose live reload
// must fail at `step` and leave the old version serving. Returns the message, with the
// plugin file's path replaced by FILE.
std::string rollback(const std::string& old_variant, const std::string& new_variant, const std::string& step) {
    Loaded f(old_variant);
    Value p = new_pipe(f.h, f.m, 0);
    install(f.dir, new_variant);
    std::string message = failed_reload(f.h, step);
    check_old_serves(f.h, f.m, p, 1);
    const std::string file = f.dir.path() + "/ksp_fixture_handover.so";
    if (size_t at = message.find(file); at != std::string::npos) message.replace(at, file.size(), "FILE");
    return message;
}

}  // namespace

TEST_SUITE("live_reload") {

TEST_CASE_FIXTURE(HandoverV1, "live_reload_keeps_state_and_identity_and_runs_new_code") {
    Value p = new_pipe(h, m, 41);
    Value q = new_pipe(h, m, 7);
    h.call_method(p, "write", {h.bytes("written before")});
    Value bound_incr = h.getattr(p, "incr");  // bound to the old version's method
    Value old_type = h.getattr(m, "Pipe");
    Value unbound_incr = h.getattr(old_type, "incr");  // the old type's
    CHECK(h.to_int(h.call_method(p, "version")) == 1);
    const int fds = census::open_fds();
    const std::string copies = h.copy_dir() + "/";
    const int maps = census::mappings_of(copies);

    install(dir, "fixture_handover_v2");
    ReloadResult r = h.reload_live(kName);
    CHECK(r.live);
    CHECK(r.moved == 2);
    CHECK(r.module.get() == m.get());
    CHECK(r.message == "version 'fixture_handover 1' of 'fixture_handover' handed 2 objects over to version "
                       "'fixture_handover 2' from " + dir.path() + "/ksp_fixture_handover.so");

    // The module object and the instances are the same objects, now on the new code.
    CHECK(h.import(kName).get() == m.get());
    CHECK(h.to_int(h.getattr(m, "version")) == 2);
    CHECK(h.type_name(p) == "fixture_handover.Pipe");
    CHECK(h.to_int(h.call_method(p, "version")) == 2);
    CHECK(h.to_int(h.call_method(p, "incr")) == 42);
    CHECK(h.to_int(h.call(bound_incr)) == 43);
    CHECK(h.to_int(h.call(unbound_incr, {p})) == 44);
    CHECK(h.to_int(h.getattr(q, "value")) == 7);
    Read before = wait_read(h, p);  // the pipe, and the bytes in it, survived
    CHECK(before.version == 2);
    CHECK(before.data == "written before");
    CHECK(h.to_int(h.call_method(new_pipe(h, m, 1), "version")) == 2);
    CHECK(h.to_int(h.call_method(h.call(old_type, {h.integer(1)}), "version")) == 2);  // kept by a script

    // The old copy is unmapped and its descriptors closed; the new one took their place.
    CHECK(h.loaded_library_count() == 1);
    CHECK(census::mappings_of(copies) == maps);
    CHECK(census::mappings_of("ksp_fixture_handover.1.so") == 0);
    CHECK(census::open_fds() == fds);
}

TEST_CASE_FIXTURE(HandoverV1, "live_reload_back_and_forth_moves_objects_each_time") {
    Value p = new_pipe(h, m, 0);
    for (int i = 1; i <= 4; i++) {
        install(dir, i % 2 ? "fixture_handover_v2" : "fixture_handover");
        ReloadResult r = h.reload_live(kName);
        CHECK(r.live);
        CHECK(r.moved == 1);
        CHECK(h.to_int(h.call_method(p, "version")) == (i % 2 ? 2 : 1));
        CHECK(h.to_int(h.call_method(p, "incr")) == i);
    }
}

TEST_CASE_FIXTURE(HandoverV1, "live_reload_call_waiting_during_the_swap_completes_on_the_new_code") {
    Value p = new_pipe(h, m, 0);
    WaitingCall call(h, p);
    wait_for_waiting(h, m, 1);

    install(dir, "fixture_handover_v2");
    ReloadResult r = h.reload_live(kName);
    CHECK(r.live);
    CHECK(r.moved == 1);
    // The waiting call left the old code (KSP_ERR_MOVED), which stayed mapped, and its
    // teardown waited, until the call had returned through it (the count of calls in
    // progress). The host called it again on the new code, which waits for these bytes.
    check_call_gets(h, m, call, p, "after the swap", 2);
    CHECK(h.loaded_library_count() == 1);
}

// Runs `call` on a script thread, and while it waits (counted in waiting()) reloads
// build `to` live; returns once the call has returned, with the time (call_began_ns
// outside a call: now) just before the reload.
int64_t reload_while_waiting(Loaded& f, const std::string& to, const std::function<void()>& call) {
    std::thread script([&] {
        Gil g(f.h);
        call();
    });
    wait_for_waiting(f.h, f.m, 1);
    install(f.dir, to);
    const int64_t before_reload = f.h.table()->call_began_ns();
    CHECK(f.h.reload_live(kName).live);
    const ksp_host* t = f.h.table();
    void* token = t->release_lock();
    script.join();
    t->acquire_lock(token);
    return before_reload;
}

TEST_CASE_FIXTURE(HandoverV1, "live_reload_keeps_the_error_of_the_last_call_back_through_the_old_code") {
    Value p = new_pipe(h, m, 0);
    ksp_error_kind kind = KSP_ERR_ERROR;
    std::string error;
    reload_while_waiting(*this, "fixture_handover_v2",
                         [&] { error = error_of([&] { h.call_method(p, "wait_fail"); }, &kind); });
    // The old version's teardown ran as this call returned through it, and left its error.
    CHECK(error == "wait_fail: failed in version 1");
    CHECK(kind == KSP_ERR_VAL);
    CHECK(h.loaded_library_count() == 1);
}

// ABI 1.5: the host's tries of one call are one call for call_began_ns, so a timeout
// counted from it spans the swap.
TEST_CASE_FIXTURE(HandoverV1, "live_reload_keeps_when_a_moved_call_began") {
    Value p = new_pipe(h, m, 0);
    const int64_t before_call = h.table()->call_began_ns();  // outside a call: now
    int64_t began = 0;
    std::string error;
    const int64_t before_swap = reload_while_waiting(*this, "fixture_handover_v2", [&] {
        error = error_of([&] { began = h.to_int(h.call_method(p, "wait_began")); });
    });
    CHECK(error == "");
    // The retry on the new version answered the first try's start, not its own.
    CHECK(began >= before_call);
    CHECK(began <= before_swap);
}

TEST_CASE_FIXTURE(HandoverV1, "live_reload_failing_at_load_keeps_the_old_version_serving") {
    Value p = new_pipe(h, m, 10);
    const std::string file = dir.path() + "/ksp_fixture_handover.so";
    const int fds = census::open_fds();

    support::copy_truncated(support::fixture_so("fixture_handover"), file, support::file_size(file) / 2);
    std::string message = failed_reload(h, "load");
    CHECK_MESSAGE(contains(message, "cannot import 'fixture_handover' from " + file + ": not a loadable plugin"),
                  message);
    check_old_serves(h, m, p, 11);

    install(dir, "fixture_handover_minor99");
    message = failed_reload(h, "load");
    CHECK_MESSAGE(contains(message, file + ": plugin needs ABI 1.99, host provides 1." + std::to_string(KSP_ABI_MINOR)), message);
    check_old_serves(h, m, p, 12);

    install(dir, "fixture_handover_init_fail");
    message = failed_reload(h, "load");
    CHECK_MESSAGE(contains(message, file + ": init failed: fixture_handover 2: init refused"), message);
    check_old_serves(h, m, p, 13);
    CHECK(census::open_fds() == fds);
}

TEST_CASE("live_reload_refused_at_begin_save_or_restore_keeps_the_old_version_serving") {
    struct Refusal {
        const char *old_build, *new_build, *step, *why;
    };
    const Refusal refusals[] = {
        {"fixture_handover_refuse_begin", "fixture_handover_v2", "begin",
         "begin refused (built with FIXTURE_REFUSE_BEGIN)"},
        {"fixture_handover_refuse_save", "fixture_handover_v2", "save of fixture_handover.Pipe",
         "save refused (built with FIXTURE_REFUSE_SAVE)"},
        // That build knows only state format 2.
        {"fixture_handover", "fixture_handover_format2", "restore of fixture_handover.Pipe",
         "fixture_handover 3 cannot restore a state of format 1 (it knows format 2)"},
        // That build calls its type Tube.
        {"fixture_handover", "fixture_handover_no_pipe", "restore of fixture_handover.Pipe",
         "the new version has no type 'Pipe'"},
    };
    for (const Refusal &r : refusals) {
        CAPTURE(r.new_build);
        CHECK(rollback(r.old_build, r.new_build, r.step) == std::string("live reload of 'fixture_handover' from FILE failed at ") +
                                                               r.step + ": " + r.why +
                                                               "; version 'fixture_handover 1' keeps serving");
    }
}

TEST_CASE_FIXTURE(HandoverV1, "live_reload_refused_by_restore_keeps_the_old_version_and_its_waiting_call") {
    // The new version refuses the last one (count 4): those restored before it are
    // given back (finalized by the new version, which closes only its own copies of the
    // descriptors). Instances are handed over in the order they were made.
    Value p = new_pipe(h, m, 0);
    Value others[] = {new_pipe(h, m, 1), new_pipe(h, m, 2), new_pipe(h, m, 3)};
    Value waiting_pipe = new_pipe(h, m, 4);
    WaitingCall call(h, waiting_pipe);
    wait_for_waiting(h, m, 1);
    const int fds = census::open_fds();

    install(dir, "fixture_handover_refuse_restore_at_4");
    std::string message = failed_reload(h, "restore of fixture_handover.Pipe");
    CHECK(message == "live reload of 'fixture_handover' from " + dir.path() +
                         "/ksp_fixture_handover.so failed at restore of fixture_handover.Pipe: restore refused for a "
                         "count of 4; version 'fixture_handover 1' keeps serving");
    CHECK(census::open_fds() == fds);
    // The call that waited through the failed swap still waits, on the old code.
    check_call_gets(h, m, call, waiting_pipe, "rolled back", 1);
    for (int i = 0; i < 3; i++) CHECK(h.to_int(h.getattr(others[i], "value")) == i + 1);
    check_old_serves(h, m, p, 1);
}

TEST_CASE_FIXTURE(HandoverV1, "live_reload_to_a_version_without_handover_reloads_the_old_way_and_says_so") {
    Value p = new_pipe(h, m, 0);
    Value unbound_incr = h.getattr(h.getattr(m, "Pipe"), "incr");
    install(dir, "fixture_handover_no_handover");
    ReloadResult r = h.reload_live(kName);
    CHECK_FALSE(r.live);
    CHECK(r.moved == 0);
    CHECK(r.module.get() == m.get());
    CHECK(r.message == "version 'fixture_handover 2' of 'fixture_handover' from " + dir.path() +
                           "/ksp_fixture_handover.so cannot take objects over (no ksp_handover): reloaded by closing "
                           "its objects (1 open)");
    CHECK(h.to_int(h.getattr(m, "version")) == 2);
    CHECK(error_of([&] { h.call(unbound_incr, {p}); }) ==
          "module 'fixture_handover' was unloaded; Pipe.incr is no longer available");
    CHECK(error_of([&] { h.call_method(p, "incr"); }) ==
          "module 'fixture_handover' was unloaded; Pipe.incr is no longer available");
    CHECK(h.to_int(h.call_method(new_pipe(h, m, 0), "version")) == 2);
    CHECK(h.loaded_library_count() == 2);  // p still needs the old finalizer
    p = Value();
    unbound_incr = Value();
    CHECK(h.loaded_library_count() == 1);
}

TEST_CASE_FIXTURE(HandoverWithout, "live_reload_from_a_version_without_handover_reloads_the_old_way_and_says_so") {
    install(dir, "fixture_handover");
    ReloadResult r = h.reload_live(kName);
    CHECK_FALSE(r.live);
    CHECK(r.module.get() == m.get());
    CHECK(r.message == "version 'fixture_handover 2' of 'fixture_handover' cannot hand its objects over (no "
                       "ksp_handover): reloaded by closing its objects (0 open)");
    CHECK(h.to_int(h.getattr(m, "version")) == 1);
}

TEST_CASE_FIXTURE(HandoverIn13, "live_reload_in_a_host_presenting_1_3_reloads_the_old_way_and_says_so") {
    Value p = new_pipe(h, m, 0);
    install(dir, "fixture_handover_v2");
    ReloadResult r = h.reload_live(kName);
    CHECK_FALSE(r.live);
    CHECK(r.module.get() == m.get());
    CHECK(r.message == "this host presents ABI 1.3, which has no live reload: reloaded by closing its objects (1 open)");
    CHECK(h.to_int(h.getattr(m, "version")) == 2);
    CHECK(contains(error_of([&] { h.call_method(p, "incr"); }), "was unloaded"));
}

TEST_CASE("live_reload_of_a_module_not_loaded_imports_it") {
    LeakGuard guard;
    TempDir dir;
    install(dir, "fixture_handover");
    Host h(support::options_for(dir.path()));
    Gil g(h);
    ReloadResult r = h.reload_live(kName);
    CHECK_FALSE(r.live);
    CHECK(r.module.get() == h.import(kName).get());
    CHECK(r.message == "'fixture_handover' was not loaded: imported version 'fixture_handover 1'");
}

TEST_CASE_FIXTURE(HandoverV1, "moved_raised_without_a_handover_or_outside_a_method_is_a_plugin_error") {
    Value p = new_pipe(h, m, 0);
    ksp_error_kind kind = KSP_ERR_MOVED;
    CHECK(error_of([&] { h.call_method(p, "misbehave_moved"); }, &kind) ==
          "native function fixture_handover.Pipe.misbehave_moved raised KSP_ERR_MOVED, but no live reload of its "
          "object began (moved, says the plugin)");
    CHECK(kind == KSP_ERR_ERROR);
    CHECK(error_of([&] { h.call(h.getattr(m, "misbehave_moved")); }, &kind) ==
          "native function fixture_handover.misbehave_moved raised KSP_ERR_MOVED, which only a method may raise "
          "(moved, says the plugin)");
    CHECK(kind == KSP_ERR_ERROR);
}

TEST_CASE_FIXTURE(HandoverV1, "live_reload_200_swaps_no_growth_in_copies_fds_or_objects") {
    Value pipes[] = {new_pipe(h, m, 0), new_pipe(h, m, 100), new_pipe(h, m, 200)};
    h.call_method(pipes[0], "write", {h.bytes("kept")});
    const std::string copies = h.copy_dir() + "/";
    const int fds = census::open_fds();
    const int maps = census::mappings_of(copies);
    const size_t objects = h.live_objects();
    for (int i = 1; i <= 200; i++) {
        install(dir, i % 2 ? "fixture_handover_v2" : "fixture_handover");
        ReloadResult r = h.reload_live(kName);
        REQUIRE(r.live);
        CHECK(r.moved == 3);
        for (Value& p : pipes) h.call_method(p, "incr");
        CHECK(h.loaded_library_count() == 1);
    }
    CHECK(census::open_fds() == fds);
    CHECK(census::mappings_of(copies) == maps);
    CHECK(h.live_objects() == objects);
    CHECK(h.to_int(h.getattr(pipes[2], "value")) == 400);
    Read kept = wait_read(h, pipes[0]);
    CHECK(kept.version == 1);
    CHECK(kept.data == "kept");
}

}  // TEST_SUITE
