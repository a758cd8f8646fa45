// File: net/send_queue.h
//
// SendQueue is the output side of one stream socket: at most one send in flight (io_uring does not
// order two sends on one socket, so a short write followed by another send would interleave
// bytes), and everything appended meanwhile goes out together in the next send. A send is first
// tried with MSG_DONTWAIT (it completes during the submitting enter, see
// Ring::CountInlineCompletion); only when the socket buffer is full does it wait for room.
//
//   queue.pending().insert(...);               // append bytes at any time
//   queue.Start(ring, &op, fd);                // at the end of the loop iteration
//   switch (queue.OnComplete(ring, &op, fd, cqe.res)) { ... }   // on the send's CQE
#ifndef DOTPROXY_NET_SEND_QUEUE_H_
#define DOTPROXY_NET_SEND_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/operation.h"
#include "core/ring.h"

namespace dotproxy::net {

class SendQueue {
 public:
  enum class Result : uint8_t {
    kDone,     // the send in flight is complete; more may be pending (call Start)
    kPartial,  // a short write (or no room yet): the rest has been submitted
    kFailed,   // the send failed or made no progress (res <= 0)
  };

  // Bytes to go out with the next send. Stable address: a TLS BIO may append to it.
  std::vector<uint8_t>& pending() { return pending_; }
  bool is_sending() const { return is_sending_; }
  // Nothing queued and nothing in flight.
  bool is_idle() const { return !is_sending_ && pending_.empty(); }
  // Bytes pending plus those of the send in flight not yet sent.
  size_t queued_bytes() const {
    return pending_.size() + (offset_ < inflight_.size() ? inflight_.size() - offset_ : 0);
  }

  // Submits one send of everything pending, unless a send is in flight or nothing is pending.
  // Returns true if it submitted.
  bool Start(core::Ring& ring, core::Operation* op, int fd);
  // Accounts for the completion of the send in flight (`res` from its CQE).
  Result OnComplete(core::Ring& ring, core::Operation* op, int fd, int res);
  // Drops every queued byte and frees large buffers. Only when no send is in flight.
  void Clear();

 private:
  // A MSG_DONTWAIT send, or with wait_for_room one that waits in the kernel for buffer space.
  void Submit(core::Ring& ring, core::Operation* op, int fd, bool wait_for_room);

  std::vector<uint8_t> pending_;
  std::vector<uint8_t> inflight_;  // the bytes of the send in flight
  size_t offset_ = 0;              // of inflight_, already sent
  bool is_sending_ = false;
  bool is_nowait_ = false;  // the send in flight is MSG_DONTWAIT (EAGAIN means: retry waiting)
};

// Frees a buffer's memory once it has grown past what steady-state traffic needs.
void ReleaseIfLarge(std::vector<uint8_t>& buffer);

}  // namespace dotproxy::net

#endif  // DOTPROXY_NET_SEND_QUEUE_H_
