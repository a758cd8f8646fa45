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
      // TASKRUN_FLAG (5.19, like COOP_TASKRUN; DEFER_TASKRUN needs 6.1) makes pending task
      // work visible in the SQ flags, which busy polling reads without entering the kernel.
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
           IORING_SETUP_TASKRUN_FLAG,
       "single_issuer+defer_taskrun"},
      {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_TASKRUN_FLAG,
       "coop_taskrun"},
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
      ring->has_taskrun_flag_ = (rung.flags & IORING_SETUP_TASKRUN_FLAG) != 0;
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
    // SQ full: hand the queued entries to the kernel and try again. Their inline completions
    // may be drained before the next wait, so they no longer count (see CountInlineCompletion).
    io_uring_submit(&ring_);
    inline_completions_ = 0;
    sqe = io_uring_get_sqe(&ring_);
  }
  io_uring_sqe_set_data(sqe, op);
  return sqe;
}

void Ring::SubmitNoWait() {
  if (io_uring_sq_ready(&ring_) == 0) {
    return;
  }
  const int rc =
      has_defer_taskrun_ ? io_uring_submit_and_get_events(&ring_) : io_uring_submit(&ring_);
  inline_completions_ = 0;
  if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
    LOG_EVERY_N_SEC(kError, 1, "io_uring_enter: %s", strerror(-rc));
  }
}

bool Ring::HasPendingEvents() const {
  if (io_uring_cq_ready(&ring_) > 0) {
    return true;
  }
  // Without TASKRUN_FLAG the kernel posts completions itself; the CQ check above sees them.
  return has_taskrun_flag_ &&
         (IO_URING_READ_ONCE(*ring_.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
}

bool Ring::SubmitAndWaitNs(int64_t timeout_ns) {
  // The kernel returns once the CQ holds wait_nr completions; the inline ones are among them
  // (they are posted before it starts waiting, and the CQ was drained before this call).
  const unsigned wait_nr = 1 + inline_completions_;
  inline_completions_ = 0;
  int rc;
  if (timeout_ns < 0) {
    rc = io_uring_submit_and_wait(&ring_, wait_nr);
  } else if (timeout_ns == 0) {
    rc = has_defer_taskrun_ ? io_uring_submit_and_get_events(&ring_) : io_uring_submit(&ring_);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    io_uring_cqe* cqe = nullptr;
    rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, wait_nr, &ts, nullptr);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
    LOG_EVERY_N_SEC(kError, 1, "io_uring_enter: %s", strerror(-rc));
    return false;
  }
  return true;
}

}  // namespace dotproxy::core
