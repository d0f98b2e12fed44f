// The module as a script sees it: enums, the type, docstrings, and the export table.
#include <cstdio>
#include <memory>

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
    h.call_method(s, "close");
    CHECK(h.to_bool(h.getattr(s, "closed")));
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
