// File: dns/tcp_framing_inl.h
//
// FrameReader's template members; included at the end of dns/tcp_framing.h, never directly.
// Invariant: while not paused, buffer_ holds at most one partial message, starting at index 0.
// A message pointer handed to the handler is valid only for the duration of that call.
#ifndef DOTPROXY_DNS_TCP_FRAMING_INL_H_
#define DOTPROXY_DNS_TCP_FRAMING_INL_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/byte_order.h"
#include "dns/tcp_framing.h"

namespace dotproxy::dns {

namespace internal {
inline constexpr size_t kLengthPrefixBytes = 2;
// Capacity kept across messages: enough for one maximal message and its prefix. Anything larger
// was only needed to hold a paused chunk and is released once that is drained.
inline constexpr size_t kFrameBufferKeepBytes = 65535 + kLengthPrefixBytes;

// Empties `buffer`, releasing its memory only when it grew beyond kFrameBufferKeepBytes.
inline void ResetFrameBuffer(std::vector<uint8_t>* buffer) {
  if (buffer->capacity() > kFrameBufferKeepBytes) {
    std::vector<uint8_t>().swap(*buffer);
  } else {
    buffer->clear();
  }
}
}  // namespace internal

template <typename Fn>
FrameResult FrameReader::Feed(const uint8_t* data, size_t len, Fn&& on_message) {
  using internal::kLengthPrefixBytes;
  if (is_paused_) {
    // Contract violation; keep the bytes so nothing is lost and let Resume deliver them.
    buffer_.insert(buffer_.end(), data, data + len);
    return FrameResult::kPaused;
  }
  if (!buffer_.empty()) {
    // Complete the message that straddles the previous chunk, copying only what it needs.
    if (buffer_.size() < kLengthPrefixBytes) {
      const size_t take = std::min(kLengthPrefixBytes - buffer_.size(), len);
      buffer_.insert(buffer_.end(), data, data + take);
      data += take;
      len -= take;
      if (buffer_.size() < kLengthPrefixBytes) {
        return FrameResult::kOk;
      }
    }
    const size_t frame_bytes = kLengthPrefixBytes + base::LoadBigEndian16(buffer_.data());
    if (frame_bytes == kLengthPrefixBytes) {
      Clear();
      return FrameResult::kZeroLength;
    }
    buffer_.reserve(frame_bytes);
    const size_t take = std::min(frame_bytes - buffer_.size(), len);
    buffer_.insert(buffer_.end(), data, data + take);
    data += take;
    len -= take;
    if (buffer_.size() < frame_bytes) {
      return FrameResult::kOk;
    }
    if (!on_message(static_cast<const uint8_t*>(buffer_.data() + kLengthPrefixBytes),
                    frame_bytes - kLengthPrefixBytes)) {
      buffer_.insert(buffer_.end(), data, data + len);
      is_paused_ = true;
      return FrameResult::kPaused;
    }
    internal::ResetFrameBuffer(&buffer_);
  }
  // Whole messages inside the chunk are handed out in place.
  while (len >= kLengthPrefixBytes) {
    const size_t message_bytes = base::LoadBigEndian16(data);
    if (message_bytes == 0) {
      Clear();
      return FrameResult::kZeroLength;
    }
    if (len - kLengthPrefixBytes < message_bytes) {
      break;
    }
    if (!on_message(static_cast<const uint8_t*>(data + kLengthPrefixBytes), message_bytes)) {
      buffer_.insert(buffer_.end(), data, data + len);
      is_paused_ = true;
      return FrameResult::kPaused;
    }
    data += kLengthPrefixBytes + message_bytes;
    len -= kLengthPrefixBytes + message_bytes;
  }
  if (len > 0) {
    if (len >= kLengthPrefixBytes) {
      buffer_.reserve(kLengthPrefixBytes + base::LoadBigEndian16(data));
    }
    buffer_.insert(buffer_.end(), data, data + len);
  }
  return FrameResult::kOk;
}

template <typename Fn>
FrameResult FrameReader::Resume(Fn&& on_message) {
  if (!is_paused_) {
    return FrameResult::kOk;
  }
  is_paused_ = false;
  return Drain(on_message);
}

template <typename Fn>
FrameResult FrameReader::Drain(Fn&& on_message) {
  using internal::kLengthPrefixBytes;
  while (buffered() >= kLengthPrefixBytes) {
    const uint8_t* frame = buffer_.data() + consumed_;
    const size_t message_bytes = base::LoadBigEndian16(frame);
    if (message_bytes == 0) {
      Clear();
      return FrameResult::kZeroLength;
    }
    if (buffered() - kLengthPrefixBytes < message_bytes) {
      break;
    }
    if (!on_message(static_cast<const uint8_t*>(frame + kLengthPrefixBytes), message_bytes)) {
      is_paused_ = true;
      return FrameResult::kPaused;
    }
    consumed_ += kLengthPrefixBytes + message_bytes;
  }
  // Restore the invariant: the partial message (if any) moves to the front.
  if (buffered() == 0) {
    internal::ResetFrameBuffer(&buffer_);
    consumed_ = 0;
  } else if (buffer_.capacity() > internal::kFrameBufferKeepBytes) {
    buffer_ =
        std::vector<uint8_t>(buffer_.begin() + static_cast<ptrdiff_t>(consumed_), buffer_.end());
    consumed_ = 0;
  } else if (consumed_ > 0) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<ptrdiff_t>(consumed_));
    consumed_ = 0;
  }
  return FrameResult::kOk;
}

}  // namespace dotproxy::dns

#endif  // DOTPROXY_DNS_TCP_FRAMING_INL_H_
