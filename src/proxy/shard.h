// File: proxy/shard.h
//
// A Shard is one pinned thread's whole data plane: its io_uring, its SO_REUSEPORT UDP socket and
// TCP listener, its client TCP connections, its slice of every upstream server's connections,
// its balancer state, timer wheel and counters. Everything here is touched by that thread only;
// the only cross-thread entry point is RequestStop(). See ARCHITECTURE.md for the query path.
//
// The implementation is split by concern: shard.cc (set-up, loop, dispatch), udp_frontend.cc,
// tcp_frontend.cc and forwarder.cc (upstream connections and query slots).
#ifndef DOTPROXY_PROXY_SHARD_H_
#define DOTPROXY_PROXY_SHARD_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <deque>
#include <cstdint>
#include <memory>
#include <vector>

#include <liburing.h>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "base/socket_address.h"
#include "base/unique_fd.h"
#include "config/config.h"
#include "core/buffer_ring.h"
#include "core/operation.h"
#include "core/ring.h"
#include "core/timer_wheel.h"
#include "dns/message.h"
#include "dns/tcp_framing.h"
#include "net/send_queue.h"
#include "proxy/counters.h"
#include "tls/tls_context.h"
#include "upstream/balancer.h"
#include "upstream/connection.h"
#include "upstream/health.h"

namespace dotproxy::proxy {

class Shard {
 public:
  // Builds the shard on the calling thread (which must be the thread that will Run it).
  static absl::StatusOr<std::unique_ptr<Shard>> Create(const config::Config& config,
                                                       uint32_t shard_id, uint32_t shard_count);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Runs the event loop until RequestStop().
  void Run();
  // Thread-safe: asks the loop to stop and wakes it.
  void RequestStop();

  const ShardCounters& counters() const { return counters_; }
  uint16_t udp_port() const;
  uint16_t tcp_port() const;

 private:
  // Timer kinds (core::Timer::kind).
  enum TimerKind : uint32_t {
    kTimerQuery = 1,
    kTimerTcpClient = 2,
    kTimerUpstream = 3,
    kTimerAcceptRetry = 4,
    kTimerProbe = 5,
  };

  enum class ClientKind : uint8_t { kUdp, kTcp };

  static constexpr uint8_t kMaxLiveAttempts = 2;

