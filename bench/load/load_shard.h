// File: bench/load/load_shard.h
//
// One dotload thread: its own core::Reactor (one io_uring), its channels to the server (UDP
// sockets with a multishot recv over a provided-buffer ring, or pipelining TCP / DoT connections),
// its table of queries in flight (the DNS ID is the slot index) and its results. Closed loop keeps
// `inflight` queries outstanding; open loop sends at a fixed rate and measures each latency from
// the query's *intended* send time, so a stalled server cannot hide its queue (no coordinated
// omission). Everything here is touched by its own thread only, except `progress`, which the main
// thread reads (single writer, relaxed atomics).
#ifndef DOTPROXY_BENCH_LOAD_LOAD_SHARD_H_
#define DOTPROXY_BENCH_LOAD_LOAD_SHARD_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <liburing.h>

#include "absl/status/statusor.h"
#include "base/socket_address.h"
#include "base/unique_fd.h"
#include "bench/load/histogram.h"
#include "bench/load/query_source.h"
#include "core/buffer_ring.h"
#include "core/operation.h"
#include "core/reactor.h"
#include "dns/tcp_framing.h"
#include "net/send_queue.h"
#include "tls/tls_context.h"
#include "tls/tls_stream.h"

namespace dotproxy::bench {

enum class Mode : uint8_t { kUdp, kTcp, kDot };

struct LoadOptions {
  Mode mode = Mode::kUdp;
  base::SocketAddress server;
  std::string server_name;    // DoT: SNI and certificate name
  std::string ca_file;        // DoT: trust anchors; empty = default verify paths
  uint32_t channels = 1;      // UDP sockets or TCP/DoT connections of this thread
  uint32_t inflight = 0;      // closed loop: queries outstanding (0 with open loop)
  double qps = 0;             // open loop: this thread's send rate (0 with closed loop)
  int64_t duration_ns = 0;    // stop sending after this long...
  uint64_t count = 0;         // ...or after this many queries, whichever comes first
  int64_t timeout_ns = 0;     // a query unanswered this long counts as a timeout
  int64_t connect_timeout_ns = 0;
};

// Single writer, read by the main thread for --progress.
struct alignas(128) LoadProgress {
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> answered{0};
};

struct LoadResult {
  uint64_t sent = 0;
  uint64_t answered = 0;
  uint64_t timeouts = 0;
  uint64_t mismatched = 0;       // right ID, different question (RFC 7766 §7)
  uint64_t unexpected = 0;       // no such query in flight: late, duplicate or unknown ID
  uint64_t malformed = 0;        // shorter than a header, or not a response
  uint64_t truncated = 0;        // answers with TC=1
  uint64_t send_errors = 0;
  uint64_t not_sent = 0;         // open loop: due, but every slot was taken
  uint64_t connects = 0;         // TCP/DoT connections established (incl. reconnects)
  uint64_t connect_failures = 0; // connect or handshake failures
  uint64_t closed_by_server = 0; // established connections that ended during the run
  uint64_t resumed = 0;          // DoT handshakes that resumed a session
  uint64_t rcodes[16] = {};
  LatencyHistogram latency;       // from the intended send time (open loop) or the send
  LatencyHistogram from_send;     // from the actual send: what the server (not our pacing) took
  int64_t send_ns = 0;           // start of sending until the last send
  int64_t answer_ns = 0;         // start of sending until the last answer
  std::string first_error;       // first connect/TLS error, for the report
};

class LoadShard {
 public:
  // Creates the reactor and channels on the calling thread, which must be the one that calls Run.
  static absl::StatusOr<std::unique_ptr<LoadShard>> Create(const LoadOptions& options,
                                                           QueryWriter::Options writer,
                                                           uint32_t thread_id);
  ~LoadShard();
  LoadShard(const LoadShard&) = delete;
  LoadShard& operator=(const LoadShard&) = delete;

  // Opens the connections (TCP/DoT) and returns once all are ready, or false with *error set
  // when none could be established within the connect timeout.
  bool Connect(std::string* error);
  // Sends from `start_ns` (CLOCK_MONOTONIC) until the duration or count is reached or `stop`
  // becomes true, then waits for the answers still outstanding (up to the query timeout).
  void Run(int64_t start_ns, const std::atomic<bool>& stop);

