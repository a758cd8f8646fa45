// Aggregation: several shards' blocks summed, deltas across flushes, per-shard gauges, per-server
// values, and the Prometheus families built from the same snapshots.
#include "metrics/snapshot.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/catalog.h"
#include "metrics/prometheus.h"
#include "metrics/statsd_format.h"

namespace dotproxy::metrics {
namespace {

// Servers with ids 0, 1, ... in list order, each name used as its label and host tag.
std::vector<PublishedServer> Servers(std::vector<std::string> names) {
  std::vector<PublishedServer> servers;
  for (uint32_t id = 0; id < names.size(); ++id) {
    servers.push_back({id, names[id], names[id]});
  }
  return servers;
}

using ::testing::HasSubstr;
using ::testing::Not;

class SnapshotTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kShards = 3;
  static constexpr uint32_t kServers = 2;

  SnapshotTest() {
    for (uint32_t i = 0; i < kShards; ++i) {
      blocks_.push_back(std::make_unique<ShardCounters>());
      for (uint32_t id = 0; id < kServers; ++id) {
        blocks_.back()->upstream.Reserve(id);
      }
      pointers_.push_back(blocks_.back().get());
    }
  }
  Snapshot Take(int64_t t) { return TakeSnapshot(pointers_, t); }
  static uint64_t Metric(const Snapshot& s, const char* statsd, const char* label) {
    const int m = FindShardMetric(statsd, label);
    EXPECT_GE(m, 0) << statsd;
    return s.shard[m];
  }

