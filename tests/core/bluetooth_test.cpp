// Bluetooth addresses without hardware, and what this kernel says about AF_BLUETOOTH.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ksnet/bluetooth.hpp"
#include "ksnet/error.hpp"
#include "ksnet/poll_socket.hpp"
#include "loop_fixture.hpp"

using namespace ksnet;

namespace {

std::string bytes_of(const sockaddr_storage &ss, socklen_t len) {
    return std::string(reinterpret_cast<const char *>(&ss), len);
}

std::string value_error(std::string_view text) {
    try {
        bt::parse_bdaddr(text);
    } catch (const Error &e) {
        CHECK(e.kind() == ErrorKind::Value);
        return e.what();
    }
    FAIL("accepted '" << std::string(text) << "'");
    return "";
}

}  // namespace

TEST_CASE("bluetooth_address_parses_any_case_and_formats_upper_case") {
    bt::BdAddr a = bt::parse_bdaddr("01:23:45:67:89:ab");
    // Stored least significant octet first, as the kernel wants it.
    const uint8_t expected[6] = {0xAB, 0x89, 0x67, 0x45, 0x23, 0x01};
    CHECK(std::memcmp(a.b, expected, 6) == 0);
    CHECK(bt::format_bdaddr(a) == "01:23:45:67:89:AB");
    CHECK(bt::format_bdaddr(bt::parse_bdaddr("Aa:bB:cc:DD:ee:FF")) == "AA:BB:CC:DD:EE:FF");
    CHECK(bt::format_bdaddr(bt::parse_bdaddr("00:00:00:00:00:00")) == "00:00:00:00:00:00");
}

TEST_CASE("bluetooth_address_rejects_malformed_text_naming_it_and_the_expected_form") {
    const char *form = " (expected XX:XX:XX:XX:XX:XX, six octets of two hexadecimal digits)";
    CHECK(value_error("01:23:45:67:89") == std::string("Bluetooth address '01:23:45:67:89' has the wrong length") + form);
    CHECK(value_error("01:23:45:67:89:AB:CD") ==
          std::string("Bluetooth address '01:23:45:67:89:AB:CD' has the wrong length") + form);
    CHECK(value_error("01:23:45:67:89:AG") ==
          std::string("Bluetooth address '01:23:45:67:89:AG' has a character that is not a hexadecimal digit") + form);
    CHECK(value_error("01-23-45-67-89-AB") ==
          std::string("Bluetooth address '01-23-45-67-89-AB' does not separate its octets with ':'") + form);
    CHECK_THROWS_AS(bt::parse_bdaddr(""), Error);
    CHECK_THROWS_AS(bt::parse_bdaddr("1:23:45:67:89:ABC"), Error);
    CHECK_THROWS_AS(bt::parse_bdaddr(" 1:23:45:67:89:AB"), Error);
    CHECK_THROWS_AS(bt::parse_bdaddr("+1:23:45:67:89:AB"), Error);
    CHECK(value_error(std::string("01:23:45:67:89:A\0", 17)) ==
          std::string("Bluetooth address '01:23:45:67:89:A\\x00' has a character that is not a hexadecimal digit") +
              form);
}

TEST_CASE("bluetooth_rfcomm_sockaddr_has_the_kernel_layout") {
    sockaddr_storage ss;
    socklen_t len = bt::make_rfcomm_sockaddr("01:23:45:67:89:AB", 5, ss);
    CHECK(len == 10);
    // rc_family (31, host order) | rc_bdaddr reversed | rc_channel | padding
    const char expected[10] = {31, 0, '\xAB', '\x89', 0x67, 0x45, 0x23, 0x01, 5, 0};
    CHECK(bytes_of(ss, len) == std::string(expected, 10));
    CHECK(bt::format_bt_sockaddr(reinterpret_cast<sockaddr *>(&ss), bt::kProtoRfcomm) == "01:23:45:67:89:AB channel 5");
}

TEST_CASE("bluetooth_l2cap_sockaddr_has_the_kernel_layout") {
    sockaddr_storage ss;
    socklen_t len = bt::make_l2cap_sockaddr("01:23:45:67:89:AB", 0x1001, ss);
    CHECK(len == 14);
    // l2_family | l2_psm little-endian | l2_bdaddr reversed | l2_cid 0 | l2_bdaddr_type 0 | pad
    const char expected[14] = {31, 0, 0x01, 0x10, '\xAB', '\x89', 0x67, 0x45, 0x23, 0x01, 0, 0, 0, 0};
    CHECK(bytes_of(ss, len) == std::string(expected, 14));
    auto ep = bt::decode_sockaddr(reinterpret_cast<sockaddr *>(&ss), bt::kProtoL2cap);
    CHECK(ep.address == "01:23:45:67:89:AB");
    CHECK(ep.port == 0x1001);
    CHECK(bt::format_bt_sockaddr(reinterpret_cast<sockaddr *>(&ss), bt::kProtoL2cap) == "01:23:45:67:89:AB psm 0x1001");
}

