#include "ksnet/bluetooth.hpp"

#include <endian.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ksnet::bt {

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

[[noreturn]] void bad_address(std::string_view text, const char *why) {
    std::string shown;  // printable, and short enough for a message
    for (char c : text.substr(0, 64)) {
        if (static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f && c != '\\') {
            shown += c;
        } else {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\x%02x", static_cast<unsigned char>(c));
            shown += esc;
        }
    }
    if (text.size() > 64) shown += "...";
    throw Error(ErrorKind::Value, "Bluetooth address '" + shown + "' " + why +
                                      " (expected XX:XX:XX:XX:XX:XX, six octets of two hexadecimal digits)");
}

std::string psm_text(int64_t psm) {
    if (psm < 0 || psm > 0xFFFFFFFFLL) return std::to_string(psm);
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%04llX", static_cast<unsigned long long>(psm));
    return buf;
}

}  // namespace

BdAddr parse_bdaddr(std::string_view text) {
    // "XX:" five times and "XX": 17 characters.
    if (text.size() != 17) bad_address(text, "has the wrong length");
    BdAddr out{};
    for (int i = 0; i < 6; ++i) {
        size_t at = static_cast<size_t>(i) * 3;
        int hi = hex_digit(text[at]), lo = hex_digit(text[at + 1]);
        if (hi < 0 || lo < 0) bad_address(text, "has a character that is not a hexadecimal digit");
        if (i < 5 && text[at + 2] != ':') bad_address(text, "does not separate its octets with ':'");
        out.b[5 - i] = static_cast<uint8_t>(hi * 16 + lo);  // stored least significant first
    }
    return out;
}

std::string format_bdaddr(const BdAddr &a) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02X:%02X:%02X:%02X:%02X:%02X", a.b[5], a.b[4], a.b[3], a.b[2], a.b[1],
                  a.b[0]);
    return buf;
}

uint8_t check_rfcomm_channel(int64_t channel, bool allow_any) {
    if ((allow_any && channel == 0) || (channel >= 1 && channel <= kMaxRfcommChannel)) {
        return static_cast<uint8_t>(channel);
    }
    throw Error(ErrorKind::Value, "RFCOMM channel " + std::to_string(channel) + " is out of range (expected " +
                                      (allow_any ? "0 for any, or " : "") + "1..30)");
}

bool is_valid_psm(int64_t psm) {
    return psm >= 1 && psm <= 0xFFFF && (psm & 0x0001) != 0 && (psm & 0x0100) == 0;
}

uint16_t check_l2cap_psm(int64_t psm, bool allow_any) {
    if ((allow_any && psm == 0) || is_valid_psm(psm)) return static_cast<uint16_t>(psm);
    throw Error(ErrorKind::Value, "L2CAP PSM " + psm_text(psm) + " is not valid (expected " +
                                      (allow_any ? "0 for any, or " : "") +
                                      "an odd value in 0x0001..0xFFFF whose upper octet is even)");
}

socklen_t make_rfcomm_sockaddr(std::string_view address, int64_t channel, sockaddr_storage &out,
                               bool allow_any) {
    BdAddr a = parse_bdaddr(address);
    uint8_t ch = check_rfcomm_channel(channel, allow_any);
    std::memset(&out, 0, sizeof out);
    SockaddrRc rc{};
    rc.rc_family = kAfBluetooth;
    rc.rc_bdaddr = a;
    rc.rc_channel = ch;
    std::memcpy(&out, &rc, sizeof rc);
    return sizeof rc;
}

socklen_t make_l2cap_sockaddr(std::string_view address, int64_t psm, sockaddr_storage &out,
                              bool allow_any) {
    BdAddr a = parse_bdaddr(address);
    uint16_t p = check_l2cap_psm(psm, allow_any);
    std::memset(&out, 0, sizeof out);
    SockaddrL2 l2{};
    l2.l2_family = kAfBluetooth;
    l2.l2_psm = htole16(p);
    l2.l2_bdaddr = a;
    l2.l2_cid = 0;
    l2.l2_bdaddr_type = 0;  // BDADDR_BREDR
    std::memcpy(&out, &l2, sizeof l2);
    return sizeof l2;
}

BtEndpoint decode_sockaddr(const sockaddr *sa, int protocol) {
    if (sa->sa_family != kAfBluetooth) {
        throw Error(ErrorKind::Value, "not a Bluetooth address (family " + std::to_string(sa->sa_family) + ")");
    }
    BtEndpoint ep;
    if (protocol == kProtoRfcomm) {
        SockaddrRc rc;
        std::memcpy(&rc, sa, sizeof rc);
        ep.address = format_bdaddr(rc.rc_bdaddr);
        ep.port = rc.rc_channel;
    } else if (protocol == kProtoL2cap) {
        SockaddrL2 l2;
        std::memcpy(&l2, sa, sizeof l2);
        ep.address = format_bdaddr(l2.l2_bdaddr);
        ep.port = le16toh(l2.l2_psm);
    } else {
        throw Error(ErrorKind::Value, "Bluetooth protocol " + std::to_string(protocol) +
                                          " has no known address layout (expected L2CAP or RFCOMM)");
    }
    return ep;
}

std::string format_bt_sockaddr(const sockaddr *sa, int protocol) {
    if (sa->sa_family != kAfBluetooth) return "";
    if (protocol != kProtoRfcomm && protocol != kProtoL2cap) return "Bluetooth address";
    BtEndpoint ep = decode_sockaddr(sa, protocol);
    if (protocol == kProtoRfcomm) return ep.address + " channel " + std::to_string(ep.port);
    return ep.address + " psm " + psm_text(ep.port);
}

bool bluetooth_available(int *uv_error) {
    // RFCOMM is the protocol most kernels with Bluetooth have; an unknown protocol
    // (EPROTONOSUPPORT) still means the family itself exists.
    int fd = ::socket(kAfBluetooth, SOCK_STREAM | SOCK_CLOEXEC, kProtoRfcomm);
    if (fd >= 0) {
        ::close(fd);
        return true;
    }
    int err = errno;
    if (err == EAFNOSUPPORT) {
        if (uv_error) *uv_error = uv_translate_sys_error(err);
        return false;
    }
    return true;
}

Error bluetooth_unavailable(std::string_view operation, int uv_code) {
    std::string msg(operation);
    msg += ": Bluetooth is not available on this system (socket(AF_BLUETOOTH): ";
    msg += error_text(uv_code);
    msg += ")";
    return Error(ErrorKind::Unsupported, msg, uv_code);
}

}  // namespace ksnet::bt
