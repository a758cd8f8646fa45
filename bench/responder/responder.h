// File: bench/responder/responder.h
//
// One dotresponder thread: its own core::Reactor (one io_uring, and the timer wheel for
// --delay-ms), SO_REUSEPORT UDP socket and TCP/DoT listeners, the client connections it accepted
// and its counters. Everything is touched by that thread only, except the counters, which the
// main thread reads (single writer, relaxed atomics on their own cache lines), and
// RequestStop(). Pipelined TCP/DoT queries are answered as soon as they are parsed; all answers
// produced for a connection in one loop iteration leave in one send (DoT: one SSL_write), at most
// one send in flight per socket (net::SendQueue).
#ifndef DOTPROXY_BENCH_RESPONDER_RESPONDER_H_
#define DOTPROXY_BENCH_RESPONDER_RESPONDER_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <liburing.h>

#include "absl/status/statusor.h"
#include "base/socket_address.h"
#include "base/unique_fd.h"
#include "bench/responder/answer.h"
#include "core/buffer_ring.h"
#include "core/operation.h"
#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "dns/tcp_framing.h"
#include "net/send_queue.h"
#include "tls/server_context.h"
#include "tls/tls_stream.h"

namespace dotproxy::bench {

struct ResponderOptions {
  bool has_udp = false;
  base::SocketAddress udp_addr;
  bool has_tcp = false;
  base::SocketAddress tcp_addr;
  bool has_dot = false;
  base::SocketAddress dot_addr;
  std::string cert_file;  // DoT certificate chain (PEM)
  int tls_max_version = 0;  // pin DoT to this version (TLS1_2_VERSION); 0: newest
  std::string key_file;   // DoT private key (PEM)
  AnswerOptions answer;
  int64_t delay_ms = 0;   // hold every answer this long before sending it
  // DoT over TLS 1.3: a KeyUpdate asking the client to re-key too, before every N-th answer
  // on a connection (tests of the proxy's kTLS path); 0: never.
  uint32_t key_update_every = 0;
};

// Single writer (the responder thread) with relaxed load+store; the main thread sums them.
// 128-byte alignment keeps two threads' blocks off each other's cache lines (and the adjacent-line
// prefetcher).
struct alignas(128) ResponderCounters {
  std::atomic<uint64_t> udp_queries{0};
  std::atomic<uint64_t> tcp_queries{0};
  std::atomic<uint64_t> dot_queries{0};
  std::atomic<uint64_t> dropped{0};              // no reply slot, truncated datagram, bad frame
  std::atomic<uint64_t> connections{0};          // TCP + DoT connections accepted
  std::atomic<uint64_t> handshakes{0};           // DoT handshakes completed
  std::atomic<uint64_t> handshakes_resumed{0};   // ... of which resumed a session
  std::atomic<uint64_t> handshake_failures{0};
  std::atomic<uint64_t> key_updates{0};          // KeyUpdates sent (--key-update-every)
};

class Responder {
 public:
  static absl::StatusOr<std::unique_ptr<Responder>> Create(const ResponderOptions& options,
                                                           uint32_t thread_id);
  ~Responder();
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

  // Serves until RequestStop().
  void Run() { reactor_->Run(); }
  // Thread-safe: makes Run() return soon (or at once, if it has not started).
  void RequestStop() { reactor_->RequestStop(); }

  const ResponderCounters& counters() const { return counters_; }

 private:
  enum ListenerIndex : uint32_t { kListenerTcp = 0, kListenerDot = 1 };

  // One UDP answer from build to send completion.
  struct UdpReply {
    core::Operation send_op;
    core::Timer timer;      // --delay-ms
    msghdr msg{};
    iovec iov{};
    sockaddr_in6 peer{};
    uint8_t* buf = nullptr;  // into udp_arena_
  };

