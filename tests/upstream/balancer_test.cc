#include "upstream/balancer.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dotproxy::upstream {
namespace {

using ::testing::ElementsAre;

constexpr uint64_t kSeed = 7;

std::vector<ServerView> UpServers(size_t count) {
  std::vector<ServerView> servers(count);
  for (ServerView& s : servers) {
    s.is_usable = true;
  }
  return servers;
}

// The first `count` picks of `pick` with no retry exclusion.
std::vector<int> Picks(PickFn pick, BalancerState& state, std::span<const ServerView> servers,
                       int count) {
  std::vector<int> out;
  for (int i = 0; i < count; ++i) {
    out.push_back(pick(state, servers, -1));
  }
  return out;
}

// How often each server is picked in `count` picks.
std::vector<int> Histogram(PickFn pick, BalancerState& state, std::span<const ServerView> servers,
                           int count) {
  std::vector<int> hits(servers.size(), 0);
  for (int i = 0; i < count; ++i) {
    const int s = pick(state, servers, -1);
    if (s >= 0) {
      ++hits[static_cast<size_t>(s)];
    }
  }
  return hits;
}

// Properties every policy must have, run over the whole table.
class EveryPolicyTest : public ::testing::TestWithParam<PolicyEntry> {
 protected:
  PickFn pick() const { return GetParam().pick; }
};

TEST_P(EveryPolicyTest, NoServersGivesMinusOne) {
  BalancerState state(0, kSeed);
  EXPECT_EQ(pick()(state, {}, -1), -1);
}

TEST_P(EveryPolicyTest, AllDownGivesMinusOneSoTheCallerFailsFast) {
  std::vector<ServerView> servers = UpServers(3);
  for (ServerView& s : servers) {
    s.is_down = true;
  }
  BalancerState state(servers.size(), kSeed);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(pick()(state, servers, -1), -1);
    EXPECT_EQ(pick()(state, servers, 1), -1);
  }
}

TEST_P(EveryPolicyTest, NoUsableConnectionGivesMinusOne) {
  std::vector<ServerView> servers(3);  // up, but every connection is full or gone
  BalancerState state(servers.size(), kSeed);
  EXPECT_EQ(pick()(state, servers, -1), -1);
}

TEST_P(EveryPolicyTest, NeverPicksADownOrUnusableServer) {
  std::vector<ServerView> servers = UpServers(5);
  servers[0].is_down = true;  // the primary, the first in every order
  servers[0].outstanding = 0;
  servers[2].is_usable = false;
  servers[3].is_down = true;
  servers[3].is_usable = true;
  servers[1].outstanding = 50;
  servers[4].outstanding = 50;
  BalancerState state(servers.size(), kSeed);
  for (int i = 0; i < 1000; ++i) {
    const int s = pick()(state, servers, -1);
    ASSERT_TRUE(s == 1 || s == 4) << "pick " << i << " chose " << s;
  }
}

TEST_P(EveryPolicyTest, RetryAvoidsTheExcludedServer) {
  std::vector<ServerView> servers = UpServers(3);
  BalancerState state(servers.size(), kSeed);
  for (int exclude = 0; exclude < 3; ++exclude) {
    for (int i = 0; i < 100; ++i) {
      const int s = pick()(state, servers, exclude);
      ASSERT_GE(s, 0);
      ASSERT_NE(s, exclude);
    }
  }
}

TEST_P(EveryPolicyTest, RetryGoesBackToTheOnlyCandidate) {
  std::vector<ServerView> servers = UpServers(3);
  servers[0].is_down = true;
  servers[2].is_usable = false;
  BalancerState state(servers.size(), kSeed);
  EXPECT_EQ(pick()(state, servers, 1), 1);
}

TEST_P(EveryPolicyTest, ExcludingADownOrOutOfRangeServerChangesNothing) {
  std::vector<ServerView> servers = UpServers(2);
  servers[0].is_down = true;
  BalancerState state(servers.size(), kSeed);
  EXPECT_EQ(pick()(state, servers, 0), 1);
  EXPECT_EQ(pick()(state, servers, 7), 1);
  EXPECT_EQ(pick()(state, servers, -1), 1);
}

TEST_P(EveryPolicyTest, TrafficReturnsWhenAServerRecovers) {
  std::vector<ServerView> servers = UpServers(2);
  servers[0].is_down = true;
  BalancerState state(servers.size(), kSeed);
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(pick()(state, servers, -1), 1);
  }
  servers[0].is_down = false;
  const std::vector<int> hits = Histogram(pick(), state, servers, 200);
  EXPECT_GT(hits[0], 0);
}

