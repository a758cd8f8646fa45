#include "core/timer_wheel.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "base/check.h"

namespace dotproxy::core {

TimerWheel::TimerWheel(int64_t now_ms, int64_t tick_ms, size_t slot_count)
    : slots_(std::bit_ceil(std::max<size_t>(slot_count, 1)), nullptr),
      tick_ms_(tick_ms),
      mask_(slots_.size() - 1),
      current_tick_(0) {
  CHECK(tick_ms > 0);
  current_tick_ = now_ms / tick_ms_;
}

void TimerWheel::Schedule(Timer* timer, int64_t expiry_ms) {
  if (timer->is_armed) {
    Unlink(timer);
  }
  // A past expiry is raised to the start of the current tick: still <= the last Advance()'s now,
  // so it fires on the next Advance(), and its slot stays a pure function of expiry_ms (which is
  // how Unlink finds the bucket head).
  timer->expiry_ms = std::max(expiry_ms, current_tick_ * tick_ms_);
  Link(timer);
  earliest_bound_ms_ = std::min(earliest_bound_ms_, timer->expiry_ms);
}

void TimerWheel::Cancel(Timer* timer) {
  if (timer->is_armed) {
    Unlink(timer);
  }
  timer->expiry_ms = INT64_MAX;
}

int64_t TimerWheel::NextTimeoutMs(int64_t now_ms, int64_t max_ms) const {
  if (armed_count_ == 0) {
    return -1;
  }
  max_ms = std::max<int64_t>(max_ms, 0);
  // earliest_bound_ms_ is <= every armed expiry: while it lies in the future the scan below
  // cannot find anything sooner, and the loop calls this once per iteration.
  if (earliest_bound_ms_ > now_ms) {
    const uint64_t bound =
        static_cast<uint64_t>(earliest_bound_ms_) - static_cast<uint64_t>(now_ms);
    if (bound < static_cast<uint64_t>(max_ms)) {
      // Only an under-estimate when the earliest timer was cancelled: an early, empty wake-up.
      return static_cast<int64_t>(bound);
    }
  }
  // Every armed timer sits in the slot of its expiry tick, which is >= current_tick_, so the
  // first occurrence of its slot from current_tick_ on is no later than its expiry. Scan until a
  // slot starts after the earliest expiry seen, after max_ms, or after one revolution.
  int64_t earliest_ms = INT64_MAX;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const int64_t tick = current_tick_ + static_cast<int64_t>(i);
    const int64_t slot_start_ms = tick * tick_ms_;
    if (slot_start_ms >= earliest_ms || slot_start_ms - now_ms >= max_ms) {
      break;
    }
    for (const Timer* t = slots_[static_cast<size_t>(tick) & mask_]; t != nullptr; t = t->next) {
      earliest_ms = std::min(earliest_ms, t->expiry_ms);
    }
  }
  // Nothing armed expires before earliest_ms, nor (if none was seen) within the scanned range.
  earliest_bound_ms_ =
      earliest_ms != INT64_MAX ? earliest_ms : std::max(earliest_bound_ms_, now_ms + max_ms);
  if (earliest_ms <= now_ms) {
    return 0;
  }
  // Unsigned: the distance between two int64_t values always fits.
  const uint64_t distance_ms = static_cast<uint64_t>(earliest_ms) - static_cast<uint64_t>(now_ms);
  return static_cast<int64_t>(std::min(distance_ms, static_cast<uint64_t>(max_ms)));
}

size_t TimerWheel::SlotFor(int64_t expiry_ms) const {
  return static_cast<size_t>(expiry_ms / tick_ms_) & mask_;
}

void TimerWheel::Link(Timer* timer) {
  Timer*& head = slots_[SlotFor(timer->expiry_ms)];
  timer->prev = nullptr;
  timer->next = head;
  if (head != nullptr) {
    head->prev = timer;
  }
  head = timer;
  timer->is_armed = true;
  ++armed_count_;
}

void TimerWheel::Unlink(Timer* timer) {
  if (timer->prev != nullptr) {
    timer->prev->next = timer->next;
  } else {
    Timer*& head = slots_[SlotFor(timer->expiry_ms)];
    DCHECK(head == timer);
    head = timer->next;
  }
  if (timer->next != nullptr) {
    timer->next->prev = timer->prev;
  }
  timer->prev = nullptr;
  timer->next = nullptr;
  timer->is_armed = false;
  --armed_count_;
}

}  // namespace dotproxy::core