  std::vector<std::unique_ptr<ShardCounters>> blocks_;
  std::vector<const ShardCounters*> pointers_;
};

TEST_F(SnapshotTest, SumsShardsAndGivesDeltasAcrossFlushes) {
  const Snapshot start = Take(0);
  for (uint32_t i = 0; i < kShards; ++i) {
    for (uint32_t n = 0; n <= i; ++n) {
      ++blocks_[i]->udp_queries;  // 1 + 2 + 3
      ++blocks_[i]->responses;
    }
    ++blocks_[i]->tcp_queries;
  }
  const Snapshot first = Take(1'000'000'000);
  EXPECT_EQ(Metric(first, "event.client.cx_read", "udp"), 6u);
  EXPECT_EQ(Metric(first, "event.client.cx_read", "tcp"), 3u);
  EXPECT_EQ(Metric(first, "event.proxy.process", nullptr), 6u);

  blocks_[1]->udp_queries += 10;
  const Snapshot second = Take(2'000'000'000);
  const int udp = FindShardMetric("event.client.cx_read", "udp");
  EXPECT_EQ(second.shard[udp] - first.shard[udp], 10u);
  EXPECT_EQ(second.shard[udp] - start.shard[udp], 16u);

  // statsd sends the deltas, once per flush, and nothing for counters that did not move.
  StatsdOptions options;
  options.version = "t";
  const std::vector<std::string> lines =
      StatsdLines(first, second, Servers({"10.0.0.1", "10.0.0.2"}), options);
  EXPECT_THAT(lines,
              ::testing::Contains("dotproxy.event.client.cx_read,transport=udp,version=t:10|c"));
  for (const std::string& line : lines) {
    EXPECT_THAT(line, Not(HasSubstr("cx_read,transport=tcp"))) << "tcp did not move";
  }
}

TEST_F(SnapshotTest, ShardGaugesStayPerShardAndServersSumOverShards) {
  blocks_[0]->slots_in_use.Set(5);
  blocks_[2]->slots_in_use.Set(7);
  for (uint32_t i = 0; i < kShards; ++i) {
    blocks_[i]->upstream.Block(1).queries += 100;
    blocks_[i]->upstream.Block(1).inflight.Set(i);
    blocks_[i]->upstream.Block(0).latency_us.Record(1000 * (i + 1));
  }
  blocks_[2]->upstream.Block(0).is_up.Set(0);
  const Snapshot prev = Take(0);
  const Snapshot cur = Take(1);
  const int slots = FindShardMetric("gauge.proxy.query_slots", nullptr);
  const size_t n = ShardMetrics().size();
  EXPECT_EQ(cur.per_shard[0 * n + slots], 5u);
  EXPECT_EQ(cur.per_shard[1 * n + slots], 0u);
  EXPECT_EQ(cur.per_shard[2 * n + slots], 7u);
  EXPECT_EQ(cur.shard[slots], 12u);

  size_t queries = 0;
  size_t inflight = 0;
  size_t up = 0;
  for (size_t m = 0; m < ServerMetrics().size(); ++m) {
    const std::string name = ServerMetrics()[m].statsd;
    queries = name == "event.upstream.cx_write" ? m : queries;
    inflight = name == "gauge.upstream.inflight" ? m : inflight;
    up = name == "gauge.upstream.up" ? m : up;
  }
  EXPECT_EQ(cur.Server(1, queries), 300u);
  EXPECT_EQ(cur.Server(1, inflight), 0u + 1 + 2);
  EXPECT_EQ(cur.Server(0, up), 2u);  // two of three shards see server 0 up
  EXPECT_EQ(cur.ServerHistogram(0, 0).count, 3u);
  EXPECT_NEAR(static_cast<double>(cur.ServerHistogram(0, 0).Percentile(0.5)), 2000, 40);

  StatsdOptions options;
  options.version = "t";
  const std::vector<std::string> lines =
      StatsdLines(prev, cur, Servers({"10.0.0.1", "10.0.0.2"}), options);
  EXPECT_THAT(lines, ::testing::Contains("dotproxy.gauge.proxy.query_slots,shard=2,version=t:7|g"));
  EXPECT_THAT(lines,
              ::testing::Contains(
                  "dotproxy.gauge.upstream.up,addr=10.0.0.1,transport=tcp,version=t:0.666667|g"));

  const std::string text = PrometheusText(PrometheusFamilies(prev, cur, Servers({"a:853", "b:853"})));
  EXPECT_THAT(text, HasSubstr("dotproxy_query_slots_in_use{shard=\"2\"} 7"));
  EXPECT_THAT(text, HasSubstr("dotproxy_upstream_queries_total{upstream=\"b:853\"} 300"));
  EXPECT_THAT(text, HasSubstr("# TYPE dotproxy_upstream_latency_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("dotproxy_upstream_latency_seconds_count{upstream=\"a:853\"} 3"));
  EXPECT_THAT(
      text,
      HasSubstr("dotproxy_upstream_latency_seconds_bucket{upstream=\"a:853\",le=\"0.0025\"} 2"));
  EXPECT_THAT(
      text,
      HasSubstr("dotproxy_upstream_latency_seconds_bucket{upstream=\"a:853\",le=\"+Inf\"} 3"));
}

TEST_F(SnapshotTest, PrometheusCountersAreCumulativeAndSkipUnseenRcodes) {
  const Snapshot prev = Take(0);
  ++blocks_[0]->rcodes[3];
  ++blocks_[1]->rcodes[3];
  ++blocks_[1]->rcodes[0];
  blocks_[2]->udp_queries += 1000;
  const Snapshot cur = Take(1);
  const std::string text = PrometheusText(PrometheusFamilies(prev, cur, Servers({"a:853", "b:853"})));
  EXPECT_THAT(text, HasSubstr("# TYPE dotproxy_queries_total counter"));
  EXPECT_THAT(text, HasSubstr("dotproxy_queries_total{transport=\"udp\"} 1000"));
  EXPECT_THAT(text, HasSubstr("dotproxy_queries_total{transport=\"tcp\"} 0"));
  EXPECT_THAT(text, HasSubstr("dotproxy_answers_total{rcode=\"NXDOMAIN\"} 2"));
  EXPECT_THAT(text, HasSubstr("dotproxy_answers_total{rcode=\"NOERROR\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("rcode=\"NOTZONE\"")));
  EXPECT_THAT(text, HasSubstr("dotproxy_acl_dropped_total 0"));
  EXPECT_THAT(text, HasSubstr("dotproxy_rate_limited_total 0"));
}

// A reload from [A, B] (ids 0, 1) to [B, C] (ids 1, 2): each published server keeps its own
// counts under its own label, A's series go, C's appear; statsd deltas are per id (none
// negative, no jump), and a server added back later continues from its last value.
TEST_F(SnapshotTest, SeriesFollowMetricsIdsAcrossAReload) {
  size_t queries = 0;
  for (size_t m = 0; m < ServerMetrics().size(); ++m) {
    queries = std::string(ServerMetrics()[m].statsd) == "event.upstream.cx_write" ? m : queries;
  }
  const std::vector<PublishedServer> before = {{0, "a:853", "10.0.0.1"}, {1, "b:853", "10.0.0.2"}};
  const std::vector<PublishedServer> after = {{1, "b:853", "10.0.0.2"}, {2, "c:853", "10.0.0.3"}};
  blocks_[0]->upstream.Block(0).queries += 5;
  blocks_[1]->upstream.Block(1).queries += 7;
  const Snapshot first = Take(0);
  EXPECT_EQ(first.server_ids, 2u);
  for (const auto& block : blocks_) {
    block->upstream.Reserve(2);  // the control thread, before the shards see [B, C]
  }
  blocks_[0]->upstream.Block(1).queries += 3;  // B, now at index 0 of the list
  blocks_[2]->upstream.Block(2).queries += 4;  // C
  const Snapshot second = Take(1);
  EXPECT_EQ(second.server_ids, 3u);
  EXPECT_EQ(second.Server(1, queries), 10u);
  EXPECT_EQ(second.Server(2, queries), 4u);
  EXPECT_EQ(first.Server(2, queries), 0u);  // no block then: zero, not out of bounds

  const std::string text = PrometheusText(PrometheusFamilies(first, second, after));
  EXPECT_THAT(text, HasSubstr("dotproxy_upstream_queries_total{upstream=\"b:853\"} 10"));
  EXPECT_THAT(text, HasSubstr("dotproxy_upstream_queries_total{upstream=\"c:853\"} 4"));
  EXPECT_THAT(text, Not(HasSubstr("upstream=\"a:853\"")));

  StatsdOptions options;
  options.version = "t";
  const std::vector<std::string> lines = StatsdLines(first, second, after, options);
  EXPECT_THAT(lines, ::testing::Contains(
                         "dotproxy.event.upstream.cx_write,addr=10.0.0.2,transport=tcp,version=t:3|c"));
  EXPECT_THAT(lines, ::testing::Contains(
                         "dotproxy.event.upstream.cx_write,addr=10.0.0.3,transport=tcp,version=t:4|c"));
  for (const std::string& line : lines) {
    EXPECT_THAT(line, Not(HasSubstr("addr=10.0.0.1"))) << "A is no longer configured";
  }

  // A comes back (id 0, unchanged while it was away): its first delta is what it counted since.
  blocks_[1]->upstream.Block(0).queries += 2;
  const Snapshot third = Take(2);
  const std::vector<std::string> back = StatsdLines(second, third, before, options);
  EXPECT_THAT(back, ::testing::Contains(
                        "dotproxy.event.upstream.cx_write,addr=10.0.0.1,transport=tcp,version=t:2|c"));
  EXPECT_THAT(PrometheusText(PrometheusFamilies(second, third, before)),
              HasSubstr("dotproxy_upstream_queries_total{upstream=\"a:853\"} 7"));
}

// The README's metric table names every metric, by both names.
TEST(CatalogTest, ReadmeDocumentsEveryMetric) {
  std::ifstream file(std::string(DOTPROXY_SOURCE_ROOT) + "/README.md");
  std::stringstream text;
  text << file.rdbuf();
  const std::string readme = text.str();
  ASSERT_FALSE(readme.empty());
  auto documented = [&](const char* name) {
    return name == nullptr || readme.find(std::string("`") + name + "`") != std::string::npos;
  };
  for (const ShardMetric& m : ShardMetrics()) {
    EXPECT_TRUE(documented(m.prometheus)) << m.prometheus;
    EXPECT_TRUE(documented(m.statsd)) << m.statsd;
  }
  for (const ServerMetric& m : ServerMetrics()) {
    EXPECT_TRUE(documented(m.prometheus)) << m.prometheus;
    EXPECT_TRUE(documented(m.statsd)) << m.statsd;
  }
  for (const HistogramMetric& m : HistogramMetrics()) {
    EXPECT_TRUE(documented(m.prometheus) && documented(m.statsd)) << m.prometheus;
  }
  for (const ServerHistogramMetric& m : ServerHistogramMetrics()) {
    EXPECT_TRUE(documented(m.prometheus) && documented(m.statsd)) << m.prometheus;
  }
}

TEST(CatalogTest, NamesFollowConventions) {
  for (const ShardMetric& m : ShardMetrics()) {
    if (m.prometheus != nullptr && m.type == MetricType::kCounter) {
      EXPECT_THAT(std::string(m.prometheus), ::testing::EndsWith("_total")) << m.prometheus;
    }
  }
  for (const ServerMetric& m : ServerMetrics()) {
    if (m.prometheus != nullptr && m.type == MetricType::kCounter) {
      EXPECT_THAT(std::string(m.prometheus), ::testing::EndsWith("_total")) << m.prometheus;
    }
  }
  for (const HistogramMetric& m : HistogramMetrics()) {
    EXPECT_THAT(std::string(m.prometheus), m.unit == Unit::kMicroseconds
                                               ? ::testing::EndsWith("_seconds")
                                               : ::testing::EndsWith("_bytes"));
  }
}

}  // namespace
}  // namespace dotproxy::metrics
