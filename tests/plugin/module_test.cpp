// The module as a script sees it: enums, the type, docstrings, and the export table.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <tuple>

#include "net_fixture.hpp"

using namespace nettest;

TEST_CASE("net_module_has_every_enum_member_of_the_spec") {
    NetFixture fx;
    auto &h = fx.host;
    CHECK(h.to_int(fx.enum_member("FK", "INET4")) == 2);
    CHECK(h.to_int(fx.enum_member("FK", "INET6")) == 10);
    CHECK(h.to_int(fx.enum_member("FK", "BT")) == 31);
    CHECK(h.to_int(fx.enum_member("SK", "RAW")) == 3);
    CHECK(h.to_int(fx.enum_member("SK", "TCP")) == 1);
    CHECK(h.to_int(fx.enum_member("SK", "UDP")) == 2);
    CHECK(h.to_int(fx.enum_member("SK", "PACKET")) == 10);
    CHECK(h.to_int(fx.enum_member("SK", "PACKET_SEQ")) == 5);
    CHECK(h.to_int(fx.enum_member("PK", "AUTO")) == 0);
    CHECK(h.to_int(fx.enum_member("PK", "BT_L2CAP")) == 0x100);
    CHECK(h.to_int(fx.enum_member("PK", "BT_RFCOMM")) == 3);
    CHECK(h.repr(fx.enum_member("FK", "INET4")) == "net.FK.INET4");
}

TEST_CASE("socketio_defaults_to_inet4_tcp_auto_and_shows_it") {
    NetFixture fx;
    auto &h = fx.host;
    Value s = h.call(fx.SocketIO);
    CHECK(h.repr(h.getattr(s, "fk")) == "net.FK.INET4");
    CHECK(h.repr(h.getattr(s, "sk")) == "net.SK.TCP");
    CHECK(h.repr(h.getattr(s, "pk")) == "net.PK.AUTO");
    CHECK(h.type_name(s) == "net.SocketIO");
    CHECK(h.repr(s).rfind("<net.SocketIO fk=INET4 sk=TCP state=open", 0) == 0);
    CHECK(h.is_none(h.getattr(s, "peer_name")));
    CHECK_FALSE(h.to_bool(h.getattr(s, "closed")));
    // Each step of a server's life shows, as UDP's does.
    h.call_method(s, "bind", {fx.addr("127.0.0.1", 0)});
    CHECK_MESSAGE(contains(h.repr(s), "sk=TCP state=bound local=127.0.0.1:"), h.repr(s));
    h.call_method(s, "listen");
    CHECK_MESSAGE(contains(h.repr(s), "sk=TCP state=listening local=127.0.0.1:"), h.repr(s));
    h.call_method(s, "close");
    CHECK(h.to_bool(h.getattr(s, "closed")));
}

// `_fd`, as kscript's builtin has it: the socket's own descriptor (the kernel's name for
// it matches the socket's attributes), for TCP and UDP, and -1 once closed.
TEST_CASE("fd_attribute_is_the_sockets_own_descriptor_and_minus_one_once_closed") {
    NetFixture fx;
    auto &h = fx.host;
    Value c, s;
    std::tie(c, s) = fx.connected_pair();
    Value u = fx.socket("INET4", "UDP");
    h.call_method(u, "bind", {fx.addr("127.0.0.1", 0)});
    for (const Value &sock : {c, s, u}) {
        int fd = static_cast<int>(h.to_int(h.getattr(sock, "_fd")));
        REQUIRE(fd >= 0);
        struct stat st {};
        REQUIRE(fstat(fd, &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        sockaddr_in sin{};
        socklen_t len = sizeof sin;
        REQUIRE(getsockname(fd, reinterpret_cast<sockaddr *>(&sin), &len) == 0);
        CHECK(ntohs(sin.sin_port) == fx.port_of(sock));
    }
    CHECK(h.to_int(h.getattr(c, "_fd")) != h.to_int(h.getattr(s, "_fd")));
    for (const Value &sock : {c, s, u}) {
        h.call_method(sock, "close");
        CHECK(h.to_int(h.getattr(sock, "_fd")) == -1);
    }
}

TEST_CASE("describe_lists_members_signatures_and_docstrings") {
    NetFixture fx;
    std::string text = fx.host.describe(fx.net);
    for (const char *needle :
         {"FK", "INET6", "SK", "PACKET_SEQ", "PK", "BT_RFCOMM", "SocketIO", "bind(self, addr)",
          "listen(self, num=16)", "accept(self, timeout=none)", "read(self, sz=none, timeout=none)",
          "write(self, msg, timeout=none)", "sendto(self, msg, addr, timeout=none)",
          "recvfrom(self, sz=none, timeout=none)", "shutdown(self, timeout=none)", "settimeout(self, timeout)",
          "gettimeout(self)", "setopt(self, name, value)", "getopt(self, name)", "ICMP", "ICMPV6",
          "local_port", "returns (sock, name)", "subtype of io.BaseIO"}) {
        CHECK_MESSAGE(text.find(needle) != std::string::npos, "describe() lacks ", needle);
    }
}

namespace {
std::string run(const std::string &cmd) {
    std::string out;
    std::unique_ptr<FILE, int (*)(FILE *)> p(popen(cmd.c_str(), "r"), pclose);
    REQUIRE(p);
    char buf[512];
    while (fgets(buf, sizeof buf, p.get())) out += buf;
    return out;
}
}  // namespace

TEST_CASE("plugin_exports_only_its_entry_symbol_and_no_gnu_unique") {
    std::string so = plugin_dir() + "/ksp_net.so";
    std::string defined = run("nm -D --defined-only '" + so + "' | awk '{print $3}'");
    CHECK(defined == "ksp_plugin_entry\n");
    std::string unique = run("readelf --dyn-syms -W '" + so + "' | grep -c UNIQUE || true");
    CHECK(unique == "0\n");
}
