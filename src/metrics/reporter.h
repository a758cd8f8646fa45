// File: metrics/reporter.h
//
// Reporter: the metrics control plane. It owns one thread of its own which, every
// metrics.flush_interval, snapshots all shards' counter blocks (relaxed loads, no lock, nothing
// asked of the shards), derives deltas, rates and percentiles against the previous snapshot,
// sends statsd payloads to every metrics.statsd.addr target, updates what Prometheus serves and
// logs a one-line summary at --verbosity info. Shards never wait for it, and it never waits for
// a metrics consumer (see statsd_sink.h).
//
//   auto reporter = metrics::Reporter::Create(config, blocks);  // after the shards are up
//   (*reporter)->Start();  ...  (*reporter)->Stop();            // before the shards are freed
//   (*reporter)->SetServers(next.upstream);                     // control thread, on reload
#ifndef DOTPROXY_METRICS_REPORTER_H_
#define DOTPROXY_METRICS_REPORTER_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "metrics/counters.h"
#include "metrics/prometheus.h"
#include "metrics/snapshot.h"
#include "metrics/statsd_format.h"
#include "metrics/statsd_sink.h"

namespace dotproxy::metrics {

class Reporter {
 public:
  // Opens the statsd sinks and the Prometheus endpoint. `shards` must outlive Stop(); each has
  // finished its set-up (its per-server blocks exist).
  static absl::StatusOr<std::unique_ptr<Reporter>> Create(const config::Config& config,
                                                          std::vector<const ShardCounters*> shards);
  ~Reporter();
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  // Starts the reporter thread.
  void Start();
  // Flushes once more and joins the thread. Idempotent.
  void Stop();
  // One flush now, on the calling thread (tests; or when the thread is not running).
  void Flush();
  // Any thread (the control thread, at a reload): from the next flush on, the per-upstream
  // series are exactly `upstream`'s servers, each under its own labels with the counts of its
  // metrics id. The shards must have blocks for those ids (proxy::Shard::Reconfigure).
  void SetServers(const config::UpstreamConfig& upstream);

  uint16_t prometheus_port() const { return prometheus_ != nullptr ? prometheus_->port() : 0; }

 private:
  Reporter(const config::Config& config, std::vector<const ShardCounters*> shards);
  void Loop();
  void LogSummary(const Snapshot& prev, const Snapshot& cur) const;

  const config::Config& config_;
  const std::vector<const ShardCounters*> shards_;
  StatsdOptions statsd_options_;
  std::vector<std::unique_ptr<StatsdSink>> sinks_;
  std::unique_ptr<PrometheusExporter> prometheus_;
  Snapshot previous_;

  std::mutex servers_mu_;  // guards servers_: set by the control thread, read by Flush
  std::vector<PublishedServer> servers_;

  std::mutex mu_;  // guards stop_ (the thread's wake-up), nothing on the data path
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace dotproxy::metrics

#endif  // DOTPROXY_METRICS_REPORTER_H_