TEST_P(EveryPolicyTest, SameSeedSameSequence) {
  std::vector<ServerView> servers = UpServers(4);
  servers[1].weight = 3;
  servers[2].ewma_latency_us = 5000;
  servers[3].outstanding = 2;
  BalancerState a(servers.size(), kSeed);
  BalancerState b(servers.size(), kSeed);
  EXPECT_EQ(Picks(pick(), a, servers, 100), Picks(pick(), b, servers, 100));
}

INSTANTIATE_TEST_SUITE_P(Table, EveryPolicyTest, ::testing::ValuesIn(kPolicies),
                         [](const ::testing::TestParamInfo<PolicyEntry>& info) {
                           return std::string(info.param.name);
                         });

TEST(PolicyTableTest, NamesMatchIgnoringCase) {
  ASSERT_NE(FindPolicy("roundrobin"), nullptr);
  EXPECT_EQ(FindPolicy("roundrobin")->policy, config::Policy::kRoundRobin);
  EXPECT_EQ(FindPolicy("LEASTOUTSTANDING")->pick, &PickLeastOutstanding);
  EXPECT_EQ(FindPolicy("historicalConnections")->policy, config::Policy::kHistoricalConnections);
  EXPECT_EQ(FindPolicy("Failover")->pick, &PickFailover);
  EXPECT_EQ(FindPolicy("Round-Robin"), nullptr);
  EXPECT_EQ(FindPolicy("RoundRobinX"), nullptr);
  EXPECT_EQ(FindPolicy(""), nullptr);
}

TEST(PolicyTableTest, EveryConfiguredPolicyHasItsOwnFunction) {
  EXPECT_EQ(PolicyFunction(config::Policy::kRoundRobin), &PickRoundRobin);
  EXPECT_EQ(PolicyFunction(config::Policy::kRandom), &PickRandom);
  EXPECT_EQ(PolicyFunction(config::Policy::kHistoricalConnections), &PickHistoricalConnections);
  EXPECT_EQ(PolicyFunction(config::Policy::kAvailability), &PickAvailability);
  EXPECT_EQ(PolicyFunction(config::Policy::kFailover), &PickFailover);
  EXPECT_EQ(PolicyFunction(config::Policy::kLeastOutstanding), &PickLeastOutstanding);
  for (const PolicyEntry& entry : kPolicies) {
    EXPECT_EQ(FindPolicy(entry.name), &entry);
  }
}

TEST(RoundRobinTest, RotatesInOrder) {
  std::vector<ServerView> servers = UpServers(3);
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Picks(&PickRoundRobin, state, servers, 7), ElementsAre(0, 1, 2, 0, 1, 2, 0));
}

TEST(RoundRobinTest, SkipsADownServerAndTakesItBackWithoutABurst) {
  std::vector<ServerView> servers = UpServers(3);
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Picks(&PickRoundRobin, state, servers, 2), ElementsAre(0, 1));
  servers[1].is_down = true;
  EXPECT_THAT(Picks(&PickRoundRobin, state, servers, 4), ElementsAre(0, 2, 0, 2));
  servers[1].is_down = false;
  const std::vector<int> hits = Histogram(&PickRoundRobin, state, servers, 30);
  EXPECT_THAT(hits, ElementsAre(10, 10, 10));
}

TEST(RoundRobinTest, ThreeToOneIsExactPerFourPicks) {
  std::vector<ServerView> servers = UpServers(2);
  servers[0].weight = 3;
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Picks(&PickRoundRobin, state, servers, 8), ElementsAre(0, 0, 1, 0, 0, 0, 1, 0));
  for (int round = 0; round < 1000; ++round) {
    const std::vector<int> hits = Histogram(&PickRoundRobin, state, servers, 4);
    ASSERT_THAT(hits, ElementsAre(3, 1)) << "round " << round;
  }
}

TEST(RoundRobinTest, HeavyWeightsAreSpreadOut) {
  std::vector<ServerView> servers = UpServers(3);
  servers[0].weight = 5;
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Picks(&PickRoundRobin, state, servers, 7), ElementsAre(0, 0, 1, 0, 2, 0, 0));
}

TEST(RoundRobinTest, ZeroWeightActsAsOne) {
  std::vector<ServerView> servers = UpServers(2);
  servers[0].weight = 0;
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Picks(&PickRoundRobin, state, servers, 4), ElementsAre(0, 1, 0, 1));
}

