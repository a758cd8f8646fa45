#include "core/kernel_features.h"

#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include <liburing.h>

#include "absl/strings/str_cat.h"
#include "base/unique_fd.h"
#include "core/buffer_ring.h"
#include "core/ring.h"

namespace dotproxy::core {
namespace {

// Newer than liburing 2.3's headers.
constexpr uint32_t kFeatRecvSendBundle = 1U << 14;  // IORING_FEAT_RECVSEND_BUNDLE, 6.10
constexpr uint16_t kPbufRingInc = 2;                // IOU_PBUF_RING_INC, 6.12

// What dotproxy cannot run without, in the order they are checked.
struct Requirement {
  const char* name;
  bool (*present)(const KernelFeatures&);
};

template <int kOp>
bool HasOp(const KernelFeatures& f) {
  return f.ops.test(kOp);
}

constexpr Requirement kRequirements[] = {
    {"io_uring IORING_OP_RECVMSG (Linux 5.3)", &HasOp<IORING_OP_RECVMSG>},
    {"io_uring IORING_OP_SENDMSG (Linux 5.3)", &HasOp<IORING_OP_SENDMSG>},
    {"io_uring IORING_OP_ACCEPT (Linux 5.5)", &HasOp<IORING_OP_ACCEPT>},
    {"io_uring IORING_OP_CONNECT (Linux 5.5)", &HasOp<IORING_OP_CONNECT>},
    {"io_uring IORING_OP_ASYNC_CANCEL (Linux 5.5)", &HasOp<IORING_OP_ASYNC_CANCEL>},
    {"io_uring IORING_OP_READ (Linux 5.6)", &HasOp<IORING_OP_READ>},
    {"io_uring IORING_OP_SEND (Linux 5.6)", &HasOp<IORING_OP_SEND>},
    {"io_uring IORING_OP_RECV (Linux 5.6)", &HasOp<IORING_OP_RECV>},
    // The wake-up of the hand-off between shards (upstream/handoff_hub.h).
    {"io_uring IORING_OP_MSG_RING (Linux 5.18)", &HasOp<IORING_OP_MSG_RING>},
    {"io_uring provided-buffer rings (Linux 5.19)",
     [](const KernelFeatures& f) { return f.buf_ring; }},
    {"io_uring IORING_ASYNC_CANCEL_FD|ALL (Linux 5.19)",
     [](const KernelFeatures& f) { return f.cancel_fd_all; }},
    {"io_uring multishot recvmsg (Linux 6.0)",
     [](const KernelFeatures& f) { return f.multishot_recvmsg; }},
};

// Waits (bounded) for one CQE and returns a copy of it; false if none came.
bool WaitCqe(io_uring* ring, io_uring_cqe* out) {
  __kernel_timespec ts{.tv_sec = 1, .tv_nsec = 0};
  io_uring_cqe* cqe = nullptr;
  if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) != 0 || cqe == nullptr) {
    return false;
  }
  *out = *cqe;
  io_uring_cqe_seen(ring, cqe);
  return true;
}

// A cancel by fd, with ALL, of nothing: -ENOENT where the flags are known, -EINVAL where not.
bool ProbeCancelFdAll(io_uring* ring) {
  base::UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.is_valid()) {
    return false;
  }
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  io_uring_prep_cancel_fd(sqe, fd.get(), IORING_ASYNC_CANCEL_ALL);
  io_uring_submit(ring);
  io_uring_cqe cqe{};
  return WaitCqe(ring, &cqe) && cqe.res != -EINVAL;
}

// One datagram to ourselves through a multishot recvmsg: it must complete with F_MORE set (an
// old kernel would reject the request, or complete it once without F_MORE).
bool ProbeMultishotRecvmsg(io_uring* ring, BufferRing& buffers) {
  base::UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (!fd.is_valid() || bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return false;
  }
  msghdr msg{};
  msg.msg_namelen = sizeof(sockaddr_in);
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  io_uring_prep_recvmsg_multishot(sqe, fd.get(), &msg, 0);
  buffers.Select(sqe);
  io_uring_submit(ring);
  const char byte = 0;
  if (sendto(fd.get(), &byte, 1, 0, reinterpret_cast<sockaddr*>(&addr), len) != 1) {
    return false;
  }
  io_uring_cqe cqe{};
  const bool ok = WaitCqe(ring, &cqe) && cqe.res > 0 && (cqe.flags & IORING_CQE_F_MORE) != 0;
  // The request stays armed until cancelled; the ring's teardown cancels it too.
  io_uring_prep_cancel_fd(io_uring_get_sqe(ring), fd.get(), 0);
  io_uring_submit(ring);
  return ok;
}

bool ProbeIncrementalBuffers(io_uring* ring) {
  const size_t bytes = 4096;
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    return false;
  }
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = 1;
  reg.bgid = 2;
  reg.pad = kPbufRingInc;  // `flags` in newer headers
  const bool ok = io_uring_register_buf_ring(ring, &reg, 0) == 0;
  if (ok) {
    io_uring_unregister_buf_ring(ring, reg.bgid);
  }
  munmap(mem, bytes);
  return ok;
}

}  // namespace

KernelFeatures ProbeKernelFeatures() {
  KernelFeatures found;
  io_uring ring;
  io_uring_params params{};
  const int rc = io_uring_queue_init_params(8, &ring, &params);
  if (rc != 0) {
    found.setup_errno = -rc;
    return found;
  }
  found.recv_bundle = (params.features & kFeatRecvSendBundle) != 0;
  if (io_uring_probe* probe = io_uring_get_probe_ring(&ring); probe != nullptr) {
    for (int op = 0; op < IORING_OP_LAST && op < static_cast<int>(found.ops.size()); ++op) {
      found.ops.set(static_cast<size_t>(op), io_uring_opcode_supported(probe, op) != 0);
    }
    io_uring_free_probe(probe);
  }
  found.cancel_fd_all = ProbeCancelFdAll(&ring);
  {
    auto buffers = BufferRing::Create(&ring, 1, 2, 64);
    found.buf_ring = buffers.ok();
    if (found.buf_ring) {
      found.multishot_recvmsg = ProbeMultishotRecvmsg(&ring, **buffers);
    }
  }
  found.incremental_buffers = ProbeIncrementalBuffers(&ring);
  io_uring_queue_exit(&ring);
  return found;
}

absl::Status CheckKernelFeatures(const KernelFeatures& found) {
  if (found.setup_errno != 0) {
    return absl::FailedPreconditionError(DescribeSetupError(found.setup_errno));
  }
  for (const Requirement& r : kRequirements) {
    if (!r.present(found)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "kernel too old for dotproxy (Linux 6.1 or newer needed): no ", r.name));
    }
  }
  return absl::OkStatus();
}

std::string DescribeKernelFeatures(const KernelFeatures& found) {
  return absl::StrCat("io_uring: buffer rings ", found.buf_ring ? "yes" : "no",
                      ", multishot recvmsg ", found.multishot_recvmsg ? "yes" : "no",
                      "; optional, unused: recv bundles ", found.recv_bundle ? "yes" : "no",
                      ", incremental buffers ", found.incremental_buffers ? "yes" : "no");
}

}  // namespace dotproxy::core
