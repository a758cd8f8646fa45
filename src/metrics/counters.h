// File: metrics/counters.h
//
// Per-shard counters: plain fields written only by the shard's thread (no atomics, no locks).
// The frontends and the query table count here; the upstream connection pool counts into the
// embedded upstream::UpstreamCounters. Until the periodic snapshot lands (the metrics issue)
// they are logged when the shard stops.
#ifndef DOTPROXY_METRICS_COUNTERS_H_
#define DOTPROXY_METRICS_COUNTERS_H_

#include <cstdint>

#include "upstream/counters.h"

namespace dotproxy::metrics {

struct ShardCounters {
  uint64_t udp_queries = 0;
  uint64_t tcp_queries = 0;
  uint64_t udp_malformed = 0;          // dropped: short, QR=1, bad question
  uint64_t udp_dropped_no_slot = 0;    // query table full
  uint64_t udp_recv_rearms = 0;        // multishot recvmsg ended and was re-armed
  uint64_t tcp_malformed = 0;          // connections closed for a bad frame or message
  uint64_t tcp_accepted = 0;
  uint64_t tcp_shed = 0;               // idle connections closed to admit new ones
  uint64_t tcp_refused = 0;            // accepted and closed at once: table full, none idle
  uint64_t tcp_idle_closed = 0;
  uint64_t responses = 0;              // answers delivered to clients
  uint64_t truncated = 0;              // UDP answers sent as TC=1
  uint64_t servfail_timeout = 0;
  uint64_t servfail_no_upstream = 0;
  uint64_t servfail_retries = 0;       // connection lost, retries exhausted
  uint64_t client_gone = 0;            // TCP client closed before its answer
  uint64_t upstream_retries = 0;       // queries re-sent on another connection
  uint64_t udp_acl_dropped = 0;        // UDP queries from sources outside listener.allow
  uint64_t tcp_acl_refused = 0;        // TCP connections from outside listener.allow, closed
  uint64_t rate_limited_dropped = 0;   // over listener.rate_limit, dropped (action drop)
  uint64_t rate_limited_refused = 0;   // over listener.rate_limit, answered REFUSED
  uint64_t local_notimp = 0;           // opcode other than QUERY: answered NOTIMP, not forwarded
  uint64_t local_formerr = 0;          // TC=1, answer/authority records or two OPTs: FORMERR
  uint64_t local_badvers = 0;          // EDNS version other than 0: BADVERS
  uint64_t client_share_dropped = 0;   // over max_queries_per_client: UDP dropped, TCP SERVFAIL
  uint64_t tcp_paused_output = 0;      // reads paused because answers wait to be written
  uint64_t tcp_write_timeouts = 0;     // closed: output not drained within write_timeout
  uint64_t udp_recv_errors = 0;        // failed recvmsg completions (re-armed with backoff)
  uint64_t tcp_accept_errors = 0;      // failed accepts (re-armed with backoff)
  upstream::UpstreamCounters upstream;
};

}  // namespace dotproxy::metrics

#endif  // DOTPROXY_METRICS_COUNTERS_H_
