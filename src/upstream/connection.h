// File: upstream/connection.h
//
// One pipelined DoT connection to one upstream server, owned by one shard's ConnectionPool. It
// owns its socket, its TLS session, the ciphertext of the one send in flight, the plaintext
// frames queued for the next SSL_write, the frame reader of the responses and the ID slot table
// of the queries in flight. The pool decides what happens (connect, retire, replace); this class
// keeps the I/O and the life-cycle invariants:
//
//   kIdle → kConnecting → kHandshaking → kReady → kClosing → kFree (→ kIdle when reused)
//
// - a query is queued only while connecting, handshaking or ready, and written only when ready
//   (so nothing is ever sent on a connection that failed verification);
// - at most one connect, one recv and one send are in flight, and the socket and TLS session
//   are released only when none is (closing cancels them, then waits for their completions).
#ifndef DOTPROXY_UPSTREAM_CONNECTION_H_
#define DOTPROXY_UPSTREAM_CONNECTION_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include <sys/socket.h>
#include <vector>

#include "absl/status/status.h"
#include "base/socket_address.h"
#include "base/unique_fd.h"
#include "core/buffer_ring.h"
#include "core/operation.h"
#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "dns/query_id.h"
#include "dns/tcp_framing.h"
#include "net/send_queue.h"
#include "tls/tls_context.h"
#include "tls/tls_stream.h"

namespace dotproxy::upstream {

class Connection final : private tls::KtlsSocket {
 public:
  enum class State : uint8_t {
    kIdle,         // no socket; waiting for the reconnect or probe timer
    kConnecting,   // TCP connect in flight
    kHandshaking,  // TLS handshake in progress
    kReady,        // carrying queries
    kClosing,      // cancelling its requests; freed when none is in flight
    kFree,         // closed and unused: a spare the pool can reconnect with
  };
  // What the connection's requests and timer report to: ids the pool registered with its reactor.
  struct Handlers {
    core::HandlerId connect = core::kIgnoreHandler;
    core::HandlerId recv = core::kIgnoreHandler;
    core::HandlerId send = core::kIgnoreHandler;
    uint32_t timer_kind = 0;
  };
  enum class ReadResult : uint8_t {
    kWantMore,    // every byte read so far was consumed
    kClosed,      // close_notify from the server
    kFailed,      // TLS error (tls().error() says which)
    kZeroLength,  // a zero-length DNS message: the stream cannot be trusted
    kDesync,      // a message (or the start of one) that answers no query of ours
  };
  // Released IDs remembered per connection, so that a late answer is told from a desync.
  static constexpr uint32_t kRecentIds = 256;

  Connection(uint32_t index, uint32_t server, uint32_t max_inflight, const Handlers& handlers);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint32_t index() const { return index_; }
  uint32_t server() const { return server_; }
  // A reload renumbers servers; kNoServer marks a connection whose server was removed.
  static constexpr uint32_t kNoServer = UINT32_MAX;
  void set_server(uint32_t server) { server_ = server; }
  State state() const { return state_; }
  bool is_ready() const { return state_ == State::kReady; }
  // Established or about to be.
  bool is_alive() const {
    return state_ == State::kReady || state_ == State::kConnecting ||
           state_ == State::kHandshaking;
  }
  // Usable for a new query: alive with a free ID slot.
  bool CanAccept() const { return is_alive() && !ids_.is_full(); }
  // Tags completions; advances on every (re)connect and when the close completes.
  uint32_t generation() const { return generation_; }
  dns::IdSlotTable& ids() { return ids_; }
  const dns::IdSlotTable& ids() const { return ids_; }
  core::Timer& timer() { return timer_; }
  const tls::TlsStream& tls() const { return *tls_; }
  bool is_graceful_close() const { return is_graceful_close_; }
  bool has_queued_queries() const { return !plain_pending_.empty(); }
  // A send is in flight, and when it (or the one before it) last made progress: a send that
  // makes none for write_timeout means the server stopped reading.
  bool is_sending() const { return output_.is_sending(); }
  int64_t send_progress_ms() const { return send_progress_ms_; }

