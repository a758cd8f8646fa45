// File: upstream/counters.h
//
// What one shard's upstream connections count: plain fields, written only by the shard's thread.
// metrics::ShardCounters embeds this block.
#ifndef DOTPROXY_UPSTREAM_COUNTERS_H_
#define DOTPROXY_UPSTREAM_COUNTERS_H_

#include <cstdint>

namespace dotproxy::upstream {

struct UpstreamCounters {
  uint64_t unknown_id = 0;         // late responses dropped: their ID was recently released
  uint64_t desyncs = 0;            // connections closed: a message that answers no query
  uint64_t write_timeouts = 0;     // connections closed: a send made no progress for write_timeout
  uint64_t local_resource_errors = 0;  // connects failed for lack of local fds/memory (EMFILE...)
  uint64_t backlog_moved = 0;      // queued queries handed back when their server went down
  uint64_t quarantined = 0;        // SERVFAIL: the query was on two connections the server closed
  uint64_t mismatch = 0;           // responses dropped: question differs
  uint64_t connects = 0;
  uint64_t connect_failures = 0;
  uint64_t handshakes_full = 0;
  uint64_t handshakes_resumed = 0;
  uint64_t handshake_failures = 0;
  uint64_t closed = 0;             // connections lost (EOF, reset, error)
  uint64_t stale_closed = 0;       // closed by us after stale_timeout
};

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_COUNTERS_H_
