#include "upstream/health.h"

#include <cstdint>
#include <limits>
#include <set>

#include "gtest/gtest.h"

namespace dotproxy::upstream {
namespace {

constexpr uint64_t kSeed = 42;
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

TEST(BackoffMsTest, DoublesFromTheInitialDelay) {
  const int64_t expected[] = {250, 500, 1000, 2000, 4000, 8000, 16000};
  for (uint32_t exponent = 0; exponent < 7; ++exponent) {
    EXPECT_EQ(BackoffMs(250, 30'000, exponent), expected[exponent]) << "exponent " << exponent;
  }
}

TEST(BackoffMsTest, StopsAtTheCap) {
  EXPECT_EQ(BackoffMs(250, 30'000, 7), 30'000);  // 32000 capped
  EXPECT_EQ(BackoffMs(250, 30'000, 8), 30'000);
  EXPECT_EQ(BackoffMs(250, 30'000, 1000), 30'000);
  EXPECT_EQ(BackoffMs(250, 30'000, UINT32_MAX), 30'000);
}

TEST(BackoffMsTest, NeverOverflows) {
  EXPECT_EQ(BackoffMs(1, kInt64Max, 62), int64_t{1} << 62);
  EXPECT_EQ(BackoffMs(1, kInt64Max, 63), kInt64Max);
  EXPECT_EQ(BackoffMs(1, kInt64Max, 1000), kInt64Max);
  EXPECT_EQ(BackoffMs(3, kInt64Max, UINT32_MAX), kInt64Max);
  EXPECT_EQ(BackoffMs(kInt64Max, kInt64Max, UINT32_MAX), kInt64Max);
}

TEST(BackoffMsTest, ClampsNonsenseArguments) {
  EXPECT_EQ(BackoffMs(0, 0, 0), 1);
  EXPECT_EQ(BackoffMs(-5, 4, 1), 2);
  EXPECT_EQ(BackoffMs(500, 100, 3), 500);  // a cap below the start is the start
}

TEST(JitteredMsTest, StaysWithinHalfToFull) {
  Rng rng(kSeed);
  for (const int64_t backoff :
       {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{250}, int64_t{30'001}, kInt64Max}) {
    const int64_t low = backoff - backoff / 2;
    EXPECT_EQ(JitteredMs(backoff, 0), low) << backoff;
    EXPECT_EQ(JitteredMs(backoff, static_cast<uint64_t>(backoff - low)), backoff) << backoff;
    EXPECT_EQ(JitteredMs(backoff, static_cast<uint64_t>(backoff - low) + 1), low) << backoff;
    for (int i = 0; i < 10'000; ++i) {
      const int64_t delay = JitteredMs(backoff, rng.Next());
      ASSERT_GE(delay, low) << backoff;
      ASSERT_LE(delay, backoff) << backoff;
    }
    const int64_t top = JitteredMs(backoff, UINT64_MAX);
    EXPECT_GE(top, low);
    EXPECT_LE(top, backoff);
  }
}

TEST(JitteredMsTest, NeverZeroForAPositiveBackoff) {
  EXPECT_EQ(JitteredMs(1, 0), 1);
  EXPECT_EQ(JitteredMs(1, UINT64_MAX), 1);
  EXPECT_EQ(JitteredMs(0, 12345), 0);
  EXPECT_EQ(JitteredMs(-7, 12345), 0);
}

TEST(JitteredMsTest, CoversTheWholeRange) {
  Rng rng(kSeed);
  std::set<int64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    seen.insert(JitteredMs(8, rng.Next()));
  }
  EXPECT_EQ(seen, (std::set<int64_t>{4, 5, 6, 7, 8}));
}

TEST(RngTest, MatchesTheSplitMix64ReferenceOutput) {
  Rng rng(0);
  EXPECT_EQ(rng.Next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(rng.Next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(rng.Next(), 0x06c45d188009454fULL);
}

TEST(RngTest, SameSeedSameSequence) {
  Rng a(kSeed);
  Rng b(kSeed);
  Rng c(kSeed + 1);
  int differing = 0;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.Next();
    EXPECT_EQ(x, b.Next());
    differing += static_cast<int>(x != c.Next());
  }
  EXPECT_EQ(differing, 100);
}

TEST(RngTest, UniformStaysBelowTheBound) {
  Rng rng(kSeed);
  int counts[3] = {};
  for (int i = 0; i < 3000; ++i) {
    const uint64_t x = rng.Uniform(3);
    ASSERT_LT(x, 3u);
    ++counts[x];
  }
  for (int count : counts) {
    EXPECT_NEAR(count, 1000, 100);
  }
  EXPECT_EQ(rng.Uniform(1), 0u);
}

// The injected clock: each test moves now_ms_ by hand. Jitter comes from rng_, and expected_rng_
// (same seed) replays the draws so the exact probe times can be checked.
class ServerHealthTest : public ::testing::Test {
 protected:
  // The probe time the next jittered draw gives for `backoff_ms` at `now_ms_`.
  int64_t ExpectedProbeMs(int64_t backoff_ms) {
    return now_ms_ + JitteredMs(backoff_ms, expected_rng_.Next());
  }

  // Waits for the probe, starts it, and reports it failed.
  void FailOneProbe(ServerHealth& health) {
    now_ms_ = health.next_probe_ms();
    ASSERT_TRUE(health.IsProbeDue(now_ms_));
    health.StartProbe(now_ms_);
    EXPECT_FALSE(health.OnConnectFailure(now_ms_, rng_));
  }

  int64_t now_ms_ = 1'000'000;
  Rng rng_{kSeed};
  Rng expected_rng_{kSeed};
};

TEST_F(ServerHealthTest, StartsUpWithNothingDue) {
  ServerHealth health;
  EXPECT_FALSE(health.is_down());
  EXPECT_FALSE(health.IsProbeDue(now_ms_));
  EXPECT_EQ(health.backoff_ms(), 0);
  EXPECT_EQ(health.consecutive_failures(), 0u);
  EXPECT_EQ(health.ewma_latency_us(), 0);
}

TEST_F(ServerHealthTest, OneConnectFailureMarksDown) {
  ServerHealth health;
  EXPECT_TRUE(health.OnConnectFailure(now_ms_, rng_));
  EXPECT_TRUE(health.is_down());
  EXPECT_EQ(health.backoff_ms(), 250);
  EXPECT_EQ(health.next_probe_ms(), ExpectedProbeMs(250));
  EXPECT_GE(health.next_probe_ms(), now_ms_ + 125);
  EXPECT_LE(health.next_probe_ms(), now_ms_ + 250);
  EXPECT_EQ(health.consecutive_connect_failures(), 1u);
}

TEST_F(ServerHealthTest, ProbeIsDueExactlyAtExpiry) {
  ServerHealth health;
  health.OnConnectFailure(now_ms_, rng_);
  const int64_t due = health.next_probe_ms();
  EXPECT_FALSE(health.IsProbeDue(now_ms_));
  EXPECT_FALSE(health.IsProbeDue(due - 1));
  EXPECT_TRUE(health.IsProbeDue(due));
  EXPECT_TRUE(health.IsProbeDue(due + 10'000));
  health.StartProbe(due);
  EXPECT_TRUE(health.is_probing());
  EXPECT_FALSE(health.IsProbeDue(due));
  EXPECT_TRUE(health.is_down());  // a probe in flight does not make the server a candidate
}

TEST_F(ServerHealthTest, FailedProbesDoubleTheBackoffUpToTheCap) {
  ServerHealth health;
  health.OnConnectFailure(now_ms_, rng_);
  expected_rng_.Next();
  const int64_t expected[] = {500, 1000, 2000, 4000, 8000, 16000, 30'000, 30'000, 30'000};
  for (const int64_t backoff : expected) {
    FailOneProbe(health);
    EXPECT_EQ(health.backoff_ms(), backoff);
    EXPECT_EQ(health.next_probe_ms(), ExpectedProbeMs(backoff));
    EXPECT_TRUE(health.is_down());
    EXPECT_FALSE(health.is_probing());
  }
}

TEST_F(ServerHealthTest, AThousandFailedProbesStayAtTheCap) {
  ServerHealth health;
  health.OnConnectFailure(now_ms_, rng_);
  for (int i = 0; i < 1000; ++i) {
    FailOneProbe(health);
    ASSERT_EQ(health.backoff_ms(), i < 6 ? (int64_t{500} << i) : 30'000) << "probe " << i;
    ASSERT_GE(health.next_probe_ms() - now_ms_, 15'000 * static_cast<int64_t>(i >= 6));
    ASSERT_LE(health.next_probe_ms() - now_ms_, 30'000);
  }
  EXPECT_EQ(health.consecutive_connect_failures(), 1001u);
}

TEST_F(ServerHealthTest, FailuresOfAttemptsStartedBeforeDownDoNotDouble) {
  // Four pooled connections to the same dead server fail together: one backoff, not four.
  ServerHealth health;
  EXPECT_TRUE(health.OnConnectFailure(now_ms_, rng_));
  const int64_t due = health.next_probe_ms();
  EXPECT_FALSE(health.OnConnectFailure(now_ms_, rng_));
  EXPECT_FALSE(health.OnConnectFailure(now_ms_ + 1, rng_));
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 2, rng_));
  EXPECT_EQ(health.backoff_ms(), 250);
  EXPECT_EQ(health.next_probe_ms(), due);
}

TEST_F(ServerHealthTest, HandshakeRestoresTheServer) {
  ServerHealth health;
  health.OnConnectFailure(now_ms_, rng_);
  now_ms_ = health.next_probe_ms();
  health.StartProbe(now_ms_);
  EXPECT_TRUE(health.OnConnected(now_ms_ + 20));
  EXPECT_FALSE(health.is_down());
  EXPECT_FALSE(health.is_probing());
  EXPECT_FALSE(health.IsProbeDue(now_ms_ + 100'000));
  EXPECT_EQ(health.consecutive_connect_failures(), 0u);
  EXPECT_FALSE(health.OnConnected(now_ms_ + 30));  // already up: no transition
}

TEST_F(ServerHealthTest, AnyLateSuccessRestoresEvenWithoutAProbe) {
  ServerHealth health;
  health.OnConnectFailure(now_ms_, rng_);
  EXPECT_TRUE(health.OnResponse(now_ms_ + 5, 3000));
  EXPECT_FALSE(health.is_down());
}

TEST_F(ServerHealthTest, AnswerResetsTheBackoff) {
  ServerHealth health;
  health.OnConnectFailure(now_ms_, rng_);
  FailOneProbe(health);
  FailOneProbe(health);
  EXPECT_EQ(health.backoff_ms(), 1000);
  now_ms_ = health.next_probe_ms();
  health.StartProbe(now_ms_);
  EXPECT_TRUE(health.OnConnected(now_ms_));
  EXPECT_FALSE(health.OnResponse(now_ms_ + 10, 2000));
  EXPECT_EQ(health.backoff_ms(), 0);
  EXPECT_EQ(health.consecutive_failures(), 0u);
  EXPECT_TRUE(health.OnConnectFailure(now_ms_ + 20, rng_));
  EXPECT_EQ(health.backoff_ms(), 250);
}

TEST_F(ServerHealthTest, FailingSoonAfterComingBackKeepsDoubling) {
  ServerHealth health;
  health.OnConnectFailure(now_ms_, rng_);
  FailOneProbe(health);  // 500
  now_ms_ = health.next_probe_ms();
  health.StartProbe(now_ms_);
  health.OnConnected(now_ms_);
  now_ms_ += 29'999;  // up, but not for a whole cap period, and never answered
  EXPECT_TRUE(health.OnConnectFailure(now_ms_, rng_));
  EXPECT_EQ(health.backoff_ms(), 1000);
}

TEST_F(ServerHealthTest, UpForAWholeCapPeriodStartsOver) {
  ServerHealth health;
  health.OnConnectFailure(now_ms_, rng_);
  FailOneProbe(health);  // 500
  now_ms_ = health.next_probe_ms();
  health.StartProbe(now_ms_);
  health.OnConnected(now_ms_);
  now_ms_ += 30'000;
  EXPECT_TRUE(health.OnConnectFailure(now_ms_, rng_));
  EXPECT_EQ(health.backoff_ms(), 250);
}

TEST_F(ServerHealthTest, ThreeQueryTimeoutsInThreeIntervalsMarkDown) {
  ServerHealth health;
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_, rng_));
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 1000, rng_));
  EXPECT_FALSE(health.is_down());
  EXPECT_TRUE(health.OnQueryTimeout(now_ms_ + 2000, rng_));
  EXPECT_TRUE(health.is_down());
  EXPECT_EQ(health.backoff_ms(), 250);
  EXPECT_EQ(health.consecutive_query_timeouts(), 3u);
}

TEST_F(ServerHealthTest, AnAnswerBetweenTimeoutsResetsTheCount) {
  ServerHealth health;
  health.OnQueryTimeout(now_ms_, rng_);
  health.OnQueryTimeout(now_ms_ + 1000, rng_);
  health.OnResponse(now_ms_ + 1500, 1000);
  EXPECT_EQ(health.consecutive_query_timeouts(), 0u);
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 2000, rng_));
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 3000, rng_));
  EXPECT_FALSE(health.is_down());
}

TEST_F(ServerHealthTest, TimeoutsOfOneTimerPassCountOnce) {
  // Issue 9: three slow queries whose timers fire in the same pass used to take a healthy server
  // down. Any number of timeouts within one interval is one.
  ServerHealth health;
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + i % 3, rng_));
  }
  EXPECT_EQ(health.consecutive_query_timeouts(), 1u);
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 999, rng_));
  EXPECT_EQ(health.consecutive_query_timeouts(), 1u);
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 1000, rng_));
  EXPECT_EQ(health.consecutive_query_timeouts(), 2u);
  EXPECT_FALSE(health.is_down());
}

TEST_F(ServerHealthTest, TheIntervalIsAnOption) {
  ServerHealth health(HealthOptions{.timeout_interval_ms = 200});
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_, rng_));
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 199, rng_));
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 200, rng_));
  EXPECT_TRUE(health.OnQueryTimeout(now_ms_ + 400, rng_));
}

