// Compiled with -fexceptions (and only this file): prometheus-cpp reports a failed bind by
// throwing from the Exposer constructor; it is caught here and turned into a Status, so no
// exception ever crosses into the rest of dotproxy.
#include "metrics/prometheus.h"

#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "metrics/catalog.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/text_serializer.h"

namespace dotproxy::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;

constexpr double kQuantiles[] = {0.5, 0.9, 0.99};

// Values are stored in microseconds; Prometheus wants base units (seconds). Dividing (rather than
// multiplying by 1e-6) keeps bucket bounds such as 0.0001 exact in the text.
double ToBaseUnit(double value, Unit unit) {
  return unit == Unit::kMicroseconds ? value / 1e6 : value;
}

class Families {
 public:
  // The family called `name` (created with `type` and `help` on first use).
  MetricFamily& Get(const char* name, prometheus::MetricType type, const char* help) {
    auto [it, inserted] = index_.try_emplace(name, families_.size());
    if (inserted) {
      families_.push_back(MetricFamily{name, help != nullptr ? help : "", type, {}});
    } else if (families_[it->second].help.empty() && help != nullptr) {
      families_[it->second].help = help;
    }
    return families_[it->second];
  }
  std::vector<MetricFamily> Take() { return std::move(families_); }

 private:
  std::vector<MetricFamily> families_;
  std::map<std::string, size_t> index_;
};

ClientMetric Value(std::vector<ClientMetric::Label> labels, prometheus::MetricType type,
                   double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

ClientMetric HistogramValue(std::vector<ClientMetric::Label> labels,
                            const base::HistogramSnapshot& h, Unit unit) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = ToBaseUnit(static_cast<double>(h.sum), unit);
  for (const uint64_t bound : PrometheusBounds(unit)) {
    m.histogram.bucket.push_back(
        {h.CountAtOrBelow(bound), ToBaseUnit(static_cast<double>(bound), unit)});
  }
  m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
  return m;
}

std::vector<ClientMetric::Label> Labels(const Label& label) {
  if (label.key == nullptr) {
    return {};
  }
  return {{label.key, label.value}};
}

prometheus::MetricType TypeOf(MetricType type) {
  return type == MetricType::kCounter ? prometheus::MetricType::Counter
                                      : prometheus::MetricType::Gauge;
}

}  // namespace

std::vector<MetricFamily> PrometheusFamilies(const Snapshot& prev, const Snapshot& cur,
                                             std::span<const PublishedServer> servers) {
  Families families;
  const auto shard_metrics = ShardMetrics();
  for (size_t m = 0; m < shard_metrics.size(); ++m) {
    const ShardMetric& metric = shard_metrics[m];
    if (metric.prometheus == nullptr) {
      continue;
    }
    const prometheus::MetricType type = TypeOf(metric.type);
    MetricFamily& family = families.Get(metric.prometheus, type, metric.help);
    if (metric.type == MetricType::kShardGauge) {
      for (uint32_t i = 0; i < cur.shard_count; ++i) {
        std::vector<ClientMetric::Label> labels = Labels(metric.label);
        labels.push_back({"shard", absl::StrCat(i)});
        family.metric.push_back(
            Value(std::move(labels), type,
                  static_cast<double>(cur.per_shard[i * shard_metrics.size() + m])));
      }
      continue;
    }
    // Label values that never happened (most RCODEs) are left out rather than shown as 0.
    if (metric.is_sparse && cur.shard[m] == 0) {
      continue;
    }
    family.metric.push_back(Value(Labels(metric.label), type, static_cast<double>(cur.shard[m])));
  }
  const auto histograms = HistogramMetrics();
  for (size_t m = 0; m < histograms.size(); ++m) {
    MetricFamily& family = families.Get(histograms[m].prometheus, prometheus::MetricType::Histogram,
                                        histograms[m].help);
    family.metric.push_back(HistogramValue({}, cur.histograms[m], histograms[m].unit));
  }
  const auto server_metrics = ServerMetrics();
  const auto server_histograms = ServerHistogramMetrics();
  for (const PublishedServer& server : servers) {
    const uint32_t s = server.id;
    for (size_t m = 0; m < server_metrics.size(); ++m) {
      const ServerMetric& metric = server_metrics[m];
      if (metric.prometheus == nullptr) {
        continue;
      }
      std::vector<ClientMetric::Label> labels = {{"upstream", server.name}};
      if (metric.label.key != nullptr) {
        labels.push_back({metric.label.key, metric.label.value});
      }
      double value = static_cast<double>(cur.Server(s, m));
      if (metric.type == MetricType::kShardFraction) {
        value = cur.shard_count == 0 ? 0.0 : value / cur.shard_count;
      }
      families.Get(metric.prometheus, TypeOf(metric.type), metric.help)
          .metric.push_back(Value(std::move(labels), TypeOf(metric.type), value));
    }
    for (size_t m = 0; m < server_histograms.size(); ++m) {
      const ServerHistogramMetric& metric = server_histograms[m];
      families.Get(metric.prometheus, prometheus::MetricType::Histogram, metric.help)
          .metric.push_back(HistogramValue({{"upstream", server.name}},
                                           cur.ServerHistogram(s, m), metric.unit));
      if (metric.unit != Unit::kMicroseconds) {
        continue;
      }
      const base::HistogramSnapshot delta =
          cur.ServerHistogram(s, m).Minus(prev.ServerHistogram(s, m));
      MetricFamily& recent = families.Get(
          "dotproxy_upstream_latency_recent_seconds", prometheus::MetricType::Gauge,
          "Upstream latency p50/p90/p99 over the last metrics.flush_interval (0 when idle).");
      for (const double q : kQuantiles) {
        recent.metric.push_back(
            Value({{"upstream", server.name}, {"quantile", absl::StrCat(q)}},
                  prometheus::MetricType::Gauge,
                  ToBaseUnit(static_cast<double>(delta.Percentile(q)), Unit::kMicroseconds)));
      }
    }
  }
  return families.Take();
}

std::string PrometheusText(const std::vector<MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

class PrometheusExporter::Collector final : public prometheus::Collectable {
 public:
  std::vector<MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return families_;
  }
  void Update(std::vector<MetricFamily> families) {
    std::lock_guard<std::mutex> lock(mu_);
    families_ = std::move(families);
  }

 private:
  mutable std::mutex mu_;
  std::vector<MetricFamily> families_;
};

absl::StatusOr<std::unique_ptr<PrometheusExporter>> PrometheusExporter::Create(
    const base::SocketAddress& addr) {
  auto exporter = std::unique_ptr<PrometheusExporter>(new PrometheusExporter());
  try {
    // One civetweb worker: a scrape is a copy and a serialisation.
    exporter->exposer_ = std::make_unique<prometheus::Exposer>(addr.ToString(), 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics.prometheus.addr: cannot serve on ", addr.ToString(), ": ", e.what()));
  }
  const std::vector<int> ports = exporter->exposer_->GetListeningPorts();
  exporter->port_ = ports.empty() ? 0 : static_cast<uint16_t>(ports[0]);
  exporter->collector_ = std::make_shared<Collector>();
  exporter->exposer_->RegisterCollectable(exporter->collector_);
  return exporter;
}

PrometheusExporter::~PrometheusExporter() = default;

void PrometheusExporter::Update(std::vector<MetricFamily> families) {
  collector_->Update(std::move(families));
}

}  // namespace dotproxy::metrics
