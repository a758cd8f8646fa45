#include "core/timer_wheel.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace dotproxy::core {
namespace {

// The injected clock: tests move `now_ms` by hand and pass it to the wheel.
class TimerWheelTest : public ::testing::Test {
 protected:
  // Advances to `now_ms` and returns the timers fired, in firing order.
  static std::vector<Timer*> AdvanceTo(TimerWheel& wheel, int64_t now_ms) {
    std::vector<Timer*> fired;
    wheel.Advance(now_ms, [&](Timer* t) { fired.push_back(t); });
    return fired;
  }

  const int64_t now_ms_ = 1'000'000;  // start of every test
};

TEST_F(TimerWheelTest, DoesNotFireEarly) {
  TimerWheel wheel(now_ms_, /*tick_ms=*/10, /*slot_count=*/64);
  Timer timer;
  wheel.Schedule(&timer, now_ms_ + 105);
  EXPECT_TRUE(timer.is_armed);
  EXPECT_EQ(wheel.armed_count(), 1u);
  const int64_t start = now_ms_;
  for (int64_t t = start; t < start + 105; ++t) {
    ASSERT_TRUE(AdvanceTo(wheel, t).empty()) << "fired at +" << t - start;
  }
  EXPECT_TRUE(timer.is_armed);
}

TEST_F(TimerWheelTest, FiresOnTheFirstAdvanceAtOrAfterExpiry) {
  TimerWheel wheel(now_ms_, /*tick_ms=*/10, /*slot_count=*/64);
  Timer timer;
  const int64_t expiry = now_ms_ + 105;
  wheel.Schedule(&timer, expiry);
  EXPECT_TRUE(AdvanceTo(wheel, expiry - 1).empty());
  const std::vector<Timer*> fired = AdvanceTo(wheel, expiry);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], &timer);
  EXPECT_FALSE(timer.is_armed);
  EXPECT_EQ(timer.expiry_ms, INT64_MAX);
  EXPECT_EQ(wheel.armed_count(), 0u);
  EXPECT_TRUE(AdvanceTo(wheel, expiry + 1000).empty());
}

TEST_F(TimerWheelTest, FiresLateWhenAdvanceJumpsPastExpiry) {
  TimerWheel wheel(now_ms_);
  Timer timer;
  wheel.Schedule(&timer, now_ms_ + 5);
  EXPECT_EQ(AdvanceTo(wheel, now_ms_ + 50).size(), 1u);
}

TEST_F(TimerWheelTest, PastExpiryFiresOnNextAdvance) {
  TimerWheel wheel(now_ms_, /*tick_ms=*/10, /*slot_count=*/16);
  const int64_t now = now_ms_ + 1234;
  AdvanceTo(wheel, now);
  Timer timer;
  wheel.Schedule(&timer, now - 5000);
  EXPECT_EQ(wheel.NextTimeoutMs(now, 1000), 0);
  EXPECT_EQ(AdvanceTo(wheel, now).size(), 1u);
  EXPECT_EQ(wheel.armed_count(), 0u);
}

TEST_F(TimerWheelTest, CancelledTimerDoesNotFire) {
  TimerWheel wheel(now_ms_);
  Timer a;
  Timer b;
  wheel.Schedule(&a, now_ms_ + 10);
  wheel.Schedule(&b, now_ms_ + 10);
  wheel.Cancel(&a);
  EXPECT_FALSE(a.is_armed);
  EXPECT_EQ(a.expiry_ms, INT64_MAX);
  EXPECT_EQ(wheel.armed_count(), 1u);
  const std::vector<Timer*> fired = AdvanceTo(wheel, now_ms_ + 10);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], &b);
}

TEST_F(TimerWheelTest, CancelOfUnarmedTimerSetsExpiryToMax) {
  TimerWheel wheel(now_ms_);
  Timer timer;
  timer.expiry_ms = 42;
  wheel.Cancel(&timer);
  EXPECT_EQ(timer.expiry_ms, INT64_MAX);
  EXPECT_EQ(wheel.armed_count(), 0u);
}

TEST_F(TimerWheelTest, CancelUnlinksHeadMiddleAndTailOfASlot) {
  TimerWheel wheel(now_ms_, /*tick_ms=*/1, /*slot_count=*/8);
  Timer timers[5];
  for (Timer& t : timers) {
    wheel.Schedule(&t, now_ms_ + 3);  // all in one slot
  }
  wheel.Cancel(&timers[4]);  // head (linked last)
  wheel.Cancel(&timers[2]);  // middle
  wheel.Cancel(&timers[0]);  // tail
  std::vector<Timer*> fired = AdvanceTo(wheel, now_ms_ + 3);
  std::sort(fired.begin(), fired.end());
  EXPECT_EQ(fired, (std::vector<Timer*>{&timers[1], &timers[3]}));
}

