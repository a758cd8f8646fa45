#include "metrics/snapshot.h"

#include <algorithm>
#include <cstring>

#include "metrics/catalog.h"

namespace dotproxy::metrics {

uint64_t Snapshot::Server(uint32_t id, size_t metric) const {
  return id < server_ids ? server[id * ServerMetrics().size() + metric] : 0;
}

const base::HistogramSnapshot& Snapshot::ServerHistogram(uint32_t id, size_t metric) const {
  static const base::HistogramSnapshot kEmpty;
  return id < server_ids ? server_histograms[id * ServerHistogramMetrics().size() + metric]
                         : kEmpty;
}

Snapshot TakeSnapshot(std::span<const ShardCounters* const> shards, int64_t time_ns) {
  const auto shard_metrics = ShardMetrics();
  const auto server_metrics = ServerMetrics();
  const auto histograms = HistogramMetrics();
  const auto server_histograms = ServerHistogramMetrics();
  Snapshot s;
  s.time_ns = time_ns;
  s.shard_count = static_cast<uint32_t>(shards.size());
  for (const ShardCounters* c : shards) {
    s.server_ids = std::max(s.server_ids, c->upstream.id_limit());
  }
  s.shard.assign(shard_metrics.size(), 0);
  s.per_shard.assign(shards.size() * shard_metrics.size(), 0);
  s.server.assign(s.server_ids * server_metrics.size(), 0);
  s.histograms.resize(histograms.size());
  s.server_histograms.resize(s.server_ids * server_histograms.size());
  for (size_t i = 0; i < shards.size(); ++i) {
    const ShardCounters& c = *shards[i];
    for (size_t m = 0; m < shard_metrics.size(); ++m) {
      const uint64_t v = shard_metrics[m].read(c);
      s.per_shard[i * shard_metrics.size() + m] = v;
      s.shard[m] += v;
    }
    for (size_t m = 0; m < histograms.size(); ++m) {
      histograms[m].get(c).AddTo(&s.histograms[m]);
    }
    for (uint32_t sv = 0; sv < s.server_ids; ++sv) {
      const upstream::ServerCounters* block = c.upstream.Find(sv);
      if (block == nullptr) {
        continue;  // reserved in another shard first (a reload going on)
      }
      const upstream::ServerCounters& sc = *block;
      for (size_t m = 0; m < server_metrics.size(); ++m) {
        s.server[sv * server_metrics.size() + m] += server_metrics[m].read(sc);
      }
      for (size_t m = 0; m < server_histograms.size(); ++m) {
        server_histograms[m].get(sc).AddTo(&s.server_histograms[sv * server_histograms.size() + m]);
      }
    }
  }
  return s;
}

int FindShardMetric(const char* statsd, const char* label_value) {
  const auto metrics = ShardMetrics();
  for (size_t m = 0; m < metrics.size(); ++m) {
    const bool label_ok =
        label_value == nullptr
            ? metrics[m].label.value == nullptr
            : metrics[m].label.value != nullptr && strcmp(metrics[m].label.value, label_value) == 0;
    if (strcmp(metrics[m].statsd, statsd) == 0 && label_ok) {
      return static_cast<int>(m);
    }
  }
  return -1;
}

}  // namespace dotproxy::metrics
