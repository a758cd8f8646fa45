// File: upstream/counters.h
//
// What one shard's upstream connections count, written only by the shard's thread and read by
// the metrics reporter (base::Counter: relaxed, no lock). metrics::ShardCounters embeds this
// block. Per-server values live in one ServerCounters per metrics id (ServerConfig::metrics_id:
// one per distinct server ever configured, never reused). Blocks are allocated by the control
// thread (Reserve, before the config naming them reaches the shard; at start-up by the shard's
// creator before anyone else sees it), published with a release store, read with acquire, and
// freed only with the shard: the reporter may read them while a reload goes on, without a lock.
#ifndef DOTPROXY_UPSTREAM_COUNTERS_H_
#define DOTPROXY_UPSTREAM_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstdint>

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
  // Server blocks: a directory of chunks of block pointers, so that no pointer the reporter or
  // a pool holds ever moves. 64 Ki ids; a server past that (after 65,536 distinct servers in
  // one process) counts into `spare`.
  static constexpr uint32_t kIdsPerChunk = 64;
  static constexpr uint32_t kChunks = 1024;
  static constexpr uint32_t kMaxServerIds = kIdsPerChunk * kChunks;

  UpstreamCounters() = default;
  UpstreamCounters(const UpstreamCounters&) = delete;
  UpstreamCounters& operator=(const UpstreamCounters&) = delete;
  ~UpstreamCounters();

  // One thread at a time (the control thread; at start-up the shard's creator): allocates the
  // block of `id` if it has none yet. A new block starts at zero with is_up = 1.
  void Reserve(uint32_t id);
  // Any thread: the block of `id`, or null when it was never reserved.
  const ServerCounters* Find(uint32_t id) const;
  // The shard's thread, resolving a server's block once (at start-up and reload): the block of
  // `id`, or `spare` when it has none.
  ServerCounters& Block(uint32_t id);
  // Any thread: one more than the largest id reserved so far (0: none).
  uint32_t id_limit() const { return id_limit_.load(std::memory_order_acquire); }

  // Never published: connections whose server a reload removed count here.
  ServerCounters spare;

 private:
  ServerCounters* Lookup(uint32_t id) const;

  struct Chunk {
    std::array<std::atomic<ServerCounters*>, kIdsPerChunk> blocks{};
  };
  std::array<std::atomic<Chunk*>, kChunks> chunks_{};
  std::atomic<uint32_t> id_limit_{0};
};

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_COUNTERS_H_
