// libFuzzer target: address parsing and formatting in the core. Properties checked for
// every input (a violation aborts, which libFuzzer reports with the input):
//  - check_port / check_host accept exactly the documented ranges, else Error(Value);
//  - parse_numeric, when it accepts a literal, round-trips through format_host;
//  - parse_bdaddr accepts only XX:XX:XX:XX:XX:XX and round-trips through format_bdaddr;
//  - RFCOMM/L2CAP sockaddrs round-trip through decode_sockaddr;
//  - option_from_name accepts exactly the known names;
//  - formatting arbitrary sockaddr bytes never reads past what it was given.
// Only ksnet::Error may escape a core call; anything else is a bug.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fuzz_input.hpp"
#include "ksnet/address.hpp"
#include "ksnet/bluetooth.hpp"
#include "ksnet/error.hpp"
#include "ksnet/options.hpp"
#include "ksnet/poll_socket.hpp"

using namespace ksnet;

namespace {

[[noreturn]] void broken(const char *what) {
    std::fprintf(stderr, "fuzz_address: property violated: %s\n", what);
    std::abort();
}

#define EXPECT(cond)                    \
    do {                                \
        if (!(cond)) broken(#cond);     \
    } while (0)

// Runs `f`; returns whether it threw Error(Value). Any other error aborts.
template <class F>
bool value_error(F &&f) {
    try {
        f();
        return false;
    } catch (const Error &e) {
        EXPECT(e.kind() == ErrorKind::Value);
        EXPECT(std::strlen(e.what()) > 0);
        return true;
    }
}

bool is_bdaddr_text(const std::string &t) {
    if (t.size() != 17) return false;
    for (size_t i = 0; i < 17; ++i) {
        if (i % 3 == 2) {
            if (t[i] != ':') return false;
        } else if (!std::isxdigit(static_cast<unsigned char>(t[i]))) {
            return false;
        }
    }
    return true;
}

void ip(fuzzin::Reader &r, const std::string &host) {
    int64_t port = r.interesting_int();
    bool bad_port = value_error([&] { check_port(port, "p"); });
    EXPECT(bad_port == (port < 0 || port > 65535));
    bool bad_host = value_error([&] { check_host(host, "h"); });
    EXPECT(bad_host == (host.find('\0') != std::string::npos || host.size() > 255));
    if (bad_host || bad_port) return;

    Endpoint ep;
    ep.family = r.u8() & 1 ? Family::Inet6 : Family::Inet4;
    ep.host = host;
    ep.port = static_cast<uint16_t>(port);
    ep.flow = static_cast<uint32_t>(r.i64()) & 0xFFFFF;
    ep.scope = static_cast<uint32_t>(r.i64());
    (void)format_endpoint(ep);
    sockaddr_storage ss;
    socklen_t len = 0;
    if (!parse_numeric(ep, ss, len)) return;
    auto *sa = reinterpret_cast<sockaddr *>(&ss);
    EXPECT(sa->sa_family == family_to_af(ep.family));
    EXPECT(sockaddr_port(sa) == ep.port);
    std::string text = format_host(sa);
    EXPECT(!text.empty());
    EXPECT(!format_sockaddr(sa).empty());
    // The formatted host parses back to the same address.
    Endpoint again = ep;
    again.host = text;
    sockaddr_storage ss2;
    socklen_t len2 = 0;
    EXPECT(parse_numeric(again, ss2, len2));
    EXPECT(len2 == len);
    if (ep.family == Family::Inet4) {
        EXPECT(std::memcmp(&reinterpret_cast<sockaddr_in *>(&ss)->sin_addr,
                           &reinterpret_cast<sockaddr_in *>(&ss2)->sin_addr, 4) == 0);
    } else {
        EXPECT(std::memcmp(&reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_addr,
                           &reinterpret_cast<sockaddr_in6 *>(&ss2)->sin6_addr, 16) == 0);
    }
}

void bluetooth(fuzzin::Reader &r, const std::string &text) {
    bt::BdAddr a{};
    bool bad = value_error([&] { a = bt::parse_bdaddr(text); });
    EXPECT(bad == !is_bdaddr_text(text));
    if (!bad) {
        std::string upper = text;
        for (char &c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        EXPECT(bt::format_bdaddr(a) == upper);
    }
    int64_t port = r.interesting_int();
    bool any = r.u8() & 1;
    bool bad_channel = value_error([&] { bt::check_rfcomm_channel(port, any); });
    EXPECT(bad_channel == !((port >= 1 && port <= 30) || (any && port == 0)));
    bool bad_psm = value_error([&] { bt::check_l2cap_psm(port, any); });
    EXPECT(bad_psm == !(bt::is_valid_psm(port) || (any && port == 0)));
    sockaddr_storage ss;
    if (!bad && !bad_channel) {
        bt::make_rfcomm_sockaddr(text, port, ss, any);
        bt::BtEndpoint e = bt::decode_sockaddr(reinterpret_cast<sockaddr *>(&ss), bt::kProtoRfcomm);
        EXPECT(e.port == static_cast<unsigned>(port));
        EXPECT(e.address == bt::format_bdaddr(a));
    }
    if (!bad && !bad_psm) {
        bt::make_l2cap_sockaddr(text, port, ss, any);
        bt::BtEndpoint e = bt::decode_sockaddr(reinterpret_cast<sockaddr *>(&ss), bt::kProtoL2cap);
        EXPECT(e.port == static_cast<unsigned>(port));
        EXPECT(e.address == bt::format_bdaddr(a));
    }
}

void raw_sockaddr(fuzzin::Reader &r, const std::string &bytes) {
    // Arbitrary bytes as a sockaddr of a claimed length, as recvfrom could hand back.
    sockaddr_storage ss{};
    std::memcpy(&ss, bytes.data(), std::min(bytes.size(), sizeof ss));
    socklen_t len = static_cast<socklen_t>(r.u16() % (sizeof ss + 1));
    int type = r.u8() % 11;
    int protocol = static_cast<int>(r.u8()) - 8;
    auto *sa = reinterpret_cast<sockaddr *>(&ss);
    if (r.u8() & 1) sa->sa_family = static_cast<sa_family_t>(r.u8() % 4 == 0 ? AF_INET : r.u8() % 2 ? AF_INET6 : 31);
    if (sa->sa_family == AF_PACKET) sa->sa_family = AF_UNSPEC;  // (if_indextoname asks the kernel)
    (void)format_any_sockaddr(sa, len, type, protocol);
    if (sa->sa_family == bt::kAfBluetooth) {
        try {
            (void)bt::decode_sockaddr(sa, protocol);
            (void)bt::format_bt_sockaddr(sa, protocol);
        } catch (const Error &) {
        }
    }
    (void)describe_socket(static_cast<int>(r.u8()), type, protocol);
}

void option(const std::string &name) {
    static const char *const known[] = {"nodelay", "keepalive", "reuseaddr", "rcvbuf", "sndbuf", "broadcast"};
    bool is_known = false;
    for (const char *k : known) is_known = is_known || name == k;
    Option o{};
    bool bad = value_error([&] { o = option_from_name(name, "argument 'name'"); });
    EXPECT(bad == !is_known);
    if (!bad) EXPECT(name == option_name(o));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzzin::Reader r(data, size);
    uint8_t what = r.u8();
    std::string text = r.str(300);
    switch (what % 4) {
    case 0: ip(r, text); break;
    case 1: bluetooth(r, text); break;
    case 2: raw_sockaddr(r, text); break;
    default: option(text); break;
    }
    return 0;
}
