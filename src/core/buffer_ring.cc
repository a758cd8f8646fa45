#include "core/buffer_ring.h"

#include <sys/mman.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace dotproxy::core {

absl::StatusOr<std::unique_ptr<BufferRing>> BufferRing::Create(io_uring* ring, uint16_t group_id,
                                                               uint32_t count, uint32_t size) {
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("buffer ring count ", count,
                                                   " is not a power of two <= 32768"));
  }
  auto out = std::unique_ptr<BufferRing>(new BufferRing());
  out->ring_ = ring;
  out->count_ = count;
  out->size_ = size;
  out->group_id_ = group_id;
  out->br_bytes_ = count * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, out->br_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                   -1, 0);
  if (mem == MAP_FAILED) {
    return absl::ErrnoToStatus(errno, "mmap buffer ring");
  }
  out->br_ = static_cast<io_uring_buf_ring*>(mem);
  out->buffers_bytes_ = static_cast<size_t>(count) * size;
  mem = mmap(nullptr, out->buffers_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
             -1, 0);
  if (mem == MAP_FAILED) {
    return absl::ErrnoToStatus(errno, "mmap receive buffers");
  }
  out->buffers_ = static_cast<uint8_t*>(mem);
  io_uring_buf_ring_init(out->br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(out->br_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  const int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc < 0) {
    return absl::ErrnoToStatus(-rc, "io_uring_register_buf_ring (needs Linux >= 5.19)");
  }
  out->is_registered_ = true;
  const int mask = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(out->br_, out->buffer(static_cast<uint16_t>(i)), size,
                          static_cast<uint16_t>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(out->br_, static_cast<int>(count));
  return out;
}

BufferRing::~BufferRing() {
  if (is_registered_) {
    io_uring_unregister_buf_ring(ring_, group_id_);
  }
  if (buffers_ != nullptr) {
    munmap(buffers_, buffers_bytes_);
  }
  if (br_ != nullptr) {
    munmap(br_, br_bytes_);
  }
}

void BufferRing::Recycle(uint16_t buffer_id) {
  io_uring_buf_ring_add(br_, buffer(buffer_id), size_, buffer_id,
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(br_, 1);
}

}  // namespace dotproxy::core
