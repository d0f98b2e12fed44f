// libFuzzer target: argument conversion at the ABI boundary. Each input becomes a
// short script: a SocketIO of some kind (or a constructor call with fuzzed arguments),
// then a few method calls with fuzzer-chosen values (none, bools, edge integers, NaN and
// infinities, strings with NULs, bytes, nested tuples and lists, enum members, sockets)
// through the reference host in checking mode. Every call must return or raise an error
// of a known kind with a message; a crash, an abort from checking mode (a reference
// mistake, a value touched without the lock) or a hang is a finding.
//
// Safety: only loopback. Hosts inside tuples are replaced by loopback literals unless
// the fuzzer's string is one the plugin must refuse before resolving it (a NUL, more
// than 255 bytes), so no name ever reaches DNS; ports in range become 0, 9 or the
// harness's own listener, so no other local service receives fuzz data. Blocking
// calls get a 10 ms timeout, and raw sockets only carry ICMP (never IP_HDRINCL).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "refhost.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::ScriptError;
using refhost::Value;

namespace {

struct Harness {
    std::unique_ptr<Host> host;
    std::optional<Gil> gil;
    Value net, SocketIO, listener;
    int64_t listener_port = 0;
    bool root = geteuid() == 0;

    Harness() {
        const char *dir = std::getenv("KSNET_PLUGIN_DIR");
#ifdef KSNET_PLUGIN_BUILD_DIR
        if (!dir) dir = KSNET_PLUGIN_BUILD_DIR;
#endif
        if (!dir) {
            std::fprintf(stderr, "fuzz_plugin_args: set KSNET_PLUGIN_DIR to the directory of ksp_net.so\n");
            std::exit(2);
        }
        // Checking mode (stale handles, values touched without the lock) keeps every
        // released object until the host goes, about 25 KB per input: for long runs
        // KSNET_FUZZ_CHECKING=0 turns it off.
        const char *checking = std::getenv("KSNET_FUZZ_CHECKING");
        host = std::make_unique<Host>(refhost::HostOptions{{dir}, false, !(checking && std::string(checking) == "0")});
        gil.emplace(*host);
        net = host->import("net");
        SocketIO = host->getattr(net, "SocketIO");
        listener = host->call(SocketIO);
        host->call_method(listener, "bind", {host->tuple({host->str("127.0.0.1"), host->integer(0)})});
        host->call_method(listener, "listen", {host->integer(64)});
        listener_port = host->to_int(host->getattr(listener, "local_port"));
    }
    ~Harness() {
        host->call_method(listener, "close");
        listener = Value();
        SocketIO = Value();
        net = Value();
        host->unload("net");
        gil.reset();
    }
};

// One host for the whole run: libFuzzer keeps reading the coverage counters of every
// instrumented module it has seen, so the plugin must never be unloaded (dlclose)
// while it runs.
Harness &harness() {
    static Harness h;
    return h;
}

struct Script {
    Harness &hs;
    Host &h;
    fuzzin::Reader &r;
    Value sock;

    Value member(const char *en, const char *name) { return h.getattr(h.getattr(hs.net, en), name); }

    Value enum_value() {
        static const char *const fk[] = {"INET4", "INET6", "BT"};
        static const char *const sk[] = {"TCP", "UDP", "RAW", "PACKET", "PACKET_SEQ"};
        static const char *const pk[] = {"AUTO", "BT_L2CAP", "BT_RFCOMM", "ICMP", "ICMPV6", "TCP", "UDP", "RAW"};
        switch (r.u8() % 3) {
        case 0: return member("FK", fk[r.u8() % 3]);
        case 1: return member("SK", sk[r.u8() % 5]);
        default: return member("PK", pk[r.u8() % 8]);
        }
    }

    Value text(const std::string &s) {
        try {
            return h.str(s);
        } catch (const ScriptError &) {
            return h.bytes(s);  // not UTF-8: the host refuses it as str
        }
    }

    // A host for an address tuple: loopback, or a string the plugin refuses unresolved.
    Value host_part() {
        std::string s = r.str(400);
        if (s.find('\0') != std::string::npos || s.size() > 255) return text(s);
        static const char *const safe[] = {"127.0.0.1", "::1", "::ffff:127.0.0.1", "127.0.0.2"};
        return h.str(safe[s.size() % 4]);
    }

    Value port_part() {
        int64_t p = r.interesting_int();
        if (p < 0 || p > 65535) return h.integer(p);  // refused before any system call
        switch (p % 3) {
        case 0: return h.integer(0);
        case 1: return h.integer(9);
        default: return h.integer(hs.listener_port);
        }
    }

