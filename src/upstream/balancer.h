// File: upstream/balancer.h
//
// Server selection. Each policy is a free function of one signature over the shard's view of its
// servers, chosen once by name and called through a plain function pointer. The shard keeps one
// BalancerState; nothing here is shared between shards.
#ifndef DOTPROXY_UPSTREAM_BALANCER_H_
#define DOTPROXY_UPSTREAM_BALANCER_H_

#include <cstdint>
#include <span>

#include "config/config.h"

namespace dotproxy::upstream {

// What a policy may look at for one server, refreshed by the shard as things change.
struct ServerView {
  bool is_usable = false;       // has a connection that can take a query now
  uint32_t outstanding = 0;     // queries in flight on this shard
};

struct BalancerState {
  uint32_t next = 0;            // round-robin cursor
};

// Returns the index of the chosen server, or -1 if none is usable. `exclude` is a server to
// avoid when another is usable (a retry should go elsewhere), or -1.
using PickFn = int (*)(BalancerState& state, std::span<const ServerView> servers, int exclude);

// The policy function for a configured policy.
PickFn PolicyFunction(config::Policy policy);

int PickRoundRobin(BalancerState& state, std::span<const ServerView> servers, int exclude);

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_BALANCER_H_
