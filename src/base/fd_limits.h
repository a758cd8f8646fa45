// File: base/fd_limits.h
//
// The file-descriptor budget: raise RLIMIT_NOFILE's soft limit at start-up and check that the
// configured connections fit. Main thread, at start-up (and on reload for the check).
//
//   ASSIGN_OR_RETURN(uint64_t limit, RaiseFdLimit());
//   RETURN_IF_ERROR(CheckFdBudget(shards, max_connections, upstream_per_shard, spares));
#ifndef DOTPROXY_BASE_FD_LIMITS_H_
#define DOTPROXY_BASE_FD_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dotproxy::base {

// fds the process needs besides the shards' budgets: stdio, the main thread, libraries.
inline constexpr uint64_t kProcessReserveFds = 32;

// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft limit (unchanged when
// it already was the hard limit). Process-wide; call once from main before the shards start.
absl::StatusOr<uint64_t> RaiseFdLimit();

// The number of fds `shards` shards need: shards x (max_connections_per_shard +
// upstream_connections + spares) + kProcessReserveFds. upstream_connections and spares are per
// shard (spares: listeners, the ring, eventfds, connections still closing).
uint64_t FdBudget(uint32_t shards, uint32_t max_connections_per_shard,
                  uint32_t upstream_connections, uint32_t spares);

// OK when FdBudget(...) fits the current soft RLIMIT_NOFILE; otherwise FailedPrecondition with
// one line giving the numbers and what to change.
absl::Status CheckFdBudget(uint32_t shards, uint32_t max_connections_per_shard,
                           uint32_t upstream_connections, uint32_t spares);
// The same against an explicit limit, for tests and messages.
absl::Status CheckFdBudgetAgainst(uint64_t soft_limit, uint32_t shards,
                                  uint32_t max_connections_per_shard,
                                  uint32_t upstream_connections, uint32_t spares);

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_FD_LIMITS_H_