TEST_F(ServerHealthTest, HandshakeClearsTheTimeoutCount) {
  // Issue 9: a reconnect must not leave the server one slow query away from down.
  ServerHealth health;
  health.OnQueryTimeout(now_ms_, rng_);
  health.OnQueryTimeout(now_ms_ + 1000, rng_);
  health.OnConnected(now_ms_ + 1500);
  EXPECT_EQ(health.consecutive_query_timeouts(), 0u);
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 2000, rng_));
  EXPECT_FALSE(health.is_down());
}

TEST_F(ServerHealthTest, HandshakeAloneLeavesABlackHoleBackingOff) {
  // TLS works but queries vanish: after the probe's handshake the timeouts take it down again,
  // and the backoff keeps growing as for a dead server.
  ServerHealth health;
  for (int i = 0; i < 3; ++i) {
    health.OnQueryTimeout(now_ms_ + 1000 * i, rng_);
  }
  ASSERT_TRUE(health.is_down());
  now_ms_ = health.next_probe_ms();
  health.StartProbe(now_ms_);
  EXPECT_TRUE(health.OnConnected(now_ms_ + 15));
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 1515, rng_));
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 2515, rng_));
  EXPECT_TRUE(health.OnQueryTimeout(now_ms_ + 3515, rng_));
  EXPECT_EQ(health.backoff_ms(), 500);
}

