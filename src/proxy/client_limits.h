// File: proxy/client_limits.h
//
// Per-client limits of one shard, keyed by the client's address cut to /32 (IPv4) or /56 (IPv6,
// one customer's usual delegation): RateLimiter, a token bucket per client in a fixed
// set-associative table that evicts the stalest entry of a set, and ClientShares, the query
// slots each client holds. Memory is fixed at set-up; nothing allocates per packet. Hashes are
// seeded per shard so spoofed sources cannot aim at one set. Single-threaded (one per shard).
#ifndef DOTPROXY_PROXY_CLIENT_LIMITS_H_
#define DOTPROXY_PROXY_CLIENT_LIMITS_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/ip_prefix.h"
#include "config/config.h"

namespace dotproxy::proxy {

// The address a per-client limit counts against.
base::IpAddress ClientKeyOf(const base::IpAddress& source);

class RateLimiter {
 public:
  // `entries` (rounded up to a power of two, at least kWays) buckets; burst 0 means qps.
  RateLimiter(uint32_t qps, uint32_t burst, uint32_t entries, uint64_t seed);

  // Takes a token from the bucket of `source`'s client at `now_ms`; false when it is empty. A
  // client not in the table starts with a full bucket.
  bool Allow(const base::IpAddress& source, int64_t now_ms);

 private:
  static constexpr uint32_t kWays = 4;
  struct Entry {
    base::IpAddress key;
    int64_t last_ms = INT64_MIN;  // INT64_MIN: unused
    double tokens = 0;
  };

  double tokens_per_ms_;
  double burst_;
  uint64_t seed_;
  uint32_t set_mask_;
  std::vector<Entry> entries_;  // sets of kWays entries
};

class ClientShares {
 public:
  // At most `max_per_client` held per client; `slots` is the most held in total.
  ClientShares(uint32_t max_per_client, uint32_t slots, uint64_t seed);

  // Counts one more slot for `source`'s client; false (nothing counted) when it holds its cap.
  bool Acquire(const base::IpAddress& source);
  // Gives back a slot that Acquire counted for `source`.
  void Release(const base::IpAddress& source);
  // Slots `source`'s client holds.
  uint32_t held(const base::IpAddress& source) const;

 private:
  // Linear probing; a free entry has count 0. Deletion shifts entries back (no tombstones), so
  // lookups never degrade over time.
  struct Entry {
    base::IpAddress key;
    uint32_t home = 0;   // hash & mask_
    uint32_t count = 0;  // slots held; 0 = free
  };
  uint32_t Home(const base::IpAddress& key) const;
  // The entry holding `key`, or the free entry where it would go.
  uint32_t Find(const base::IpAddress& key, uint32_t home) const;
  void Erase(uint32_t index);

  uint32_t max_per_client_;
  uint64_t seed_;
  uint32_t mask_;
  std::vector<Entry> entries_;  // at least twice `slots`, so never full
};

// What both frontends check before a query takes a slot: the source against listener.allow and
// the client's rate limit. One per shard, shared by its UDP and TCP frontends.
class ClientGate {
 public:
  enum class Rate : uint8_t { kPass, kDrop, kRefuse };

  ClientGate(base::PrefixSet allow, const config::RateLimitConfig& rate_limit, uint64_t seed);

  bool IsAllowed(const base::IpAddress& source) const { return allow_.Contains(source); }
  // kPass when there is no rate limit or a token was taken; else the configured action.
  Rate CheckRate(const base::IpAddress& source, int64_t now_ms);

 private:
  base::PrefixSet allow_;
  std::optional<RateLimiter> limiter_;  // absent: no rate limit
  config::RateLimitAction action_;
};

// The delay before re-arming a listener's recvmsg or accept after a failed completion: none after
// the first failure, then 10 ms doubling to 1 s while they keep failing, so a persistent error
// (EMFILE, ENOMEM, a broken socket) cannot spin the shard.
class RearmBackoff {
 public:
  int64_t OnFailure() {
    const int64_t delay =
        failures_ == 0 ? 0 : std::min(kMaxMs, kFirstMs << std::min<uint32_t>(failures_ - 1, 7));
    ++failures_;
    return delay;
  }
  void OnSuccess() { failures_ = 0; }

 private:
  static constexpr int64_t kFirstMs = 10;
  static constexpr int64_t kMaxMs = 1000;
  uint32_t failures_ = 0;  // in a row
};

}  // namespace dotproxy::proxy

#endif  // DOTPROXY_PROXY_CLIENT_LIMITS_H_