TEST(RoundRobinTest, HugeWeightsDoNotOverflow) {
  std::vector<ServerView> servers = UpServers(3);
  for (ServerView& s : servers) {
    s.weight = UINT32_MAX;
  }
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Histogram(&PickRoundRobin, state, servers, 3000), ElementsAre(1000, 1000, 1000));
}

TEST(RandomTest, ThreeToOneWeights) {
  std::vector<ServerView> servers = UpServers(2);
  servers[0].weight = 3;
  BalancerState state(servers.size(), kSeed);
  const std::vector<int> hits = Histogram(&PickRandom, state, servers, 4000);
  EXPECT_NEAR(hits[0], 3000, 200);  // 75% ± 5%
  EXPECT_EQ(hits[0] + hits[1], 4000);
}

TEST(RandomTest, EqualWeightsAreRoughlyUniform) {
  std::vector<ServerView> servers = UpServers(4);
  servers[2].is_down = true;
  BalancerState state(servers.size(), kSeed);
  const std::vector<int> hits = Histogram(&PickRandom, state, servers, 3000);
  EXPECT_NEAR(hits[0], 1000, 100);
  EXPECT_NEAR(hits[1], 1000, 100);
  EXPECT_EQ(hits[2], 0);
  EXPECT_NEAR(hits[3], 1000, 100);
}

TEST(RandomTest, FixedSeedGivesAFixedSequence) {
  std::vector<ServerView> servers = UpServers(4);
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Picks(&PickRandom, state, servers, 12),
              ElementsAre(3, 0, 2, 3, 2, 1, 2, 2, 1, 1, 3, 0));
}

TEST(RandomTest, DifferentSeedsGiveDifferentSequences) {
  std::vector<ServerView> servers = UpServers(4);
  BalancerState a(servers.size(), 1);
  BalancerState b(servers.size(), 2);
  EXPECT_NE(Picks(&PickRandom, a, servers, 50), Picks(&PickRandom, b, servers, 50));
}

TEST(AvailabilityTest, WeightedRandomAmongUpServers) {
  std::vector<ServerView> servers = UpServers(3);
  servers[0].is_down = true;
  servers[2].weight = 3;
  BalancerState state(servers.size(), kSeed);
  const std::vector<int> hits = Histogram(&PickAvailability, state, servers, 4000);
  EXPECT_EQ(hits[0], 0);
  EXPECT_NEAR(hits[2], 3000, 200);
}

TEST(HistoricalConnectionsTest, FewestPicksTiesToTheEarliest) {
  std::vector<ServerView> servers = UpServers(3);
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Picks(&PickHistoricalConnections, state, servers, 7),
              ElementsAre(0, 1, 2, 0, 1, 2, 0));
}

TEST(HistoricalConnectionsTest, NeverPinsTrafficToADeadServer) {
  // The seed sent everything to a dead server, which never gains successes.
  std::vector<ServerView> servers = UpServers(2);
  servers[0].is_down = true;
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Histogram(&PickHistoricalConnections, state, servers, 100), ElementsAre(0, 100));
}

TEST(HistoricalConnectionsTest, ARecoveredServerSharesInsteadOfCatchingUp) {
  std::vector<ServerView> servers = UpServers(3);
  BalancerState state(servers.size(), kSeed);
  servers[2].is_down = true;
  Picks(&PickHistoricalConnections, state, servers, 1000);
  servers[2].is_down = false;
  // Level with the others: a fair share from now on, not the next 500 picks.
  EXPECT_THAT(Histogram(&PickHistoricalConnections, state, servers, 30), ElementsAre(10, 10, 10));
}

TEST(HistoricalConnectionsTest, RetryTakesTheLeastUsedOther) {
  std::vector<ServerView> servers = UpServers(3);
  BalancerState state(servers.size(), kSeed);
  EXPECT_EQ(PickHistoricalConnections(state, servers, 0), 1);
  EXPECT_EQ(PickHistoricalConnections(state, servers, 2), 0);
  EXPECT_EQ(PickHistoricalConnections(state, servers, -1), 2);
}

TEST(FailoverTest, StaysOnThePrimaryWhileItIsUp) {
  std::vector<ServerView> servers = UpServers(3);
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Histogram(&PickFailover, state, servers, 50), ElementsAre(50, 0, 0));
}

