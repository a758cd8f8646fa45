// File: core/timer_wheel.h
//
// A hashed timer wheel for coarse deadlines (query deadlines, idle and handshake timeouts) with
// O(1) schedule and cancel. Timers are intrusive: the owner embeds a Timer and keeps it alive
// while armed. Time is whatever monotonic millisecond clock the caller passes in, so tests inject
// it. A timer never fires early; it fires on the first Advance() at or after its expiry.
// Rule: a timer callback must not free the memory of another Timer (it may cancel it); owners
// live in fixed tables for the shard's lifetime, so this holds by construction in the proxy.
//
//   TimerWheel wheel(now_ms);
//   conn.idle_timer.owner = &conn;
//   wheel.Schedule(&conn.idle_timer, now_ms + 10'000);
//   wheel.Advance(now_ms, [](Timer* t) { static_cast<Conn*>(t->owner)->OnIdle(); });
#ifndef DOTPROXY_CORE_TIMER_WHEEL_H_
#define DOTPROXY_CORE_TIMER_WHEEL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dotproxy::core {

struct Timer {
  void* owner = nullptr;  // the object to notify; not owned
  uint32_t kind = 0;      // caller-defined tag, e.g. which of the owner's timers this is
  int64_t expiry_ms = 0;
  Timer* prev = nullptr;  // wheel bucket links; null when not armed
  Timer* next = nullptr;
  bool is_armed = false;
};

class TimerWheel {
 public:
  // slot_count is rounded up to a power of two; one slot spans tick_ms.
  explicit TimerWheel(int64_t now_ms, int64_t tick_ms = 1, size_t slot_count = 4096);
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Arms `timer` to fire at expiry_ms (re-arms it if already armed). An expiry in the past fires
  // on the next Advance().
  void Schedule(Timer* timer, int64_t expiry_ms);
  // Disarms `timer` (no-op if not armed) and sets expiry_ms to INT64_MAX, so a timer cancelled
  // by another timer's callback during Advance() does not fire.
  void Cancel(Timer* timer);
  // Fires, in no particular order within a tick, every timer with expiry_ms <= now_ms. Each timer
  // is disarmed before on_expired(Timer*) runs, which may schedule or cancel any timer.
  template <typename Fn>
  void Advance(int64_t now_ms, Fn&& on_expired);
  // Milliseconds until the earliest armed timer may fire (0 if one is due now), or -1 if none is
  // armed. May return less than the exact time (never more), capped at max_ms.
  int64_t NextTimeoutMs(int64_t now_ms, int64_t max_ms) const;

  size_t armed_count() const { return armed_count_; }

 private:
  size_t SlotFor(int64_t expiry_ms) const;
  void Link(Timer* timer);
  void Unlink(Timer* timer);

  std::vector<Timer*> slots_;  // bucket heads, doubly linked through Timer::prev/next
  int64_t tick_ms_;
  size_t mask_;
  int64_t current_tick_;  // the last tick processed by Advance()
  size_t armed_count_ = 0;
  // A lower bound of every armed timer's expiry (INT64_MIN: unknown), so NextTimeoutMs rarely has
  // to scan the wheel.
  mutable int64_t earliest_bound_ms_ = INT64_MIN;
  std::vector<Timer*> due_;  // scratch list reused by Advance()
};

template <typename Fn>
void TimerWheel::Advance(int64_t now_ms, Fn&& on_expired) {
  const int64_t target_tick = now_ms / tick_ms_;
  if (armed_count_ == 0) {
    current_tick_ = target_tick;
    return;
  }
  // Walk at most one full revolution: beyond that every slot has been visited once.
  int64_t first = current_tick_;
  if (target_tick - first >= static_cast<int64_t>(slots_.size())) {
    first = target_tick - static_cast<int64_t>(slots_.size()) + 1;
  }
  due_.clear();
  for (int64_t tick = first; tick <= target_tick && armed_count_ > due_.size(); ++tick) {
    for (Timer* t = slots_[static_cast<size_t>(tick) & mask_]; t != nullptr; t = t->next) {
      if (t->expiry_ms <= now_ms) {
        due_.push_back(t);
      }
    }
  }
  current_tick_ = target_tick;
  for (Timer* t : due_) {
    Unlink(t);
  }
  // Callbacks may re-arm or cancel other timers in due_; skip any that is armed again meanwhile.
  for (size_t i = 0; i < due_.size(); ++i) {
    Timer* t = due_[i];
    if (!t->is_armed && t->expiry_ms <= now_ms) {
      t->expiry_ms = INT64_MAX;  // mark as delivered
      on_expired(t);
    }
  }
}

}  // namespace dotproxy::core

#endif  // DOTPROXY_CORE_TIMER_WHEEL_H_
