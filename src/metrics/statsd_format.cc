#include "metrics/statsd_format.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "metrics/catalog.h"

namespace dotproxy::metrics {
namespace {

constexpr double kQuantiles[] = {0.5, 0.9, 0.99};
constexpr const char* kQuantileNames[] = {"p50", "p90", "p99"};

std::string FormatValue(uint64_t value, Unit unit) {
  if (unit == Unit::kMicroseconds) {
    // statsd timers are in milliseconds; keep microsecond precision.
    return absl::StrFormat("%.3f", static_cast<double>(value) / 1000.0);
  }
  return absl::StrCat(value);
}

std::vector<Tag> WithLabel(std::vector<Tag> tags, const Label& label) {
  if (label.key != nullptr) {
    tags.emplace_back(label.key, label.value);
  }
  return tags;
}

// Individual timings reconstructed from the interval's histogram: each bucket's middle value as
// often as it was recorded, times the sampling rate (a running remainder keeps the total exact).
void AppendTimings(const base::HistogramSnapshot& delta, Unit unit, absl::string_view name,
                   const std::vector<Tag>& tags, const StatsdOptions& options,
                   std::vector<std::string>* lines) {
  if (delta.count == 0) {
    return;
  }
  double rate = options.sample_rate;
  if (static_cast<double>(delta.count) * rate > static_cast<double>(options.max_timings)) {
    rate = static_cast<double>(options.max_timings) / static_cast<double>(delta.count);
  }
  double carry = 0;
  for (size_t b = 0; b < base::kHistogramBuckets; ++b) {
    if (delta.buckets[b] == 0) {
      continue;
    }
    const double wanted = static_cast<double>(delta.buckets[b]) * rate + carry;
    const auto n = static_cast<uint64_t>(wanted);
    carry = wanted - static_cast<double>(n);
    if (n == 0) {
      continue;
    }
    const uint64_t low = base::HistogramBucketLow(b);
    const std::string line =
        FormatLine(options.format, name, tags,
                   FormatValue(low + (base::HistogramBucketHigh(b) - low) / 2, unit), "ms", rate);
    for (uint64_t i = 0; i < n; ++i) {
      lines->push_back(line);
    }
  }
}

}  // namespace

std::string EscapeTagValue(absl::string_view value) {
  std::string out;
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out;
}

std::string FormatLine(config::StatsdTagFormat format, absl::string_view name,
                       std::vector<Tag> tags, absl::string_view value, absl::string_view type,
                       double rate) {
  std::sort(tags.begin(), tags.end());
  std::string line = absl::StrCat(kStatsdPrefix, name);
  if (format == config::StatsdTagFormat::kInflux) {
    for (const Tag& tag : tags) {
      absl::StrAppend(&line, ",", tag.first, "=", EscapeTagValue(tag.second));
    }
  }
  absl::StrAppend(&line, ":", value, "|", type);
  if (rate < 1.0) {
    absl::StrAppendFormat(&line, "|@%g", rate);
  }
  if (format == config::StatsdTagFormat::kDogStatsd && !tags.empty()) {
    line += "|#";
    for (size_t i = 0; i < tags.size(); ++i) {
      absl::StrAppend(&line, i == 0 ? "" : ",", tags[i].first, ":", EscapeTagValue(tags[i].second));
    }
  }
  return line;
}

std::vector<std::string> PackLines(std::span<const std::string> lines, size_t max_bytes) {
  std::vector<std::string> payloads;
  std::string current;
  for (const std::string& line : lines) {
    if (!current.empty() && current.size() + line.size() + 1 > max_bytes) {
      payloads.push_back(std::move(current));
      current.clear();
    }
    absl::StrAppend(&current, line, "\n");
  }
  if (!current.empty()) {
    payloads.push_back(std::move(current));
  }
  return payloads;
}

std::vector<std::string> StatsdLines(const Snapshot& prev, const Snapshot& cur,
                                     std::span<const PublishedServer> servers,
                                     const StatsdOptions& options) {
  std::vector<std::string> lines;
  std::vector<std::string> timings;  // sent after every counter and gauge: they are the bulk
  const std::vector<Tag> base_tags = {{"version", options.version}};
  const auto shard_metrics = ShardMetrics();
  for (size_t m = 0; m < shard_metrics.size(); ++m) {
    const ShardMetric& metric = shard_metrics[m];
    const std::vector<Tag> tags = WithLabel(base_tags, metric.label);
    if (metric.type == MetricType::kCounter) {
      const uint64_t delta = cur.shard[m] - prev.shard[m];
      if (delta > 0) {
        lines.push_back(
            FormatLine(options.format, metric.statsd, tags, absl::StrCat(delta), "c", 1.0));
      }
    } else if (metric.type == MetricType::kShardGauge) {
      for (uint32_t i = 0; i < cur.shard_count; ++i) {
        std::vector<Tag> shard_tags = tags;
        shard_tags.emplace_back("shard", absl::StrCat(i));
        lines.push_back(FormatLine(options.format, metric.statsd, std::move(shard_tags),
                                   absl::StrCat(cur.per_shard[i * shard_metrics.size() + m]), "g",
                                   1.0));
      }
    } else {
      lines.push_back(
          FormatLine(options.format, metric.statsd, tags, absl::StrCat(cur.shard[m]), "g", 1.0));
    }
  }
  const auto server_metrics = ServerMetrics();
  const auto server_histograms = ServerHistogramMetrics();
  for (const PublishedServer& server : servers) {
    const uint32_t s = server.id;
    std::vector<Tag> server_tags = base_tags;
    server_tags.emplace_back("addr", server.host);
    server_tags.emplace_back("transport", "tcp");
    for (size_t m = 0; m < server_metrics.size(); ++m) {
      const ServerMetric& metric = server_metrics[m];
      const std::vector<Tag> tags = WithLabel(server_tags, metric.label);
      const uint64_t value = cur.Server(s, m);
      if (metric.type == MetricType::kCounter) {
        const uint64_t delta = value - prev.Server(s, m);
        if (delta > 0) {
          lines.push_back(
              FormatLine(options.format, metric.statsd, tags, absl::StrCat(delta), "c", 1.0));
        }
      } else if (metric.type == MetricType::kShardFraction) {
        const double fraction =
            cur.shard_count == 0 ? 0.0 : static_cast<double>(value) / cur.shard_count;
        lines.push_back(FormatLine(options.format, metric.statsd, tags,
                                   absl::StrFormat("%g", fraction), "g", 1.0));
      } else {
        lines.push_back(
            FormatLine(options.format, metric.statsd, tags, absl::StrCat(value), "g", 1.0));
      }
    }
    for (size_t m = 0; m < server_histograms.size(); ++m) {
      const ServerHistogramMetric& metric = server_histograms[m];
      const base::HistogramSnapshot delta =
          cur.ServerHistogram(s, m).Minus(prev.ServerHistogram(s, m));
      AppendTimings(delta, metric.unit, metric.statsd, server_tags, options, &timings);
      if (metric.unit == Unit::kMicroseconds && delta.count > 0) {
        for (size_t q = 0; q < std::size(kQuantiles); ++q) {
          lines.push_back(FormatLine(
              options.format, absl::StrCat("gauge.upstream.latency_", kQuantileNames[q]),
              server_tags, FormatValue(delta.Percentile(kQuantiles[q]), metric.unit), "g", 1.0));
        }
      }
    }
  }
  const auto histograms = HistogramMetrics();
  for (size_t m = 0; m < histograms.size(); ++m) {
    AppendTimings(cur.histograms[m].Minus(prev.histograms[m]), histograms[m].unit,
                  histograms[m].statsd, base_tags, options, &timings);
  }
  lines.insert(lines.end(), std::make_move_iterator(timings.begin()),
               std::make_move_iterator(timings.end()));
  return lines;
}

}  // namespace dotproxy::metrics
