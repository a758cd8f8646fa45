#include "proxy/client_limits.h"

#include <algorithm>
#include <bit>

#include "base/check.h"

namespace dotproxy::proxy {
namespace {

constexpr uint8_t kIpv6ClientBits = 56;
// Rate-limit buckets per shard: 16 Ki clients tracked in 640 KiB; beyond that the stalest go.
constexpr uint32_t kRateLimitEntries = 16384;

uint64_t Hash(const base::IpAddress& key, uint64_t seed) {
  // Two multiply-xorshift rounds (splitmix64 finaliser constants): cheap and well mixed.
  uint64_t h = seed ^ (key.hi * 0x9e3779b97f4a7c15u) ^ (key.lo + (key.is_v4 ? 1 : 0));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9u;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebu;
  return h ^ (h >> 31);
}

}  // namespace

base::IpAddress ClientKeyOf(const base::IpAddress& source) {
  return source.is_v4 ? source : source.Masked(kIpv6ClientBits);
}

RateLimiter::RateLimiter(uint32_t qps, uint32_t burst, uint32_t entries, uint64_t seed)
    : tokens_per_ms_(qps / 1000.0),
      burst_(std::max(1.0, static_cast<double>(burst == 0 ? qps : burst))),
      seed_(seed) {
  const uint32_t size = std::bit_ceil(std::max(entries, kWays));
  entries_.resize(size);
  set_mask_ = size / kWays - 1;
}

bool RateLimiter::Allow(const base::IpAddress& source, int64_t now_ms) {
  const base::IpAddress key = ClientKeyOf(source);
  Entry* set = &entries_[(Hash(key, seed_) & set_mask_) * kWays];
  Entry* victim = set;
  for (uint32_t i = 0; i < kWays; ++i) {
    Entry& e = set[i];
    if (e.last_ms != INT64_MIN && e.key == key) {
      const int64_t elapsed = std::max<int64_t>(now_ms - e.last_ms, 0);
      e.tokens = std::min(burst_, e.tokens + static_cast<double>(elapsed) * tokens_per_ms_);
      e.last_ms = now_ms;
      if (e.tokens < 1.0) {
        return false;
      }
      e.tokens -= 1.0;
      return true;
    }
    // The stalest entry goes; at the same age, the one with the most tokens (the least limited).
    if (e.last_ms < victim->last_ms ||
        (e.last_ms == victim->last_ms && e.tokens > victim->tokens)) {
      victim = &e;
    }
  }
  // A client the table does not know (new, or evicted after being idle longest).
  victim->key = key;
  victim->last_ms = now_ms;
  victim->tokens = burst_ - 1.0;
  return true;
}

ClientShares::ClientShares(uint32_t max_per_client, uint32_t slots, uint64_t seed)
    : max_per_client_(max_per_client), seed_(seed) {
  const uint32_t size = std::bit_ceil(std::max<uint32_t>(2 * slots, 2));
  entries_.resize(size);
  mask_ = size - 1;
}

uint32_t ClientShares::Home(const base::IpAddress& key) const {
  return static_cast<uint32_t>(Hash(key, seed_)) & mask_;
}

uint32_t ClientShares::Find(const base::IpAddress& key, uint32_t home) const {
  uint32_t i = home;
  while (entries_[i].count != 0 && entries_[i].key != key) {
    i = (i + 1) & mask_;
  }
  return i;
}

bool ClientShares::Acquire(const base::IpAddress& source) {
  const base::IpAddress key = ClientKeyOf(source);
  const uint32_t home = Home(key);
  Entry& e = entries_[Find(key, home)];
  if (e.count == 0) {
    e.key = key;
    e.home = home;
  } else if (e.count >= max_per_client_) {
    return false;
  }
  ++e.count;
  return true;
}

void ClientShares::Release(const base::IpAddress& source) {
  const base::IpAddress key = ClientKeyOf(source);
  const uint32_t index = Find(key, Home(key));
  Entry& e = entries_[index];
  DCHECK(e.count > 0);
  if (e.count > 1) {
    --e.count;
  } else if (e.count == 1) {
    Erase(index);
  }
}

uint32_t ClientShares::held(const base::IpAddress& source) const {
  const base::IpAddress key = ClientKeyOf(source);
  return entries_[Find(key, Home(key))].count;
}

void ClientShares::Erase(uint32_t index) {
  // Knuth 6.4 Algorithm R: move later entries of the probe run back into the hole, unless their
  // home lies cyclically in (hole, entry], where the hole would cut them off from it.
  uint32_t hole = index;
  uint32_t j = index;
  for (;;) {
    entries_[hole].count = 0;
    for (;;) {
      j = (j + 1) & mask_;
      if (entries_[j].count == 0) {
        return;
      }
      const uint32_t home = entries_[j].home;
      const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        break;
      }
    }
    entries_[hole] = entries_[j];
    hole = j;
  }
}

ClientGate::ClientGate(base::PrefixSet allow, const config::RateLimitConfig& rate_limit,
                       uint64_t seed)
    : allow_(std::move(allow)), action_(rate_limit.action) {
  if (rate_limit.enabled) {
    limiter_.emplace(rate_limit.qps, rate_limit.burst, kRateLimitEntries, seed);
  }
}

ClientGate::Rate ClientGate::CheckRate(const base::IpAddress& source, int64_t now_ms) {
  if (!limiter_.has_value() || limiter_->Allow(source, now_ms)) {
    return Rate::kPass;
  }
  return action_ == config::RateLimitAction::kRefuse ? Rate::kRefuse : Rate::kDrop;
}

}  // namespace dotproxy::proxy
