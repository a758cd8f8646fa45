// File: metrics/counters.h
//
// Per-shard counters: one cache-line-aligned block per shard, written only by the shard's thread
// (base::Counter: a relaxed load and store, no locked instruction, no allocation) and read by the
// metrics::Reporter thread, which snapshots every shard each metrics.flush_interval. The
// frontends and the query table count here; the upstream connection pool counts into the
// embedded upstream::UpstreamCounters (and its per-server blocks).
#ifndef DOTPROXY_METRICS_COUNTERS_H_
#define DOTPROXY_METRICS_COUNTERS_H_

#include <cstdint>

#include "absl/base/optimization.h"
#include "base/counter.h"
#include "base/histogram.h"
#include "upstream/counters.h"

namespace dotproxy::metrics {

using base::Counter;
using base::Gauge;

inline constexpr int kMaxAttemptOrdinal = 3;  // answers_by_attempt: 1st, 2nd, 3rd or later

struct ABSL_CACHELINE_ALIGNED ShardCounters {
  Counter udp_queries;
  Counter tcp_queries;
  Counter udp_malformed;        // dropped: short, QR=1, bad question
  Counter udp_dropped_no_slot;  // query table full
  Counter udp_recv_rearms;      // multishot recvmsg ended and was re-armed
  Counter tcp_malformed;        // connections closed for a bad frame or message
  Counter tcp_accepted;
  Counter tcp_shed;     // idle connections closed to admit new ones
  Counter tcp_refused;  // accepted and closed at once: table full, none idle
  Counter tcp_idle_closed;
  Counter responses;  // answers delivered to clients
  Counter truncated;  // UDP answers sent as TC=1
  Counter servfail_timeout;
  Counter servfail_no_upstream;
  Counter servfail_retries;  // connection lost (or hand-off declined), retries exhausted
  Counter servfail_shutdown; // still unanswered when the shutdown grace ran out
  Counter client_gone;       // TCP client closed before its answer
  Counter upstream_retries;  // queries re-sent on another connection
  Counter hedged_retries;    // of which: a second copy after read_timeout (not a lost conn)
  Counter handed_off;        // queries handed to a shard that owns a connection (issue 15)
  Counter handed_in;         // queries another shard handed to this one
  Counter handoff_ring_full;  // hand-offs that waited: the ring to that shard was full
  Counter handoff_late_answers;  // answers back from a hand-off whose query was already done
  Counter handoff_declined;  // handed-in queries sent back unserved (no usable connection here)
  Counter udp_acl_dropped;  // UDP queries from sources outside listener.allow
  Counter tcp_acl_refused;  // TCP connections from outside listener.allow, closed
  Counter rate_limited_dropped;  // over listener.rate_limit, dropped (action drop)
  Counter rate_limited_refused;  // over listener.rate_limit, answered REFUSED
  Counter local_notimp;  // opcode other than QUERY: answered NOTIMP, not forwarded
  Counter local_formerr;  // TC=1, answer/authority records or two OPTs: FORMERR
  Counter local_badvers;  // EDNS version other than 0: BADVERS
  Counter client_share_dropped;  // over max_queries_per_client: UDP dropped, TCP SERVFAIL
  Counter tcp_paused_output;  // reads paused because answers wait to be written
  Counter tcp_write_timeouts;  // closed: output not drained within write_timeout
  Counter udp_recv_errors;  // failed recvmsg completions (re-armed with backoff)
  Counter tcp_accept_errors;  // failed accepts (re-armed with backoff)
  Counter rcodes[16];        // delivered answers (SERVFAILs we made included) by RCODE
  Counter answers_by_attempt[kMaxAttemptOrdinal];  // upstream answers by the attempt that won
  Gauge slots_in_use;                              // query table occupancy
  base::Histogram rtt_us;          // client query in -> answer out (answered queries)
  base::Histogram request_bytes;   // client query size
  base::Histogram response_bytes;  // answer size before any truncation
  upstream::UpstreamCounters upstream;
};

}  // namespace dotproxy::metrics

#endif  // DOTPROXY_METRICS_COUNTERS_H_
