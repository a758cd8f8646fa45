// File: base/byte_order.h
//
// Explicit big-endian loads and stores on byte buffers (network order), so wire formats never
// depend on struct layout or host endianness.
#ifndef DOTPROXY_BASE_BYTE_ORDER_H_
#define DOTPROXY_BASE_BYTE_ORDER_H_

#include <cstdint>

namespace dotproxy::base {

inline uint16_t LoadBigEndian16(const uint8_t* p) {
  return static_cast<uint16_t>((static_cast<uint16_t>(p[0]) << 8) | p[1]);
}

inline uint32_t LoadBigEndian32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | p[3];
}

inline uint64_t LoadBigEndian64(const uint8_t* p) {
  return (static_cast<uint64_t>(LoadBigEndian32(p)) << 32) | LoadBigEndian32(p + 4);
}

inline void StoreBigEndian16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_BYTE_ORDER_H_
