// File: proxy/tcp_frontend.h
//
// TcpFrontend is one shard's SO_REUSEPORT TCP listener and its client connections (RFC 7766):
// multishot accept, recv from a provided-buffer ring into a frame reader that copes with any
// split, pipelined queries answered as they complete, one send in flight per connection,
// back-pressure (no reads while queries in flight plus answers not yet written reach
// max_inflight_per_connection, or the answers reach kMaxOutputBytes), idle and write timeouts,
// and a per-shard cap that sheds the idlest client first. Sources outside listener.allow are
// closed at accept.
#ifndef DOTPROXY_PROXY_TCP_FRONTEND_H_
#define DOTPROXY_PROXY_TCP_FRONTEND_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "base/ip_prefix.h"
#include "base/unique_fd.h"
#include "config/config.h"
#include "core/buffer_ring.h"
#include "core/reactor.h"
#include "dns/tcp_framing.h"
#include "metrics/counters.h"
#include "net/send_queue.h"
#include "proxy/client_limits.h"
#include "proxy/query_table.h"

namespace dotproxy::proxy {

class TcpFrontend final : public ClientSide {
 public:
  // Answer bytes one connection may have waiting to be written before its reads pause. An
  // answer already in flight upstream may still add to it: at most max_inflight answers more.
  static constexpr size_t kMaxOutputBytes = 256 * 1024;

  TcpFrontend(core::Reactor& reactor, const config::Config& config, ClientGate& gate,
              QueryTable& table, metrics::ShardCounters& counters);
  TcpFrontend(const TcpFrontend&) = delete;
  TcpFrontend& operator=(const TcpFrontend&) = delete;

  // Binds a listener per address and starts accepting.
  absl::Status Init();
  // The port of the first address (for the start-up log when the config asked for port 0).
  uint16_t port() const;
  // Reload: binds the addresses that are new and closes the removed listeners (their accepted
  // connections stay). When a new address cannot be bound, nothing changes.
  absl::Status Reconfigure();

  // Shutdown: stops accepting and reading queries; connections close once their answers are out.
  void Drain();
  bool has_open_clients() const { return open_clients_ > 0; }

  // ClientSide: queues the answer on its connection (if still open) and releases the slot.
  void Deliver(uint32_t slot, const uint8_t* response, size_t len) override;

 private:
  // One accepted client connection.
  struct Client {
    enum class State : uint8_t { kFree, kOpen, kClosing };
    State state = State::kFree;
    bool is_recv_pending = false;
    bool is_peer_closed = false;  // peer shut down its sending side
    bool is_paused = false;       // IsOverLimit: not reading
    bool is_dirty = false;        // on the flush list
    uint32_t generation = 0;
    uint32_t inflight = 0;        // queries forwarded, not yet answered
    uint32_t answers_queued = 0;  // answers in output, not yet handed to a send
    uint32_t answers_sending = 0;  // answers in the send in flight
    base::IpAddress source;        // the peer, for the rate limit and the slot share
    base::UniqueFd fd;
    core::Operation recv_op;
    core::Operation send_op;
    dns::FrameReader reader;
    net::SendQueue output;        // framed responses, one send in flight
    int64_t last_activity_ms = 0;
    int64_t output_since_ms = 0;  // when output last became non-empty (write_timeout)
    core::Timer timer;            // idle (read_timeout) and write_timeout checks
  };

  // One listen address.
  struct Listener {
    base::SocketAddress addr;
    base::UniqueFd fd;
    bool is_closing = false;          // removed by a reload or draining: closed at its end
    bool is_accept_pending = false;
    core::Operation accept_op;        // index: this listener's place in listeners_
    core::Timer retry_timer;          // accepts paused after errors (backoff)
    RearmBackoff backoff;             // failed accepts in a row
  };

  absl::Status OpenListener(const base::SocketAddress& addr);
  void CloseListener(Listener& listener);
  void ArmAccept(Listener& listener);
  // Queries in flight plus answers not yet written at the cap, or too many answer bytes.
  bool IsOverLimit(const Client& c) const;
  void OnAccept(const core::Operation& op, const io_uring_cqe& cqe);
  void OnAcceptRetry(core::Timer* timer);
  bool ShedIdleClient();
  void ArmRecv(uint32_t index);
  void OnRecv(const core::Operation& op, const io_uring_cqe& cqe);
  // Feeds the reader's frames (new bytes, or the buffered ones after a pause) to OnMessage and
  // acts on the outcome: close on a bad frame, pause, or read on.
  template <typename Feed>
  void HandleFrames(uint32_t index, Feed&& feed);
  bool OnMessage(uint32_t index, const uint8_t* msg, size_t len);
  void QueueResponse(uint32_t index, const uint8_t* msg, size_t len, uint16_t client_id);
  void Resume(uint32_t index);
  void StartSend(uint32_t index);
  void OnSendDone(const core::Operation& op, const io_uring_cqe& cqe);
  void OnClientTimer(core::Timer* timer);
  void Close(uint32_t index);
  void MaybeFinishClose(uint32_t index);
  void MaybeCloseAfterPeerEof(uint32_t index);
  bool Flush();  // end of loop iteration: one send per connection with answers queued

  core::Reactor& reactor_;
  const config::Config& config_;
  ClientGate& gate_;
  QueryTable& table_;
  metrics::ShardCounters& counters_;
  std::vector<std::unique_ptr<Listener>> listeners_;  // stable: SQEs and timers point inside
  core::HandlerId accept_handler_ = core::kIgnoreHandler;
  uint32_t accept_retry_kind_ = 0;
  core::BufferRing* buffers_ = nullptr;
  std::vector<Client> clients_;
  std::vector<uint32_t> free_clients_;
  uint32_t open_clients_ = 0;
  bool is_draining_ = false;
  std::vector<uint32_t> dirty_;
  std::vector<uint8_t> scratch_;  // SERVFAIL assembly when the query table is full
};

}  // namespace dotproxy::proxy

#endif  // DOTPROXY_PROXY_TCP_FRONTEND_H_