TEST_F(TimerWheelTest, RescheduleMovesTheDeadline) {
  TimerWheel wheel(now_ms_);
  Timer timer;
  wheel.Schedule(&timer, now_ms_ + 10);
  wheel.Schedule(&timer, now_ms_ + 30);
  EXPECT_EQ(wheel.armed_count(), 1u);
  EXPECT_TRUE(AdvanceTo(wheel, now_ms_ + 29).empty());
  EXPECT_EQ(AdvanceTo(wheel, now_ms_ + 30).size(), 1u);

  wheel.Schedule(&timer, now_ms_ + 130);
  wheel.Schedule(&timer, now_ms_ + 35);
  EXPECT_EQ(AdvanceTo(wheel, now_ms_ + 35).size(), 1u);
  EXPECT_TRUE(AdvanceTo(wheel, now_ms_ + 200).empty());
}

TEST_F(TimerWheelTest, LongTimerBeyondOneRevolutionWaitsUntilDue) {
  TimerWheel wheel(now_ms_, /*tick_ms=*/1, /*slot_count=*/8);
  Timer timer;
  const int64_t expiry = now_ms_ + 100;  // 12.5 revolutions away
  wheel.Schedule(&timer, expiry);
  for (int64_t t = now_ms_ + 1; t < expiry; ++t) {
    ASSERT_TRUE(AdvanceTo(wheel, t).empty()) << t;
  }
  EXPECT_EQ(AdvanceTo(wheel, expiry).size(), 1u);
}

TEST_F(TimerWheelTest, AdvanceJumpingManyRevolutionsFiresEveryDueTimer) {
  TimerWheel wheel(now_ms_, /*tick_ms=*/1, /*slot_count=*/8);
  Timer due[10];
  Timer later;
  for (int i = 0; i < 10; ++i) {
    wheel.Schedule(&due[i], now_ms_ + 1 + i * 13);
  }
  wheel.Schedule(&later, now_ms_ + 1000);
  EXPECT_EQ(AdvanceTo(wheel, now_ms_ + 500).size(), 10u);
  EXPECT_TRUE(later.is_armed);
  EXPECT_TRUE(AdvanceTo(wheel, now_ms_ + 999).empty());
  EXPECT_EQ(AdvanceTo(wheel, now_ms_ + 5000).size(), 1u);
}

TEST_F(TimerWheelTest, ManyRandomTimersFireOnTimeAndNeverEarly) {
  std::mt19937 rng(7);
  TimerWheel wheel(now_ms_, /*tick_ms=*/4, /*slot_count=*/256);
  constexpr int kTimers = 5000;
  std::vector<Timer> timers(kTimers);
  std::vector<int64_t> expiries(kTimers);
  const int64_t start = now_ms_;
  for (int i = 0; i < kTimers; ++i) {
    expiries[i] = start + 1 + static_cast<int64_t>(rng() % 5000);
    timers[i].kind = static_cast<uint32_t>(i);
    wheel.Schedule(&timers[i], expiries[i]);
  }
  int fired_count = 0;
  int64_t previous = start;
  int steps = 0;
  while (wheel.armed_count() > 0 && steps++ < 100000) {
    const int64_t now = previous + 1 + static_cast<int64_t>(rng() % 9);
    for (Timer* t : AdvanceTo(wheel, now)) {
      const int64_t expiry = expiries[t->kind];
      ASSERT_LE(expiry, now) << "fired early";
      ASSERT_GT(expiry, previous) << "fired late";
      ++fired_count;
    }
    previous = now;
  }
  EXPECT_EQ(fired_count, kTimers);
}

TEST_F(TimerWheelTest, TimerCancelledByAnotherCallbackDoesNotFire) {
  TimerWheel wheel(now_ms_);
  Timer a;
  Timer b;
  a.owner = &b;
  b.owner = &a;
  wheel.Schedule(&a, now_ms_ + 10);
  wheel.Schedule(&b, now_ms_ + 10);
  int fired = 0;
  // Whichever fires first cancels the other, which is due in the same Advance.
  wheel.Advance(now_ms_ + 10, [&](Timer* t) {
    ++fired;
    wheel.Cancel(static_cast<Timer*>(t->owner));
  });
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(wheel.armed_count(), 0u);
}

