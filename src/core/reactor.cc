#include "core/reactor.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/check.h"
#include "base/status_macros.h"
#include "core/clock.h"

namespace dotproxy::core {
namespace {

// The loop never sleeps longer than this, timers or not.
constexpr int64_t kMaxWaitMs = 1000;
// Flush passes per iteration at most: a hook that keeps reporting work cannot starve the ring.
constexpr int kMaxFlushPasses = 4;

// Busy polling stops when one spin iteration took longer than this (the thread was preempted).
constexpr int64_t kPreemptedGapNs = 20'000;

// Tells the CPU that this is a spin-wait loop (saves power, yields to the sibling hyperthread).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

Reactor::Reactor() : timers_(MonotonicMillis()) {
  handlers_.push_back({});  // kIgnoreHandler
  timer_handlers_.push_back({});  // kind 0: no owner
}

Reactor::~Reactor() {
  // Buffer rings are unregistered while the ring exists; then tearing the ring down cancels every
  // request still in flight, before the memory they point at is freed (the owners of that
  // memory outlive their reactor).
  buffer_rings_.clear();
  ring_.reset();
}

absl::StatusOr<std::unique_ptr<Reactor>> Reactor::Create(const Ring::Options& options) {
  auto reactor = std::unique_ptr<Reactor>(new Reactor());
  ASSIGN_OR_RETURN(reactor->ring_, Ring::Create(options));
  reactor->wake_fd_.reset(eventfd(0, EFD_CLOEXEC));
  if (!reactor->wake_fd_.is_valid()) {
    return absl::ErrnoToStatus(errno, "eventfd");
  }
  reactor->now_ns_ = MonotonicNanos();
  reactor->now_ms_ = reactor->now_ns_ / 1'000'000;
  reactor->wake_op_.handler = reactor->OnCompletion<&Reactor::OnWake>(reactor.get());
  reactor->ArmWake();
  return reactor;
}

absl::StatusOr<BufferRing*> Reactor::AddBufferRing(uint32_t count, uint32_t size) {
  const auto group = static_cast<uint16_t>(buffer_rings_.size() + 1);
  ASSIGN_OR_RETURN(std::unique_ptr<BufferRing> buffers,
                   BufferRing::Create(ring_->raw(), group, count, size));
  buffer_rings_.push_back(std::move(buffers));
  return buffer_rings_.back().get();
}

HandlerId Reactor::AddHandler(void* owner, CompletionFn fn) {
  CHECK(handlers_.size() < 256);
  handlers_.push_back({owner, fn});
  return static_cast<HandlerId>(handlers_.size() - 1);
}

void Reactor::RequestStop() {
  // The flag first, so the loop that the write wakes sees it. The caller keeps this object alive
  // until the loop's thread has been joined.
  stop_requested_.store(true, std::memory_order_release);
  Wake();
}

void Reactor::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(task));
  }
  Wake();
}

void Reactor::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_.get(), &one, sizeof(one));
}

void Reactor::ArmWake() {
  io_uring_sqe* sqe = ring_->GetSqe(&wake_op_);
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_value_, sizeof(wake_value_), 0);
}

void Reactor::OnWake(const Operation& /*op*/, const io_uring_cqe& /*cqe*/) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    running_.swap(posted_);
  }
  for (std::function<void()>& task : running_) {
    task();
  }
  running_.clear();
  if (!is_stop_requested()) {
    ArmWake();
  }
}

void Reactor::Flush() {
  for (int pass = 0; pass < kMaxFlushPasses; ++pass) {
    bool did_work = false;
    for (const FlushHook& hook : flush_hooks_) {
      did_work |= hook.fn(hook.owner);
    }
    if (!did_work) {
      return;
    }
  }
}

void Reactor::RunOnceNs(int64_t max_wait_ns) {
  iterations_.store(iterations_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  Flush();
  int64_t wait_ns = max_wait_ns;
  const int64_t timer_ms = timers_.NextTimeoutMs(now_ms_, kMaxWaitMs);
  if (timer_ms >= 0 && (wait_ns < 0 || timer_ms * 1'000'000 < wait_ns)) {
    wait_ns = timer_ms * 1'000'000;
  }
  if (busy_poll_ns_ > 0 && wait_ns != 0 && now_ns_ - last_event_ns_ < busy_poll_ns_ &&
      BusyPoll(wait_ns)) {
    wait_ns = 0;  // events are pending: collect them without sleeping
  }
  ring_->SubmitAndWaitNs(wait_ns);
  now_ns_ = MonotonicNanos();
  now_ms_ = now_ns_ / 1'000'000;
  if (ring_->Drain([this](const io_uring_cqe& cqe) { Dispatch(cqe); }) > 0) {
    last_event_ns_ = now_ns_;
  }
  timers_.Advance(now_ms_, [this](Timer* timer) {
    const TimerHandler& h = timer_handlers_[timer->kind];
    if (h.fn != nullptr) {
      h.fn(h.owner, timer);
    }
  });
}

bool Reactor::BusyPoll(int64_t wait_ns) {
  ring_->SubmitNoWait();  // this iteration's sends leave now, not when the spin ends
  int64_t deadline_ns = last_event_ns_ + busy_poll_ns_;
  if (wait_ns >= 0) {
    deadline_ns = std::min(deadline_ns, now_ns_ + wait_ns);
  }
  int64_t last_ns = MonotonicNanos();
  for (;;) {
    if (ring_->HasPendingEvents() || is_stop_requested()) {
      return true;
    }
    const int64_t now_ns = MonotonicNanos();
    // A gap means the scheduler ran something else on this core: spinning against another
    // runnable task only costs time slices (and the tail), so sleep instead.
    if (now_ns >= deadline_ns || now_ns - last_ns > kPreemptedGapNs) {
      return false;
    }
    last_ns = now_ns;
    CpuRelax();
  }
}

void Reactor::Run() {
  while (!is_stop_requested()) {
    RunOnce(kMaxWaitMs);
  }
}

}  // namespace dotproxy::core
