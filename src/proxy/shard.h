// File: proxy/shard.h
//
// A Shard is one pinned thread's whole data plane, and this class is its composition root: it
// creates, on that thread, the reactor (io_uring, timers, flush hooks), the query table, the
// upstream connection pool and the UDP and TCP frontends, and wires them together. Everything
// is touched by that thread only; the only cross-thread entry point is RequestStop(). See
// ARCHITECTURE.md for the query path.
#ifndef DOTPROXY_PROXY_SHARD_H_
#define DOTPROXY_PROXY_SHARD_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "core/reactor.h"
#include "metrics/counters.h"
#include "proxy/client_limits.h"
#include "proxy/handoff_relay.h"
#include "proxy/query_table.h"
#include "proxy/tcp_frontend.h"
#include "proxy/udp_frontend.h"
#include "upstream/connection_pool.h"

namespace dotproxy::proxy {

class Shard {
 public:
  // Builds the shard on the calling thread (which must be the thread that will Run it). `hub`
  // (shared by all shards, outliving them): queries are handed between shards through it;
  // null, or a single shard: every shard keeps at least one connection per server.
  static absl::StatusOr<std::unique_ptr<Shard>> Create(const config::Config& config,
                                                       uint32_t shard_id, uint32_t shard_count,
                                                       upstream::HandoffHub* hub = nullptr);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Runs the event loop until RequestStop().
  void Run();
  // Thread-safe: asks the loop to stop and wakes it. The shard must stay alive until the thread
  // running it has been joined.
  void RequestStop() { reactor_->RequestStop(); }
  // Thread-safe: graceful stop. Stops reading new queries, answers those in flight within
  // `grace_ms` (SERVFAIL for the rest at the deadline), lets the answers go out, sends
  // close_notify upstream, then ends Run().
  void Drain(int64_t grace_ms) {
    reactor_->Post([this, grace_ms] { StartDrain(grace_ms); });
  }
  // Thread-safe: switches the shard to `next` at a loop boundary (reload). Upstream servers whose
  // address, name and TLS settings are unchanged keep their connections and health; listener
  // address changes bind the new addresses and close the removed ones. Called by one thread
  // (the control thread), which first allocates the counter blocks of `next`'s metrics ids.
  void Reconfigure(std::shared_ptr<const config::Config> next);
  // Thread-safe: runs `task` on the shard's thread at a loop boundary (control plane only).
  void Post(std::function<void()> task) { reactor_->Post(std::move(task)); }
  // Loop iterations so far (read by the control thread for the watchdog).
  uint64_t iterations() const { return reactor_->iterations(); }

  const metrics::ShardCounters& counters() const { return counters_; }
  uint16_t udp_port() const { return udp_->port(); }
  uint16_t tcp_port() const { return tcp_ != nullptr ? tcp_->port() : 0; }

 private:
  Shard(const config::Config& config, uint32_t shard_id, uint32_t shard_count,
        upstream::HandoffHub* hub);
  absl::Status Init();
  void LogCounters() const;
  // Shutdown steps, polled by drain_timer_.
  enum class DrainState : uint8_t { kRunning, kAnswering, kFlushing, kClosing };
  void StartDrain(int64_t grace_ms);
  void ApplyConfig(const config::Config& next);
  // Allocates the per-server counter blocks of `config`'s servers that do not exist yet.
  void ReserveServerBlocks(const config::Config& config);
  void OnDrainTimer(core::Timer* timer);

  // The shard's own copy: every component refers to it, and a reload assigns it in place.
  config::Config config_;
  const uint32_t shard_id_;
  const uint32_t shard_count_;
  metrics::ShardCounters counters_;
  std::unique_ptr<core::Reactor> reactor_;
  std::unique_ptr<ClientGate> gate_;  // ACL and rate limit, for both frontends
  std::unique_ptr<QueryTable> table_;
  std::unique_ptr<upstream::ConnectionPool> pool_;
  upstream::HandoffHub* hub_ = nullptr;
  std::unique_ptr<HandoffRelay> relay_;  // with a hub and more than one shard
  std::unique_ptr<UdpFrontend> udp_;
  std::unique_ptr<TcpFrontend> tcp_;
  DrainState drain_state_ = DrainState::kRunning;
  int64_t drain_deadline_ms_ = 0;  // of the current drain step
  core::Timer drain_timer_;
};

}  // namespace dotproxy::proxy

#endif  // DOTPROXY_PROXY_SHARD_H_
