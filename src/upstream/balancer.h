// File: upstream/balancer.h
//
// Server selection. Each policy is a free function of one signature over the shard's view of its
// servers, chosen once from kPolicies and called through a plain function pointer. The shard keeps
// one BalancerState; nothing here is shared between shards, and a pick never allocates.
//
// Every policy picks only among candidates: servers that are usable (a connection can take a
// query now) and not down (upstream/health.h). A pick returns -1 only when there is no candidate;
// the caller then fails the query fast (SERVFAIL) while its probes bring servers back. A retry
// passes the server it just tried as `exclude`, which is avoided whenever another candidate exists.
#ifndef DOTPROXY_UPSTREAM_BALANCER_H_
#define DOTPROXY_UPSTREAM_BALANCER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "upstream/health.h"

namespace dotproxy::upstream {

// What a policy may look at for one server, refreshed by the shard as things change.
struct ServerView {
  bool is_usable = false;      // has a connection that can take a query now
  bool is_down = false;        // ServerHealth::is_down()
  uint32_t weight = 1;         // from the config; RoundRobin, Random, Availability; 0 acts as 1
  uint32_t outstanding = 0;    // queries in flight to this server on this shard
  double ewma_latency_us = 0;  // ServerHealth::ewma_latency_us(); 0 = not measured yet
};

// A policy's memory of one server.
struct PolicyServerState {
  int64_t rr_credit = 0;  // smooth weighted round robin: credit accumulated so far
  uint64_t picks = 0;     // HistoricalConnections: times this server was chosen
};

struct BalancerState {
  BalancerState() = default;
  // `server_count` must be the size of every span later passed to a pick.
  BalancerState(size_t server_count, uint64_t seed) : rng(seed), servers(server_count) {}

  Rng rng;                                 // Random, Availability, LeastOutstanding; jitter
  std::vector<PolicyServerState> servers;  // indexed like the ServerView span
};

// Returns the index of the chosen server, or -1 if no server is a candidate. `exclude` is a
// server to avoid when another candidate exists (a retry should go elsewhere), or -1.
using PickFn = int (*)(BalancerState& state, std::span<const ServerView> servers, int exclude);

// Smooth weighted round robin: while the candidates stay the same and no retry intervenes, any
// `total weight` consecutive picks give each server exactly its weight, spread out (3:1 gives
// a a b a).
int PickRoundRobin(BalancerState& state, std::span<const ServerView> servers, int exclude);
// Weighted random.
int PickRandom(BalancerState& state, std::span<const ServerView> servers, int exclude);
// The candidate chosen least often so far; ties go to the earliest. A server that could not be
// chosen (down, busy) is kept level with the least-chosen candidate, so when it comes back it
// shares the load instead of taking all of it until it catches up.
int PickHistoricalConnections(BalancerState& state, std::span<const ServerView> servers,
                              int exclude);
// The seed's "random among servers not backing off". Now that every policy skips down servers
// this is weighted random as well; the name stays for configs written for the seed.
int PickAvailability(BalancerState& state, std::span<const ServerView> servers, int exclude);
// The first candidate in config order: a down primary is skipped until a probe restores it, and
// traffic then moves back to it.
int PickFailover(BalancerState& state, std::span<const ServerView> servers, int exclude);
// Power of two choices: two distinct random candidates, the lower (outstanding + 1) × latency
// wins, ties to the first drawn. An unmeasured latency counts as the lowest possible, so a new
// server is measured at once. Ignores weights.
int PickLeastOutstanding(BalancerState& state, std::span<const ServerView> servers, int exclude);

struct PolicyEntry {
  std::string_view name;  // as written in upstream.load_balancing_policy (any case)
  config::Policy policy;
  PickFn pick;
};

// In config::Policy order.
inline constexpr PolicyEntry kPolicies[] = {
    {"RoundRobin", config::Policy::kRoundRobin, &PickRoundRobin},
    {"Random", config::Policy::kRandom, &PickRandom},
    {"HistoricalConnections", config::Policy::kHistoricalConnections, &PickHistoricalConnections},
    {"Availability", config::Policy::kAvailability, &PickAvailability},
    {"Failover", config::Policy::kFailover, &PickFailover},
    {"LeastOutstanding", config::Policy::kLeastOutstanding, &PickLeastOutstanding},
};

// The entry whose name matches `name` ignoring ASCII case, or nullptr.
const PolicyEntry* FindPolicy(std::string_view name);

// The policy function for a configured policy.
PickFn PolicyFunction(config::Policy policy);

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_BALANCER_H_