  // Bookkeeping the pool reads for its decisions.
  int64_t last_used_ms = 0;           // last query sent or response received
  int64_t ready_since_ms = 0;         // when the handshake completed
  uint64_t queries_sent = 0;          // since it was (re)used: queries per connection metric
  int64_t last_read_ms = 0;           // when bytes last arrived (half-dead detection)
  uint32_t consecutive_failures = 0;  // connect/handshake failures since the last success
  uint32_t local_failures = 0;        // socket() failures for lack of local resources, in a row
  bool has_answered = false;          // an answer matched since the handshake (cap detection)
  bool is_cap_replacement = false;    // replaces a connection the server closed for a cap
  bool is_dirty = false;              // on the pool's flush list

  // kIdle or kFree → kConnecting: opens a socket and submits the connect. On a socket error
  // (EMFILE, say) returns it and stays where it was.
  absl::Status StartConnect(core::Reactor& reactor, const base::SocketAddress& addr);
  void OnConnectCompleted() { is_connect_pending_ = false; }
  // kConnecting → kHandshaking: a client TLS session over the socket. False if OpenSSL cannot
  // make one.
  bool StartTls(tls::ClientContext& context, bool allow_ktls);
  // kTLS on this connection: which directions the kernel took, and the errno of the first
  // set-up call that failed (0: none did, or kTLS is not enabled for its server).
  bool is_ktls_enabled() const { return is_ktls_enabled_; }
  int ktls_error() const { return ktls_error_; }
  tls::IoResult Handshake() { return tls_->Handshake(); }
  // kHandshaking → kReady.
  void MarkReady(int64_t now_ms);
  // One buffer-select recv of ciphertext from the shared ring; or, into the connection's own
  // buffer, a recv of just the bytes TLS asked for (handshaking with kTLS enabled, so that RX
  // can switch at a record boundary) or a recvmsg of one kTLS record with its type.
  void ArmRecv(core::Reactor& reactor, const core::BufferRing& buffers);
  void OnRecvCompleted() { is_recv_pending_ = false; }
  // The recv in flight (or just completed) used the connection's own buffer.
  bool is_own_recv() const { return recv_kind_ != RecvKind::kShared; }
  // Makes the `len` bytes an own-buffer recv delivered the next TLS input (for kTLS RX, as a
  // record with the type the kernel reported). False, with the reason, when it cannot.
  bool TakeOwnInput(size_t len, int64_t now_ms, const char** why);
  // Ciphertext of the last recv, for the next Handshake()/ReadResponses(); ForgetInput() before
  // the buffer goes back to the ring.
  void SetInput(const uint8_t* data, size_t len, int64_t now_ms);
  void ForgetInput() {
    if (tls_ != nullptr) {
      tls_->SetInput(nullptr, 0);
    }
  }
  // Reads all plaintext available and calls on_response(const uint8_t*, size_t) -> bool for
  // every whole DNS message; on_response returns false for a message that desynchronizes the
  // stream, which ends the read with kDesync (as does a partial message that cannot be a
  // response: see MayBeResponse).
  template <typename Fn>
  ReadResult ReadResponses(std::span<uint8_t> scratch, Fn&& on_response);

  // An ID of this connection went back to its slot table: a late answer to it is dropped, not
  // taken for a desync.
  void NoteReleased(uint16_t id) {
    recent_ids_[recent_next_] = id;
    recent_next_ = (recent_next_ + 1) % kRecentIds;
    recent_count_ = std::min(recent_count_ + 1, kRecentIds);
  }
  bool WasRecentlyReleased(uint16_t id) const;
  // Whether the first bytes of a message (any number; fewer than 4 always pass) can start a
  // response to this connection: QR set and an ID in flight or recently released.
  bool MayBeResponse(std::span<const uint8_t> start) const;

  // Appends the query, framed (RFC 7858 §3.3), with `id` in place of the client's; with `pad`,
  // padded to a 128-byte block (dns::PadQuery). Returns whether it was padded.
  bool QueueQuery(std::span<const uint8_t> query, uint16_t id, bool pad);
  // One SSL_write of every frame queued (when ready): one record, one send. False on a TLS
  // failure, which the pool turns into a connection failure.
  bool WriteQueued();
  // Submits the ciphertext TLS produced, unless a send is in flight or the connection is being
  // torn down.
  void StartSend(core::Reactor& reactor);
  net::SendQueue::Result OnSendCompleted(core::Reactor& reactor, int res);
  // Queues close_notify; the close that follows lets it go out.
  void BeginGracefulClose();
  // → kClosing: drops queued queries and partial responses, and cancels what is in flight (all
  // of it, or only the recv after BeginGracefulClose so that close_notify still goes out; the
  // pool bounds that wait with the timer and then calls AbortClose).
  void BeginClose(core::Reactor& reactor);
  // A graceful close whose send is stuck: cancel everything, as a plain close would have.
  void AbortClose(core::Reactor& reactor);
  // kClosing with nothing in flight → kFree (socket and TLS released). True if it got there.
  bool FinishCloseIfIdle();
  // kFree or kConnecting-failed → kIdle, waiting for a timer.
  void SetIdle() { state_ = State::kIdle; }

