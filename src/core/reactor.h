// File: core/reactor.h
//
// Reactor is one thread's event loop: submit-and-wait on its io_uring, drain the completions and
// hand each to the handler its owner registered, fire due timers, then run the end-of-iteration
// flush hooks (where owners batch their sends). Owners register member functions once, at
// set-up; core does not know what a UDP receive or an upstream send is. Everything but
// RequestStop() runs on the reactor's thread.
//
//   ASSIGN_OR_RETURN(auto reactor, Reactor::Create());
//   recv_op_.handler = reactor->OnCompletion<&Listener::OnRecv>(this);
//   timer_.kind = reactor->OnTimer<&Listener::OnIdle>(this);
//   reactor->OnFlush<&Listener::Flush>(this);   // bool Flush(): true if it did any work
//   reactor->Run();                              // until RequestStop()
//
// The io_uring specifics stay behind GetSqe()/ring() so that an epoll backend can later plug in
// at this seam.
#ifndef DOTPROXY_CORE_REACTOR_H_
#define DOTPROXY_CORE_REACTOR_H_

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "core/buffer_ring.h"
#include "core/operation.h"
#include "core/ring.h"
#include "core/timer_wheel.h"

namespace dotproxy::core {

class Reactor {
 public:
  static absl::StatusOr<std::unique_ptr<Reactor>> Create(const Ring::Options& options = {});
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Registers `Method(const Operation&, const io_uring_cqe&)` of `owner` for completions; put the
  // returned id in Operation::handler.
  template <auto Method, typename T>
  HandlerId OnCompletion(T* owner) {
    return AddHandler(owner, [](void* o, const Operation& op, const io_uring_cqe& cqe) {
      (static_cast<T*>(o)->*Method)(op, cqe);
    });
  }
  // Registers `Method(Timer*)` of `owner` for timers; put the returned id in Timer::kind.
  template <auto Method, typename T>
  uint32_t OnTimer(T* owner) {
    timer_handlers_.push_back({owner, [](void* o, Timer* t) { (static_cast<T*>(o)->*Method)(t); }});
    return static_cast<uint32_t>(timer_handlers_.size() - 1);
  }
  // Registers `bool Method()` of `owner`, run at the end of every loop iteration, before the
  // submit-and-wait, in registration order; hooks run again while any of them reports work
  // (one hook's work can make work for another).
  template <auto Method, typename T>
  void OnFlush(T* owner) {
    flush_hooks_.push_back({owner, [](void* o) { return (static_cast<T*>(o)->*Method)(); }});
  }

  // A provided-buffer ring of `count` buffers of `size` bytes, with the next free group id. The
  // reactor owns it and unregisters it before the ring goes away.
  absl::StatusOr<BufferRing*> AddBufferRing(uint32_t count, uint32_t size);

  // A zeroed SQE whose user_data is `op` (null: completion ignored). Never null.
  io_uring_sqe* GetSqe(Operation* op) { return ring_->GetSqe(op); }
  Ring& ring() { return *ring_; }
  // This reactor's io_uring fd: where another thread's reactor sends a wake-up.
  int ring_fd() { return ring_->raw()->ring_fd; }
  // Posts a CQE carrying `target` (an Operation owned by the other reactor's thread) into the
  // io_uring `target_ring_fd` (IORING_OP_MSG_RING, Linux 5.18): its owner's handler runs there.
  // No CQE here on success; on failure `on_failure`'s handler gets the error.
  void SendWake(int target_ring_fd, const Operation* target, Operation* on_failure) {
    io_uring_sqe* sqe = ring_->GetSqe(on_failure);
    io_uring_prep_msg_ring(sqe, target_ring_fd, 0,
                           static_cast<uint64_t>(reinterpret_cast<uintptr_t>(target)), 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  }
  TimerWheel& timers() { return timers_; }
  // Loop time, refreshed once per iteration after the wait.
  int64_t now_ms() const { return now_ms_; }
  int64_t now_ns() const { return now_ns_; }
  // Loop iterations so far; any thread may read it (a watchdog sees a wedged loop).
  uint64_t iterations() const { return iterations_.load(std::memory_order_relaxed); }

  // Busy polling (0, the default: off): for up to `ns` after the last completion, the loop
  // submits without sleeping and spins on the ring's flags instead, so an answer that comes back
  // within that time costs no wake-up. Costs a core's worth of CPU while traffic keeps coming.
  void set_busy_poll_ns(int64_t ns) { busy_poll_ns_ = ns; }

  // Runs iterations until RequestStop().
  void Run();
  // One iteration: flush hooks, submit and wait up to max_wait_ms (or the next timer), dispatch
  // completions and due timers.
  void RunOnce(int64_t max_wait_ms) {
    RunOnceNs(max_wait_ms < 0 ? -1 : max_wait_ms * 1'000'000);
  }
  // The same with the wait in nanoseconds (0: do not wait; negative: until a completion or the
  // next timer), for owners that run their own loop and pace it finer than 1 ms.
  void RunOnceNs(int64_t max_wait_ns);
  // Thread-safe: asks Run() to return and wakes the loop.
  void RequestStop();
  // Thread-safe: runs `task` on the reactor's thread at the next loop boundary (control plane
  // only: a lock guards the queue, so never use it per query).
  void Post(std::function<void()> task);
  bool is_stop_requested() const { return stop_requested_.load(std::memory_order_acquire); }

 private:
  using CompletionFn = void (*)(void* owner, const Operation& op, const io_uring_cqe& cqe);
  struct Handler {
    void* owner = nullptr;
    CompletionFn fn = nullptr;
  };
  struct TimerHandler {
    void* owner = nullptr;
    void (*fn)(void* owner, Timer* timer) = nullptr;
  };
  struct FlushHook {
    void* owner = nullptr;
    bool (*fn)(void* owner) = nullptr;
  };

  Reactor();
  HandlerId AddHandler(void* owner, CompletionFn fn);
  void Flush();
  void Dispatch(const io_uring_cqe& cqe) {
    auto* op = reinterpret_cast<const Operation*>(io_uring_cqe_get_data(&cqe));
    if (op == nullptr) {
      return;  // cancel requests and other fire-and-forget submissions
    }
    const Handler& h = handlers_[op->handler];
    if (h.fn != nullptr) {
      h.fn(h.owner, *op, cqe);
    }
  }
  // Spins until events are pending (true) or the busy-poll window, bounded by `wait_ns` (< 0:
  // none), has passed (false).
  bool BusyPoll(int64_t wait_ns);
  void OnWake(const Operation& op, const io_uring_cqe& cqe);
  void ArmWake();
  void Wake();

  std::unique_ptr<Ring> ring_;
  std::vector<std::unique_ptr<BufferRing>> buffer_rings_;
  TimerWheel timers_;
  int64_t now_ms_ = 0;
  int64_t now_ns_ = 0;
  int64_t busy_poll_ns_ = 0;
  int64_t last_event_ns_ = 0;  // loop time of the last iteration that drained a completion
  std::vector<Handler> handlers_;  // index: HandlerId; [0] ignores
  std::vector<TimerHandler> timer_handlers_;
  std::vector<FlushHook> flush_hooks_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<uint64_t> iterations_{0};  // single writer: the loop
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;  // guarded by posted_mu_
  std::vector<std::function<void()>> running_;  // the loop thread's copy while it runs them
  base::UniqueFd wake_fd_;  // eventfd written by RequestStop
  uint64_t wake_value_ = 0;
  Operation wake_op_;
};

}  // namespace dotproxy::core

#endif  // DOTPROXY_CORE_REACTOR_H_