TEST_F(ServerHealthTest, QueryTimeoutOfAProbeFailsIt) {
  ServerHealth health;
  for (int i = 0; i < 3; ++i) {
    health.OnQueryTimeout(now_ms_, rng_);
    now_ms_ += 1000;
  }
  now_ms_ = health.next_probe_ms();
  health.StartProbe(now_ms_);
  EXPECT_FALSE(health.OnQueryTimeout(now_ms_ + 1500, rng_));
  EXPECT_FALSE(health.is_probing());
  EXPECT_EQ(health.backoff_ms(), 500);
}

TEST_F(ServerHealthTest, AProbeThatNeverReportsIsRetriedAfterABackoffPeriod) {
  ServerHealth health;
  health.OnConnectFailure(now_ms_, rng_);
  FailOneProbe(health);  // 500
  now_ms_ = health.next_probe_ms();
  health.StartProbe(now_ms_);
  EXPECT_FALSE(health.IsProbeDue(now_ms_ + 499));
  EXPECT_TRUE(health.IsProbeDue(now_ms_ + 500));
  EXPECT_EQ(health.backoff_ms(), 500);  // losing a probe is not a failure
}

TEST_F(ServerHealthTest, OptionsSetTheStartTheCapAndTheThresholds) {
  ServerHealth health(HealthOptions{.backoff_initial_ms = 100,
                                    .backoff_max_ms = 1000,
                                    .connect_failures_to_down = 2,
                                    .query_timeouts_to_down = 1});
  EXPECT_FALSE(health.OnConnectFailure(now_ms_, rng_));
  EXPECT_TRUE(health.OnConnectFailure(now_ms_, rng_));
  EXPECT_EQ(health.backoff_ms(), 100);
  for (const int64_t backoff : {200, 400, 800, 1000, 1000}) {
    FailOneProbe(health);
    EXPECT_EQ(health.backoff_ms(), backoff);
  }
  health.OnResponse(now_ms_, 100);
  EXPECT_TRUE(health.OnQueryTimeout(now_ms_, rng_));
}

