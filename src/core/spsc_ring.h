// File: core/spsc_ring.h
//
// SpscByteRing is a lock-free single-producer/single-consumer queue of variable-length byte
// records in one fixed buffer: no allocation and no lock after construction. One thread writes,
// one other thread reads; positions are 64-bit byte counters that never wrap.
//
//   SpscByteRing ring(128 * 1024);              // capacity: a power of two, >= 2 * kMaxRecord
//   if (uint8_t* p = ring.BeginWrite(n)) {       // producer: room for n contiguous bytes?
//     memcpy(p, data, n);
//     ring.CommitWrite(n);                       // publishes the record
//   }
//   std::span<const uint8_t> r = ring.Peek();    // consumer: the oldest record, or empty
//   ... use r ...; ring.Pop();
//
// A record is an 8-byte header (its length) and its bytes, padded to 8. A record that does not
// fit before the end of the buffer is written at its start, after a wrap marker, so every record
// is contiguous. A full ring refuses the write (BeginWrite returns null): the caller keeps the
// data and tries again later.
#ifndef DOTPROXY_CORE_SPSC_RING_H_
#define DOTPROXY_CORE_SPSC_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "absl/base/optimization.h"

namespace dotproxy::core {

class SpscByteRing {
 public:
  static constexpr size_t kHeaderSize = 8;
  static constexpr size_t kAlign = 8;

  // `capacity`: a power of two, in bytes. The largest record is capacity / 2 - kHeaderSize.
  explicit SpscByteRing(size_t capacity)
      : capacity_(capacity), buffer_(new uint8_t[capacity]) {}
  SpscByteRing(const SpscByteRing&) = delete;
  SpscByteRing& operator=(const SpscByteRing&) = delete;

  size_t capacity() const { return capacity_; }
  size_t max_record() const { return capacity_ / 2 - kHeaderSize; }

  // Producer: a contiguous space of `len` bytes for the next record, or null when the ring has
  // no room now (or len > max_record()). Nothing is visible to the consumer before CommitWrite.
  uint8_t* BeginWrite(size_t len) {
    if (len > max_record()) {
      return nullptr;
    }
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    const size_t offset = tail & (capacity_ - 1);
    const size_t need = kHeaderSize + Padded(len);
    // A record never straddles the end: skip the rest of the buffer when it would.
    const size_t skip = offset + need > capacity_ ? capacity_ - offset : 0;
    if (tail + skip + need - cached_head_ > capacity_) {
      cached_head_ = head_.load(std::memory_order_acquire);
      if (tail + skip + need - cached_head_ > capacity_) {
        return nullptr;
      }
    }
    pending_skip_ = skip;
    const size_t at = skip > 0 ? 0 : offset;
    return buffer_.get() + at + kHeaderSize;
  }
  // Producer: publishes the record of `len` bytes written after BeginWrite(len).
  void CommitWrite(size_t len) {
    uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (pending_skip_ > 0) {
      StoreHeader(tail & (capacity_ - 1), kWrapMarker);
      tail += pending_skip_;
      pending_skip_ = 0;
    }
    StoreHeader(tail & (capacity_ - 1), len);
    tail_.store(tail + kHeaderSize + Padded(len), std::memory_order_release);
  }
  // Producer: BeginWrite + copy + CommitWrite; false when full.
  bool TryPush(std::span<const uint8_t> a, std::span<const uint8_t> b = {}) {
    uint8_t* p = BeginWrite(a.size() + b.size());
    if (p == nullptr) {
      return false;
    }
    memcpy(p, a.data(), a.size());
    if (!b.empty()) {
      memcpy(p + a.size(), b.data(), b.size());
    }
    CommitWrite(a.size() + b.size());
    return true;
  }

  // Consumer: the oldest record, or an empty span when there is none. Stays valid until Pop().
  std::span<const uint8_t> Peek() {
    uint64_t head = head_.load(std::memory_order_relaxed);
    if (head == cached_tail_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (head == cached_tail_) {
        return {};
      }
    }
    uint64_t len = LoadHeader(head & (capacity_ - 1));
    if (len == kWrapMarker) {
      head += capacity_ - (head & (capacity_ - 1));
      len = LoadHeader(0);
    }
    peeked_head_ = head;
    return {buffer_.get() + (head & (capacity_ - 1)) + kHeaderSize, static_cast<size_t>(len)};
  }
  // Consumer: frees the record Peek() returned, making its bytes available to the producer.
  void Pop() {
    const uint64_t len = LoadHeader(peeked_head_ & (capacity_ - 1));
    head_.store(peeked_head_ + kHeaderSize + Padded(len), std::memory_order_release);
  }

 private:
  static constexpr uint64_t kWrapMarker = ~uint64_t{0};
  static size_t Padded(size_t len) { return (len + kAlign - 1) & ~(kAlign - 1); }
  void StoreHeader(size_t offset, uint64_t value) { memcpy(buffer_.get() + offset, &value, 8); }
  uint64_t LoadHeader(size_t offset) const {
    uint64_t value;
    memcpy(&value, buffer_.get() + offset, 8);
    return value;
  }

  const size_t capacity_;
  std::unique_ptr<uint8_t[]> buffer_;
  // The consumer's side and the producer's side each on their own cache line.
  alignas(64) std::atomic<uint64_t> head_{0};  // written by the consumer
  uint64_t cached_tail_ = 0;                   // consumer's copy of tail_
  uint64_t peeked_head_ = 0;                   // consumer: the record Peek() returned
  alignas(64) std::atomic<uint64_t> tail_{0};  // written by the producer
  uint64_t cached_head_ = 0;                   // producer's copy of head_
  size_t pending_skip_ = 0;                    // producer: BeginWrite asked for a wrap
};

}  // namespace dotproxy::core

#endif  // DOTPROXY_CORE_SPSC_RING_H_
