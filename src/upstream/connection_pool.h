// File: upstream/connection_pool.h
//
// ConnectionPool is one shard's side of every upstream server: per server its TLS context, its
// slice of connection_pool_size connections, its health (down/up, backoff, probes, latency) and a
// backlog of queries waiting for a free ID; across servers the balancer. It runs the connections'
// whole life (connect, handshake, pipelined writes, response matching by ID, stale close,
// replacement) on the shard's reactor.
//
// Its interface to the proxy is small. The proxy's query table calls Send() for a query slot and
// Release() when it no longer wants an attempt; the pool calls back through QueryOwner when an
// answer arrives, when a connection carrying attempts is lost, and when a backlogged query can go.
#ifndef DOTPROXY_UPSTREAM_CONNECTION_POOL_H_
#define DOTPROXY_UPSTREAM_CONNECTION_POOL_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "config/config.h"
#include "core/buffer_ring.h"
#include "core/reactor.h"
#include "tls/tls_context.h"
#include "upstream/balancer.h"
#include "upstream/connection.h"
#include "upstream/counters.h"
#include "upstream/handoff_hub.h"
#include "upstream/health.h"

namespace dotproxy::upstream {

// What the pool needs from whoever owns the queries (proxy::QueryTable).
class QueryOwner {
 public:
  virtual ~QueryOwner() = default;
  // A response for query `slot` arrived on attempt (conn, id). Returns true if it answers that
  // attempt (question, opcode and QR checked) and sets *sent_ns to when the attempt was sent;
  // the owner then completes the query, which releases the attempt.
  virtual bool OnResponse(uint32_t slot, uint32_t conn, uint16_t id, const uint8_t* msg,
                          size_t len, int64_t* sent_ns) = 0;
  // Connection `conn`, which carried an attempt of `slot`, is gone; its ID is already released.
  // The owner forgets the attempt and must not call Release() for it. `by_server`: the server
  // closed, reset or broke the stream (not our own recycling), which the query may have caused.
  // `by_cap`: the server closed a fresh connection to keep under its connection cap (adaptive
  // pool): nothing the query did, so the attempt does not count against its retries (the
  // query's deadline still bounds it).
  virtual void OnAttemptLost(uint32_t slot, uint32_t conn, bool by_server, bool by_cap) = 0;
  // Called once per query after the OnAttemptLost calls of one connection failure, once the
  // connection has been replaced: re-send the query or fail it.
  virtual void OnLostAttemptsDone(uint32_t slot) = 0;
  // A query that Send() queued may be sent now (the owner checks it still waits).
  virtual void OnBacklogReady(uint32_t slot) = 0;
};

class ConnectionPool {
 public:
  // Where a query went: connection, rewritten ID and server, and whether the pool padded it
  // (then dns::StripPadding undoes that on the answer).
  struct Attempt {
    uint32_t conn = 0;
    uint16_t id = 0;
    int32_t server = -1;
    bool is_padded = false;
  };
  enum class SendResult : uint8_t {
    kSent,      // *attempt describes it
    kQueued,    // every chosen server's ID slots are taken: waits in a backlog
    kNoServer,  // no server is up
    kHandOff,   // this shard holds no ready connection to attempt->server, shard
                // attempt->conn does: hand the query to it (proxy/handoff_relay.h)
  };
  enum class TimeoutVerdict : uint8_t {
    kServerDown,  // too many timeouts: the server is down, its connections recycled
    kRecycled,    // the connection was half-dead and has been replaced (queries re-sent)
    kSlow,        // nothing changed: the attempt is merely slow
  };

  ConnectionPool(core::Reactor& reactor, const config::Config& config, QueryOwner& owner,
                 UpstreamCounters& counters, uint32_t shard_id, uint32_t shard_count,
                 HandoffHub* hub = nullptr);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Creates the TLS contexts and this shard's connections, and starts connecting.
  absl::Status Init();