  const LoadResult& result() const { return result_; }
  const LoadProgress& progress() const { return progress_; }

 private:
  struct Channel {
    enum class State : uint8_t { kIdle, kConnecting, kHandshaking, kReady, kClosing };
    State state = State::kIdle;
    uint32_t index = 0;
    base::UniqueFd fd;
    core::Operation connect_op;
    core::Operation recv_op;
    core::Operation send_op;
    bool is_connect_pending = false;
    bool is_recv_pending = false;   // the multishot recv has not ended
    bool is_dirty = false;          // on the flush list
    uint32_t inflight = 0;
    int64_t reconnect_at_ns = 0;    // kIdle: when to try again
    dns::FrameReader reader;
    std::unique_ptr<tls::TlsStream> tls;
    std::vector<uint8_t> plain_out;  // DoT: framed queries waiting for the next SSL_write
    net::SendQueue output;           // TCP: frames; DoT: records (the TLS BIO appends)
  };

  // One query in flight. Its index is the DNS ID, so a thread has at most 65536 in flight.
  struct Slot {
    bool is_in_use = false;
    uint16_t length = 0;
    uint16_t question_end = 0;
    uint32_t generation = 0;
    uint32_t channel = 0;
    int64_t start_ns = 0;  // intended send time (open loop) or send time (closed loop)
    int64_t sent_ns = 0;   // when the query was handed to the ring
    uint8_t query[kMaxQueryBytes];
  };

  struct Deadline {
    uint32_t slot;
    uint32_t generation;
    int64_t at_ns;
  };

  LoadShard(const LoadOptions& options, QueryWriter::Options writer, uint32_t thread_id);
  absl::Status Init();

  // One reactor iteration that waits at most timeout_ns (<= 0: not at all); refreshes now_ns_.
  void Wait(int64_t timeout_ns);
  bool SendQuery(int64_t start_ns);
  int32_t PickChannel();
  void OnResponse(uint32_t channel, const uint8_t* msg, size_t len);
  void ReleaseSlot(uint32_t slot);
  void ExpireDeadlines();
  void ReconnectIdle();
  bool FlushDirty();  // reactor flush hook

  void ArmUdpRecv(uint32_t channel);
  void OnUdpRecv(const core::Operation& op, const io_uring_cqe& cqe);
  void OnUdpSendFailed(const core::Operation& op, const io_uring_cqe& cqe);

  // TCP and DoT channels: load_stream.cc.
  void StartConnect(uint32_t channel);
  void OnConnect(const core::Operation& op, const io_uring_cqe& cqe);
  void ArmStreamRecv(uint32_t channel);
  void OnStreamRecv(const core::Operation& op, const io_uring_cqe& cqe);
  void DriveTls(uint32_t channel);
  void MarkDirty(uint32_t channel);
  void StartSend(uint32_t channel);
  void OnSendDone(const core::Operation& op, const io_uring_cqe& cqe);
  void CloseChannel(uint32_t channel, const char* reason);
  void MaybeFinishClose(uint32_t channel);
  void NoteError(const std::string& error);

  const LoadOptions options_;
  const uint32_t thread_id_;
  QueryWriter writer_;
  std::unique_ptr<core::Reactor> reactor_;
  core::BufferRing* buffers_ = nullptr;  // owned by reactor_
  std::unique_ptr<tls::ClientContext> tls_;
  int64_t now_ns_ = 0;                   // read at the top of every loop iteration
  bool is_sending_ = false;

  std::vector<Channel> channels_;
  uint32_t next_channel_ = 0;        // round robin
  uint32_t ready_channels_ = 0;
  uint32_t idle_channels_ = 0;
  std::vector<uint32_t> dirty_channels_;

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;  // FIFO ring: IDs are reused as late as possible
  size_t free_head_ = 0;
  size_t free_count_ = 0;
  uint32_t inflight_ = 0;
  std::deque<Deadline> deadlines_;    // in send order; all queries share one timeout

  std::vector<uint8_t> plaintext_;    // SSL_read scratch
  LoadResult result_;
  LoadProgress progress_;
};

}  // namespace dotproxy::bench

#endif  // DOTPROXY_BENCH_LOAD_LOAD_SHARD_H_
