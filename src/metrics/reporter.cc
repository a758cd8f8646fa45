#include "metrics/reporter.h"

#include <pthread.h>

#include <chrono>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "dotproxy_config.h"
#include "metrics/catalog.h"

namespace dotproxy::metrics {
namespace {

int64_t NowNs() { return absl::GetCurrentTimeNanos(); }

}  // namespace

Reporter::Reporter(const config::Config& config, std::vector<const ShardCounters*> shards)
    : config_(config), shards_(std::move(shards)) {}

Reporter::~Reporter() { Stop(); }

absl::StatusOr<std::unique_ptr<Reporter>> Reporter::Create(
    const config::Config& config, std::vector<const ShardCounters*> shards) {
  auto reporter = std::unique_ptr<Reporter>(new Reporter(config, std::move(shards)));
  reporter->SetServers(config.upstream);
  const config::StatsdConfig& statsd = config.metrics.statsd;
  reporter->statsd_options_.format = statsd.tag_format;
  reporter->statsd_options_.sample_rate = statsd.sample_rate;
  reporter->statsd_options_.version = DOTPROXY_VERSION;
  if (statsd.enabled) {
    for (const config::StatsdTarget& target : statsd.targets) {
      absl::StatusOr<std::unique_ptr<StatsdSink>> sink = StatsdSink::Create(target);
      if (!sink.ok()) {
        return sink.status();
      }
      reporter->sinks_.push_back(*std::move(sink));
    }
  }
  if (config.metrics.prometheus.enabled) {
    absl::StatusOr<std::unique_ptr<PrometheusExporter>> exporter =
        PrometheusExporter::Create(config.metrics.prometheus.addr);
    if (!exporter.ok()) {
      return exporter.status();
    }
    reporter->prometheus_ = *std::move(exporter);
  }
  // The baseline is zero, not the shards' counts now: queries may already have arrived (the
  // listeners are up), and the first flush must send them too.
  reporter->previous_ = TakeSnapshot({}, NowNs());
  if (reporter->prometheus_ != nullptr) {
    reporter->prometheus_->Update(PrometheusFamilies(
        reporter->previous_, TakeSnapshot(reporter->shards_, NowNs()), reporter->servers_));
  }
  return reporter;
}

void Reporter::SetServers(const config::UpstreamConfig& upstream) {
  std::vector<PublishedServer> servers;
  for (const config::ServerConfig& server : upstream.servers) {
    servers.push_back({server.metrics_id, server.addr_text, server.addr.HostString()});
  }
  std::lock_guard<std::mutex> lock(servers_mu_);
  servers_ = std::move(servers);
}

void Reporter::Start() {
  thread_ = std::thread([this] { Loop(); });
  pthread_setname_np(thread_.native_handle(), "dotproxy-metric");
}

void Reporter::Stop() {
  if (!thread_.joinable()) {
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Reporter::Loop() {
  const auto interval = absl::ToChronoNanoseconds(config_.metrics.flush_interval);
  auto next = std::chrono::steady_clock::now() + interval;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (cv_.wait_until(lock, next, [this] { return stop_; })) {
      break;
    }
    lock.unlock();
    Flush();
    lock.lock();
    next += interval;
    // After a long stall (a suspended VM), do not flush in a burst to catch up.
    const auto now = std::chrono::steady_clock::now();
    if (next < now) {
      next = now + interval;
    }
  }
  lock.unlock();
  Flush();  // what the last partial interval counted
}

void Reporter::Flush() {
  Snapshot current = TakeSnapshot(shards_, NowNs());
  std::vector<PublishedServer> servers;
  {
    std::lock_guard<std::mutex> lock(servers_mu_);
    servers = servers_;
  }
  if (!sinks_.empty()) {
    const std::vector<std::string> lines =
        StatsdLines(previous_, current, servers, statsd_options_);
    const int64_t now_ms = current.time_ns / 1'000'000;
    for (const std::string& payload : PackLines(lines)) {
      for (const std::unique_ptr<StatsdSink>& sink : sinks_) {
        sink->Send(payload, now_ms);
      }
    }
  }
  if (prometheus_ != nullptr) {
    prometheus_->Update(PrometheusFamilies(previous_, current, servers));
  }
  LogSummary(previous_, current);
  previous_ = std::move(current);
}

void Reporter::LogSummary(const Snapshot& prev, const Snapshot& cur) const {
  if (base::GetLogLevel() < base::LogLevel::kInfo) {
    return;
  }
  static const int kUdp = FindShardMetric("event.client.cx_read", "udp");
  static const int kTcp = FindShardMetric("event.client.cx_read", "tcp");
  static const int kWrites = FindShardMetric("event.client.cx_write", nullptr);
  static const int kTimeout = FindShardMetric("event.proxy.servfail", "timeout");
  static const int kNoUpstream = FindShardMetric("event.proxy.servfail", "no_upstream");
  static const int kRetries = FindShardMetric("event.proxy.servfail", "retries_exhausted");
  static const int kSlots = FindShardMetric("gauge.proxy.query_slots", nullptr);
  auto delta = [&](int m) { return cur.shard[m] - prev.shard[m]; };
  const double seconds = std::max(1e-9, static_cast<double>(cur.time_ns - prev.time_ns) / 1e9);
  const uint64_t queries = delta(kUdp) + delta(kTcp);
  const base::HistogramSnapshot rtt = cur.histograms[0].Minus(prev.histograms[0]);
  LOG(kInfo,
      "metrics: %.0f qps (udp %lu, tcp %lu), answers %lu, servfail %lu (timeout %lu, no "
      "upstream %lu, retries %lu), p99 %.3f ms, in flight %lu",
      static_cast<double>(queries) / seconds, delta(kUdp), delta(kTcp), delta(kWrites),
      delta(kTimeout) + delta(kNoUpstream) + delta(kRetries), delta(kTimeout), delta(kNoUpstream),
      delta(kRetries), static_cast<double>(rtt.Percentile(0.99)) / 1000.0, cur.shard[kSlots]);
  for (const std::unique_ptr<StatsdSink>& sink : sinks_) {
    if (sink->dropped() > 0) {
      LOG_EVERY_N_SEC(kInfo, 60, "metrics: statsd %s: %lu payloads sent, %lu dropped", sink->name(),
                      sink->sent(), sink->dropped());
    }
  }
}

}  // namespace dotproxy::metrics
