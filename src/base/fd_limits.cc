#include "base/fd_limits.h"

#include <sys/resource.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace dotproxy::base {
namespace {

absl::StatusOr<rlimit> GetNoFile() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::ErrnoToStatus(errno, "getrlimit RLIMIT_NOFILE");
  }
  return limit;
}

}  // namespace

absl::StatusOr<uint64_t> RaiseFdLimit() {
  absl::StatusOr<rlimit> limit = GetNoFile();
  if (!limit.ok()) {
    return limit.status();
  }
  if (limit->rlim_cur == limit->rlim_max) {
    return static_cast<uint64_t>(limit->rlim_cur);
  }
  rlimit raised = *limit;
  raised.rlim_cur = limit->rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("setrlimit RLIMIT_NOFILE soft ", limit->rlim_cur, " -> ",
                            limit->rlim_max));
  }
  return static_cast<uint64_t>(raised.rlim_cur);
}

uint64_t FdBudget(uint32_t shards, uint32_t max_connections_per_shard,
                  uint32_t upstream_connections, uint32_t spares) {
  // 64-bit: 256 shards x 1,000,000 connections does not fit 32 bits.
  const uint64_t per_shard = uint64_t{max_connections_per_shard} + upstream_connections + spares;
  return uint64_t{shards} * per_shard + kProcessReserveFds;
}

absl::Status CheckFdBudgetAgainst(uint64_t soft_limit, uint32_t shards,
                                  uint32_t max_connections_per_shard,
                                  uint32_t upstream_connections, uint32_t spares) {
  const uint64_t needed = FdBudget(shards, max_connections_per_shard, upstream_connections, spares);
  if (needed <= soft_limit) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "not enough file descriptors: ", shards, " shards x (", max_connections_per_shard,
      " client + ", upstream_connections, " upstream + ", spares, " spare) + ",
      kProcessReserveFds, " = ", needed, " fds, but RLIMIT_NOFILE is ", soft_limit,
      "; raise LimitNOFILE= (or ulimit -n) or lower listener.tcp.max_connections or "
      "server.workers"));
}

absl::Status CheckFdBudget(uint32_t shards, uint32_t max_connections_per_shard,
                           uint32_t upstream_connections, uint32_t spares) {
  absl::StatusOr<rlimit> limit = GetNoFile();
  if (!limit.ok()) {
    return limit.status();
  }
  return CheckFdBudgetAgainst(static_cast<uint64_t>(limit->rlim_cur), shards,
                              max_connections_per_shard, upstream_connections, spares);
}

}  // namespace dotproxy::base
