// Bad input at the ABI boundary, table-driven: the constructor and every SocketIO
// method called with wrong counts, wrong types, none, negative and huge numbers,
// out-of-range ports/flow/scope, malformed literals, overlong host names and embedded
// NULs, on TCP, UDP and raw sockets, open and closed. Each call raises an error of the
// right kind whose message names the argument (or the reason); nothing crashes or hangs.
#include <unistd.h>

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "net_fixture.hpp"
#include "skip.hpp"

using namespace nettest;

namespace {

using Args = std::vector<Value>;

// Shorthands for building arguments.
struct V {
    NetFixture &fx;
    Host &h = fx.host;
    Value n() { return h.none(); }
    Value i(int64_t x) { return h.integer(x); }
    Value f(double x) { return h.floating(x); }
    Value s(const std::string &x) { return h.str(x); }
    Value b(const std::string &x) { return h.bytes(x); }
    Value t(std::initializer_list<Value> items) { return h.tuple(items); }
    Value l(const std::vector<Value> &items) { return h.list(items); }
    Value yes() { return h.boolean(true); }
    bool six = false;  // a4() gives an IPv6 loopback address
    Value a4(int64_t port = 9) { return t({s(six ? "::1" : "127.0.0.1"), i(port)}); }
    Value e(const char *en, const char *m) { return fx.enum_member(en, m); }
};

struct Row {
    const char *method;                 // "" calls the constructor
    std::function<Args(V &)> args;
    ksp_error_kind kind;
    std::string mention;                // the message must contain this
    int family = 0;                     // 0: any socket; 4 / 6: only INET4 / INET6 sockets
};

constexpr int64_t kHuge = int64_t{1} << 62;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
const double kNan = std::nan("");
const double kInf = std::numeric_limits<double>::infinity();

// The methods and how many arguments each takes.
struct Arity {
    const char *method;
    size_t min, max;
};
const Arity kArity[] = {
    {"bind", 1, 1},     {"connect", 1, 2},  {"listen", 0, 1},    {"accept", 0, 1},   {"read", 0, 2},
    {"write", 1, 2},    {"sendto", 2, 3},   {"recvfrom", 0, 2},  {"shutdown", 0, 1}, {"settimeout", 1, 1},
    {"gettimeout", 0, 0}, {"setopt", 2, 2}, {"getopt", 1, 1},    {"close", 0, 0},    {"eof", 0, 0},
    {"seek", 0, 2},     {"tell", 0, 0},     {"trunc", 0, 1},     {"__iter", 0, 0},   {"__next", 0, 0},
    {"__repr", 0, 0},
};

// Rows for every method; the family column keeps (host, port, flow, scope) rows apart.
std::vector<Row> method_rows() {
    using K = ksp_error_kind;
    const K T = KSP_ERR_TYPE, VAL = KSP_ERR_VAL, SZ = KSP_ERR_SIZE, OS = KSP_ERR_OS;
    std::vector<Row> rows = {
        // bind / connect: the address
        {"bind", [](V &v) { return Args{v.n()}; }, T, "argument 'addr'"},
        {"bind", [](V &v) { return Args{v.s("127.0.0.1:80")}; }, T, "argument 'addr'"},
        {"bind", [](V &v) { return Args{v.b("127.0.0.1")}; }, T, "argument 'addr'"},
        {"bind", [](V &v) { return Args{v.i(80)}; }, T, "argument 'addr'"},
        {"bind", [](V &v) { return Args{v.l({v.s("127.0.0.1"), v.i(0)})}; }, T, "argument 'addr'"},
        {"bind", [](V &v) { return Args{v.t({})}; }, SZ, "argument 'addr'"},
        {"bind", [](V &v) { return Args{v.t({v.s("127.0.0.1")})}; }, SZ, "argument 'addr'"},
        {"bind", [](V &v) { return Args{v.t({v.s("127.0.0.1"), v.i(0), v.i(0)})}; }, SZ, "argument 'addr'"},
        {"bind", [](V &v) { return Args{v.t({v.s("127.0.0.1"), v.i(0), v.i(0), v.i(0), v.i(0)})}; }, SZ, "argument 'addr'"},
        {"bind", [](V &v) { return Args{v.t({v.s("127.0.0.1"), v.i(0), v.i(0), v.i(0)})}; }, SZ, "argument 'addr'", 4},
        {"bind", [](V &v) { return Args{v.t({v.n(), v.i(0)})}; }, T, "the host in argument 'addr'"},
        {"bind", [](V &v) { return Args{v.t({v.i(127), v.i(0)})}; }, T, "the host in argument 'addr'"},
        {"bind", [](V &v) { return Args{v.t({v.b("127.0.0.1"), v.i(0)})}; }, T, "the host in argument 'addr'"},
        {"bind", [](V &v) { return Args{v.t({v.s("127.0.0.1"), v.n()})}; }, T, "the port in argument 'addr'"},
        {"bind", [](V &v) { return Args{v.t({v.s("127.0.0.1"), v.s("80")})}; }, T, "the port in argument 'addr'"},
        {"bind", [](V &v) { return Args{v.t({v.s("127.0.0.1"), v.f(80.0)})}; }, T, "the port in argument 'addr'"},
        {"bind", [](V &v) { return Args{v.a4(-1)}; }, VAL, "port -1"},
        {"bind", [](V &v) { return Args{v.a4(65536)}; }, VAL, "port 65536"},
        {"bind", [](V &v) { return Args{v.a4(kHuge)}; }, VAL, "port " + std::to_string(kHuge)},
        {"bind", [](V &v) { return Args{v.a4(kMin)}; }, VAL, "port " + std::to_string(kMin)},
        {"bind", [](V &v) { return Args{v.t({v.s(std::string(256, 'h')), v.i(0)})}; }, VAL, "256 bytes long"},
        {"bind", [](V &v) { return Args{v.t({v.s(std::string(100000, 'h')), v.i(0)})}; }, VAL, "100000 bytes long"},
        {"bind", [](V &v) { return Args{v.t({v.s(std::string("127.0.0.1\0.evil", 15)), v.i(0)})}; }, VAL, "NUL byte"},
        {"bind", [](V &v) { return Args{v.t({v.s(std::string("\0", 1)), v.i(0)})}; }, VAL, "NUL byte"},
        // malformed literals reach the resolver, which names them
        {"bind", [](V &v) { return Args{v.t({v.s("256.0.0.1"), v.i(0)})}; }, OS, "256.0.0.1", 4},
        {"bind", [](V &v) { return Args{v.t({v.s("1.2.3.4.5"), v.i(0)})}; }, OS, "1.2.3.4.5", 4},
        {"bind", [](V &v) { return Args{v.t({v.s("::1"), v.i(0)})}; }, OS, "::1", 4},
        {"bind", [](V &v) { return Args{v.t({v.s(":::1"), v.i(0)})}; }, OS, ":::1", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("1::2::3"), v.i(0)})}; }, OS, "1::2::3", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("[::1]"), v.i(0)})}; }, OS, "[::1]", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("::g"), v.i(0)})}; }, OS, "::g", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("1:2:3:4:5:6:7:8:9"), v.i(0)})}; }, OS, "1:2:3:4:5:6:7:8:9", 6},
        // IPv6 flow and scope
        {"bind", [](V &v) { return Args{v.t({v.s("::1"), v.i(0), v.i(-1), v.i(0)})}; }, VAL, "flow -1", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("::1"), v.i(0), v.i(0x100000), v.i(0)})}; }, VAL, "flow 1048576", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("::1"), v.i(0), v.i(kMax), v.i(0)})}; }, VAL, "flow", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("::1"), v.i(0), v.i(0), v.i(-1)})}; }, VAL, "scope -1", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("::1"), v.i(0), v.i(0), v.i(int64_t{1} << 32)})}; }, VAL, "scope 4294967296", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("::1"), v.i(0), v.s("0"), v.i(0)})}; }, T, "the flow in argument 'addr'", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("::1"), v.i(0), v.i(0), v.n()})}; }, T, "the scope in argument 'addr'", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("::1"), v.i(70000), v.i(0), v.i(0)})}; }, VAL, "port 70000", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("::1%nosuch0"), v.i(0)})}; }, VAL, "no network interface 'nosuch0'", 6},
        {"bind", [](V &v) { return Args{v.t({v.s("::1%99999999999"), v.i(0)})}; }, VAL, "no network interface '99999999999'", 6},
        {"connect", [](V &v) { return Args{v.n()}; }, T, "argument 'addr'"},
        {"connect", [](V &v) { return Args{v.a4(-1)}; }, VAL, "port -1"},
        {"connect", [](V &v) { return Args{v.a4(kMax)}; }, VAL, "port " + std::to_string(kMax)},
        {"connect", [](V &v) { return Args{v.t({v.s(std::string(300, 'c')), v.i(1)})}; }, VAL, "300 bytes long"},
        {"connect", [](V &v) { return Args{v.t({v.s(std::string("local\0host", 10)), v.i(1)})}; }, VAL, "NUL byte"},
        {"connect", [](V &v) { return Args{v.a4(), v.s("soon")}; }, T, "argument 'timeout'"},
        {"connect", [](V &v) { return Args{v.a4(), v.b("1")}; }, T, "argument 'timeout'"},
        {"connect", [](V &v) { return Args{v.a4(), v.i(-1)}; }, VAL, "argument 'timeout'"},
        {"connect", [](V &v) { return Args{v.a4(), v.f(kNan)}; }, VAL, "argument 'timeout'"},
        {"connect", [](V &v) { return Args{v.a4(), v.f(kInf)}; }, VAL, "argument 'timeout'"},
        {"connect", [](V &v) { return Args{v.a4(), v.f(-kInf)}; }, VAL, "argument 'timeout'"},
        {"connect", [](V &v) { return Args{v.a4(), v.f(1e300)}; }, VAL, "argument 'timeout'"},
        {"connect", [](V &v) { return Args{v.a4(), v.i(kMax)}; }, VAL, "argument 'timeout'"},
        // listen
        {"listen", [](V &v) { return Args{v.n()}; }, T, "argument 'num'"},
        {"listen", [](V &v) { return Args{v.s("16")}; }, T, "argument 'num'"},
        {"listen", [](V &v) { return Args{v.f(16.0)}; }, T, "argument 'num'"},
        {"listen", [](V &v) { return Args{v.i(-1)}; }, VAL, "argument 'num'"},
        {"listen", [](V &v) { return Args{v.i(int64_t{1} << 31)}; }, VAL, "argument 'num'"},
        {"listen", [](V &v) { return Args{v.i(kHuge)}; }, VAL, "argument 'num'"},
        {"listen", [](V &v) { return Args{v.i(kMin)}; }, VAL, "argument 'num'"},
        // accept
        {"accept", [](V &v) { return Args{v.s("1")}; }, T, "argument 'timeout'"},
        {"accept", [](V &v) { return Args{v.f(-0.5)}; }, VAL, "argument 'timeout'"},
        {"accept", [](V &v) { return Args{v.f(kNan)}; }, VAL, "argument 'timeout'"},
        {"accept", [](V &v) { return Args{v.i(kMin)}; }, VAL, "argument 'timeout'"},
        // read
        {"read", [](V &v) { return Args{v.s("10")}; }, T, "argument 'sz'"},
        {"read", [](V &v) { return Args{v.f(1.5)}; }, T, "argument 'sz'"},
        {"read", [](V &v) { return Args{v.b("")}; }, T, "argument 'sz'"},
        {"read", [](V &v) { return Args{v.i(-1)}; }, VAL, "argument 'sz'"},
        {"read", [](V &v) { return Args{v.i(-kHuge)}; }, VAL, "argument 'sz'"},
        {"read", [](V &v) { return Args{v.i(kMin)}; }, VAL, "argument 'sz'"},
        {"read", [](V &v) { return Args{v.n(), v.s("soon")}; }, T, "argument 'timeout'"},
        {"read", [](V &v) { return Args{v.i(1), v.i(-1)}; }, VAL, "argument 'timeout'"},
        {"read", [](V &v) { return Args{v.i(1), v.f(kInf)}; }, VAL, "argument 'timeout'"},
        // write
        {"write", [](V &v) { return Args{v.n()}; }, T, "argument 'msg'"},
        {"write", [](V &v) { return Args{v.i(5)}; }, T, "argument 'msg'"},
        {"write", [](V &v) { return Args{v.t({v.b("x")})}; }, T, "argument 'msg'"},
        {"write", [](V &v) { return Args{v.l({v.b("x")})}; }, T, "argument 'msg'"},
        {"write", [](V &v) { return Args{v.b("x"), v.s("t")}; }, T, "argument 'timeout'"},
        {"write", [](V &v) { return Args{v.b("x"), v.f(-1e-9)}; }, VAL, "argument 'timeout'"},
        // sendto
        {"sendto", [](V &v) { return Args{v.n(), v.a4()}; }, T, "argument 'msg'"},
        {"sendto", [](V &v) { return Args{v.i(1), v.a4()}; }, T, "argument 'msg'"},
        {"sendto", [](V &v) { return Args{v.b("x"), v.n()}; }, T, "argument 'addr'"},
        {"sendto", [](V &v) { return Args{v.b("x"), v.s("127.0.0.1")}; }, T, "argument 'addr'"},
        {"sendto", [](V &v) { return Args{v.b("x"), v.a4(65536)}; }, VAL, "port 65536"},
        {"sendto", [](V &v) { return Args{v.b("x"), v.t({v.s(std::string("a\0b", 3)), v.i(9)})}; }, VAL, "NUL byte"},
        {"sendto", [](V &v) { return Args{v.b("x"), v.a4(), v.i(-1)}; }, VAL, "argument 'timeout'"},
        {"sendto", [](V &v) { return Args{v.b("x"), v.a4(), v.s("t")}; }, T, "argument 'timeout'"},
        // recvfrom
        {"recvfrom", [](V &v) { return Args{v.s("10")}; }, T, "argument 'sz'"},
        {"recvfrom", [](V &v) { return Args{v.i(-1)}; }, VAL, "argument 'sz'"},
        {"recvfrom", [](V &v) { return Args{v.i(kMin)}; }, VAL, "argument 'sz'"},
        {"recvfrom", [](V &v) { return Args{v.n(), v.s("t")}; }, T, "argument 'timeout'"},
        {"recvfrom", [](V &v) { return Args{v.n(), v.i(-1)}; }, VAL, "argument 'timeout'"},
        // shutdown
        {"shutdown", [](V &v) { return Args{v.s("now")}; }, T, "argument 'timeout'"},
        {"shutdown", [](V &v) { return Args{v.i(-1)}; }, VAL, "argument 'timeout'"},
        // timeouts
        {"settimeout", [](V &v) { return Args{v.s("1")}; }, T, "argument 'timeout'"},
        {"settimeout", [](V &v) { return Args{v.b("1")}; }, T, "argument 'timeout'"},
        {"settimeout", [](V &v) { return Args{v.t({v.i(1)})}; }, T, "argument 'timeout'"},
        {"settimeout", [](V &v) { return Args{v.i(-1)}; }, VAL, "argument 'timeout'"},
        {"settimeout", [](V &v) { return Args{v.f(kNan)}; }, VAL, "argument 'timeout'"},
        {"settimeout", [](V &v) { return Args{v.f(kInf)}; }, VAL, "argument 'timeout'"},
        {"settimeout", [](V &v) { return Args{v.i(31536001)}; }, VAL, "argument 'timeout'"},
        {"settimeout", [](V &v) { return Args{v.i(kMax)}; }, VAL, "argument 'timeout'"},
        // options
        {"setopt", [](V &v) { return Args{v.n(), v.i(1)}; }, T, "argument 'name'"},
        {"setopt", [](V &v) { return Args{v.i(1), v.i(1)}; }, T, "argument 'name'"},
        {"setopt", [](V &v) { return Args{v.b("nodelay"), v.i(1)}; }, T, "argument 'name'"},
        {"setopt", [](V &v) { return Args{v.s("NODELAY"), v.i(1)}; }, VAL, "argument 'name'"},
        {"setopt", [](V &v) { return Args{v.s(std::string("nodelay\0", 8)), v.i(1)}; }, VAL,
         "argument 'name' is 'nodelay\\x00' (expected one of"},
        {"setopt", [](V &v) { return Args{v.s(std::string(5000, 'o')), v.i(1)}; }, VAL, "ooo...' (expected one of"},
        {"setopt", [](V &v) { return Args{v.s("rcvbuf"), v.n()}; }, T, "argument 'value'"},
        {"setopt", [](V &v) { return Args{v.s("rcvbuf"), v.s("big")}; }, T, "argument 'value'"},
        {"setopt", [](V &v) { return Args{v.s("rcvbuf"), v.f(1.0)}; }, T, "argument 'value'"},
        {"setopt", [](V &v) { return Args{v.s("rcvbuf"), v.i(-1)}; }, VAL, "'rcvbuf' is -1"},
        {"setopt", [](V &v) { return Args{v.s("sndbuf"), v.i(kHuge)}; }, VAL, "'sndbuf' is " + std::to_string(kHuge)},
        {"setopt", [](V &v) { return Args{v.s("keepalive"), v.i(kMin)}; }, VAL, "'keepalive'"},
        {"setopt", [](V &v) { return Args{v.s("reuseaddr"), v.i(2)}; }, VAL, "'reuseaddr' is 2"},
        {"getopt", [](V &v) { return Args{v.n()}; }, T, "argument 'name'"},
        {"getopt", [](V &v) { return Args{v.i(3)}; }, T, "argument 'name'"},
        {"getopt", [](V &v) { return Args{v.s("")}; }, VAL, "argument 'name'"},
        {"getopt", [](V &v) { return Args{v.s("linger")}; }, VAL, "argument 'name'"},
        // streams cannot seek, whatever the arguments
        {"seek", [](V &v) { return Args{v.i(kHuge), v.i(-1)}; }, KSP_ERR_IO, "cannot seek"},
        {"seek", [](V &v) { return Args{v.n()}; }, KSP_ERR_IO, "cannot seek"},
        {"trunc", [](V &v) { return Args{v.i(-1)}; }, KSP_ERR_IO, "cannot seek"},
        {"tell", [](V &) { return Args{}; }, KSP_ERR_IO, "cannot seek"},
    };
    // Wrong counts for every method: one too many, and one too few where there is a minimum.
    for (const Arity &a : kArity) {
        rows.push_back({a.method, [n = a.max + 1](V &v) { return Args(n, v.n()); }, KSP_ERR_ARG, "takes"});
        if (a.min > 0) {
            rows.push_back({a.method, [n = a.min - 1](V &v) { return Args(n, v.i(1)); }, KSP_ERR_ARG,
                            "(" + std::to_string(a.min - 1) + " given)"});
        }
    }
    return rows;
}