  // Picks a server (the configured policy, never `exclude_server` when another is usable) and
  // its least-loaded connection, and queues `query` there with a fresh ID. With a hub, a server
  // this shard holds no ready connection to is reached through a shard that does (kHandOff,
  // unless `may_hand_off` is false: a query handed in is never handed on); when no shard holds
  // a live one, this shard connects itself. `pinned_server` (a query handed in): that server
  // when this shard can reach it, else the policy's pick.
  SendResult Send(uint32_t slot, std::span<const uint8_t> query, int exclude_server,
                  Attempt* attempt, bool may_hand_off = true, int pinned_server = -1);
  // The owner is done with an attempt (answered elsewhere, failed, superseded).
  void Release(uint32_t conn, uint16_t id);
  // The server's read_timeout in ms (0: none): when to send a hedged retry.
  int64_t attempt_timeout_ms(int32_t server) const;
  // An attempt on `conn` got no answer within its server's read_timeout. Updates the server's
  // health; `may_recycle` allows replacing a half-dead connection (which re-sends its queries).
  TimeoutVerdict OnAttemptTimeout(uint32_t conn, bool may_recycle);

  size_t connection_count() const { return conns_.size(); }
  // Counts a retry of an attempt that went to `server` (an index of the current config; another
  // value counts nowhere that is published).
  void CountRetry(int32_t server) { ++CountersOf(static_cast<uint32_t>(server)).retries; }
  // Reload: the shard's config changed in place. Servers whose address, name and TLS settings
  // are unchanged keep their connections, health and backlog; new servers connect; removed
  // servers' connections close (close_notify) and their queries are re-sent elsewhere.
  void Reconfigure();
  // Shutdown: closes every connection (close_notify on established ones) and reconnects none.
  void CloseAll();
  // Some connection still has a socket (closing ones included).
  bool has_open_connections() const;

 private:
  // One upstream server as seen by this shard.
  struct Server {
    const config::ServerConfig* config = nullptr;
    std::string identity;          // address, name and TLS settings: what a reload must match
    ServerCounters* counters = nullptr;  // its block (by config->metrics_id), never moves
    std::unique_ptr<tls::ClientContext> tls;
    std::vector<uint32_t> conns;   // the pool: indices into conns_
    std::vector<uint32_t> spare;   // closed connections to reuse as replacements
    std::deque<uint32_t> backlog;  // query slots waiting for a free ID on this server
    ServerHealth health;           // down/up, backoff, latency EWMA (this shard's view)
    core::Timer probe_timer;       // when a down server may be probed again
    uint32_t outstanding = 0;
    // Adaptive pool (adaptive_pool.cc). Connections this shard tries to keep open to the server:
    // its share of connection_pool_size (PoolShare), lowered to what the server keeps open when
    // it closes fresh, healthy connections (a connection cap), regrown one at a time. The
    // connections above it stay in `conns`, idle with no timer armed (parked).
    uint32_t target_connections = 0;
    uint32_t cap_streak = 0;          // cap closes within kCapWindowMs of each other (back-off)
    int64_t last_cap_close_ms = -1;
    int64_t regrow_backoff_ms = 0;    // the wait before trying one more connection
    bool is_regrowing = false;        // a connection above the lowered target is on trial
    bool has_logged_cap = false;      // the first lowering is logged at kWarn, later ones kDebug
    core::Timer regrow_timer;
    // The server sent a TLS 1.3 KeyUpdate asking us to re-key, which OpenSSL 3.0 cannot do with
    // the send side in the kernel: that connection was replaced, and the server's later ones
    // keep TLS in user space (it would re-key them too).
    bool is_ktls_rekeyed = false;
  };

