// File: bench/load/histogram.h
//
// LatencyHistogram is a log-linear (HDR-style) histogram of nanosecond latencies: 64 linear
// sub-buckets per power of two, so any recorded value is reported within 1/64 (1.6 %) of its true
// value, from 1 ns to beyond 10 s, in 30 KiB and O(1) per Record. Single-threaded; merge the
// per-thread histograms afterwards.
#ifndef DOTPROXY_BENCH_LOAD_HISTOGRAM_H_
#define DOTPROXY_BENCH_LOAD_HISTOGRAM_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dotproxy::bench {

class LatencyHistogram {
 public:
  LatencyHistogram();

  void Record(int64_t nanos);
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  int64_t min_ns() const { return count_ == 0 ? 0 : min_ns_; }
  int64_t max_ns() const { return max_ns_; }
  double mean_ns() const { return count_ == 0 ? 0 : static_cast<double>(sum_ns_) / count_; }
  // The value below which a fraction `q` (0..1) of the samples fall: the middle of the bucket
  // holding the sample of rank ceil(q * count), clamped to [min, max]. 0 when empty.
  int64_t Percentile(double q) const;
  // One "upper_bound_us cumulative_fraction" line per non-empty bucket, for CDF plots.
  std::string CdfText() const;

 private:
  static constexpr int kSubBucketBits = 6;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  static constexpr size_t kBucketCount = static_cast<size_t>(kSubBuckets) * (64 - kSubBucketBits);

  static size_t BucketOf(uint64_t value);
  static uint64_t BucketLow(size_t bucket);
  static uint64_t BucketHigh(size_t bucket);  // exclusive

  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  int64_t min_ns_ = INT64_MAX;
  int64_t max_ns_ = 0;
  uint64_t sum_ns_ = 0;
};

}  // namespace dotproxy::bench

#endif  // DOTPROXY_BENCH_LOAD_HISTOGRAM_H_