struct SocketKind {
    const char *label, *fk, *sk, *pk;
    int family;
};

const std::vector<SocketKind> kIpKinds = {
    {"TCP/INET4", "INET4", "TCP", "AUTO", 4},
    {"TCP/INET6", "INET6", "TCP", "AUTO", 6},
    {"UDP/INET4", "INET4", "UDP", "AUTO", 4},
    {"UDP/INET6", "INET6", "UDP", "AUTO", 6},
};
// Raw sockets need root (or CAP_NET_RAW): their cases report SKIP without it.
const std::vector<SocketKind> kRawKinds = {
    {"RAW/INET4/ICMP", "INET4", "RAW", "ICMP", 4},
    {"RAW/INET6/ICMPV6", "INET6", "RAW", "ICMPV6", 6},
};
constexpr const char *kNeedsRoot = "needs root (or CAP_NET_RAW) for raw sockets";

std::string run_row(NetFixture &fx, const Value &sock, const Row &row, V &v) {
    Args args = row.args(v);
    ScriptError e = raised([&] {
        if (*row.method) fx.host.call_method(sock, row.method, args);
        else fx.host.call(fx.SocketIO, args);
    });
    CHECK_MESSAGE(e.kind == row.kind, "got ", refhost::error_kind_name(e.kind), ", wanted ",
                  refhost::error_kind_name(row.kind), ": ", e.what());
    CHECK_MESSAGE(contains(e.what(), row.mention), "'", e.what(), "' does not mention '", row.mention, "'");
    return e.what();
}

}  // namespace

