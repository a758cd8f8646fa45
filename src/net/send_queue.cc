#include "net/send_queue.h"

#include <sys/socket.h>

#include <cerrno>

namespace dotproxy::net {
namespace {

constexpr size_t kKeepCapacity = 16 * 1024;

}  // namespace

void ReleaseIfLarge(std::vector<uint8_t>& buffer) {
  if (buffer.capacity() > kKeepCapacity) {
    std::vector<uint8_t>().swap(buffer);
  }
}

bool SendQueue::Start(core::Ring& ring, core::Operation* op, int fd) {
  if (is_sending_ || pending_.empty()) {
    return false;
  }
  inflight_.swap(pending_);
  pending_.clear();
  offset_ = 0;
  Submit(ring, op, fd, /*wait_for_room=*/false);
  return true;
}

SendQueue::Result SendQueue::OnComplete(core::Ring& ring, core::Operation* op, int fd, int res) {
  is_sending_ = false;
  if (res == -EAGAIN && is_nowait_) {
    // The socket buffer is full: this time wait for room (poll), as a plain send would.
    Submit(ring, op, fd, /*wait_for_room=*/true);
    return Result::kPartial;
  }
  if (res <= 0) {
    return Result::kFailed;
  }
  offset_ += static_cast<size_t>(res);
  if (offset_ < inflight_.size()) {
    Submit(ring, op, fd, /*wait_for_room=*/false);
    return Result::kPartial;
  }
  inflight_.clear();
  ReleaseIfLarge(inflight_);
  return Result::kDone;
}

void SendQueue::Clear() {
  pending_.clear();
  inflight_.clear();
  ReleaseIfLarge(pending_);
  ReleaseIfLarge(inflight_);
  offset_ = 0;
}

void SendQueue::Submit(core::Ring& ring, core::Operation* op, int fd, bool wait_for_room) {
  io_uring_sqe* sqe = ring.GetSqe(op);
  // MSG_DONTWAIT: the send completes inside the enter that submits it (io_uring does not arm a
  // poll for it), so the ring can count it and sleep in that same enter.
  io_uring_prep_send(sqe, fd, inflight_.data() + offset_, inflight_.size() - offset_,
                     wait_for_room ? MSG_NOSIGNAL : MSG_NOSIGNAL | MSG_DONTWAIT);
  if (!wait_for_room) {
    ring.CountInlineCompletion();
  }
  is_nowait_ = !wait_for_room;
  is_sending_ = true;
}

}  // namespace dotproxy::net
