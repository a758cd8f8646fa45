#include "upstream/health.h"

#include <algorithm>
#include <cstdint>

namespace dotproxy::upstream {
namespace {

// Enough doublings to reach any cap from 1 ms; saturating here keeps the counter from wrapping
// after millions of failed probes.
constexpr uint32_t kMaxExponent = 63;

// RFC 6298 §2.3 smooths RTT with alpha = 1/8; the same weight suits answer latency.
constexpr double kEwmaWeight = 1.0 / 8;

}  // namespace

uint64_t Rng::Next() {
  // SplitMix64 (Steele, Lea, Flood 2014): a Weyl sequence through a 64-bit finalizer.
  state_ += 0x9e3779b97f4a7c15ULL;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int64_t BackoffMs(int64_t initial_ms, int64_t max_ms, uint32_t exponent) {
  const int64_t initial = std::max<int64_t>(initial_ms, 1);
  const int64_t cap = std::max(max_ms, initial);
  int64_t delay = initial;
  // Doubling stops at the cap, so this runs at most 63 times and never overflows.
  for (uint32_t i = 0; i < exponent && delay < cap; ++i) {
    delay = delay > cap / 2 ? cap : delay * 2;
  }
  return delay;
}

int64_t JitteredMs(int64_t backoff_ms, uint64_t random_bits) {
  if (backoff_ms <= 0) {
    return 0;
  }
  const int64_t low = backoff_ms - backoff_ms / 2;  // ceil(backoff_ms / 2), so never 0
  const uint64_t span = static_cast<uint64_t>(backoff_ms - low) + 1;
  return low + static_cast<int64_t>(random_bits % span);
}

ServerHealth::ServerHealth(const HealthOptions& options) : options_(options) {
  options_.backoff_initial_ms = std::max<int64_t>(options_.backoff_initial_ms, 1);
  options_.backoff_max_ms = std::max(options_.backoff_max_ms, options_.backoff_initial_ms);
  options_.connect_failures_to_down = std::max<uint32_t>(options_.connect_failures_to_down, 1);
  options_.query_timeouts_to_down = std::max<uint32_t>(options_.query_timeouts_to_down, 1);
  options_.timeout_interval_ms = std::max<int64_t>(options_.timeout_interval_ms, 1);
}

bool ServerHealth::OnConnectFailure(int64_t now_ms, Rng& rng) {
  if (connect_failures_ < UINT32_MAX) {
    ++connect_failures_;
  }
  if (is_down_) {
    if (is_probing_) {
      ProbeFailed(now_ms, rng);
    }
    return false;
  }
  if (connect_failures_ < options_.connect_failures_to_down) {
    return false;
  }
  MarkDown(now_ms, rng);
  return true;
}

bool ServerHealth::OnQueryTimeout(int64_t now_ms, Rng& rng) {
  if (is_down_) {
    if (is_probing_) {
      ProbeFailed(now_ms, rng);
    }
    return false;
  }
  if (query_timeouts_ > 0 && now_ms - last_timeout_ms_ < options_.timeout_interval_ms) {
    return false;  // the same interval's evidence
  }
  last_timeout_ms_ = now_ms;
  if (query_timeouts_ < UINT32_MAX) {
    ++query_timeouts_;
  }
  if (query_timeouts_ < options_.query_timeouts_to_down) {
    return false;
  }
  MarkDown(now_ms, rng);
  return true;
}

bool ServerHealth::OnConnected(int64_t now_ms) {
  connect_failures_ = 0;
  query_timeouts_ = 0;
  if (!Restore(now_ms)) {
    return false;
  }
  // The latency measured before the outage says little now; unmeasured servers are tried first.
  ewma_latency_us_ = 0;
  return true;
}

bool ServerHealth::OnResponse(int64_t now_ms, int64_t latency_us) {
  connect_failures_ = 0;
  query_timeouts_ = 0;
  has_backed_off_ = false;
  exponent_ = 0;
  backoff_ms_ = 0;
  const bool is_stale = now_ms - last_response_ms_ > options_.latency_trust_ms;
  last_response_ms_ = now_ms;
  const double sample = static_cast<double>(std::max<int64_t>(latency_us, 0));
  if (ewma_latency_us_ == 0 || is_stale) {
    ewma_latency_us_ = sample;
  } else {
    ewma_latency_us_ += (sample - ewma_latency_us_) * kEwmaWeight;
  }
  return Restore(now_ms);
}

bool ServerHealth::IsProbeDue(int64_t now_ms) const { return is_down_ && now_ms >= next_probe_ms_; }

void ServerHealth::StartProbe(int64_t now_ms) {
  is_probing_ = true;
  // A lease: if the probe never reports back, another one falls due a period from now.
  next_probe_ms_ = now_ms + backoff_ms_;
}

void ServerHealth::MarkDown(int64_t now_ms, Rng& rng) {
  is_down_ = true;
  is_probing_ = false;
  // A server that failed again soon after coming back keeps doubling; one that stayed up for a
  // whole cap period starts over (the seed reset after 30 s of quiet; this is the capped form).
  if (has_backed_off_ && now_ms - up_since_ms_ < options_.backoff_max_ms) {
    exponent_ = std::min(exponent_ + 1, kMaxExponent);
  } else {
    exponent_ = 0;
  }
  has_backed_off_ = true;
  ScheduleProbe(now_ms, rng);
}

void ServerHealth::ProbeFailed(int64_t now_ms, Rng& rng) {
  is_probing_ = false;
  exponent_ = std::min(exponent_ + 1, kMaxExponent);
  ScheduleProbe(now_ms, rng);
}

void ServerHealth::ScheduleProbe(int64_t now_ms, Rng& rng) {
  backoff_ms_ = BackoffMs(options_.backoff_initial_ms, options_.backoff_max_ms, exponent_);
  next_probe_ms_ = now_ms + JitteredMs(backoff_ms_, rng.Next());
}

bool ServerHealth::Restore(int64_t now_ms) {
  if (!is_down_) {
    return false;
  }
  is_down_ = false;
  is_probing_ = false;
  up_since_ms_ = now_ms;
  return true;
}

}  // namespace dotproxy::upstream