TEST_CASE("bad_input_table_constructor_refuses_wrong_counts_types_and_combinations") {
    NetFixture fx;
    V v{fx};
    const ksp_error_kind T = KSP_ERR_TYPE;
    std::vector<Row> rows = {
        {"", [](V &v) { return Args{v.i(2)}; }, T, "argument 'fk'"},
        {"", [](V &v) { return Args{v.n()}; }, T, "argument 'fk'"},
        {"", [](V &v) { return Args{v.s("INET4")}; }, T, "argument 'fk'"},
        {"", [](V &v) { return Args{v.yes()}; }, T, "argument 'fk'"},
        {"", [](V &v) { return Args{v.e("SK", "TCP")}; }, T, "argument 'fk'"},
        {"", [](V &v) { return Args{v.e("FK", "INET4"), v.e("PK", "AUTO")}; }, T, "argument 'sk'"},
        {"", [](V &v) { return Args{v.e("FK", "INET4"), v.i(1)}; }, T, "argument 'sk'"},
        {"", [](V &v) { return Args{v.e("FK", "INET4"), v.e("SK", "TCP"), v.n()}; }, T, "argument 'pk'"},
        {"", [](V &v) { return Args{v.e("FK", "INET4"), v.e("SK", "TCP"), v.e("FK", "BT")}; }, T, "argument 'pk'"},
        {"", [](V &v) { return Args{v.e("FK", "INET4"), v.e("SK", "TCP"), v.i(0x100)}; }, T, "argument 'pk'"},
        {"", [](V &v) { return Args{v.n(), v.n(), v.n(), v.n()}; }, KSP_ERR_ARG, "takes from 0 to 3 arguments (4 given)"},
        {"", [](V &v) { return Args(100, v.n()); }, KSP_ERR_ARG, "(100 given)"},
        {"", [](V &v) { return Args{v.e("FK", "INET4"), v.e("SK", "TCP"), v.e("PK", "ICMP")}; }, KSP_ERR_VAL, "pk=ICMP"},
        {"", [](V &v) { return Args{v.e("FK", "INET4"), v.e("SK", "UDP"), v.e("PK", "TCP")}; }, KSP_ERR_VAL, "sk=UDP"},
        {"", [](V &v) { return Args{v.e("FK", "INET6"), v.e("SK", "RAW"), v.e("PK", "ICMP")}; }, KSP_ERR_VAL, "ICMP"},
        {"", [](V &v) { return Args{v.e("FK", "BT"), v.e("SK", "UDP"), v.e("PK", "TCP")}; }, KSP_ERR_VAL, "fk=BT"},
    };
    int fds = census::open_fds();
    for (const Row &row : rows) {
        CAPTURE(row.mention);
        run_row(fx, Value(), row, v);
    }
    CHECK(census::open_fds() == fds);  // every refusal came before any socket() call
}

