// ksnet/bluetooth.hpp - Bluetooth addresses without BlueZ: parsing, checking,
// formatting, and the kernel's sockaddr layouts declared here (libbluetooth-dev is not
// a dependency). Nothing here needs Bluetooth hardware.
//
// A device address is written "XX:XX:XX:XX:XX:XX": six octets of exactly two hex
// digits each, most significant first, any case. The kernel stores it reversed
// (least significant octet first), as BlueZ's bdaddr_t does.
//
// RFCOMM ports are channels 1..30. L2CAP ports are PSMs in 1..0xFFFF that are odd and
// whose upper octet is even (the Bluetooth Core rule). For bind(), 0 may be allowed to
// let the kernel choose (allow_any).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ksnet/error.hpp"

namespace ksnet::bt {

constexpr int kAfBluetooth = 31;   // AF_BLUETOOTH
constexpr int kProtoL2cap = 0;     // BTPROTO_L2CAP
constexpr int kProtoRfcomm = 3;    // BTPROTO_RFCOMM
constexpr int kMaxRfcommChannel = 30;

// BlueZ's bdaddr_t: b[0] is the least significant (last written) octet.
struct BdAddr {
    uint8_t b[6];
} __attribute__((packed));

// The kernel's struct sockaddr_rc (<bluetooth/rfcomm.h>).
struct SockaddrRc {
    sa_family_t rc_family;
    BdAddr rc_bdaddr;
    uint8_t rc_channel;
};

// The kernel's struct sockaddr_l2 (<bluetooth/l2cap.h>); l2_psm and l2_cid are
// little-endian (htobs), l2_bdaddr_type 0 is BR/EDR.
struct SockaddrL2 {
    sa_family_t l2_family;
    unsigned short l2_psm;
    BdAddr l2_bdaddr;
    unsigned short l2_cid;
    uint8_t l2_bdaddr_type;
};

static_assert(sizeof(BdAddr) == 6);
static_assert(offsetof(SockaddrRc, rc_bdaddr) == 2 && offsetof(SockaddrRc, rc_channel) == 8);
static_assert(sizeof(SockaddrRc) == 10);
static_assert(offsetof(SockaddrL2, l2_psm) == 2 && offsetof(SockaddrL2, l2_bdaddr) == 4);
static_assert(offsetof(SockaddrL2, l2_cid) == 10 && offsetof(SockaddrL2, l2_bdaddr_type) == 12);
static_assert(sizeof(SockaddrL2) == 14);

// Throws Error(Value) naming the text and the expected form.
BdAddr parse_bdaddr(std::string_view text);
// "01:23:45:67:89:AB" (upper case).
std::string format_bdaddr(const BdAddr &a);

// Throw Error(Value) naming the value and the rule; return the checked value.
uint8_t check_rfcomm_channel(int64_t channel, bool allow_any = false);
uint16_t check_l2cap_psm(int64_t psm, bool allow_any = false);
bool is_valid_psm(int64_t psm);

// Fill `out` (zeroed first) and return the length to pass to bind/connect.
socklen_t make_rfcomm_sockaddr(std::string_view address, int64_t channel, sockaddr_storage &out,
                               bool allow_any = false);
socklen_t make_l2cap_sockaddr(std::string_view address, int64_t psm, sockaddr_storage &out,
                              bool allow_any = false);

// An AF_BLUETOOTH address read back (the socket's protocol says which layout).
struct BtEndpoint {
    std::string address;  // "01:23:45:67:89:AB"
    unsigned port = 0;    // RFCOMM channel or L2CAP PSM
};
// Throws Error(Value) if `sa` is not AF_BLUETOOTH or the protocol is not L2CAP/RFCOMM.
BtEndpoint decode_sockaddr(const sockaddr *sa, int protocol);
// "01:23:45:67:89:AB channel 5" / "01:23:45:67:89:AB psm 0x1001", for messages.
std::string format_bt_sockaddr(const sockaddr *sa, int protocol);

// Whether this kernel has AF_BLUETOOTH (tries socket(AF_BLUETOOTH, ...) and closes
// it). When it has not and `uv_error` is given, stores the libuv error (UV_EAFNOSUPPORT).
bool bluetooth_available(int *uv_error = nullptr);

// Error(Unsupported): "<operation>: Bluetooth is not available on this system
// (socket(AF_BLUETOOTH): EAFNOSUPPORT (address family not supported))".
Error bluetooth_unavailable(std::string_view operation, int uv_code);

}  // namespace ksnet::bt