TEST_CASE("bluetooth_rfcomm_channel_must_be_1_to_30") {
    CHECK(bt::check_rfcomm_channel(1) == 1);
    CHECK(bt::check_rfcomm_channel(30) == 30);
    CHECK_THROWS_WITH(bt::check_rfcomm_channel(0), "RFCOMM channel 0 is out of range (expected 1..30)");
    CHECK_THROWS_WITH(bt::check_rfcomm_channel(31), "RFCOMM channel 31 is out of range (expected 1..30)");
    CHECK_THROWS_WITH(bt::check_rfcomm_channel(-1), "RFCOMM channel -1 is out of range (expected 1..30)");
    CHECK(bt::check_rfcomm_channel(0, /*allow_any=*/true) == 0);
    sockaddr_storage ss;
    CHECK_THROWS_WITH(bt::make_rfcomm_sockaddr("01:23:45:67:89:AB", 99, ss),
                      "RFCOMM channel 99 is out of range (expected 1..30)");
}

TEST_CASE("bluetooth_l2cap_psm_must_be_odd_with_an_even_upper_octet") {
    for (int64_t ok : {0x0001, 0x0003, 0x0019, 0x1001, 0x00FF, 0xFEFF, 0x0201}) {
        CAPTURE(ok);
        CHECK(bt::check_l2cap_psm(ok) == ok);
    }
    const char *rule = " is not valid (expected an odd value in 0x0001..0xFFFF whose upper octet is even)";
    CHECK_THROWS_WITH(bt::check_l2cap_psm(0), (std::string("L2CAP PSM 0x0000") + rule).c_str());
    CHECK_THROWS_WITH(bt::check_l2cap_psm(0x0002), (std::string("L2CAP PSM 0x0002") + rule).c_str());
    CHECK_THROWS_WITH(bt::check_l2cap_psm(0x0101), (std::string("L2CAP PSM 0x0101") + rule).c_str());
    CHECK_THROWS_WITH(bt::check_l2cap_psm(0xFFFF), (std::string("L2CAP PSM 0xFFFF") + rule).c_str());
    CHECK_THROWS_WITH(bt::check_l2cap_psm(0x10001), (std::string("L2CAP PSM 0x10001") + rule).c_str());
    CHECK_THROWS_WITH(bt::check_l2cap_psm(-3), (std::string("L2CAP PSM -3") + rule).c_str());
    CHECK(bt::check_l2cap_psm(0, /*allow_any=*/true) == 0);
    sockaddr_storage ss;
    CHECK_THROWS_AS(bt::make_l2cap_sockaddr("01:23:45:67:89:AB", 2, ss), Error);
    CHECK_THROWS_AS(bt::make_l2cap_sockaddr("01:23:45:67:89", 1, ss), Error);
}

TEST_CASE("bluetooth_available_agrees_with_the_kernel") {
    int fd = ::socket(bt::kAfBluetooth, SOCK_STREAM | SOCK_CLOEXEC, bt::kProtoRfcomm);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) ::close(fd);
    int why = 0;
    bool available = bt::bluetooth_available(&why);
    CHECK(available == (err != EAFNOSUPPORT));
    if (!available) CHECK(why == UV_EAFNOSUPPORT);
    std::string note = std::string("Bluetooth ") + (available ? "is" : "is not") + " available on this system";
    MESSAGE(note);
}

TEST_CASE("bluetooth_socket_where_unsupported_raises_unsupported_naming_eafnosupport") {
    LoopFixture fx;
    if (bt::bluetooth_available()) {
        // A kernel with Bluetooth makes the sockets without any adapter.
        auto s = PollSocket::create(fx.rt, bt::kAfBluetooth, SOCK_STREAM, bt::kProtoRfcomm);
        CHECK(s->description() == "AF_BLUETOOTH/SOCK_STREAM/RFCOMM");
        s->close();
        return;
    }
    try {
        PollSocket::create(fx.rt, bt::kAfBluetooth, SOCK_STREAM, bt::kProtoRfcomm);
        FAIL("made a Bluetooth socket without AF_BLUETOOTH");
    } catch (const Error &e) {
        CHECK(e.kind() == ErrorKind::Unsupported);
        CHECK(e.code() == UV_EAFNOSUPPORT);
        CHECK(std::string(e.what()) ==
              "socket AF_BLUETOOTH/SOCK_STREAM/RFCOMM: Bluetooth is not available on this system "
              "(socket(AF_BLUETOOTH): EAFNOSUPPORT (address family not supported))");
    }
    CHECK_THROWS_WITH(PollSocket::create(fx.rt, bt::kAfBluetooth, SOCK_SEQPACKET, bt::kProtoL2cap),
                      "socket AF_BLUETOOTH/SOCK_SEQPACKET/L2CAP: Bluetooth is not available on this system "
                      "(socket(AF_BLUETOOTH): EAFNOSUPPORT (address family not supported))");
}
