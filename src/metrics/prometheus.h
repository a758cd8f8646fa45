// File: metrics/prometheus.h
//
// Prometheus exposition (metrics.prometheus.addr): the reporter thread turns each snapshot into
// metric families (PrometheusFamilies) and hands them to PrometheusExporter, whose prometheus-cpp
// pull server (civetweb threads of its own) serves the latest ones on GET /metrics in the text
// format. Shards are never involved: a scrape reads a copy under a mutex that only the reporter
// and the scraping thread take.
#ifndef DOTPROXY_METRICS_PROMETHEUS_H_
#define DOTPROXY_METRICS_PROMETHEUS_H_

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/socket_address.h"
#include "metrics/snapshot.h"
#include "prometheus/metric_family.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace dotproxy::metrics {

// The families for `cur` (counters and histograms cumulative since start; gauges current;
// dotproxy_upstream_latency_recent_seconds over prev -> cur). Per-upstream series for exactly
// `servers` (the current configuration's), each labelled upstream="<its name>" with the values
// of its metrics id.
std::vector<prometheus::MetricFamily> PrometheusFamilies(
    const Snapshot& prev, const Snapshot& cur, std::span<const PublishedServer> servers);

// The text exposition format of `families`, as served on /metrics.
std::string PrometheusText(const std::vector<prometheus::MetricFamily>& families);

class PrometheusExporter {
 public:
  // Starts serving on `addr` (port 0: any; see port()). Fails if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<PrometheusExporter>> Create(
      const base::SocketAddress& addr);
  ~PrometheusExporter();

  // Replaces what the next scrape returns.
  void Update(std::vector<prometheus::MetricFamily> families);
  uint16_t port() const { return port_; }

 private:
  class Collector;
  PrometheusExporter() = default;

  std::shared_ptr<Collector> collector_;          // what a scrape reads
  std::unique_ptr<prometheus::Exposer> exposer_;  // destroyed first: stops serving
  uint16_t port_ = 0;
};

}  // namespace dotproxy::metrics

#endif  // DOTPROXY_METRICS_PROMETHEUS_H_
