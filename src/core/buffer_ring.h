// File: core/buffer_ring.h
//
// BufferRing is a provided-buffer ring (io_uring_register_buf_ring, kernel 5.19): `count` buffers
// of `size` bytes that the kernel picks from for IOSQE_BUFFER_SELECT receives. liburing 2.3 has no
// io_uring_setup_buf_ring, so the ring memory is a page-aligned mmap. Buffer memory is an
// anonymous mapping too: a large buffer that only ever holds small datagrams costs only the
// pages actually written.
#ifndef DOTPROXY_CORE_BUFFER_RING_H_
#define DOTPROXY_CORE_BUFFER_RING_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include <liburing.h>

#include "absl/status/statusor.h"

namespace dotproxy::core {

class BufferRing {
 public:
  // count must be a power of two <= 32768.
  static absl::StatusOr<std::unique_ptr<BufferRing>> Create(io_uring* ring, uint16_t group_id,
                                                            uint32_t count, uint32_t size);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  uint8_t* buffer(uint16_t buffer_id) {
    return buffers_ + static_cast<size_t>(buffer_id) * size_;
  }
  // Hands a buffer back to the kernel.
  void Recycle(uint16_t buffer_id);
  // Makes `sqe` (a receive) take its buffer from this ring.
  void Select(io_uring_sqe* sqe) const {
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group_id_;
  }
  // Prepares a one-shot recv on `fd` into a buffer of this ring.
  void PrepareRecv(io_uring_sqe* sqe, int fd) const {
    io_uring_prep_recv(sqe, fd, nullptr, 0, 0);
    Select(sqe);
  }
  // Prepares a multishot recv on `fd`: one CQE per arrival, each in a buffer of this ring, until
  // a CQE without IORING_CQE_F_MORE ends it (kernel 6.0).
  void PrepareRecvMultishot(io_uring_sqe* sqe, int fd) const {
    io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    Select(sqe);
  }
  // The buffer a completion carries: true and *buffer_id set, or false when it has none.
  static bool BufferOf(const io_uring_cqe& cqe, uint16_t* buffer_id) {
    *buffer_id = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    return (cqe.flags & IORING_CQE_F_BUFFER) != 0;
  }

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_size() const { return size_; }

 private:
  BufferRing() = default;

  io_uring* ring_ = nullptr;       // not owned; outlives this object
  io_uring_buf_ring* br_ = nullptr;
  size_t br_bytes_ = 0;
  uint8_t* buffers_ = nullptr;
  size_t buffers_bytes_ = 0;
  uint32_t count_ = 0;
  uint32_t size_ = 0;
  uint16_t group_id_ = 0;
  bool is_registered_ = false;
};

}  // namespace dotproxy::core

#endif  // DOTPROXY_CORE_BUFFER_RING_H_
