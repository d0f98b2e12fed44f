// net_fixture.hpp - the `net` plugin imported through the reference host from the
// plugin directory of this build, as an interpreter would; and the checks every case
// ends with: no object, descriptor or thread left behind.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "process_census.hpp"
#include "refhost.hpp"
#include "waits.hpp"

namespace nettest {

using refhost::Gil;
using refhost::Host;
using refhost::ScriptError;
using refhost::Value;
using waits::ThreadMark;

inline std::string plugin_dir() {
    const char *dir = std::getenv("KSNET_PLUGIN_DIR");
    REQUIRE_MESSAGE(dir != nullptr, "KSNET_PLUGIN_DIR is not set (run through meson test)");
    return dir;
}

struct NetFixture {
    // `checking`: the host's checking mode, which catches stale and doubly released
    // handles by keeping every released object (so long load tests turn it off).
    // `abi_minor`: the ABI the host presents, to run the plugin as an older host would.
    // `dir`: where the host finds ksp_net.so (a live reload case's own folder).
    explicit NetFixture(bool checking = true, uint16_t abi_minor = KSP_ABI_MINOR, const std::string &dir = plugin_dir())
        : host{refhost::HostOptions{{dir}, false, checking, abi_minor}} {}

    census::Snapshot before;
    Host host;
    std::optional<Gil> gil{std::in_place, host};
    size_t baseline_objects = host.live_objects();
    Value net = host.import("net");
    Value SocketIO = host.getattr(net, "SocketIO");

    ~NetFixture() {
        net = Value();
        SocketIO = Value();
        host.unload("net");
        CHECK(host.live_objects() == baseline_objects);
        CHECK(host.loaded_library_count() == 0);
        gil.reset();
        CHECK(census::open_fds() == before.fds);
        CHECK(census::threads_settled(before.thread_count) == before.thread_count);
    }

    Value addr(const char *h, int64_t port) { return host.tuple({host.str(h), host.integer(port)}); }
    Value enum_member(const char *e, const char *m) { return host.getattr(host.getattr(net, e), m); }

    // A listening socket on 127.0.0.1 and a free port.
    Value listener(const char *h = "127.0.0.1", Value fk = Value()) {
        Value s = fk ? host.call(SocketIO, {fk}) : host.call(SocketIO);
        host.call_method(s, "bind", {addr(h, 0)});
        host.call_method(s, "listen");
        return s;
    }
    int64_t port_of(const Value &s) { return host.to_int(host.getattr(s, "local_port")); }

    // A connected TCP (client, server-side) pair.
    std::pair<Value, Value> connected_pair(const char *h = "127.0.0.1", Value fk = Value()) {
        Value l = listener(h, fk);
        Value c = fk ? host.call(SocketIO, {fk}) : host.call(SocketIO);
        host.call_method(c, "connect", {addr(h, port_of(l))});
        Value pair = host.call_method(l, "accept");
        host.call_method(l, "close");
        return {c, host.item(pair, 0)};
    }

    // Every line a script's `for line in sock` sees, until end of stream.
    std::vector<std::string> lines_of(const Value &sock) {
        std::vector<std::string> lines;
        Value it = host.iter(sock);
        while (Value line = host.next(it)) lines.push_back(host.to_bytes(line));
        return lines;
    }

    // SocketIO(FK.<fk>, SK.<sk>, PK.<pk>).
    Value socket(const char *fk, const char *sk, const char *pk = "AUTO") {
        return host.call(SocketIO, {enum_member("FK", fk), enum_member("SK", sk), enum_member("PK", pk)});
    }

    // Runs `body` with the interpreter lock released (joining a thread, sleeping).
    void without_gil(const std::function<void()> &body) {
        void *token = host.table()->release_lock();
        body();
        host.table()->acquire_lock(token);
    }

    // The waits of waits.hpp, with the interpreter lock released while waiting (the
    // thread waited for may need it to get where it is going).
    template <class Done>
    bool wait_until(Done &&done, const std::string &what) {
        bool reached = false;
        without_gil([&] { reached = waits::wait_until(done, what); });
        return reached;
    }
    bool wait_until_blocked(const waits::ThreadMark &mark, const std::string &what) {
        bool reached = false;
        without_gil([&] { reached = waits::wait_until_blocked(mark, what); });
        return reached;
    }
};

inline bool contains(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

// Runs `call` and returns its ScriptError; fails the case if nothing was raised.
template <class F>
ScriptError raised(F &&call) {
    try {
        call();
    } catch (const ScriptError &e) {
        return e;
    }
    FAIL("expected a ScriptError");
    return ScriptError(KSP_ERR_ERROR, "");
}

}  // namespace nettest
