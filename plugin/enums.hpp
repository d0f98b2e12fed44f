// enums.hpp - net.FK, net.SK and net.PK: their members' values and the core's enums.
#pragma once

#include <cstdint>

#include "ksnet/address.hpp"
#include "ksnet/socket.hpp"

namespace netplug {

// Values are the C constants (AF_*, SOCK_*), except PK.BT_L2CAP: BTPROTO_L2CAP is 0,
// the same as AUTO, and members must be told apart, so it is 0x100 | BTPROTO_L2CAP.
namespace fk { constexpr int64_t INET4 = 2, INET6 = 10, BT = 31; }
namespace sk { constexpr int64_t TCP = 1, UDP = 2, RAW = 3, PACKET_SEQ = 5, PACKET = 10; }
// ICMP..RAW are additions to the spec: the IP protocol a raw socket carries (IPPROTO_*).
namespace pk {
constexpr int64_t AUTO = 0, BT_L2CAP = 0x100, BT_RFCOMM = 3;
constexpr int64_t ICMP = 1, TCP = 6, UDP = 17, ICMPV6 = 58, RAW = 255;
}  // namespace pk

ksnet::Family to_family(int64_t fk_value);
ksnet::Kind to_kind(int64_t sk_value);
ksnet::Protocol to_protocol(int64_t pk_value);
int64_t from_family(ksnet::Family f);
int64_t from_kind(ksnet::Kind k);
int64_t from_protocol(ksnet::Protocol p);

}  // namespace netplug
