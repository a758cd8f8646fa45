// File: metrics/catalog.h
//
// Every metric dotproxy exports, as tables: its statsd name (after "dotproxy."; the Go original's
// name where one applies), its Prometheus name, type, label and how to read it from a shard's
// block. The snapshot, the statsd lines, the Prometheus families and the README all follow these
// tables, so a metric is added in one place. Read only by the reporter thread.
#ifndef DOTPROXY_METRICS_CATALOG_H_
#define DOTPROXY_METRICS_CATALOG_H_

#include <cstdint>
#include <span>

#include "base/histogram.h"
#include "metrics/counters.h"
#include "upstream/counters.h"

namespace dotproxy::metrics {

enum class MetricType : uint8_t {
  kCounter,        // events: statsd |c with the delta since the last flush; Prometheus counter
  kGauge,          // a level summed over shards
  kShardGauge,     // a level reported per shard (label/tag shard="N")
  kShardFraction,  // per-server flag: the fraction of shards where it is 1 (upstream up)
};

struct Label {
  const char* key = nullptr;  // null: no label
  const char* value = nullptr;
};

// A value of one shard's block (ShardCounters) or of one server's block within it.
struct ShardMetric {
  const char* statsd;      // "event.client.cx_read": sent as dotproxy.event.client.cx_read
  const char* prometheus;  // "dotproxy_queries_total"; null: statsd only
  MetricType type;
  Label label;
  uint64_t (*read)(const ShardCounters&);
  const char* help;        // null: same family as the row before
  bool is_sparse = false;  // Prometheus leaves the row out while it is 0 (most RCODEs)
};

struct ServerMetric {
  const char* statsd;
  const char* prometheus;
  MetricType type;
  Label label;
  uint64_t (*read)(const upstream::ServerCounters&);
  const char* help;
};

enum class Unit : uint8_t { kMicroseconds, kBytes, kCount };

struct HistogramMetric {
  const char* statsd;      // sent as individual timings (|ms), sampled at sample_rate
  const char* prometheus;  // a Prometheus histogram (_seconds, _bytes or a plain count)
  Unit unit;
  const base::Histogram& (*get)(const ShardCounters&);
  const char* help;
};

struct ServerHistogramMetric {
  const char* statsd;
  const char* prometheus;
  Unit unit;
  const base::Histogram& (*get)(const upstream::ServerCounters&);
  const char* help;
};

std::span<const ShardMetric> ShardMetrics();
std::span<const ServerMetric> ServerMetrics();
std::span<const HistogramMetric> HistogramMetrics();
std::span<const ServerHistogramMetric> ServerHistogramMetrics();

// The upper bounds (in the metric's unit) of the Prometheus buckets of a histogram in `unit`.
std::span<const uint64_t> PrometheusBounds(Unit unit);

// "NOERROR", "SERVFAIL"... for RCODE 0..15.
const char* RcodeName(int rcode);

}  // namespace dotproxy::metrics

#endif  // DOTPROXY_METRICS_CATALOG_H_