TEST_F(ServerHealthTest, NonsenseOptionsAreClamped) {
  ServerHealth health(HealthOptions{.backoff_initial_ms = 0,
                                    .backoff_max_ms = -1,
                                    .connect_failures_to_down = 0,
                                    .query_timeouts_to_down = 0});
  EXPECT_TRUE(health.OnConnectFailure(now_ms_, rng_));
  EXPECT_EQ(health.backoff_ms(), 1);
  EXPECT_EQ(health.next_probe_ms(), now_ms_ + 1);
  FailOneProbe(health);
  EXPECT_EQ(health.backoff_ms(), 1);
}

TEST_F(ServerHealthTest, LatencyEwmaStartsAtTheFirstAnswer) {
  ServerHealth health;
  health.OnResponse(now_ms_, 8000);
  EXPECT_DOUBLE_EQ(health.ewma_latency_us(), 8000);
  health.OnResponse(now_ms_, 16'000);
  EXPECT_DOUBLE_EQ(health.ewma_latency_us(), 9000);  // 1/8 of the way
  // A clock step backwards counts as 0.
  health.OnResponse(now_ms_, -5);
  EXPECT_DOUBLE_EQ(health.ewma_latency_us(), 9000 - 9000.0 / 8);
}

TEST_F(ServerHealthTest, StaleLatencyRestartsTheAverage) {
  // One slow answer, then nothing for longer than latency_trust_ms: the next answer is the whole
  // new average, so the slow sample cannot keep the server out once it is fast again.
  ServerHealth health;
  health.OnResponse(now_ms_, 50'000);
  health.OnResponse(now_ms_ + 500, 200);  // within the trust window: 1/8 of the way
  EXPECT_DOUBLE_EQ(health.ewma_latency_us(), 50'000 - (50'000 - 200) / 8.0);
  health.OnResponse(now_ms_ + 500 + HealthOptions().latency_trust_ms + 1, 300);
  EXPECT_DOUBLE_EQ(health.ewma_latency_us(), 300);
}

TEST_F(ServerHealthTest, LatencyIsForgottenAfterADownPeriod) {
  // What a server measured before an outage says little after it: it counts as unmeasured, so
  // LeastOutstanding tries it first and measures it again.
  ServerHealth health;
  health.OnResponse(now_ms_, 8000);
  EXPECT_EQ(health.last_response_ms(), now_ms_);
  health.OnConnectFailure(now_ms_, rng_);
  health.OnConnected(now_ms_ + 300);
  EXPECT_DOUBLE_EQ(health.ewma_latency_us(), 0);
}

TEST_F(ServerHealthTest, DeadServerIsProbedRarelyAndRecoversByItself) {
  // A shard loop at 1 ms ticks for two minutes against a dead server, then the server returns.
  ServerHealth health;
  health.OnConnectFailure(now_ms_, rng_);
  const int64_t start = now_ms_;
  int probes = 0;
  for (; now_ms_ < start + 120'000; ++now_ms_) {
    if (health.IsProbeDue(now_ms_)) {
      health.StartProbe(now_ms_);
      ++probes;
      health.OnConnectFailure(now_ms_, rng_);
    }
  }
  // 7 probes to reach the cap (about 32 s in), then one every 15-30 s.
  EXPECT_GE(probes, 7 + 2);
  EXPECT_LE(probes, 7 + 6 + 1);
  EXPECT_TRUE(health.is_down());
  EXPECT_EQ(health.backoff_ms(), 30'000);
  const int64_t back_at = now_ms_;
  for (; !health.IsProbeDue(now_ms_); ++now_ms_) {
  }
  EXPECT_LE(now_ms_ - back_at, 30'000);
  health.StartProbe(now_ms_);
  EXPECT_TRUE(health.OnConnected(now_ms_ + 20));
  EXPECT_FALSE(health.is_down());
}

}  // namespace
}  // namespace dotproxy::upstream
