// File: dns/header.h
//
// The 12-byte DNS header (RFC 1035 §4.1.1), read and written with explicit big-endian loads at
// named offsets. Callers check the length (>= kHeaderSize) first.
#ifndef DOTPROXY_DNS_HEADER_H_
#define DOTPROXY_DNS_HEADER_H_

#include <cstddef>
#include <cstdint>

#include "base/byte_order.h"

namespace dotproxy::dns {

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kIdOffset = 0;
inline constexpr size_t kFlagsOffset = 2;
inline constexpr size_t kQdcountOffset = 4;
inline constexpr size_t kAncountOffset = 6;
inline constexpr size_t kNscountOffset = 8;
inline constexpr size_t kArcountOffset = 10;
static_assert(kArcountOffset + 2 == kHeaderSize);

inline constexpr uint16_t kFlagQr = 0x8000;
inline constexpr uint16_t kFlagAa = 0x0400;
inline constexpr uint16_t kFlagTc = 0x0200;
inline constexpr uint16_t kFlagRd = 0x0100;
inline constexpr uint16_t kFlagRa = 0x0080;
inline constexpr uint16_t kFlagCd = 0x0010;
inline constexpr uint16_t kOpcodeMask = 0x7800;
inline constexpr uint16_t kRcodeMask = 0x000f;

inline constexpr uint16_t kRcodeNoError = 0;
inline constexpr uint16_t kRcodeFormErr = 1;
inline constexpr uint16_t kRcodeServFail = 2;

inline constexpr uint16_t kTypeOpt = 41;           // RFC 6891
inline constexpr size_t kMinUdpPayload = 512;      // RFC 1035 §4.2.1
inline constexpr size_t kMaxUdpPayload = 65507;    // largest IPv4 UDP datagram payload
inline constexpr size_t kMaxMessageSize = 65535;   // RFC 1035 §4.2.2 length prefix

inline uint16_t GetId(const uint8_t* msg) { return base::LoadBigEndian16(msg + kIdOffset); }
inline void SetId(uint8_t* msg, uint16_t id) { base::StoreBigEndian16(msg + kIdOffset, id); }
inline uint16_t GetFlags(const uint8_t* msg) { return base::LoadBigEndian16(msg + kFlagsOffset); }
inline void SetFlags(uint8_t* msg, uint16_t flags) {
  base::StoreBigEndian16(msg + kFlagsOffset, flags);
}
inline uint16_t GetQdcount(const uint8_t* msg) {
  return base::LoadBigEndian16(msg + kQdcountOffset);
}
inline uint16_t GetAncount(const uint8_t* msg) {
  return base::LoadBigEndian16(msg + kAncountOffset);
}
inline uint16_t GetNscount(const uint8_t* msg) {
  return base::LoadBigEndian16(msg + kNscountOffset);
}
inline uint16_t GetArcount(const uint8_t* msg) {
  return base::LoadBigEndian16(msg + kArcountOffset);
}
inline bool IsResponse(const uint8_t* msg) { return (GetFlags(msg) & kFlagQr) != 0; }
inline uint16_t GetRcode(const uint8_t* msg) { return GetFlags(msg) & kRcodeMask; }

}  // namespace dotproxy::dns

#endif  // DOTPROXY_DNS_HEADER_H_
