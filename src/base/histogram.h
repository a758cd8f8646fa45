// File: base/histogram.h
//
// Histogram: a fixed-memory log-linear histogram of non-negative integers (HdrHistogram-style),
// written by one thread and read by another, like base::Counter. Values below 128 have a bucket
// each; above, every power of two is split into 64 equal buckets, so a bucket's width is at most
// 1/64 of its lower bound: any percentile read back is within 1.6 % of the true value. Values of
// 2^32 and more land in the last bucket. Recording is three relaxed load/store pairs, no lock.
//
//   histogram.Record(latency_us);                 // shard thread
//   HistogramSnapshot s; histogram.AddTo(&s);     // reporter thread
//   s.Percentile(0.99);
#ifndef DOTPROXY_BASE_HISTOGRAM_H_
#define DOTPROXY_BASE_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace dotproxy::base {

inline constexpr int kHistogramSubBits = 6;                            // 64 buckets per octave
inline constexpr uint64_t kHistogramLinear = 2u << kHistogramSubBits;  // 0..127 exact
inline constexpr int kHistogramMaxBits = 32;                           // values < 2^32
inline constexpr size_t kHistogramBuckets =
    kHistogramLinear + (kHistogramMaxBits - kHistogramSubBits - 1) * (1u << kHistogramSubBits);

// The bucket of `value`.
constexpr size_t HistogramBucket(uint64_t value) {
  if (value < kHistogramLinear) {
    return static_cast<size_t>(value);
  }
  const int msb = 63 - std::countl_zero(value);  // >= kHistogramSubBits + 1
  if (msb >= kHistogramMaxBits) {
    return kHistogramBuckets - 1;
  }
  const int shift = msb - kHistogramSubBits;
  const uint64_t sub = (value >> shift) - (1u << kHistogramSubBits);  // 0..63
  return kHistogramLinear +
         static_cast<size_t>(msb - kHistogramSubBits - 1) * (1u << kHistogramSubBits) +
         static_cast<size_t>(sub);
}

// The smallest value that falls in `bucket`.
constexpr uint64_t HistogramBucketLow(size_t bucket) {
  if (bucket < kHistogramLinear) {
    return bucket;
  }
  const size_t octave = (bucket - kHistogramLinear) >> kHistogramSubBits;  // 0 = [128, 256)
  const uint64_t sub = (bucket - kHistogramLinear) & ((1u << kHistogramSubBits) - 1);
  const int shift = static_cast<int>(octave) + 1;
  return ((1u << kHistogramSubBits) + sub) << shift;
}

// The largest value that falls in `bucket` (the last bucket also holds everything above).
constexpr uint64_t HistogramBucketHigh(size_t bucket) {
  return bucket + 1 < kHistogramBuckets ? HistogramBucketLow(bucket + 1) - 1
                                        : (uint64_t{1} << kHistogramMaxBits) - 1;
}

// A plain copy (or a sum of copies) of histograms, for the reader's side.
struct HistogramSnapshot {
  std::array<uint64_t, kHistogramBuckets> buckets{};
  uint64_t count = 0;
  uint64_t sum = 0;

  void Add(const HistogramSnapshot& other);
  // this - earlier, bucket by bucket (earlier must be an older snapshot of the same histograms).
  HistogramSnapshot Minus(const HistogramSnapshot& earlier) const;
  // The value at quantile q in [0, 1] (the middle of its bucket), 0 when empty.
  uint64_t Percentile(double q) const;
  // How many values are <= `value`, counting only whole buckets that end at or below it.
  uint64_t CountAtOrBelow(uint64_t value) const;
};

class Histogram {
 public:
  Histogram() = default;
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Single writer only.
  void Record(uint64_t value) {
    Bump(buckets_[HistogramBucket(value)], 1);
    Bump(count_, 1);
    Bump(sum_, value);
  }
  // Any thread: adds the current contents to *snapshot.
  void AddTo(HistogramSnapshot* snapshot) const;

 private:
  static void Bump(std::atomic<uint64_t>& cell, uint64_t n) {
    cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  std::array<std::atomic<uint64_t>, kHistogramBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
};

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_HISTOGRAM_H_
