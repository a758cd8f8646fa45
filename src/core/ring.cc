#include "core/ring.h"

#include <errno.h>
#include <string.h>

#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace dotproxy::core {

std::string DescribeSetupError(int err) {
  std::string text = absl::StrCat("io_uring_setup: ", strerrorname_np(err), " (", strerror(err),
                                  ")");
  switch (err) {
    case EPERM:
      absl::StrAppend(&text,
                      ": io_uring is disabled for this process: kernel.io_uring_disabled=1 or 2 "
                      "(see /proc/sys/kernel/io_uring_disabled) or a container seccomp policy "
                      "(Docker >= 25, containerd and Kubernetes RuntimeDefault block io_uring)");
      break;
    case ENOSYS:
      absl::StrAppend(&text,
                      ": the kernel has no io_uring (CONFIG_IO_URING=n) or a seccomp policy "
                      "returns ENOSYS");
      break;
    case ENOMEM:
      absl::StrAppend(&text, ": raise RLIMIT_MEMLOCK (kernels before 5.12 charge ring memory)");
      break;
    default:
      break;
  }
  return text;
}

absl::StatusOr<std::unique_ptr<Ring>> Ring::Create(const Options& options) {
  auto ring = std::unique_ptr<Ring>(new Ring());
  struct Rung {
    unsigned flags;
    const char* name;
  };
  // Never add ring-layout flags (NO_SQARRAY, NO_MMAP): liburing 2.3 would map the ring wrongly.
  const Rung ladder[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
       "single_issuer+defer_taskrun"},
      {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, "coop_taskrun"},
      {0, "plain"},
  };
  int last_error = 0;
  for (const Rung& rung : ladder) {
    io_uring_params params{};
    params.flags = rung.flags | IORING_SETUP_CQSIZE;
    params.cq_entries = options.cq_entries;
    const int rc = io_uring_queue_init_params(options.sq_entries, &ring->ring_, &params);
    if (rc == 0) {
      ring->is_initialized_ = true;
      ring->has_defer_taskrun_ = (rung.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
      ring->setup_mode_ = rung.name;
      // Saves an fd lookup per io_uring_enter; harmless if unsupported.
      io_uring_register_ring_fd(&ring->ring_);
      return ring;
    }
    last_error = -rc;
    if (last_error != EINVAL) {
      break;  // EPERM, ENOSYS, ENOMEM: stepping down the ladder will not help
    }
  }
  if (last_error == EPERM || last_error == ENOSYS) {
    return absl::FailedPreconditionError(DescribeSetupError(last_error));
  }
  return absl::ErrnoToStatus(last_error, DescribeSetupError(last_error));
}

Ring::~Ring() {
  if (is_initialized_) {
    io_uring_queue_exit(&ring_);
  }
}

io_uring_sqe* Ring::GetSqe(Operation* op) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    // SQ full: hand the queued entries to the kernel and try again.
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  io_uring_sqe_set_data(sqe, op);
  return sqe;
}

bool Ring::SubmitAndWaitNs(int64_t timeout_ns) {
  int rc;
  if (timeout_ns < 0) {
    rc = io_uring_submit_and_wait(&ring_, 1);
  } else if (timeout_ns == 0) {
    rc = has_defer_taskrun_ ? io_uring_submit_and_get_events(&ring_) : io_uring_submit(&ring_);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    io_uring_cqe* cqe = nullptr;
    rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
    LOG_EVERY_N_SEC(kError, 1, "io_uring_enter: %s", strerror(-rc));
    return false;
  }
  return true;
}

}  // namespace dotproxy::core