TEST(FailoverTest, SkipsADownPrimaryAndMovesBackWhenItRecovers) {
  std::vector<ServerView> servers = UpServers(3);
  BalancerState state(servers.size(), kSeed);
  servers[0].is_down = true;
  EXPECT_THAT(Picks(&PickFailover, state, servers, 3), ElementsAre(1, 1, 1));
  servers[1].is_down = true;
  EXPECT_THAT(Picks(&PickFailover, state, servers, 2), ElementsAre(2, 2));
  servers[0].is_down = false;
  EXPECT_THAT(Picks(&PickFailover, state, servers, 2), ElementsAre(0, 0));
}

TEST(FailoverTest, RetryGoesToTheNextInOrder) {
  std::vector<ServerView> servers = UpServers(3);
  BalancerState state(servers.size(), kSeed);
  EXPECT_EQ(PickFailover(state, servers, 0), 1);
  EXPECT_EQ(PickFailover(state, servers, 1), 0);
}

TEST(LeastOutstandingTest, TwoCandidatesAlwaysGiveTheLowerScore) {
  std::vector<ServerView> servers = UpServers(2);
  servers[0].ewma_latency_us = 10'000;
  servers[0].outstanding = 3;  // score 40 000
  servers[1].ewma_latency_us = 20'000;
  servers[1].outstanding = 1;  // score 40 000: a tie, to the first drawn
  BalancerState state(servers.size(), kSeed);
  const std::vector<int> tie = Histogram(&PickLeastOutstanding, state, servers, 2000);
  EXPECT_NEAR(tie[0], 1000, 100);
  servers[1].outstanding = 2;  // 60 000
  EXPECT_THAT(Histogram(&PickLeastOutstanding, state, servers, 100), ElementsAre(100, 0));
  servers[0].outstanding = 6;  // 70 000
  EXPECT_THAT(Histogram(&PickLeastOutstanding, state, servers, 100), ElementsAre(0, 100));
}

TEST(LeastOutstandingTest, EqualLatencyPrefersFewerInFlight) {
  std::vector<ServerView> servers = UpServers(2);
  servers[0].outstanding = 5;
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Histogram(&PickLeastOutstanding, state, servers, 50), ElementsAre(0, 50));
}

TEST(LeastOutstandingTest, AnUnmeasuredServerIsTriedFirst) {
  std::vector<ServerView> servers = UpServers(2);
  servers[0].ewma_latency_us = 15'000;
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Histogram(&PickLeastOutstanding, state, servers, 20), ElementsAre(0, 20));
}

TEST(LeastOutstandingTest, NeverTakesTheWorstOfThree) {
  // Power of two choices: the worst server can only lose a comparison.
  std::vector<ServerView> servers = UpServers(3);
  servers[0].ewma_latency_us = 1000;
  servers[1].ewma_latency_us = 2000;
  servers[2].ewma_latency_us = 9000;
  BalancerState state(servers.size(), kSeed);
  const std::vector<int> hits = Histogram(&PickLeastOutstanding, state, servers, 3000);
  EXPECT_EQ(hits[2], 0);
  EXPECT_NEAR(hits[0], 2000, 150);  // wins both pairs it is drawn in: 2 of 3 pairs
  EXPECT_NEAR(hits[1], 1000, 150);
}

TEST(LeastOutstandingTest, SpreadsLoadAcrossEqualServers) {
  std::vector<ServerView> servers = UpServers(8);
  BalancerState state(servers.size(), kSeed);
  // Feed the choice back as load, as the shard does, with no answers: the spread stays tight.
  for (int i = 0; i < 800; ++i) {
    const int s = PickLeastOutstanding(state, servers, -1);
    ASSERT_GE(s, 0);
    ++servers[static_cast<size_t>(s)].outstanding;
  }
  uint32_t low = UINT32_MAX;
  uint32_t high = 0;
  for (const ServerView& s : servers) {
    low = std::min(low, s.outstanding);
    high = std::max(high, s.outstanding);
  }
  EXPECT_LE(high - low, 4u);
}

TEST(LeastOutstandingTest, FixedSeedGivesAFixedSequence) {
  // Equal, idle servers: every comparison is a tie, so this is the sequence of first draws.
  std::vector<ServerView> servers = UpServers(4);
  BalancerState state(servers.size(), kSeed);
  EXPECT_THAT(Picks(&PickLeastOutstanding, state, servers, 12),
              ElementsAre(3, 2, 2, 2, 1, 3, 2, 2, 3, 1, 3, 1));
}

}  // namespace
}  // namespace dotproxy::upstream
