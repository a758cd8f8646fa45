// File: metrics/statsd_format.h
//
// The statsd wire format, from two snapshots: counters as deltas (|c, only when non-zero),
// gauges (|g), histograms as individual timings (|ms, sampled at sample_rate with |@rate) plus
// per-upstream p50/p90/p99 gauges. Tags in the Go original's influx style
// (dotproxy.name,k=v,k=v:1|c) or DogStatsD (dotproxy.name:1|c|#k:v,k:v), sorted by key, values
// URL-query-escaped as the original did. Lines are packed into payloads of at most 1,432 bytes
// (one UDP datagram each). Pure functions; the reporter thread calls them.
#ifndef DOTPROXY_METRICS_STATSD_FORMAT_H_
#define DOTPROXY_METRICS_STATSD_FORMAT_H_

#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "config/config.h"
#include "metrics/snapshot.h"

namespace dotproxy::metrics {

// Fits an Ethernet MTU of 1,500 with IPv6 and UDP headers and some tunnel overhead.
inline constexpr size_t kMaxDatagramBytes = 1432;
inline constexpr char kStatsdPrefix[] = "dotproxy.";

using Tag = std::pair<std::string, std::string>;

struct StatsdOptions {
  config::StatsdTagFormat format = config::StatsdTagFormat::kInflux;
  double sample_rate = 1.0;  // of individual timings
  std::string version;       // sent as the tag version=..., as the original did
  // At most this many timing lines per histogram per flush; above it the rate is lowered (and
  // |@rate says so), so a busy proxy never floods its statsd server.
  size_t max_timings = 2000;
};

// Go's url.QueryEscape: [A-Za-z0-9-_.~] kept, ' ' as '+', the rest %XX.
std::string EscapeTagValue(absl::string_view value);

// One line, no newline. `tags` are sorted here; `rate` < 1 appends |@rate.
std::string FormatLine(config::StatsdTagFormat format, absl::string_view name,
                       std::vector<Tag> tags, absl::string_view value, absl::string_view type,
                       double rate);

// Lines joined with '\n' (each line ends with one) into payloads of at most `max_bytes`; a line
// longer than that goes alone.
std::vector<std::string> PackLines(std::span<const std::string> lines,
                                   size_t max_bytes = kMaxDatagramBytes);

// Every line for the interval prev -> cur. Per-upstream lines for exactly `servers`, tagged
// addr=<its host>, deltas taken per metrics id (a server added since prev counts from zero; one
// added back continues from its last value).
std::vector<std::string> StatsdLines(const Snapshot& prev, const Snapshot& cur,
                                     std::span<const PublishedServer> servers,
                                     const StatsdOptions& options);

}  // namespace dotproxy::metrics

#endif  // DOTPROXY_METRICS_STATSD_FORMAT_H_
