#include "dns/tcp_framing.h"

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/byte_order.h"
#include "base/check.h"
#include "dns/header.h"

namespace dotproxy::dns {

void FrameReader::Clear() {
  std::vector<uint8_t>().swap(buffer_);
  consumed_ = 0;
  is_paused_ = false;
}

void WriteLengthPrefix(uint8_t* out, size_t len) {
  DCHECK(len <= kMaxMessageSize);
  base::StoreBigEndian16(out, static_cast<uint16_t>(len));
}

}  // namespace dotproxy::dns