  // Reactor handlers.
  void OnConnectDone(const core::Operation& op, const io_uring_cqe& cqe);
  void OnRecvDone(const core::Operation& op, const io_uring_cqe& cqe);
  void OnSendDone(const core::Operation& op, const io_uring_cqe& cqe);
  void OnConnectionTimer(core::Timer* timer);
  void OnProbeTimer(core::Timer* timer);
  bool Flush();  // end of loop iteration: backlogs, then one write per dirty connection

  absl::Status InitServer(uint32_t server);
  // The counter block of server index `server`; the unpublished spare for kNoServer (a
  // connection whose server a reload removed).
  ServerCounters& CountersOf(uint32_t server) {
    return server < servers_.size() ? *servers_[server].counters : counters_.spare;
  }
  // This shard's share of a server's connection_pool_size: server s's connections live on
  // shards s, s+1, ... (mod shards); 0 for the other shards (with a hub).
  uint32_t PoolShare(uint32_t server, const config::ServerConfig& sc) const;
  // Connections this shard tries to keep open to the server (the adaptive pool lowers it).
  uint32_t TargetConnections(uint32_t server) const {
    return servers_[server].target_connections;
  }
  // ---- Hand-off (connection_pool_handoff.cc) ----
  // Publishes this shard's view of each server in the hub's directory (when it changed).
  void PublishDirectory(uint32_t server, uint32_t ready, uint32_t live);
  // Completes views_ from the local state and, for servers without a local ready connection,
  // from the directory; applies the "pending connections only when nothing is ready" rule.
  void FinishViews();
  // Send's step for a server with no local ready connection: true (hand off; *attempt names the
  // shard), or false with *ci a local connection to queue on (opened now when no shard has a
  // live one) or -1.
  bool RouteWithoutReady(uint32_t server, bool may_hand_off, int32_t* ci, Attempt* attempt);
  // No shard holds a live connection to the server: this shard opens one of its own.
  int32_t ConnectLocally(uint32_t server);
  uint32_t NewConnection(uint32_t server);
  // A closed connection of the server's to reuse, else a new one.
  uint32_t SpareOrNewConnection(uint32_t server);
  // Takes a connection out of its server's pool for good (reload, smaller pool): its queries are
  // re-sent elsewhere, close_notify goes out if it was established, and nothing replaces it.
  void RetireConnection(uint32_t conn);
  int32_t PickConnection(uint32_t server) const;
  bool QueueOnBusyServer(uint32_t slot);
  void DrainBacklogs();
  void RefreshServerViews();
  void MarkDirty(Connection& c);
  void Connect(uint32_t conn);
  void DriveTls(Connection& c);
  void OnReady(Connection& c);
  // Counts, and logs at debug, where a ready connection's records are encrypted and decrypted.
  void CountTlsPath(const Connection& c);
  bool OnMessage(Connection& c, const uint8_t* msg, size_t len);
  // Who ended a connection, for the queries it carried (see QueryOwner::OnAttemptLost).
  enum class Cause : uint8_t {
    kOurs,           // we recycle it (stale, half-dead, server down, write timeout)
    kServer,         // the server reset or broke the stream
    kServerClosed,   // the server closed it cleanly: close_notify or EOF
    kStalled,        // connect or handshake timed out while other connections to it work
    kLocalResource,  // out of local resources (ENOBUFS, ENOMEM): not the server's fault
    kKtlsRekey,      // a KeyUpdate kTLS cannot follow: replaced at once, nobody's failure
  };
  void FailConnection(uint32_t conn, const char* reason, Cause cause = Cause::kOurs);
  // Adaptive pool (adaptive_pool.cc). Whether ending `c` for `cause` looks like a connection cap:
  // a clean close (close_notify or EOF) of a fresh connection that never answered or of an idle
  // one after a very short idle time, or a stalled set-up (kStalled), while the server is up.
  bool IsCapClose(const Connection& c, Cause cause, int64_t now_ms) const;
  // A connect or handshake of `c` timed out: kStalled when another connection to the server is
  // ready, this shard's or (the hub's directory) another shard's (the server works but does not
  // take this one: its accept queue is full, as unbound's is beyond incoming-num-tcp), else kOurs
  // (a set-up failure).
  Cause SetUpTimeoutCause(const Connection& c) const;
  // Counts a cap close of `c`. When `c` itself replaced a capped connection (or was a regrow
  // trial, or stalled while others work), the server caps for real (a restart closes everything
  // once, and its replacements stay): the target drops to the connections still open. Returns
  // the back-off exponent for the replacement.
  uint32_t OnCapClose(const Connection& c, Cause cause, int64_t now_ms);
  // The server capped this shard's last connection, whose replacement waits for its back-off:
  // queries wait in the backlog for it instead of failing.
  bool IsCapBackingOff(uint32_t server) const;
  // Connections of `server` connecting, handshaking or ready.
  uint32_t LiveConnections(uint32_t server) const;
  // Connects idle connections of `server` that wait for no timer, up to its target.
  void ConnectUpToTarget(uint32_t server);
  void OnRegrowTimer(core::Timer* timer);
  // Resets the adaptive state to the share (start, reload).
  void ResetTarget(uint32_t server);
  // Releases every query in flight on `c` and tells the owner it lost them (`by_server`: the
  // server ended the connection); returns their slots, for OnLostAttemptsDone once the
  // connection is out of the pool.
  std::vector<uint32_t> DetachQueries(Connection& c, bool by_server, bool by_cap = false);
  void FinishClose(uint32_t conn);
  void ScheduleReconnect(uint32_t conn, bool immediately);
  // Brings a ready connection's timer forward to when its send in flight exceeds write_timeout.
  void ArmWriteDeadline(Connection& c);
  void OnServerConnectFailure(uint32_t server);
  void OnServerDown(uint32_t server);
  // Hands every query in a (now down) server's backlog back to the owner to send elsewhere.
  void MoveBacklog(uint32_t server);
  // Retries a connect that failed for lack of local resources (EMFILE...), after a short backoff.
  void ScheduleLocalRetry(Connection& c);
  void ArmProbeTimer(uint32_t server);
  // Releases one ID on `c` and the server's outstanding count, without telling the owner.
  void ReleaseId(Connection& c, uint16_t id);

