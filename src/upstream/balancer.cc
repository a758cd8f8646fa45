#include "upstream/balancer.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "base/check.h"
#include "config/config.h"

namespace dotproxy::upstream {
namespace {

constexpr bool IsTableInEnumOrder() {
  for (size_t i = 0; i < std::size(kPolicies); ++i) {
    if (static_cast<size_t>(kPolicies[i].policy) != i) {
      return false;
    }
  }
  return true;
}
static_assert(IsTableInEnumOrder(), "kPolicies is indexed by config::Policy");
static_assert(std::size(kPolicies) == static_cast<size_t>(config::Policy::kLeastOutstanding) + 1,
              "every config::Policy has a function");

bool IsCandidate(const ServerView& server) { return server.is_usable && !server.is_down; }

uint64_t WeightOf(const ServerView& server) { return std::max<uint32_t>(server.weight, 1); }

// The server to leave out of this pick: `exclude` if some other candidate exists, else -1 (a
// retry may go back to the only server that can take it).
int SkipFor(std::span<const ServerView> servers, int exclude) {
  if (exclude < 0 || static_cast<size_t>(exclude) >= servers.size() ||
      !IsCandidate(servers[exclude])) {
    return -1;
  }
  for (size_t i = 0; i < servers.size(); ++i) {
    if (static_cast<int>(i) != exclude && IsCandidate(servers[i])) {
      return exclude;
    }
  }
  return -1;
}

int PickWeightedRandom(Rng& rng, std::span<const ServerView> servers, int exclude) {
  const int skip = SkipFor(servers, exclude);
  uint64_t total = 0;
  for (size_t i = 0; i < servers.size(); ++i) {
    if (IsCandidate(servers[i]) && static_cast<int>(i) != skip) {
      total += WeightOf(servers[i]);
    }
  }
  if (total == 0) {
    return -1;
  }
  uint64_t point = rng.Uniform(total);
  for (size_t i = 0; i < servers.size(); ++i) {
    if (!IsCandidate(servers[i]) || static_cast<int>(i) == skip) {
      continue;
    }
    const uint64_t weight = WeightOf(servers[i]);
    if (point < weight) {
      return static_cast<int>(i);
    }
    point -= weight;
  }
  return -1;
}

double Score(const ServerView& server) {
  return (static_cast<double>(server.outstanding) + 1) * std::max(server.ewma_latency_us, 1.0);
}

}  // namespace

int PickRoundRobin(BalancerState& state, std::span<const ServerView> servers, int exclude) {
  CHECK(state.servers.size() >= servers.size());
  // Credits over the candidates sum to zero while the set stays the same; a server leaving with
  // credit breaks that, and a fresh cycle keeps the spread even (no burst to one server).
  int64_t sum = 0;
  for (size_t i = 0; i < servers.size(); ++i) {
    if (IsCandidate(servers[i])) {
      sum += state.servers[i].rr_credit;
    } else {
      state.servers[i].rr_credit = 0;
    }
  }
  if (sum != 0) {
    for (size_t i = 0; i < servers.size(); ++i) {
      state.servers[i].rr_credit = 0;
    }
  }
  const int skip = SkipFor(servers, exclude);
  int64_t total = 0;
  int best = -1;
  for (size_t i = 0; i < servers.size(); ++i) {
    PolicyServerState& ps = state.servers[i];
    if (!IsCandidate(servers[i]) || static_cast<int>(i) == skip) {
      continue;
    }
    const int64_t weight = static_cast<int64_t>(WeightOf(servers[i]));
    ps.rr_credit += weight;
    total += weight;
    // Strictly greater: ties go to the earliest server.
    if (best < 0 || ps.rr_credit > state.servers[best].rr_credit) {
      best = static_cast<int>(i);
    }
  }
  if (best >= 0) {
    state.servers[best].rr_credit -= total;
  }
  return best;
}

int PickRandom(BalancerState& state, std::span<const ServerView> servers, int exclude) {
  return PickWeightedRandom(state.rng, servers, exclude);
}

int PickHistoricalConnections(BalancerState& state, std::span<const ServerView> servers,
                              int exclude) {
  CHECK(state.servers.size() >= servers.size());
  const int skip = SkipFor(servers, exclude);
  int best = -1;
  for (size_t i = 0; i < servers.size(); ++i) {
    if (!IsCandidate(servers[i]) || static_cast<int>(i) == skip) {
      continue;
    }
    // Strictly fewer: ties go to the earliest server.
    if (best < 0 || state.servers[i].picks < state.servers[best].picks) {
      best = static_cast<int>(i);
    }
  }
  if (best < 0) {
    return -1;
  }
  const uint64_t floor = state.servers[best].picks;
  for (size_t i = 0; i < servers.size(); ++i) {
    if (!IsCandidate(servers[i])) {
      state.servers[i].picks = std::max(state.servers[i].picks, floor);
    }
  }
  ++state.servers[best].picks;
  return best;
}

int PickAvailability(BalancerState& state, std::span<const ServerView> servers, int exclude) {
  return PickWeightedRandom(state.rng, servers, exclude);
}

int PickFailover(BalancerState& /*state*/, std::span<const ServerView> servers, int exclude) {
  const int skip = SkipFor(servers, exclude);
  for (size_t i = 0; i < servers.size(); ++i) {
    if (IsCandidate(servers[i]) && static_cast<int>(i) != skip) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

int PickLeastOutstanding(BalancerState& state, std::span<const ServerView> servers, int exclude) {
  const int skip = SkipFor(servers, exclude);
  uint64_t count = 0;
  for (size_t i = 0; i < servers.size(); ++i) {
    count += static_cast<uint64_t>(IsCandidate(servers[i]) && static_cast<int>(i) != skip);
  }
  if (count == 0) {
    return -1;
  }
  // Two distinct ranks among the candidates; with one candidate both are that one.
  const uint64_t first_rank = state.rng.Uniform(count);
  uint64_t second_rank = first_rank;
  if (count > 1) {
    second_rank = state.rng.Uniform(count - 1);
    second_rank += static_cast<uint64_t>(second_rank >= first_rank);
  }
  int first = -1;
  int second = -1;
  uint64_t rank = 0;
  for (size_t i = 0; i < servers.size() && (first < 0 || second < 0); ++i) {
    if (!IsCandidate(servers[i]) || static_cast<int>(i) == skip) {
      continue;
    }
    if (rank == first_rank) {
      first = static_cast<int>(i);
    }
    if (rank == second_rank) {
      second = static_cast<int>(i);
    }
    ++rank;
  }
  // Ties go to the first drawn, which is itself random: no bias toward the config order.
  return Score(servers[second]) < Score(servers[first]) ? second : first;
}

const PolicyEntry* FindPolicy(std::string_view name) {
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  for (const PolicyEntry& entry : kPolicies) {
    if (entry.name.size() == name.size() &&
        std::equal(name.begin(), name.end(), entry.name.begin(),
                   [&](char a, char b) { return lower(a) == lower(b); })) {
      return &entry;
    }
  }
  return nullptr;
}

PickFn PolicyFunction(config::Policy policy) {
  const size_t index = static_cast<size_t>(policy);
  return index < std::size(kPolicies) ? kPolicies[index].pick : &PickRoundRobin;
}

}  // namespace dotproxy::upstream
