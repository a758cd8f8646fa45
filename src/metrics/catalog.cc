#include "metrics/catalog.h"

namespace dotproxy::metrics {
namespace {

using C = ShardCounters;
using S = upstream::ServerCounters;
constexpr MetricType kCounter = MetricType::kCounter;
constexpr MetricType kGauge = MetricType::kGauge;

constexpr const char* kRcodeNames[16] = {
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",  "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",  "DSOTYPENI", "RCODE12", "RCODE13", "RCODE14",  "RCODE15"};

template <int kRcode>
constexpr ShardMetric Rcode() {
  return {"event.client.answer",
          "dotproxy_answers_total",
          kCounter,
          {"rcode", kRcodeNames[kRcode]},
          [](const C& c) { return c.rcodes[kRcode].value(); },
          kRcode == 0 ? "Answers sent to clients, by RCODE (SERVFAILs made by the proxy included)."
                      : nullptr,
          /*is_sparse=*/true};
}

uint64_t BacklogDepth(const C& c) {
  uint64_t n = 0;
  // Every block: a removed server's backlog was handed back and its gauge zeroed.
  const uint32_t ids = c.upstream.id_limit();
  for (uint32_t id = 0; id < ids; ++id) {
    if (const upstream::ServerCounters* server = c.upstream.Find(id); server != nullptr) {
      n += server->backlog.value();
    }
  }
  return n;
}

uint64_t ClientWrites(const C& c) {
  uint64_t n = 0;
  for (const Counter& r : c.rcodes) {
    n += r.value();
  }
  return n;
}

const ShardMetric kShardMetrics[] = {
    {"event.client.cx_read",
     "dotproxy_queries_total",
     kCounter,
     {"transport", "udp"},
     [](const C& c) { return c.udp_queries.value(); },
     "Client queries received and accepted for forwarding, by transport."},
    {"event.client.cx_read",
     "dotproxy_queries_total",
     kCounter,
     {"transport", "tcp"},
     [](const C& c) { return c.tcp_queries.value(); },
     nullptr},
    {"event.client.cx_read_error",
     "dotproxy_malformed_total",
     kCounter,
     {"transport", "udp"},
     [](const C& c) { return c.udp_malformed.value(); },
     "Malformed client queries: UDP datagrams dropped, TCP connections closed."},
    {"event.client.cx_read_error",
     "dotproxy_malformed_total",
     kCounter,
     {"transport", "tcp"},
     [](const C& c) { return c.tcp_malformed.value(); },
     nullptr},
    {"event.client.cx_open",
     "dotproxy_client_connections_total",
     kCounter,
     {"transport", "tcp"},
     [](const C& c) { return c.tcp_accepted.value(); },
     "Client TCP connections accepted."},
    {"event.client.cx_close",
     "dotproxy_client_connections_closed_total",
     kCounter,
     {"reason", "idle"},
     [](const C& c) { return c.tcp_idle_closed.value(); },
     "Client TCP connections closed by the proxy, by reason."},
    {"event.client.cx_close",
     "dotproxy_client_connections_closed_total",
     kCounter,
     {"reason", "shed"},
     [](const C& c) { return c.tcp_shed.value(); },
     nullptr},
    {"event.client.cx_close",
     "dotproxy_client_connections_closed_total",
     kCounter,
     {"reason", "refused"},
     [](const C& c) { return c.tcp_refused.value(); },
     nullptr},
    {"event.client.cx_write",
     nullptr,
     kCounter,
     {},
     &ClientWrites,
     "Answers sent to clients (all RCODEs)."},
    {"event.client.cx_write_error",
     "dotproxy_client_gone_total",
     kCounter,
     {},
     [](const C& c) { return c.client_gone.value(); },
     "Answers that could not be delivered: the TCP client had closed."},
    {"event.proxy.process",
     "dotproxy_forwarded_total",
     kCounter,
     {},
     [](const C& c) { return c.responses.value(); },
     "Queries answered by an upstream server and delivered to the client."},
    {"event.proxy.error",
     nullptr,
     kCounter,
     {},
     [](const C& c) {
       return c.servfail_timeout.value() + c.servfail_no_upstream.value() +
              c.servfail_retries.value() + c.udp_malformed.value() + c.tcp_malformed.value() +
              c.udp_dropped_no_slot.value();
     },
     "Queries that failed: SERVFAILs made by the proxy, malformed and dropped queries."},
    {"event.proxy.servfail",
     "dotproxy_servfails_total",
     kCounter,
     {"cause", "timeout"},
     [](const C& c) { return c.servfail_timeout.value(); },
     "SERVFAILs made by the proxy, by cause."},
    {"event.proxy.servfail",
     "dotproxy_servfails_total",
     kCounter,
     {"cause", "no_upstream"},
     [](const C& c) { return c.servfail_no_upstream.value(); },
     nullptr},
    {"event.proxy.servfail",
     "dotproxy_servfails_total",
     kCounter,
     {"cause", "retries_exhausted"},
     [](const C& c) { return c.servfail_retries.value(); },
     nullptr},
    {"event.proxy.truncated",
     "dotproxy_truncated_total",
     kCounter,
     {},
     [](const C& c) { return c.truncated.value(); },
     "UDP answers larger than the client's limit, sent as TC=1."},
    {"event.proxy.dropped",
     "dotproxy_dropped_total",
     kCounter,
     {"reason", "table_full"},
     [](const C& c) { return c.udp_dropped_no_slot.value(); },
     "UDP queries dropped because the shard's query table was full."},
    {"event.proxy.acl_dropped",
     "dotproxy_acl_dropped_total",
     kCounter,
     {},
     [](const C& c) { return c.udp_acl_dropped.value() + c.tcp_acl_refused.value(); },
     "UDP queries dropped and TCP connections closed at accept: source outside listener.allow."},
    {"event.proxy.rate_limited",
     "dotproxy_rate_limited_total",
     kCounter,
     {},
     [](const C& c) { return c.rate_limited_dropped.value() + c.rate_limited_refused.value(); },
     "Queries over listener.rate_limit: dropped, or answered REFUSED (action refuse)."},
    {"event.proxy.retry",
     "dotproxy_retries_total",
     kCounter,
     {"kind", "hedged"},
     [](const C& c) { return c.hedged_retries.value(); },
     "Queries sent again: hedged (an attempt outlived read_timeout) or resent (connection lost)."},
    {"event.proxy.retry",
     "dotproxy_retries_total",
     kCounter,
     {"kind", "resent"},
     [](const C& c) { return c.upstream_retries.value() - c.hedged_retries.value(); },
     nullptr},
    {"event.proxy.handoff",
     "dotproxy_handoffs_total",
     kCounter,
     {"kind", "out"},
     [](const C& c) { return c.handed_off.value(); },
     "Queries handed between shards: out (to a shard owning a connection), in (from another "
     "shard), ring_full (a hand-off found the ring full and waited), late (answer back after "
     "the query was done), declined (a handed-in query sent back: no usable connection)."},
    {"event.proxy.handoff",
     "dotproxy_handoffs_total",
     kCounter,
     {"kind", "in"},
     [](const C& c) { return c.handed_in.value(); },
     nullptr},
    {"event.proxy.handoff",
     "dotproxy_handoffs_total",
     kCounter,
     {"kind", "ring_full"},
     [](const C& c) { return c.handoff_ring_full.value(); },
     nullptr},
    {"event.proxy.handoff",
     "dotproxy_handoffs_total",
     kCounter,
     {"kind", "late"},
     [](const C& c) { return c.handoff_late_answers.value(); },
     nullptr},
    {"event.proxy.handoff",
     "dotproxy_handoffs_total",
     kCounter,
     {"kind", "declined"},
     [](const C& c) { return c.handoff_declined.value(); },
     nullptr},
    {"event.proxy.answer_attempt",
     "dotproxy_answers_by_attempt_total",
     kCounter,
     {"attempt", "1"},
     [](const C& c) { return c.answers_by_attempt[0].value(); },
     "Upstream answers by the attempt that won (1 = the first send)."},
    {"event.proxy.answer_attempt",
     "dotproxy_answers_by_attempt_total",
     kCounter,
     {"attempt", "2"},
     [](const C& c) { return c.answers_by_attempt[1].value(); },
     nullptr},
    {"event.proxy.answer_attempt",
     "dotproxy_answers_by_attempt_total",
     kCounter,
     {"attempt", "3+"},
     [](const C& c) { return c.answers_by_attempt[2].value(); },
     nullptr},
    Rcode<0>(),
    Rcode<1>(),
    Rcode<2>(),
    Rcode<3>(),
    Rcode<4>(),
    Rcode<5>(),
    Rcode<6>(),
    Rcode<7>(),
    Rcode<8>(),
    Rcode<9>(),
    Rcode<10>(),
    Rcode<11>(),
    Rcode<12>(),
    Rcode<13>(),
    Rcode<14>(),
    Rcode<15>(),
    {"gauge.proxy.query_slots",
     "dotproxy_query_slots_in_use",
     MetricType::kShardGauge,
     {},
     [](const C& c) { return c.slots_in_use.value(); },
     "Query table slots in use (queries in flight), per shard (capacity 8192)."},
    {"gauge.proxy.backlog",
     "dotproxy_backlog_queries",
     MetricType::kShardGauge,
     {},
     &BacklogDepth,
     "Queries waiting in upstream backlogs for a free ID, per shard."},
};

const ServerMetric kServerMetrics[] = {
    {"event.upstream.cx_open",
     nullptr,
     kCounter,
     {},
     [](const S& s) { return s.handshakes_full.value() + s.handshakes_resumed.value(); },
     "Upstream connections established (TLS handshake completed)."},
    {"event.upstream.handshake",
     "dotproxy_upstream_handshakes_total",
     kCounter,
     {"type", "full"},
     [](const S& s) { return s.handshakes_full.value(); },
     "Completed TLS handshakes: full, or resumed (session ticket)."},
    {"event.upstream.handshake",
     "dotproxy_upstream_handshakes_total",
     kCounter,
     {"type", "resumed"},
     [](const S& s) { return s.handshakes_resumed.value(); },
     nullptr},
    {"event.upstream.tls_path",
     "dotproxy_upstream_tls_connections_total",
     kCounter,
     {"path", "ktls_tx"},
     [](const S& s) { return s.ktls_tx.value(); },
     "Ready upstream connections by where their records are processed: ktls_tx (the kernel "
     "encrypts), ktls_rx (the kernel decrypts), user_space (OpenSSL does both); a connection "
     "offloaded both ways counts under ktls_tx and ktls_rx."},
    {"event.upstream.tls_path",
     "dotproxy_upstream_tls_connections_total",
     kCounter,
     {"path", "ktls_rx"},
     [](const S& s) { return s.ktls_rx.value(); },
     nullptr},
    {"event.upstream.tls_path",
     "dotproxy_upstream_tls_connections_total",
     kCounter,
     {"path", "user_space"},
     [](const S& s) { return s.tls_user_space.value(); },
     nullptr},
    {"event.upstream.cx_close",
     "dotproxy_upstream_connections_closed_total",
     kCounter,
     {},
     [](const S& s) { return s.closed.value(); },
     "Established upstream connections closed (lost, failed or stale)."},
    {"event.upstream.stale_close",
     "dotproxy_upstream_stale_closes_total",
     kCounter,
     {},
     [](const S& s) { return s.stale_closed.value(); },
     "Upstream connections closed by the proxy after stale_timeout idle."},
    {"event.upstream.cx_error",
     "dotproxy_upstream_connect_errors_total",
     kCounter,
     {},
     [](const S& s) { return s.connect_errors.value(); },
     "Failed upstream connects and TLS handshakes (timeouts and rejected certificates included)."},
    {"event.upstream.cx_write",
     "dotproxy_upstream_queries_total",
     kCounter,
     {},
     [](const S& s) { return s.queries.value(); },
     "Query attempts sent to the server."},
    {"event.upstream.cx_write_error",
     "dotproxy_upstream_write_errors_total",
     kCounter,
     {},
     [](const S& s) { return s.write_errors.value(); },
     "Failed writes to the server."},
    {"event.upstream.cx_read",
     "dotproxy_upstream_answers_total",
     kCounter,
     {},
     [](const S& s) { return s.answers.value(); },
     "Answers read that matched a waiting query."},
    {"event.upstream.cx_read_error",
     "dotproxy_upstream_dropped_answers_total",
     kCounter,
     {},
     [](const S& s) { return s.dropped_answers.value(); },
     "Answers dropped: unknown or stale ID, or a question that does not match."},
    {"event.upstream.cx_io_retry",
     "dotproxy_upstream_retries_total",
     kCounter,
     {},
     [](const S& s) { return s.retries.value(); },
     "Queries sent again after an attempt on this server timed out or its connection was lost."},
    {"event.upstream.down",
     "dotproxy_upstream_down_transitions_total",
     kCounter,
     {},
     [](const S& s) { return s.down_transitions.value(); },
     "Times a shard marked the server down (summed over shards)."},
    {"event.upstream.cap_close",
     "dotproxy_upstream_capped_closes_total",
     kCounter,
     {},
     [](const S& s) { return s.cap_closed.value(); },
     "Fresh, healthy connections the server closed: a connection cap (adaptive pool)."},
    {"gauge.upstream.target_connections",
     "dotproxy_upstream_target_connections",
     kGauge,
     {},
     [](const S& s) { return s.target_connections.value(); },
     "Connections the shards try to keep open to the server (summed; lowered under a cap)."},
    {"gauge.upstream.up",
     "dotproxy_upstream_up",
     MetricType::kShardFraction,
     {},
     [](const S& s) { return s.is_up.value(); },
     "1 when every shard considers the server up, 0 when none does (the fraction of shards)."},
    {"gauge.upstream.inflight",
     "dotproxy_upstream_inflight_queries",
     kGauge,
     {},
     [](const S& s) { return s.inflight.value(); },
     "Queries outstanding on the server."},
};

const HistogramMetric kHistogramMetrics[] = {
    {"latency.proxy.tx_rtt", "dotproxy_query_duration_seconds", Unit::kMicroseconds,
     [](const C& c) -> const base::Histogram& { return c.rtt_us; },
     "Client query received to upstream answer sent, for answered queries."},
    {"size.proxy.request", "dotproxy_request_size_bytes", Unit::kBytes,
     [](const C& c) -> const base::Histogram& { return c.request_bytes; },
     "Client query size (DNS message, no TCP length prefix)."},
    {"size.proxy.response", "dotproxy_response_size_bytes", Unit::kBytes,
     [](const C& c) -> const base::Histogram& { return c.response_bytes; },
     "Answer size before any truncation (DNS message, no TCP length prefix)."},
};

const ServerHistogramMetric kServerHistogramMetrics[] = {
    {"latency.proxy.tx_upstream", "dotproxy_upstream_latency_seconds", Unit::kMicroseconds,
     [](const S& s) -> const base::Histogram& { return s.latency_us; },
     "Query written to the server to its answer read, per answered attempt."},
    {"size.upstream.cx_queries", "dotproxy_upstream_queries_per_connection", Unit::kCount,
     [](const S& s) -> const base::Histogram& { return s.queries_per_connection; },
     "Queries sent on an upstream connection over its life, recorded when it closes."},
};

constexpr uint64_t kMicrosecondBounds[] = {100,    250,    500,     1000,    2500,
                                           5000,   10000,  25000,   50000,   100000,
                                           250000, 500000, 1000000, 2500000, 5000000};
constexpr uint64_t kByteBounds[] = {64, 128, 256, 512, 1024, 1232, 1432, 2048, 4096, 16384, 65535};
constexpr uint64_t kCountBounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000, 100000};

}  // namespace

std::span<const ShardMetric> ShardMetrics() { return kShardMetrics; }
std::span<const ServerMetric> ServerMetrics() { return kServerMetrics; }
std::span<const HistogramMetric> HistogramMetrics() { return kHistogramMetrics; }
std::span<const ServerHistogramMetric> ServerHistogramMetrics() { return kServerHistogramMetrics; }

std::span<const uint64_t> PrometheusBounds(Unit unit) {
  switch (unit) {
    case Unit::kMicroseconds:
      return kMicrosecondBounds;
    case Unit::kBytes:
      return kByteBounds;
    case Unit::kCount:
      return kCountBounds;
  }
  return {};
}

const char* RcodeName(int rcode) { return kRcodeNames[rcode & 0x0F]; }

}  // namespace dotproxy::metrics