  // One accepted TCP or DoT client connection (RFC 7766, RFC 7858).
  struct Conn {
    enum class State : uint8_t { kFree, kOpen, kClosing };
    State state = State::kFree;
    bool is_dot = false;
    bool is_recv_pending = false;    // the multishot recv has not ended
    bool is_dirty = false;           // on the flush list
    uint32_t generation = 0;         // advances when the entry is reused
    uint32_t answers = 0;            // DoT answers written on this connection (key updates)
    base::UniqueFd fd;
    core::Operation recv_op;
    core::Operation send_op;
    dns::FrameReader reader;
    std::unique_ptr<tls::TlsStream> tls;
    std::vector<uint8_t> plain_out;  // DoT: framed answers waiting for the next SSL_write
    net::SendQueue output;           // TCP: frames; DoT: records (the TLS BIO appends)
  };

  // A TCP/DoT answer held back by --delay-ms.
  struct StreamAnswer {
    core::Timer timer;
    uint32_t index = 0;       // in stream_answers_
    uint32_t conn = 0;
    uint32_t generation = 0;  // the connection's, when the answer was built
    std::vector<uint8_t> frame;
  };

  Responder(const ResponderOptions& options, uint32_t thread_id);
  absl::Status Init();

  bool FlushDirty();  // reactor flush hook
  // --key-update-every: asks for a KeyUpdate when this write crosses the next N-th answer.
  void MaybeRequestKeyUpdate(uint32_t conn);

  void ArmUdpRecv();
  void OnUdpRecv(const core::Operation& op, const io_uring_cqe& cqe);
  void OnUdpReplyDue(core::Timer* timer);
  void SendUdp(uint32_t reply);
  void OnUdpSendDone(const core::Operation& op, const io_uring_cqe& cqe);

  void ArmAccept(uint32_t listener);
  void OnAccept(const core::Operation& op, const io_uring_cqe& cqe);
  void ArmRecv(uint32_t conn);
  void OnRecv(const core::Operation& op, const io_uring_cqe& cqe);
  void DriveTls(uint32_t conn);
  bool OnFrame(uint32_t conn, const uint8_t* msg, size_t len);
  void OnStreamAnswerDue(core::Timer* timer);
  void QueueFrame(uint32_t conn, const uint8_t* frame, size_t len);
  void MarkDirty(uint32_t conn);
  void StartSend(uint32_t conn);
  void OnSendDone(const core::Operation& op, const io_uring_cqe& cqe);
  void CloseConn(uint32_t conn);
  void MaybeFreeConn(uint32_t conn);

  const ResponderOptions options_;
  const uint32_t thread_id_;
  std::unique_ptr<core::Reactor> reactor_;
  core::BufferRing* udp_buffers_ = nullptr;     // owned by reactor_
  core::BufferRing* stream_buffers_ = nullptr;  // owned by reactor_
  std::unique_ptr<tls::ServerContext> tls_;
  core::HandlerId conn_recv_handler_ = core::kIgnoreHandler;
  core::HandlerId conn_send_handler_ = core::kIgnoreHandler;
  uint32_t stream_answer_timer_ = 0;             // Timer::kind of StreamAnswer timers

  base::UniqueFd udp_fd_;
  msghdr udp_recv_template_{};
  core::Operation udp_recv_op_;
  std::vector<UdpReply> udp_replies_;
  std::vector<uint32_t> free_udp_replies_;
  std::vector<uint8_t> udp_arena_;     // reply buffers, udp_reply_bytes_ each
  size_t udp_reply_bytes_ = 0;

  base::UniqueFd listen_fds_[2];       // kListenerTcp, kListenerDot
  core::Operation accept_ops_[2];

  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<uint32_t> free_conns_;
  std::vector<uint32_t> dirty_conns_;
  std::vector<std::unique_ptr<StreamAnswer>> stream_answers_;
  std::vector<uint32_t> free_stream_answers_;

  std::vector<uint8_t> plaintext_;     // SSL_read scratch
  std::vector<uint8_t> scratch_;       // answer assembly: 2-byte prefix + message

  ResponderCounters counters_;
};

}  // namespace dotproxy::bench

#endif  // DOTPROXY_BENCH_RESPONDER_RESPONDER_H_
