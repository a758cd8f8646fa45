#include "proxy/client_limits.h"

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace dotproxy::proxy {
namespace {

using base::IpAddress;

IpAddress V4(uint32_t address) {
  IpAddress a;
  a.lo = address;
  return a;
}

IpAddress V6(uint64_t hi, uint64_t lo) {
  IpAddress a;
  a.is_v4 = false;
  a.hi = hi;
  a.lo = lo;
  return a;
}

TEST(RateLimiterTest, AllowsTheBurstThenRefillsAtQps) {
  RateLimiter limiter(/*qps=*/10, /*burst=*/5, /*entries=*/64, /*seed=*/1);
  const IpAddress client = V4(0x7f000002);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(limiter.Allow(client, 1000)) << i;
  }
  EXPECT_FALSE(limiter.Allow(client, 1000));
  EXPECT_FALSE(limiter.Allow(client, 1099));  // 0.99 of a token so far
  EXPECT_TRUE(limiter.Allow(client, 1100));
  EXPECT_FALSE(limiter.Allow(client, 1100));
  // A long pause refills to the burst, no further.
  int allowed = 0;
  for (int i = 0; i < 20; ++i) {
    allowed += limiter.Allow(client, 60000) ? 1 : 0;
  }
  EXPECT_EQ(allowed, 5);
}

TEST(RateLimiterTest, BurstZeroMeansQps) {
  RateLimiter limiter(3, 0, 64, 1);
  int allowed = 0;
  for (int i = 0; i < 10; ++i) {
    allowed += limiter.Allow(V4(1), 0) ? 1 : 0;
  }
  EXPECT_EQ(allowed, 3);
}

TEST(RateLimiterTest, ClientsHaveTheirOwnBuckets) {
  RateLimiter limiter(1, 1, 64, 7);
  EXPECT_TRUE(limiter.Allow(V4(1), 0));
  EXPECT_FALSE(limiter.Allow(V4(1), 0));
  EXPECT_TRUE(limiter.Allow(V4(2), 0));
  EXPECT_TRUE(limiter.Allow(V6(0x20010db800000000u, 1), 0));
}

TEST(RateLimiterTest, Ipv6ClientIsItsSlash56) {
  RateLimiter limiter(1, 1, 64, 7);
  EXPECT_TRUE(limiter.Allow(V6(0x20010db8aaaabb01u, 1), 0));
  EXPECT_FALSE(limiter.Allow(V6(0x20010db8aaaabbffu, 99), 0));  // same /56
  EXPECT_TRUE(limiter.Allow(V6(0x20010db8aaaabc00u, 1), 0));    // next /56
}

TEST(RateLimiterTest, ManyClientsEvictTheStalestNotTheBusiest) {
  // 16 entries; one abusive client keeps sending while 10000 others pass once each, all within
  // one millisecond (a spoofed flood).
  RateLimiter limiter(1, 2, 16, 3);
  const IpAddress abuser = V4(0x0a000001);
  EXPECT_TRUE(limiter.Allow(abuser, 0));
  EXPECT_TRUE(limiter.Allow(abuser, 0));
  int abuser_allowed = 0;
  for (uint32_t i = 0; i < 10000; ++i) {
    EXPECT_TRUE(limiter.Allow(V4(0x0b000000 + i), 0));  // every new client gets its burst
    abuser_allowed += limiter.Allow(abuser, 0) ? 1 : 0;
  }
  // The abuser's entry is never the one evicted, so its empty bucket is never reset.
  EXPECT_EQ(abuser_allowed, 0);
}

TEST(ClientSharesTest, CapsEachClientAndReleases) {
  ClientShares shares(/*max_per_client=*/3, /*slots=*/16, /*seed=*/5);
  const IpAddress a = V4(1);
  const IpAddress b = V4(2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(shares.Acquire(a));
  }
  EXPECT_FALSE(shares.Acquire(a));
  EXPECT_TRUE(shares.Acquire(b));
  EXPECT_EQ(shares.held(a), 3u);
  shares.Release(a);
  EXPECT_EQ(shares.held(a), 2u);
  EXPECT_TRUE(shares.Acquire(a));
  for (int i = 0; i < 3; ++i) {
    shares.Release(a);
  }
  EXPECT_EQ(shares.held(a), 0u);
  EXPECT_EQ(shares.held(b), 1u);
}

TEST(ClientSharesTest, MatchesAReferenceUnderRandomChurn) {
  // Small table, many collisions and deletions: backward-shift deletion must keep every count.
  constexpr uint32_t kSlots = 64;
  ClientShares shares(4, kSlots, 11);
  std::map<uint32_t, uint32_t> reference;
  std::vector<uint32_t> held;
  std::mt19937 rng(42);
  for (int step = 0; step < 200000; ++step) {
    const bool acquire = held.size() < kSlots && (held.empty() || rng() % 2 == 0);
    if (acquire) {
      const uint32_t client = rng() % 40;
      const bool expect = reference[client] < 4;
      ASSERT_EQ(shares.Acquire(V4(client)), expect) << "step " << step;
      if (expect) {
        ++reference[client];
        held.push_back(client);
      }
    } else {
      const size_t i = rng() % held.size();
      const uint32_t client = held[i];
      held[i] = held.back();
      held.pop_back();
      shares.Release(V4(client));
      --reference[client];
    }
    if (step % 997 == 0) {
      for (const auto& [client, count] : reference) {
        ASSERT_EQ(shares.held(V4(client)), count) << "client " << client << " step " << step;
      }
    }
  }
}

TEST(RearmBackoffTest, FirstFailureRearmsAtOnceThenBacksOffToOneSecond) {
  RearmBackoff backoff;
  EXPECT_EQ(backoff.OnFailure(), 0);
  EXPECT_EQ(backoff.OnFailure(), 10);
  EXPECT_EQ(backoff.OnFailure(), 20);
  EXPECT_EQ(backoff.OnFailure(), 40);
  for (int i = 0; i < 100; ++i) {
    EXPECT_LE(backoff.OnFailure(), 1000);
  }
  EXPECT_EQ(backoff.OnFailure(), 1000);
  backoff.OnSuccess();
  EXPECT_EQ(backoff.OnFailure(), 0);
}

TEST(ClientGateTest, AclAndRateLimitTogether) {
  ASSERT_OK_AND_ASSIGN(base::PrefixSet allow, base::PrefixSet::Create({"127.0.0.0/8"}));
  config::RateLimitConfig rate;
  rate.enabled = true;
  rate.qps = 1;
  rate.action = config::RateLimitAction::kRefuse;
  ClientGate gate(std::move(allow), rate, 9);
  EXPECT_TRUE(gate.IsAllowed(V4(0x7f000001)));
  EXPECT_FALSE(gate.IsAllowed(V4(0x08080808)));
  EXPECT_EQ(gate.CheckRate(V4(0x7f000001), 0), ClientGate::Rate::kPass);
  EXPECT_EQ(gate.CheckRate(V4(0x7f000001), 0), ClientGate::Rate::kRefuse);
  ClientGate open(base::PrefixSet(), config::RateLimitConfig{}, 9);  // no rate limit
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(open.CheckRate(V4(1), 0), ClientGate::Rate::kPass);
  }
}

}  // namespace
}  // namespace dotproxy::proxy
