// File: metrics/snapshot.h
//
// Snapshot: every metric of the catalog read from all shards' blocks at one instant (relaxed
// loads; each value is whole, values are not mutually consistent to the query, which is fine for
// metrics), summed over shards and kept per shard where the catalog says so. Two snapshots give
// deltas, rates and interval percentiles. Built and read on the reporter thread only.
#ifndef DOTPROXY_METRICS_SNAPSHOT_H_
#define DOTPROXY_METRICS_SNAPSHOT_H_

#include <cstdint>
#include <span>
#include <vector>

#include "base/histogram.h"
#include "metrics/counters.h"

namespace dotproxy::metrics {

struct Snapshot {
  int64_t time_ns = 0;
  uint32_t shard_count = 0;
  uint32_t server_count = 0;
  std::vector<uint64_t> shard;      // [ShardMetrics() index], summed over shards
  std::vector<uint64_t> per_shard;  // [shard * ShardMetrics().size() + index]
  std::vector<uint64_t> server;     // [server * ServerMetrics().size() + index], summed
  std::vector<base::HistogramSnapshot> histograms;         // [HistogramMetrics() index]
  std::vector<base::HistogramSnapshot> server_histograms;  // [server * n + index]

  uint64_t Server(uint32_t server_index, size_t metric) const;
  const base::HistogramSnapshot& ServerHistogram(uint32_t server_index, size_t metric) const;
};

// Reads every shard's block. `shards` must stay valid, each with `server_count` servers.
Snapshot TakeSnapshot(std::span<const ShardCounters* const> shards, uint32_t server_count,
                      int64_t time_ns);

// Index of the shard metric whose statsd name and label value are these; -1 if none (used by
// the summary log and tests).
int FindShardMetric(const char* statsd, const char* label_value);

}  // namespace dotproxy::metrics

#endif  // DOTPROXY_METRICS_SNAPSHOT_H_
