#include "bench/load/histogram.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace dotproxy::bench {

LatencyHistogram::LatencyHistogram() : buckets_(kBucketCount, 0) {}

// Values below 64 get one bucket each; above, bucket = (exponent block, top 6 bits after the
// leading one).
size_t LatencyHistogram::BucketOf(uint64_t value) {
  if (value < static_cast<uint64_t>(kSubBuckets)) {
    return static_cast<size_t>(value);
  }
  const int msb = 63 - __builtin_clzll(value);
  const int shift = msb - kSubBucketBits;
  const uint64_t sub = (value >> shift) - kSubBuckets;
  return static_cast<size_t>(shift + 1) * kSubBuckets + static_cast<size_t>(sub);
}

uint64_t LatencyHistogram::BucketLow(size_t bucket) {
  if (bucket < static_cast<size_t>(kSubBuckets)) {
    return bucket;
  }
  const int shift = static_cast<int>(bucket / kSubBuckets) - 1;
  const uint64_t sub = bucket % kSubBuckets;
  return (kSubBuckets + sub) << shift;
}

uint64_t LatencyHistogram::BucketHigh(size_t bucket) {
  if (bucket < static_cast<size_t>(kSubBuckets)) {
    return bucket + 1;
  }
  const int shift = static_cast<int>(bucket / kSubBuckets) - 1;
  return BucketLow(bucket) + (uint64_t{1} << shift);
}

void LatencyHistogram::Record(int64_t nanos) {
  const uint64_t v = nanos < 0 ? 0 : static_cast<uint64_t>(nanos);
  ++buckets_[std::min(BucketOf(v), kBucketCount - 1)];
  ++count_;
  sum_ns_ += v;
  min_ns_ = std::min<int64_t>(min_ns_, static_cast<int64_t>(v));
  max_ns_ = std::max<int64_t>(max_ns_, static_cast<int64_t>(v));
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBucketCount; ++i) {
    buckets_[i] += other.buckets_[i];
  }
  count_ += other.count_;
  sum_ns_ += other.sum_ns_;
  min_ns_ = std::min(min_ns_, other.min_ns_);
  max_ns_ = std::max(max_ns_, other.max_ns_);
}

int64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) {
    return 0;
  }
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBucketCount; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      const auto mid = static_cast<int64_t>((BucketLow(i) + BucketHigh(i) - 1) / 2);
      return std::clamp(mid, min_ns(), max_ns_);
    }
  }
  return max_ns_;
}

std::string LatencyHistogram::CdfText() const {
  std::string out;
  uint64_t seen = 0;
  for (size_t i = 0; i < kBucketCount && seen < count_; ++i) {
    if (buckets_[i] == 0) {
      continue;
    }
    seen += buckets_[i];
    const double high_us =
        static_cast<double>(std::min<uint64_t>(BucketHigh(i), static_cast<uint64_t>(max_ns_))) /
        1000.0;
    absl::StrAppendFormat(&out, "%.3f %.6f\n", high_us,
                          static_cast<double>(seen) / static_cast<double>(count_));
  }
  return out;
}

}  // namespace dotproxy::bench