  core::Reactor& reactor_;
  const config::Config& config_;
  QueryOwner& owner_;
  UpstreamCounters& counters_;
  const uint32_t shard_id_;
  const uint32_t shard_count_;
  Connection::Handlers handlers_;
  uint32_t probe_timer_kind_ = 0;
  uint32_t regrow_timer_kind_ = 0;
  core::BufferRing* buffers_ = nullptr;  // ciphertext from every connection, shared (reactor's)
  std::vector<Server> servers_;
  std::vector<std::unique_ptr<Connection>> conns_;
  std::vector<uint32_t> dirty_;
  bool has_backlog_ = false;  // some server has queued queries and freed an ID
  bool is_shutting_down_ = false;
  std::vector<ServerView> views_;
  std::vector<bool> has_pending_;  // RefreshServerViews scratch: a connection being set up
  std::vector<bool> has_ready_;    // a READY connection of this shard (free ID or not)
  std::vector<bool> has_usable_;   // a READY connection with a free ID
  std::vector<bool> has_live_;     // a connection established or being set up
  std::vector<bool> view_pending_;  // FinishViews scratch
  std::vector<uint32_t> published_;  // last directory word per server (with a hub)
  HandoffHub* hub_ = nullptr;        // null: a single shard, nothing handed off
  bool has_remote_servers_ = false;  // some server lacks a local ready connection
  uint64_t views_iteration_ = 0;     // when FinishViews last read the directory
  BalancerState balancer_;
  PickFn pick_ = nullptr;
  std::vector<uint8_t> plaintext_;  // SSL_read scratch
  absl::BitGen rng_;                // reconnect jitter
};

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_CONNECTION_POOL_H_