    Value value(int depth) {
        switch (r.u8() % 14) {
        case 0: return h.none();
        case 1: return h.boolean(r.u8() & 1);
        case 2:
        case 3: return h.integer(r.interesting_int());
        case 4: return h.floating(r.f64());
        case 5: return text(r.str(64));
        case 6: return h.bytes(r.str(256));
        case 7: {  // an address-shaped tuple
            std::vector<Value> items{host_part(), port_part()};
            if (r.u8() % 3 == 0) {
                items.push_back(h.integer(r.interesting_int()));
                items.push_back(h.integer(r.interesting_int()));
            }
            return h.tuple(items);
        }
        case 8:
        case 9: {
            if (depth >= 2) return h.none();
            std::vector<Value> items;
            for (int n = r.u8() % 5; n > 0; --n) items.push_back(value(depth + 1));
            // Strings inside tuples could become hosts: keep only safe ones there.
            for (auto &v : items) {
                if (h.type_name(v) == "str") v = host_part();
            }
            return r.u8() & 1 ? h.tuple(items) : h.list(items);
        }
        case 10: return enum_value();
        case 11: return sock ? sock : h.none();
        case 12: return hs.SocketIO;
        default: {
            static const char *const names[] = {"nodelay", "keepalive", "reuseaddr", "rcvbuf", "sndbuf", "broadcast"};
            return h.str(names[r.u8() % 6]);
        }
        }
    }

    Value make_socket() {
        static const char *const kinds[][3] = {
            {"INET4", "TCP", "AUTO"}, {"INET6", "TCP", "AUTO"}, {"INET4", "UDP", "AUTO"},
            {"INET6", "UDP", "AUTO"}, {"INET4", "RAW", "ICMP"}, {"INET6", "RAW", "ICMPV6"},
        };
        int k = r.u8() % (hs.root ? 6 : 4);
        return h.call(hs.SocketIO, {member("FK", kinds[k][0]), member("SK", kinds[k][1]), member("PK", kinds[k][2])});
    }

    void check(const ScriptError &e) {
        if (e.kind < KSP_ERR_ERROR || e.kind > KSP_ERR_INTERRUPT || std::string(e.what()).empty()) {
            std::fprintf(stderr, "fuzz_plugin_args: bad error kind %d or empty message\n", static_cast<int>(e.kind));
            std::abort();
        }
    }

    void run() {
        // Sometimes the constructor itself, with fuzzed arguments.
        if (r.u8() % 4 == 0) {
            std::vector<Value> args;
            for (int n = r.u8() % 5; n > 0; --n) args.push_back(value(0));
            try {
                Value s = h.call(hs.SocketIO, args);
                h.call_method(s, "close");
            } catch (const ScriptError &e) {
                check(e);
            }
            return;
        }
        try {
            sock = make_socket();
        } catch (const ScriptError &e) {
            check(e);
            return;
        }
        struct Method {
            const char *name;
            int timeout_at;  // index of the timeout argument, -1 if none
        };
        static const Method methods[] = {
            {"bind", -1},       {"connect", 1},    {"listen", -1},   {"accept", 0},    {"read", 1},
            {"write", 1},       {"sendto", 2},     {"recvfrom", 1},  {"shutdown", 0},  {"settimeout", -1},
            {"gettimeout", -1}, {"setopt", -1},    {"getopt", -1},   {"close", -1},    {"eof", -1},
            {"seek", -1},       {"tell", -1},      {"trunc", -1},    {"__iter", -1},   {"__next", -1},
            {"__repr", -1},
        };
        constexpr int kMethods = sizeof methods / sizeof methods[0];
        for (int calls = 1 + r.u8() % 6; calls > 0 && !r.empty(); --calls) {
            const Method &m = methods[r.u8() % kMethods];
            std::vector<Value> args;
            for (int n = r.u8() % 5; n > 0; --n) args.push_back(value(0));
            // A timeout the plugin could take as seconds becomes 10 ms: nothing may wait
            // long. (Enum members are ints to the host: read(none, net.FK.BT) waits 31 s.)
            if (m.timeout_at >= 0 && static_cast<size_t>(m.timeout_at) < args.size()) {
                std::string t = h.type_name(args[m.timeout_at]);
                if (t != "str" && t != "bytes" && t != "tuple" && t != "list") args[m.timeout_at] = h.floating(0.01);
            }
            if (std::getenv("KSNET_FUZZ_TRACE")) {  // replaying a finding: show each call
                std::string text = h.repr(sock) + "." + m.name + "(";
                for (size_t i = 0; i < args.size(); ++i) text += (i ? ", " : "") + h.repr(args[i]);
                std::fprintf(stderr, "%s)\n", text.c_str());
            }
            try {
                h.call_method(sock, "settimeout", {h.floating(0.01)});  // the default for the rest
                Value result = h.call_method(sock, m.name, args);
                if (result) (void)h.repr(result);
            } catch (const ScriptError &e) {
                check(e);
            }
        }
        try {
            h.call_method(sock, "close");
        } catch (const ScriptError &e) {
            check(e);
        }
        // Drain connections the script made to our listener, so the backlog never fills.
        for (int i = 0; i < 8; ++i) {
            try {
                Value pair = h.call_method(hs.listener, "accept", {h.floating(0.0)});
                h.call_method(h.item(pair, 0), "close");
            } catch (const ScriptError &) {
                break;
            }
        }
        sock = Value();
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Harness &hs = harness();
    fuzzin::Reader r(data, size);
    Script s{hs, *hs.host, r, Value()};
    s.run();
    return 0;
}
