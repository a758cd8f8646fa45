#include "upstream/balancer.h"

namespace dotproxy::upstream {

int PickRoundRobin(BalancerState& state, std::span<const ServerView> servers, int exclude) {
  const uint32_t n = static_cast<uint32_t>(servers.size());
  int fallback = -1;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t candidate = (state.next + i) % n;
    if (!servers[candidate].is_usable) {
      continue;  // skip servers with no usable connection
    }
    if (static_cast<int>(candidate) == exclude) {
      fallback = static_cast<int>(candidate);
      continue;
    }
    state.next = candidate + 1;
    return static_cast<int>(candidate);
  }
  return fallback;
}

PickFn PolicyFunction(config::Policy /*policy*/) {
  // TODO(lead): the seed's other policies and LeastOutstanding (#4). Until then every policy
  // name selects RoundRobin, which skips servers that have no usable connection.
  return &PickRoundRobin;
}

}  // namespace dotproxy::upstream
