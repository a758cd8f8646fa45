// File: upstream/connection.h
//
// One pipelined DoT connection to one upstream server, owned by one shard. The shard's reactor
// drives it (proxy/forwarder.cc); this struct holds its state: the lifecycle, the TLS session,
// the ciphertext buffers of the one recv and the one send in flight, the plaintext frames queued
// for the next SSL_write, and the ID slot table of the queries in flight.
#ifndef DOTPROXY_UPSTREAM_CONNECTION_H_
#define DOTPROXY_UPSTREAM_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "base/unique_fd.h"
#include "core/operation.h"
#include "core/timer_wheel.h"
#include "dns/query_id.h"
#include "dns/tcp_framing.h"
#include "net/send_queue.h"
#include "tls/tls_stream.h"

namespace dotproxy::upstream {

class Connection {
 public:
  enum class State : uint8_t {
    kIdle,         // no socket; waiting for the reconnect timer
    kConnecting,   // TCP connect in flight
    kHandshaking,  // TLS handshake in progress
    kReady,        // carrying queries
    kClosing,      // cancelling its requests; freed when none is in flight
    kFree,         // closed and unused: a spare the server can reconnect with
  };

  Connection(uint32_t index, uint32_t server, uint32_t max_inflight)
      : index_(index), server_(server), ids_(max_inflight) {}

  uint32_t index() const { return index_; }
  uint32_t server() const { return server_; }
  // Usable for a new query: established or about to be, with a free ID slot.
  bool CanAccept() const {
    return (state == State::kReady || state == State::kConnecting ||
            state == State::kHandshaking) &&
           !ids_.is_full();
  }
  dns::IdSlotTable& ids() { return ids_; }
  const dns::IdSlotTable& ids() const { return ids_; }
  // Forgets the ciphertext of the last recv once its shared buffer goes back to the ring.
  void tls_input_done() {
    if (tls != nullptr) {
      tls->SetInput(nullptr, 0);
    }
  }
  uint32_t ops_in_flight() const {
    return static_cast<uint32_t>(is_connect_pending) + static_cast<uint32_t>(is_recv_pending) +
           static_cast<uint32_t>(output.is_sending());
  }

  State state = State::kIdle;
  uint32_t generation = 0;               // advances on every (re)connect; tags completions
  base::UniqueFd fd;
  std::unique_ptr<tls::TlsStream> tls;
  core::Operation connect_op;
  core::Operation recv_op;
  core::Operation send_op;
  core::Operation timeout_op;            // link timeout of connect; completion ignored
  bool is_connect_pending = false;
  bool is_recv_pending = false;
  bool is_dirty = false;                 // on the shard's flush list
  bool is_graceful_close = false;        // stale close: send close_notify, then reconnect at once
  net::SendQueue output;                 // ciphertext; the TLS BIO appends to output.pending()
  std::vector<uint8_t> plain_pending;    // framed queries waiting for the next SSL_write
  dns::FrameReader reader;               // plaintext responses, split anywhere
  core::Timer timer;                     // connect/handshake deadline, stale close, reconnect
  int64_t last_used_ms = 0;              // last query sent or response received
  int64_t ready_since_ms = 0;            // when the handshake completed
  uint32_t consecutive_failures = 0;     // connect/handshake failures since the last success
  int64_t last_read_ms = 0;              // when bytes last arrived (half-dead detection)

 private:
  uint32_t index_;
  uint32_t server_;
  dns::IdSlotTable ids_;
};

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_CONNECTION_H_