  // One client query from arrival until its reply has left.
  struct QuerySlot {
    enum class State : uint8_t { kFree, kWaiting, kReplying };
    State state = State::kFree;
    ClientKind client_kind = ClientKind::kUdp;
    uint8_t attempts = 0;              // upstream sends so far
    uint8_t live = 0;                  // attempts in flight: (upstream_conn, upstream_id)[0..live)
    bool is_queued = false;            // in a server's backlog, waiting for a free ID slot
    uint8_t pktinfo_family = 0;        // AF_INET / AF_INET6 when the query's destination is known
    uint32_t generation = 0;
    uint32_t tcp_index = 0;            // TCP client (index, generation) to answer
    uint32_t tcp_generation = 0;
    // A retry after an attempt timeout does not cancel the slow attempt: whichever answers first
    // wins (the older is dropped when a third is sent).
    uint32_t upstream_conn[kMaxLiveAttempts] = {};
    uint16_t upstream_id[kMaxLiveAttempts] = {};
    int64_t attempt_sent_ns[kMaxLiveAttempts] = {};  // for the server's latency EWMA
    int32_t last_server = -1;          // server of the latest attempt
    int64_t deadline_ms = 0;           // upstream.query_timeout after arrival
    dns::QueryInfo info;
    base::SocketAddress client;        // UDP source address
    union {
      in_pktinfo v4;
      in6_pktinfo v6;
    } pktinfo{};                       // UDP destination address, to reply from it
    std::vector<uint8_t> query;        // the client's message (client ID in bytes 0-1)
    std::vector<uint8_t> reply;        // UDP reply being sent
    core::Timer timer;
    core::Operation send_op;
    msghdr msg{};
    iovec iov{};
    alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(in6_pktinfo))];
  };

  // One accepted client TCP connection (RFC 7766).
  struct TcpClient {
    enum class State : uint8_t { kFree, kOpen, kClosing };
    State state = State::kFree;
    bool is_recv_pending = false;
    bool is_peer_closed = false;       // peer shut down its sending side
    bool is_paused = false;            // in-flight cap reached: not reading
    bool is_dirty = false;             // on the flush list
    uint32_t generation = 0;
    uint32_t inflight = 0;             // queries forwarded, not yet answered
    base::UniqueFd fd;
    core::Operation recv_op;
    core::Operation send_op;
    dns::FrameReader reader;
    net::SendQueue output;             // framed responses, one send in flight
    int64_t last_activity_ms = 0;
    int64_t send_started_ms = 0;
    core::Timer timer;                 // idle (read_timeout) and write_timeout checks
  };

  // One upstream server as seen by this shard.
  struct Server {
    const config::ServerConfig* config = nullptr;
    std::unique_ptr<tls::ClientContext> tls;
    std::vector<uint32_t> conns;       // the pool: indices into upstream_conns_
    std::vector<uint32_t> spare;       // closed connections to reuse as replacements
    std::deque<uint32_t> backlog;      // query slots waiting for a free ID on this server
    upstream::ServerHealth health;     // down/up, backoff, latency EWMA (this shard's view)
    core::Timer probe_timer;           // when a down server may be probed again
    uint32_t outstanding = 0;
  };

  Shard(const config::Config& config, uint32_t shard_id, uint32_t shard_count);
  absl::Status Init();

  // shard.cc: the loop.
  void Dispatch(const io_uring_cqe& cqe);
  void OnTimer(core::Timer* timer);
  void FlushDirty();
  void ArmWake();

  // udp_frontend.cc
  absl::Status InitUdp();
  void ArmUdpRecv();
  void OnUdpRecv(const io_uring_cqe& cqe);
  void SendUdpReply(uint32_t slot_index);
  void OnUdpSendDone(uint32_t slot_index, int res);

  // tcp_frontend.cc
  absl::Status InitTcp();
  void ArmAccept();
  void OnAccept(const io_uring_cqe& cqe);
  void ArmTcpRecv(uint32_t index);
  void OnTcpRecv(uint32_t index, const io_uring_cqe& cqe);
  bool OnTcpMessage(uint32_t index, const uint8_t* msg, size_t len);
  void OnTcpSendDone(uint32_t index, int res);
  void StartTcpSend(uint32_t index);
  void QueueTcpResponse(uint32_t index, const uint8_t* msg, size_t len, uint16_t client_id);
  void OnTcpTimer(uint32_t index);
  void CloseTcpClient(uint32_t index);
  void MaybeFinishTcpClose(uint32_t index);
  void MaybeCloseAfterPeerEof(uint32_t index);
  void ResumeTcpClient(uint32_t index);
  bool ShedIdleTcpClient();

  // forwarder.cc: query slots.
  int32_t AcquireQuerySlot();
  void ReleaseQuerySlot(uint32_t slot_index);
  void Forward(uint32_t slot_index, int exclude_server);
  void CompleteQuery(uint32_t slot_index, const uint8_t* response, size_t len);
  void FailQuery(uint32_t slot_index);
  // Sends `response` to the query's client (truncating for UDP) and frees the slot.
  void Reply(uint32_t slot_index, const uint8_t* response, size_t len);
  // Releases every attempt's upstream ID.
  void DetachFromUpstream(uint32_t slot_index);
  // Releases attempt `attempt` (an index into upstream_conn/upstream_id).
  void DetachAttempt(uint32_t slot_index, uint8_t attempt);
  void OnQueryTimer(uint32_t slot_index);
  void FinishQuery(uint32_t slot_index);

  // forwarder.cc: upstream connections.
  absl::Status InitUpstreams();
  int32_t PickConnection(uint32_t server);
  void Connect(uint32_t conn);
  void OnUpstreamConnect(uint32_t conn, int res);
  void OnUpstreamRecv(uint32_t conn, const io_uring_cqe& cqe);
  void OnUpstreamSendDone(uint32_t conn, int res);
  void DriveTls(uint32_t conn);
  void OnUpstreamReady(uint32_t conn);
  bool OnUpstreamMessage(uint32_t conn, const uint8_t* msg, size_t len);
  void FlushUpstream(uint32_t conn);
  void StartUpstreamSend(uint32_t conn);
  void ArmUpstreamRecv(uint32_t conn);
  void FailConnection(uint32_t conn, const char* reason);
  void MaybeFinishUpstreamClose(uint32_t conn);
  void ScheduleReconnect(uint32_t conn, bool immediately);
  void OnUpstreamTimer(uint32_t conn);
  void RefreshServerViews();
  // Queues a query whose chosen servers are up but have every ID slot in use. False if no
  // server is up (the caller fails the query).
  bool QueueOnBusyServer(uint32_t slot_index);
  void DrainBacklogs();
  void MarkUpstreamDirty(uint32_t conn);
  // Health transitions of a server (upstream/health.h) and their consequences.
  void OnServerConnectFailure(uint32_t server);
  void OnServerDown(uint32_t server);
  void OnProbeTimer(uint32_t server);
  void ArmProbeTimer(uint32_t server);

  const config::Config& config_;
  const uint32_t shard_id_;
  const uint32_t shard_count_;
  std::unique_ptr<core::Ring> ring_;
  std::unique_ptr<core::BufferRing> udp_buffers_;
  std::unique_ptr<core::BufferRing> tcp_buffers_;
  std::unique_ptr<core::BufferRing> upstream_buffers_;  // ciphertext from upstream connections
  core::TimerWheel timers_;
  int64_t now_ms_ = 0;                  // loop time, refreshed once per iteration
  int64_t now_ns_ = 0;                  // the same instant in nanoseconds
  std::atomic<bool> stop_requested_{false};
  base::UniqueFd wake_fd_;              // eventfd written by RequestStop
  uint64_t wake_value_ = 0;
  core::Operation wake_op_;

  base::UniqueFd udp_fd_;
  bool is_udp_wildcard_ = false;        // reply source must be set from IP_PKTINFO
  msghdr udp_recv_template_{};          // sizes for the multishot recvmsg
  core::Operation udp_recv_op_;

  base::UniqueFd tcp_fd_;
  core::Operation accept_op_;
  core::Timer accept_retry_timer_;
  std::vector<TcpClient> tcp_clients_;
  std::vector<uint32_t> free_tcp_clients_;
  uint32_t open_tcp_clients_ = 0;
  std::vector<uint32_t> dirty_tcp_clients_;

  std::vector<QuerySlot> slots_;
  std::vector<uint32_t> free_slots_;

  std::vector<Server> servers_;
  std::vector<std::unique_ptr<upstream::Connection>> upstream_conns_;
  std::vector<uint32_t> dirty_upstreams_;
  bool has_backlog_ = false;            // some server has queued queries and freed an ID
  std::vector<upstream::ServerView> server_views_;
  std::vector<bool> server_has_pending_;  // RefreshServerViews scratch: a connection being set up
  upstream::BalancerState balancer_;
  upstream::PickFn pick_ = nullptr;
  std::vector<uint8_t> plaintext_;      // SSL_read scratch
  std::vector<uint8_t> scratch_;        // response assembly scratch
  absl::BitGen rng_;                    // reconnect jitter

  ShardCounters counters_;
};

}  // namespace dotproxy::proxy

#endif  // DOTPROXY_PROXY_SHARD_H_