void check_method_table(const std::vector<SocketKind> &kinds) {
    NetFixture fx;
    V v{fx};
    std::vector<Row> rows = method_rows();
    int checked = 0;
    for (const SocketKind &k : kinds) {
        CAPTURE(std::string(k.label));
        for (const Row &row : rows) {
            if (row.family != 0 && row.family != k.family) continue;
            CAPTURE(std::string(row.method));
            CAPTURE(row.mention);
            // A fresh socket per row, so that no row sees another's effects.
            Value s = fx.socket(k.fk, k.sk, k.pk);
            run_row(fx, s, row, v);
            fx.host.call_method(s, "close");
            ++checked;
        }
    }
    MESSAGE(checked, " bad calls checked");
}

TEST_CASE("bad_input_table_every_method_names_the_bad_argument_on_tcp_and_udp_sockets") {
    check_method_table(kIpKinds);
}

TEST_CASE("bad_input_table_every_method_names_the_bad_argument_on_raw_sockets") {
    SKIP_UNLESS(geteuid() == 0, kNeedsRoot);
    check_method_table(kRawKinds);
}

TEST_CASE("bad_input_table_methods_taken_from_the_type_refuse_a_self_that_is_not_a_socket") {
    NetFixture fx;
    auto &h = fx.host;
    for (const Arity &a : kArity) {
        CAPTURE(std::string(a.method));
        Value method = h.getattr(fx.SocketIO, a.method);
        for (Value self : {h.none(), h.integer(1), h.str("socket"), h.bytes(""), fx.SocketIO}) {
            ScriptError e = raised([&] { h.call(method, {self}); });
            CHECK_MESSAGE(e.kind == KSP_ERR_TYPE, refhost::error_kind_name(e.kind), ": ", e.what());
            CHECK(contains(e.what(), "net.SocketIO"));
        }
    }
}