 private:
  enum class RecvKind : uint8_t { kShared, kExact, kKtlsRecord };
  // Room for one kTLS record's plaintext behind the 5-byte header rebuilt for OpenSSL.
  static constexpr size_t kRecordHeader = 5;
  static constexpr size_t kOwnBufferBytes = kRecordHeader + 16384;

  // tls::KtlsSocket, called from inside OpenSSL.
  bool DrainNow(std::vector<uint8_t>& bytes) override;
  bool InstallKey(bool tx, const void* crypto_info) override;
  bool SendRecord(uint8_t type, const uint8_t* data, size_t len) override;

  uint32_t ops_in_flight() const {
    return static_cast<uint32_t>(is_connect_pending_) + static_cast<uint32_t>(is_recv_pending_) +
           static_cast<uint32_t>(output_.is_sending());
  }

  const uint32_t index_;
  uint32_t server_;
  State state_ = State::kIdle;
  uint32_t generation_ = 0;
  base::UniqueFd fd_;
  std::unique_ptr<tls::TlsStream> tls_;
  core::Operation connect_op_;
  core::Operation recv_op_;
  core::Operation send_op_;
  bool is_connect_pending_ = false;
  bool is_recv_pending_ = false;
  bool is_graceful_close_ = false;   // stale close: close_notify goes out before the socket closes
  int64_t send_progress_ms_ = 0;     // a send started from idle, or the last one made progress
  net::SendQueue output_;            // ciphertext; the TLS BIO appends to output_.pending()
  std::vector<uint8_t> plain_pending_;  // framed queries waiting for the next SSL_write
  dns::FrameReader reader_;          // plaintext responses, split anywhere
  core::Timer timer_;                // connect/handshake deadline, stale close, reconnect
  dns::IdSlotTable ids_;
  bool is_ktls_enabled_ = false;  // the server's context offers keys to our BIO
  bool is_ulp_set_ = false;       // TCP_ULP "tls" is on the socket
  int ktls_error_ = 0;
  RecvKind recv_kind_ = RecvKind::kShared;
  std::unique_ptr<uint8_t[]> own_buffer_;  // kOwnBufferBytes, made when kTLS is first enabled
  msghdr recv_msg_{};
  iovec recv_iov_{};
  alignas(cmsghdr) uint8_t recv_control_[32] = {};
  std::array<uint16_t, kRecentIds> recent_ids_{};  // ring of the last IDs released
  uint32_t recent_next_ = 0;
  uint32_t recent_count_ = 0;
};

template <typename Fn>
Connection::ReadResult Connection::ReadResponses(std::span<uint8_t> scratch, Fn&& on_response) {
  while (state_ == State::kReady) {
    size_t n = 0;
    const tls::IoResult r = tls_->Read(scratch.data(), scratch.size(), &n);
    if (r == tls::IoResult::kWantRead) {
      break;
    }
    if (r == tls::IoResult::kClosed) {
      return ReadResult::kClosed;
    }
    if (r == tls::IoResult::kFailed) {
      return ReadResult::kFailed;
    }
    const dns::FrameResult fed = reader_.Feed(scratch.data(), n, on_response);
    if (fed == dns::FrameResult::kZeroLength) {
      return ReadResult::kZeroLength;
    }
    if (fed == dns::FrameResult::kPaused) {
      return ReadResult::kDesync;
    }
  }
  // Garbage that does not parse as framing usually reads as a huge length; the bytes behind it
  // show at once that no response starts there, instead of after the next 64 KiB.
  if (state_ == State::kReady && !MayBeResponse(reader_.partial_message())) {
    return ReadResult::kDesync;
  }
  return ReadResult::kWantMore;
}

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_CONNECTION_H_
