// File: proxy/counters.h
//
// Per-shard counters: plain fields written only by the shard's thread. The statsd issue (#later)
// adds the periodic snapshot to the control thread; until then they are logged at exit.
#ifndef DOTPROXY_PROXY_COUNTERS_H_
#define DOTPROXY_PROXY_COUNTERS_H_

#include <cstdint>

namespace dotproxy::proxy {

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
  uint64_t upstream_unknown_id = 0;    // responses dropped: unknown or stale ID
  uint64_t upstream_mismatch = 0;      // responses dropped: question differs
  uint64_t upstream_retries = 0;       // queries re-sent on another connection
  uint64_t upstream_connects = 0;
  uint64_t upstream_connect_failures = 0;
  uint64_t upstream_handshakes_full = 0;
  uint64_t upstream_handshakes_resumed = 0;
  uint64_t upstream_handshake_failures = 0;
  uint64_t upstream_closed = 0;        // connections lost (EOF, reset, error)
  uint64_t upstream_stale_closed = 0;  // closed by us after stale_timeout
};

}  // namespace dotproxy::proxy

#endif  // DOTPROXY_PROXY_COUNTERS_H_