void check_closed_socket_calls(const std::vector<SocketKind> &kinds) {
    NetFixture fx;
    auto &h = fx.host;
    V v{fx};
    // A valid call of each method; on a closed socket each either raises IOError with a
    // reason, or is one of the few calls that make sense on a closed socket.
    struct Call {
        const char *method;
        std::function<Args(V &)> args;
        bool harmless;  // close, eof, timeouts, repr, iter
    };
    const std::vector<Call> calls = {
        {"bind", [](V &v) { return Args{v.a4(0)}; }, false},
        {"connect", [](V &v) { return Args{v.a4(9), v.f(1.0)}; }, false},
        {"listen", [](V &) { return Args{}; }, false},
        {"accept", [](V &v) { return Args{v.f(1.0)}; }, false},
        {"read", [](V &v) { return Args{v.i(10), v.f(1.0)}; }, false},
        {"read", [](V &v) { return Args{v.i(int64_t{1} << 62), v.f(1.0)}; }, false},
        {"read", [](V &v) { return Args{v.i(0), v.f(1.0)}; }, false},
        {"write", [](V &v) { return Args{v.b("x"), v.f(1.0)}; }, false},
        {"write", [](V &v) { return Args{v.b(""), v.f(1.0)}; }, false},
        {"sendto", [](V &v) { return Args{v.b("x"), v.a4(9), v.f(1.0)}; }, false},
        {"recvfrom", [](V &v) { return Args{v.n(), v.f(1.0)}; }, false},
        {"shutdown", [](V &v) { return Args{v.f(1.0)}; }, false},
        {"setopt", [](V &v) { return Args{v.s("rcvbuf"), v.i(65536)}; }, false},
        {"getopt", [](V &v) { return Args{v.s("rcvbuf")}; }, false},
        {"seek", [](V &v) { return Args{v.i(0)}; }, false},
        {"tell", [](V &) { return Args{}; }, false},
        {"trunc", [](V &) { return Args{}; }, false},
        {"__next", [](V &) { return Args{}; }, false},
        {"close", [](V &) { return Args{}; }, true},
        {"eof", [](V &) { return Args{}; }, true},
        {"settimeout", [](V &v) { return Args{v.f(1.0)}; }, true},
        {"gettimeout", [](V &) { return Args{}; }, true},
        {"__repr", [](V &) { return Args{}; }, true},
        {"__iter", [](V &) { return Args{}; }, true},
    };
    for (const SocketKind &k : kinds) {
        CAPTURE(std::string(k.label));
        v.six = k.family == 6;
        Value s = fx.socket(k.fk, k.sk, k.pk);
        h.call_method(s, "close");
        for (const Call &c : calls) {
            CAPTURE(std::string(c.method));
            Args args = c.args(v);
            if (c.harmless) {
                CHECK_NOTHROW(h.call_method(s, c.method, args));
                continue;
            }
            ScriptError e = raised([&] { h.call_method(s, c.method, args); });
            CHECK_MESSAGE(e.kind == KSP_ERR_IO, refhost::error_kind_name(e.kind), ": ", e.what());
            std::string m = e.what();
            CHECK_MESSAGE((contains(m, "closed") || contains(m, "not for a") || contains(m, "cannot seek")), m);
        }
        CHECK(h.to_bool(h.getattr(s, "closed")));
        CHECK(h.is_none(h.getattr(s, "local_port")));
        CHECK(h.is_none(h.getattr(s, "peer_name")));
        CHECK(contains(h.repr(s), "state=closed"));
    }
}

