// File: core/ring.h
//
// Ring owns one io_uring, created by the thread that will use it. Create() walks the setup-flag
// ladder SINGLE_ISSUER|DEFER_TASKRUN -> COOP_TASKRUN -> none and never passes ring-layout flags
// that liburing 2.3 cannot map. GetSqe() is the only place that handles a full submission queue.
// Completions are drained in batches with one cq_advance.
//
//   ASSIGN_OR_RETURN(auto ring, Ring::Create({}));
//   io_uring_sqe* sqe = ring->GetSqe();
//   ring->SubmitAndWait(timeout_ms);
//   ring->Drain([&](const io_uring_cqe& cqe) { ... });
#ifndef DOTPROXY_CORE_RING_H_
#define DOTPROXY_CORE_RING_H_

#include <cstdint>
#include <memory>
#include <string>

#include <liburing.h>

#include "absl/status/statusor.h"
#include "core/operation.h"

namespace dotproxy::core {

// "io_uring_setup: EPERM (...)" with what usually causes `err` and what to do about it.
std::string DescribeSetupError(int err);

class Ring {
 public:
  struct Options {
    uint32_t sq_entries = 2048;
    uint32_t cq_entries = 16384;  // multishot receives can post many CQEs per SQE
  };

  // Sets up the ring on the calling thread. On failure the status names the errno and, for EPERM
  // and ENOSYS, the likely cause (kernel.io_uring_disabled, a seccomp policy, no CONFIG_IO_URING).
  static absl::StatusOr<std::unique_ptr<Ring>> Create(const Options& options);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Returns a zeroed SQE whose user_data is set to `op` (null: ignored completion). When the SQ is
  // full it submits what is queued first, so it never returns null.
  io_uring_sqe* GetSqe(Operation* op);
  // Declares that the SQE just taken posts its CQE while the io_uring_enter that submits it runs
  // (a MSG_DONTWAIT send: it succeeds or fails with EAGAIN at once, never waits for poll). The next
  // wait asks for one more completion per such SQE, so that they alone do not end it: the loop
  // sleeps in the same enter that submits the send instead of coming round for one more.
  // Undercounting costs an extra enter; overcounting would delay a real event, so the count is
  // dropped whenever the SQ is submitted early.
  void CountInlineCompletion() { ++inline_completions_; }
  // Submits everything queued and waits up to timeout_ms (-1: forever, 0: do not wait) for at
  // least one completion (beyond the inline ones). Returns false only on an unexpected error
  // (logged).
  bool SubmitAndWait(int64_t timeout_ms) {
    return SubmitAndWaitNs(timeout_ms < 0 ? -1 : timeout_ms * 1'000'000);
  }
  // The same with a timeout in nanoseconds, for callers that pace sends finer than 1 ms.
  bool SubmitAndWaitNs(int64_t timeout_ns);
  // Submits everything queued without waiting (and runs deferred task work). For busy polling.
  void SubmitNoWait();
  // Whether completions are ready or the kernel has task work that would post some (the
  // IORING_SQ_TASKRUN flag): a busy-polling loop reads this without a system call.
  bool HasPendingEvents() const;
  // Calls fn(const io_uring_cqe&) for every available completion, in batches.
  template <typename Fn>
  unsigned Drain(Fn&& fn);

  io_uring* raw() { return &ring_; }
  // Which rung of the setup ladder succeeded, for the start-up log.
  const char* setup_mode() const { return setup_mode_; }

 private:
  Ring() = default;

  io_uring ring_{};
  bool is_initialized_ = false;
  bool has_defer_taskrun_ = false;
  bool has_taskrun_flag_ = false;
  uint32_t inline_completions_ = 0;  // SQEs queued since the last enter that complete inline
  const char* setup_mode_ = "none";
};

template <typename Fn>
unsigned Ring::Drain(Fn&& fn) {
  unsigned total = 0;
  io_uring_cqe* batch[256];
  for (;;) {
    const unsigned n = io_uring_peek_batch_cqe(&ring_, batch, 256);
    if (n == 0) {
      break;
    }
    for (unsigned i = 0; i < n; ++i) {
      // liburing's internal timeout for old kernels without EXT_ARG carries this marker.
      if (batch[i]->user_data == LIBURING_UDATA_TIMEOUT) {
        continue;
      }
      fn(*batch[i]);
    }
    io_uring_cq_advance(&ring_, n);
    total += n;
    if (n < 256) {
      break;
    }
  }
  return total;
}

}  // namespace dotproxy::core

#endif  // DOTPROXY_CORE_RING_H_
