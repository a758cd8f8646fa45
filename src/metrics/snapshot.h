// File: metrics/snapshot.h
//
// Snapshot: every metric of the catalog read from all shards' blocks at one instant (relaxed
// loads; each value is whole, values are not mutually consistent to the query, which is fine for
// metrics), summed over shards and kept per shard where the catalog says so. Per-server values
// are kept by metrics id (ServerConfig::metrics_id) for every id any shard has a block for, so
// two snapshots give each server's deltas, rates and interval percentiles whatever reloads did
// to the server list in between. Built and read on the reporter thread only.
#ifndef DOTPROXY_METRICS_SNAPSHOT_H_
#define DOTPROXY_METRICS_SNAPSHOT_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/histogram.h"
#include "metrics/counters.h"

namespace dotproxy::metrics {

// A server of the current configuration, as published: its metrics id and its labels.
struct PublishedServer {
  uint32_t id = 0;   // ServerConfig::metrics_id
  std::string name;  // Prometheus label upstream="...": addr as configured
  std::string host;  // statsd addr tag: the IP, as the original sent it
};

struct Snapshot {
  int64_t time_ns = 0;
  uint32_t shard_count = 0;
  uint32_t server_ids = 0;          // per-server values exist for ids 0 .. server_ids - 1
  std::vector<uint64_t> shard;      // [ShardMetrics() index], summed over shards
  std::vector<uint64_t> per_shard;  // [shard * ShardMetrics().size() + index]
  std::vector<uint64_t> server;     // [id * ServerMetrics().size() + index], summed
  std::vector<base::HistogramSnapshot> histograms;         // [HistogramMetrics() index]
  std::vector<base::HistogramSnapshot> server_histograms;  // [id * n + index]

  // Server `id`'s value; 0 (an empty histogram) for an id this snapshot has no block of.
  uint64_t Server(uint32_t id, size_t metric) const;
  const base::HistogramSnapshot& ServerHistogram(uint32_t id, size_t metric) const;
};

// Reads every shard's block, and every server block they have. `shards` must stay valid.
Snapshot TakeSnapshot(std::span<const ShardCounters* const> shards, int64_t time_ns);

// Index of the shard metric whose statsd name and label value are these; -1 if none (used by
// the summary log and tests).
int FindShardMetric(const char* statsd, const char* label_value);

}  // namespace dotproxy::metrics

#endif  // DOTPROXY_METRICS_SNAPSHOT_H_