TEST_CASE("bad_input_table_every_method_on_a_closed_socket_is_an_ioerror_or_harmless") {
    check_closed_socket_calls(kIpKinds);
}

TEST_CASE("bad_input_table_every_method_on_a_closed_raw_socket_is_an_ioerror_or_harmless") {
    SKIP_UNLESS(geteuid() == 0, kNeedsRoot);
    check_closed_socket_calls(kRawKinds);
}

TEST_CASE("huge_sizes_read_what_is_there_and_never_allocate_them") {
    NetFixture fx;
    auto &h = fx.host;
    // TCP: read(2**62) and read(2**63 - 1) return the bytes that arrived.
    auto c_s = fx.connected_pair();
    auto c = c_s.first;
    auto s = c_s.second;
    h.call_method(c, "write", {h.bytes("12345")});
    CHECK(h.to_bytes(h.call_method(s, "read", {h.integer(int64_t{1} << 62), h.floating(5.0)})) == "12345");
    h.call_method(c, "write", {h.bytes("678")});
    CHECK(h.to_bytes(h.call_method(s, "read", {h.integer(kMax), h.floating(5.0)})) == "678");
    h.call_method(c, "close");
    h.call_method(s, "close");
    // UDP: the next datagram, whole.
    Value a = fx.socket("INET4", "UDP");
    h.call_method(a, "bind", {fx.addr("127.0.0.1", 0)});
    Value b = fx.socket("INET4", "UDP");
    Value to = fx.addr("127.0.0.1", fx.port_of(a));
    h.call_method(b, "sendto", {h.bytes("dgram"), to});
    CHECK(h.to_bytes(h.call_method(a, "read", {h.integer(int64_t{1} << 62), h.floating(5.0)})) == "dgram");
    h.call_method(b, "sendto", {h.bytes("again"), to});
    CHECK(h.to_bytes(h.item(h.call_method(a, "recvfrom", {h.integer(kMax), h.floating(5.0)}), 0)) == "again");
    // Too big to send is refused, never cut.
    h.call_method(b, "connect", {to});
    ScriptError big = raised([&] { h.call_method(b, "write", {h.bytes(std::string(1 << 20, 'x'))}); });
    CHECK(big.kind == KSP_ERR_VAL);
    h.call_method(a, "close");
    h.call_method(b, "close");
    // Listen with the largest backlog: the kernel clamps it.
    Value l = h.call(fx.SocketIO);
    h.call_method(l, "bind", {fx.addr("127.0.0.1", 0)});
    h.call_method(l, "listen", {h.integer(std::numeric_limits<int>::max())});
    h.call_method(l, "close");
    // The longest timeout allowed is accepted.
    Value t = h.call(fx.SocketIO);
    h.call_method(t, "settimeout", {h.integer(31536000)});
    CHECK(h.to_float(h.call_method(t, "gettimeout")) == doctest::Approx(31536000.0));
    h.call_method(t, "close");
}