TEST_F(TimerWheelTest, CallbackMayRescheduleItself) {
  TimerWheel wheel(now_ms_);
  Timer periodic;
  wheel.Schedule(&periodic, now_ms_ + 10);
  int fired = 0;
  for (int64_t t = now_ms_; t <= now_ms_ + 100; ++t) {
    wheel.Advance(t, [&](Timer* timer) {
      ++fired;
      wheel.Schedule(timer, t + 10);
    });
  }
  EXPECT_EQ(fired, 10);
  EXPECT_TRUE(periodic.is_armed);
}

TEST_F(TimerWheelTest, TimerScheduledDueFromCallbackFiresOnNextAdvance) {
  TimerWheel wheel(now_ms_);
  Timer first;
  Timer second;
  wheel.Schedule(&first, now_ms_ + 1);
  int fired = 0;
  auto on_expired = [&](Timer* t) {
    ++fired;
    if (t == &first) {
      wheel.Schedule(&second, now_ms_);  // already due
    }
  };
  wheel.Advance(now_ms_ + 1, on_expired);
  EXPECT_EQ(fired, 1);
  EXPECT_TRUE(second.is_armed);
  wheel.Advance(now_ms_ + 1, on_expired);
  EXPECT_EQ(fired, 2);
}

TEST_F(TimerWheelTest, NextTimeoutReportsEmptyDueAndCap) {
  TimerWheel wheel(now_ms_);
  EXPECT_EQ(wheel.NextTimeoutMs(now_ms_, 1000), -1);
  Timer timer;
  wheel.Schedule(&timer, now_ms_ + 250);
  EXPECT_EQ(wheel.NextTimeoutMs(now_ms_, 1000), 250);
  EXPECT_EQ(wheel.NextTimeoutMs(now_ms_, 100), 100);
  EXPECT_EQ(wheel.NextTimeoutMs(now_ms_ + 250, 1000), 0);
  EXPECT_EQ(wheel.NextTimeoutMs(now_ms_ + 300, 1000), 0);
  wheel.Schedule(&timer, now_ms_ + 100'000);  // beyond one revolution of 4096 ms
  // Moving the only timer later may leave a stale, earlier bound: an early wake-up, never a late
  // one. Once the loop has advanced past it, the answer is exact again.
  const int64_t early = wheel.NextTimeoutMs(now_ms_, 1000);
  EXPECT_GE(early, 0);
  EXPECT_LE(early, 1000);
  wheel.Advance(now_ms_ + early, [](Timer*) { FAIL() << "nothing is due"; });
  EXPECT_EQ(wheel.NextTimeoutMs(now_ms_ + early, 1000), 1000);
}

TEST_F(TimerWheelTest, NextTimeoutWithinATickIsExact) {
  TimerWheel wheel(now_ms_, /*tick_ms=*/10, /*slot_count=*/64);
  Timer timer;
  wheel.Schedule(&timer, now_ms_ + 7);
  EXPECT_EQ(wheel.NextTimeoutMs(now_ms_, 1000), 7);
}

TEST_F(TimerWheelTest, NextTimeoutNeverOverEstimates) {
  std::mt19937 rng(99);
  for (int round = 0; round < 200; ++round) {
    const int64_t tick_ms = 1 + static_cast<int64_t>(rng() % 16);
    TimerWheel wheel(now_ms_, tick_ms, /*slot_count=*/32);
    const int64_t now = now_ms_ + static_cast<int64_t>(rng() % 1000);
    AdvanceTo(wheel, now);
    std::vector<Timer> timers(1 + rng() % 8);
    int64_t earliest = INT64_MAX;
    for (Timer& t : timers) {
      const int64_t expiry = now - 50 + static_cast<int64_t>(rng() % 3000);
      wheel.Schedule(&t, expiry);
      earliest = std::min(earliest, expiry);
    }
    const int64_t max_ms = static_cast<int64_t>(rng() % 2000);
    const int64_t query_now = now + static_cast<int64_t>(rng() % tick_ms);
    const int64_t next = wheel.NextTimeoutMs(query_now, max_ms);
    ASSERT_GE(next, 0);
    ASSERT_LE(next, max_ms);
    const int64_t exact = std::clamp<int64_t>(earliest - query_now, 0, max_ms);
    ASSERT_LE(next, exact) << "round " << round;
    // Nothing fires before the reported timeout.
    if (next > 0) {
      EXPECT_TRUE(AdvanceTo(wheel, query_now + next - 1).empty()) << "round " << round;
    }
    for (Timer& t : timers) {
      wheel.Cancel(&t);
    }
  }
}

}  // namespace
}  // namespace dotproxy::core
