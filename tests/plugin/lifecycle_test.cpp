// Load, unload and reload of the plugin, with sockets open and calls blocked.
#include <chrono>

#include "net_fixture.hpp"

using namespace nettest;
using namespace std::chrono_literals;

TEST_CASE("unload_with_open_sockets_closes_them_and_wakes_blocked_calls") {
    census::Snapshot before;
    Host host{refhost::HostOptions{{plugin_dir()}, false, true}};
    size_t baseline;
    {
        Gil gil(host);
        baseline = host.live_objects();
        Value net = host.import("net");
        Value SocketIO = host.getattr(net, "SocketIO");
        Value l = host.call(SocketIO);
        host.call_method(l, "bind", {host.tuple({host.str("127.0.0.1"), host.integer(0)})});
        host.call_method(l, "listen");
        std::string error;
        ThreadMark mark;
        std::thread blocked([&] {
            Gil g(host);
            try {
                mark.here();
                host.call_method(l, "accept");
            } catch (const ScriptError &e) {
                error = e.what();
            }
        });
        void *token = host.table()->release_lock();
        waits::wait_until_blocked(mark, "accept");
        host.table()->acquire_lock(token);
        host.unload("net");
        token = host.table()->release_lock();
        blocked.join();
        host.table()->acquire_lock(token);
        CHECK(error == "accept: socket closed because the net module was unloaded");
        // The object outlives its module: a call is a clear error, never a crash.
        ScriptError e = raised([&] { host.call_method(l, "read"); });
        CHECK(std::string(e.what()).find("unloaded") != std::string::npos);
        CHECK(host.loaded_library_count() == 1);  // kept mapped for l's finalizer
    }
    Gil gil(host);
    CHECK(host.loaded_library_count() == 0);
    CHECK(host.live_objects() == baseline);
    CHECK(census::threads_settled(before.thread_count) == before.thread_count);
    CHECK(census::open_fds() == before.fds);
}

TEST_CASE("load_use_unload_reload_100_times_without_growth") {
    census::Snapshot before;
    Host host{refhost::HostOptions{{plugin_dir()}, false, true}};
    Gil gil(host);
    size_t baseline = host.live_objects();
    int maps_before = census::mappings_of("ksp_net");
    for (int round = 0; round < 100; ++round) {
        Value net = round % 2 ? host.reload("net") : host.import("net");
        Value SocketIO = host.getattr(net, "SocketIO");
        Value l = host.call(SocketIO);
        host.call_method(l, "bind", {host.tuple({host.str("127.0.0.1"), host.integer(0)})});
        host.call_method(l, "listen");
        Value c = host.call(SocketIO);
        host.call_method(c, "connect", {host.tuple({host.str("127.0.0.1"), host.getattr(l, "local_port")})});
        Value s = host.item(host.call_method(l, "accept"), 0);
        host.call_method(c, "write", {host.bytes("round")});
        REQUIRE(host.to_bytes(host.call_method(s, "read", {host.integer(5)})) == "round");
        if (round % 2) host.unload("net");  // the last round (99) ends unloaded
    }
    CHECK(host.loaded_library_count() == 0);
    CHECK(host.live_objects() == baseline);
    CHECK(census::mappings_of("ksp_net") == maps_before);
    CHECK(census::open_fds() == before.fds);
    CHECK(census::threads_settled(before.thread_count) == before.thread_count);
}
