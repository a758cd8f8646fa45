#include "base/histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "base/counter.h"
#include "gtest/gtest.h"

namespace dotproxy::base {
namespace {

TEST(HistogramTest, BucketsCoverEveryValueInOrder) {
  EXPECT_EQ(HistogramBucket(0), 0u);
  EXPECT_EQ(HistogramBucket(127), 127u);
  EXPECT_EQ(HistogramBucket(128), 128u);
  EXPECT_EQ(HistogramBucket(uint64_t{1} << 40), kHistogramBuckets - 1);
  for (size_t b = 0; b + 1 < kHistogramBuckets; ++b) {
    EXPECT_EQ(HistogramBucketHigh(b) + 1, HistogramBucketLow(b + 1)) << b;
    EXPECT_EQ(HistogramBucket(HistogramBucketLow(b)), b) << b;
    EXPECT_EQ(HistogramBucket(HistogramBucketHigh(b)), b) << b;
    // Log-linear: a bucket is at most 1/64 of its lower bound wide.
    if (HistogramBucketLow(b) >= 128) {
      EXPECT_LE(static_cast<double>(HistogramBucketHigh(b) - HistogramBucketLow(b) + 1),
                static_cast<double>(HistogramBucketLow(b)) / 64.0)
          << b;
    }
  }
}

// Percentiles against a sorted copy of the same values (nearest rank), for several
// distributions: within 2 % of the true value.
TEST(HistogramTest, PercentilesWithinTwoPercentOfBruteForce) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> lognormal(7.0, 1.5);    // latencies in us: ~1 ms, long tail
  std::uniform_int_distribution<uint64_t> uniform(0, 70000);  // sizes
  std::exponential_distribution<double> exponential(1.0 / 300);
  for (int dist = 0; dist < 3; ++dist) {
    Histogram h;
    std::vector<uint64_t> values;
    for (int i = 0; i < 100000; ++i) {
      uint64_t v = dist == 0   ? static_cast<uint64_t>(lognormal(rng))
                   : dist == 1 ? uniform(rng)
                               : static_cast<uint64_t>(exponential(rng));
      values.push_back(v);
      h.Record(v);
    }
    std::sort(values.begin(), values.end());
    HistogramSnapshot s;
    h.AddTo(&s);
    EXPECT_EQ(s.count, values.size());
    for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0}) {
      const size_t rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * values.size())));
      const double truth = static_cast<double>(values[rank - 1]);
      const double got = static_cast<double>(s.Percentile(q));
      EXPECT_LE(std::abs(got - truth), std::max(1.0, 0.02 * truth))
          << "distribution " << dist << " q " << q << " truth " << truth << " got " << got;
    }
  }
}

TEST(HistogramTest, SnapshotsAddAndSubtract) {
  Histogram a;
  Histogram b;
  a.Record(10);
  b.Record(1000);
  HistogramSnapshot first;
  a.AddTo(&first);
  b.AddTo(&first);
  EXPECT_EQ(first.count, 2u);
  EXPECT_EQ(first.sum, 1010u);
  a.Record(5000);
  HistogramSnapshot second;
  a.AddTo(&second);
  b.AddTo(&second);
  const HistogramSnapshot delta = second.Minus(first);
  EXPECT_EQ(delta.count, 1u);
  EXPECT_EQ(delta.sum, 5000u);
  EXPECT_NEAR(static_cast<double>(delta.Percentile(0.5)), 5000, 5000 * 0.02);
  EXPECT_EQ(second.CountAtOrBelow(10), 1u);
  EXPECT_EQ(second.CountAtOrBelow(4096), 2u);
  EXPECT_EQ(HistogramSnapshot{}.Percentile(0.99), 0u);
}

TEST(CounterTest, CountsAndReads) {
  Counter c;
  ++c;
  ++c;
  c += 40;
  EXPECT_EQ(c.value(), 42u);
  Gauge g;
  g.Set(7);
  EXPECT_EQ(g.value(), 7u);
}

}  // namespace
}  // namespace dotproxy::base
