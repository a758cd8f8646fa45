// File: dns/tcp_framing.h
//
// The 2-byte length prefix of DNS over TCP and TLS (RFC 1035 §4.2.2, RFC 7858 §3.3). FrameReader
// turns a byte stream split anywhere (one byte at a time, or many messages per segment) into whole
// messages. Complete messages inside the fed chunk are handed out in place, without copying; only a
// message that straddles chunks is copied into the reader's own buffer.
//
//   FrameReader reader;
//   auto result = reader.Feed(data, n, [&](const uint8_t* msg, size_t len) {
//     return Handle(msg, len);   // true: consumed; false: stop, keep it (and the rest) buffered
//   });
//   ...later, when there is room again:  reader.Resume(handler);
#ifndef DOTPROXY_DNS_TCP_FRAMING_H_
#define DOTPROXY_DNS_TCP_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace dotproxy::dns {

enum class FrameResult : uint8_t {
  kOk,          // every complete message was handed out; a partial one may be buffered
  kPaused,      // the handler returned false; unconsumed bytes are buffered, call Resume later
  kZeroLength,  // a frame with length 0 was seen: a protocol error, the stream should be closed
};

class FrameReader {
 public:
  FrameReader() = default;

  // Appends `len` bytes of stream and calls on_message(const uint8_t*, size_t) -> bool for each
  // complete message, in order. Must not be called while paused (use Resume first).
  template <typename Fn>
  FrameResult Feed(const uint8_t* data, size_t len, Fn&& on_message);

  // Continues after kPaused with the buffered bytes only.
  template <typename Fn>
  FrameResult Resume(Fn&& on_message);

  bool is_paused() const { return is_paused_; }
  // Bytes held back: a partial message, or everything after a pause.
  size_t buffered() const { return buffer_.size() - consumed_; }
  // True when a message has started (at least one prefix byte) but is not complete.
  bool has_partial() const { return buffered() > 0 && !is_paused_; }
  // The bytes of the started but incomplete message, after its length prefix; empty when none
  // have arrived yet (or while paused). Valid until the next Feed or Clear.
  std::span<const uint8_t> partial_message() const {
    if (is_paused_ || buffered() <= 2) {
      return {};
    }
    return {buffer_.data() + consumed_ + 2, buffered() - 2};
  }
  // Drops all buffered bytes and frees the buffer's memory.
  void Clear();

 private:
  template <typename Fn>
  FrameResult Drain(Fn&& on_message);

  std::vector<uint8_t> buffer_;  // held-back bytes; [consumed_, size()) are live
  size_t consumed_ = 0;
  bool is_paused_ = false;
};

// Writes the 2-byte prefix for a message of `len` (<= 65535) bytes.
void WriteLengthPrefix(uint8_t* out, size_t len);

}  // namespace dotproxy::dns

#include "dns/tcp_framing_inl.h"  // IWYU pragma: keep

#endif  // DOTPROXY_DNS_TCP_FRAMING_H_
