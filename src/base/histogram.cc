#include "base/histogram.h"

namespace dotproxy::base {

void HistogramSnapshot::Add(const HistogramSnapshot& other) {
  for (size_t i = 0; i < kHistogramBuckets; ++i) {
    buckets[i] += other.buckets[i];
  }
  count += other.count;
  sum += other.sum;
}

HistogramSnapshot HistogramSnapshot::Minus(const HistogramSnapshot& earlier) const {
  HistogramSnapshot d;
  for (size_t i = 0; i < kHistogramBuckets; ++i) {
    d.buckets[i] = buckets[i] - earlier.buckets[i];
  }
  d.count = count - earlier.count;
  d.sum = sum - earlier.sum;
  return d;
}

uint64_t HistogramSnapshot::Percentile(double q) const {
  uint64_t total = 0;
  for (uint64_t n : buckets) {
    total += n;
  }
  if (total == 0) {
    return 0;
  }
  q = q < 0 ? 0 : (q > 1 ? 1 : q);
  // The rank of the value wanted, 1-based: ceil(q * total), at least 1 (nearest-rank method).
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total));
  if (static_cast<double>(rank) < q * static_cast<double>(total)) {
    ++rank;
  }
  rank = rank == 0 ? 1 : rank;
  uint64_t seen = 0;
  for (size_t i = 0; i < kHistogramBuckets; ++i) {
    seen += buckets[i];
    if (seen >= rank) {
      const uint64_t low = HistogramBucketLow(i);
      return low + (HistogramBucketHigh(i) - low) / 2;
    }
  }
  return HistogramBucketHigh(kHistogramBuckets - 1);
}

uint64_t HistogramSnapshot::CountAtOrBelow(uint64_t value) const {
  uint64_t n = 0;
  for (size_t i = 0; i < kHistogramBuckets && HistogramBucketHigh(i) <= value; ++i) {
    n += buckets[i];
  }
  return n;
}

void Histogram::AddTo(HistogramSnapshot* snapshot) const {
  for (size_t i = 0; i < kHistogramBuckets; ++i) {
    snapshot->buckets[i] += buckets_[i].load(std::memory_order_relaxed);
  }
  snapshot->count += count_.load(std::memory_order_relaxed);
  snapshot->sum += sum_.load(std::memory_order_relaxed);
}

}  // namespace dotproxy::base
