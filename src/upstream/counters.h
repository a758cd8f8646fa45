// File: upstream/counters.h
//
// What one shard's upstream connections count, written only by the shard's thread and read by
// the metrics reporter (base::Counter: relaxed, no lock). metrics::ShardCounters embeds this
// block. Per-server values live in `servers` (one ServerCounters per upstream.servers entry,
// allocated once when the pool starts, before the reporter may read them).
#ifndef DOTPROXY_UPSTREAM_COUNTERS_H_
#define DOTPROXY_UPSTREAM_COUNTERS_H_

#include <cstdint>
#include <memory>

#include "absl/base/optimization.h"
#include "base/counter.h"
#include "base/histogram.h"

namespace dotproxy::upstream {

using base::Counter;
using base::Gauge;

// One server as seen by one shard. Cache-line aligned: shards never share a line.
struct ABSL_CACHELINE_ALIGNED ServerCounters {
  Counter connects;        // TCP connects started
  Counter connect_errors;  // connect or handshake failed (seed event.upstream.cx_error)
  Counter handshakes_full;
  Counter handshakes_resumed;  // TLS session resumed
  Counter ktls_tx;             // ready connections whose records the kernel encrypts (kTLS)
  Counter ktls_rx;             // ready connections whose records the kernel decrypts (kTLS)
  Counter tls_user_space;      // ready connections with both directions in OpenSSL
  Counter closed;              // connections lost or closed (stale closes included)
  Counter stale_closed;        // closed by us after stale_timeout
  Counter write_errors;        // a send to the server failed
  Counter queries;             // attempts written to this server
  Counter answers;             // answers matched to a waiting query
  Counter dropped_answers;     // unknown ID or question mismatch
  Counter retries;             // attempts sent again after one on this server timed out or was lost
  Counter down_transitions;    // up -> down
  Counter cap_closed;          // fresh, healthy connections the server closed (a connection cap)
  Gauge target_connections;    // connections this shard tries to keep open to the server
  Gauge is_up;                 // 1 when this shard considers the server up
  Gauge inflight;              // queries outstanding on this server
  Gauge backlog;               // queries waiting for a free ID
  base::Histogram latency_us;  // query written -> answer read, per answered attempt
  base::Histogram queries_per_connection;  // recorded when a ready connection closes
};

struct UpstreamCounters {
  Counter unknown_id;             // late responses dropped: their ID was recently released
  Counter desyncs;                // connections closed: a message that answers no query
  Counter write_timeouts;         // connections closed: a send made no progress for write_timeout
  Counter local_resource_errors;  // connects failed for lack of local fds/memory (EMFILE...)
  Counter backlog_moved;          // queued queries handed back when their server went down
  Counter quarantined;            // SERVFAIL: the query was on two connections the server closed
  Counter cap_closed;             // fresh, healthy connections closed by a server (connection cap)
  Counter mismatch;    // responses dropped: question differs
  Counter connects;
  Counter connect_failures;
  Counter handshakes_full;
  Counter handshakes_resumed;
  Counter handshake_failures;
  Counter closed;                             // connections lost (EOF, reset, error)
  Counter stale_closed;                       // closed by us after stale_timeout
  std::unique_ptr<ServerCounters[]> servers;  // [server_count], by upstream.servers index
  uint32_t server_count = 0;

  // Called once, by the shard's pool before it serves queries. One more block than servers: a
  // server a reload added (index >= server_count), or a connection whose server a reload
  // removed, counts into that spare block, which the reporter does not publish.
  void InitServers(uint32_t count) {
    servers = std::make_unique<ServerCounters[]>(count + 1);
    server_count = count;
    for (uint32_t s = 0; s < count; ++s) {
      servers[s].is_up.Set(1);
    }
  }
  ServerCounters& server(uint32_t s) { return servers[s < server_count ? s : server_count]; }
};

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_COUNTERS_H_