TEST_CASE("huge_sizes_on_a_raw_socket_time_out_or_name_the_error") {
    SKIP_UNLESS(geteuid() == 0, kNeedsRoot);
    NetFixture fx;
    auto &h = fx.host;
    // A huge max on an empty queue times out (protocol 253, experimentation: nothing on
    // loopback sends it, where ICMP may see other traffic); a message too big for IP is
    // an OSError.
    Value quiet = fx.socket("INET4", "RAW", "RAW");
    ScriptError timed_out = raised([&] { h.call_method(quiet, "recvfrom", {h.integer(int64_t{1} << 62), h.floating(0.05)}); });
    CHECK_MESSAGE(timed_out.kind == KSP_ERR_TIMEOUT, timed_out.what());
    h.call_method(quiet, "close");
    Value r = fx.socket("INET4", "RAW", "ICMP");
    ScriptError too_big = raised([&] { h.call_method(r, "sendto", {h.bytes(std::string(1 << 20, 'r')), fx.addr("127.0.0.1", 0)}); });
    CHECK_MESSAGE((too_big.kind == KSP_ERR_OS || too_big.kind == KSP_ERR_VAL), too_big.what());
    CHECK(contains(too_big.what(), "sendto"));
    h.call_method(r, "close");
}

TEST_CASE("raw_sockets_take_host_names_as_well_as_literals") {
    // glibc's getaddrinfo refuses a service for SOCK_RAW (EAI_SERVICE): names for raw
    // sockets must be resolved without one.
    SKIP_UNLESS(geteuid() == 0, kNeedsRoot);
    NetFixture fx;
    auto &h = fx.host;
    Value r = fx.socket("INET4", "RAW", "ICMP");
    // An ICMP echo request (type 8) with a zero checksum is enough to cross sendto().
    std::string echo("\x08\x00\xf7\xff\x00\x00\x00\x00", 8);
    CHECK(h.to_int(h.call_method(r, "sendto", {h.bytes(echo), fx.addr("localhost", 0)})) == 8);
    h.call_method(r, "bind", {fx.addr("localhost", 0)});
    h.call_method(r, "connect", {fx.addr("localhost", 0), h.floating(5.0)});
    CHECK(contains(h.repr(r), "state=connected"));  // (getpeername says ENOTCONN for raw sockets)
    ScriptError e = raised([&] { h.call_method(r, "sendto", {h.bytes(echo), fx.addr("no-such-host.invalid", 0)}); });
    CHECK(e.kind == KSP_ERR_OS);
    CHECK_MESSAGE(contains(e.what(), "no-such-host.invalid"), e.what());
    CHECK_MESSAGE(!contains(e.what(), "EAI_SERVICE"), e.what());
    h.call_method(r, "close");
}
