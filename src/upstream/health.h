// File: upstream/health.h
//
// The health of one upstream server as one shard sees it: consecutive failures, the down state
// with its capped exponential backoff, the single probe allowed each time the backoff expires,
// and an EWMA of response latency. Every balancing policy reads the same state. One ServerHealth
// per server per shard, touched only by that shard's thread. Time comes in as an argument
// (monotonic milliseconds), so tests drive the clock by hand.
//
//   health.OnConnectFailure(now_ms, rng);        // server is now down, backing off
//   if (health.IsProbeDue(now_ms)) { health.StartProbe(now_ms); /* reconnect once */ }
//   health.OnConnected(now_ms);                  // probe's handshake worked: server is up again
#ifndef DOTPROXY_UPSTREAM_HEALTH_H_
#define DOTPROXY_UPSTREAM_HEALTH_H_

#include <cstdint>

namespace dotproxy::upstream {

// SplitMix64: a small, fast generator for backoff jitter and the random policies. Deterministic
// for a given seed, so tests replay exact sequences. Not for anything secret.
class Rng {
 public:
  explicit constexpr Rng(uint64_t seed = 0) : state_(seed) {}

  uint64_t Next();
  // Uniform in [0, bound). `bound` must be > 0.
  uint64_t Uniform(uint64_t bound) { return Next() % bound; }

 private:
  uint64_t state_;
};

struct HealthOptions {
  int64_t backoff_initial_ms = 250;       // first down period; clamped to >= 1
  int64_t backoff_max_ms = 30'000;        // cap of the doubling; clamped to >= backoff_initial_ms
  uint32_t connect_failures_to_down = 1;  // consecutive connect/handshake failures; >= 1
  uint32_t query_timeouts_to_down = 3;    // query timeouts without an answer; >= 1
  // Query timeouts count at most once per interval: many slow queries whose timers fire
  // together are one piece of evidence, not many. Clamped to >= 1.
  int64_t timeout_interval_ms = 1000;
  // A latency older than this is stale: the next answer starts the average afresh, so one slow
  // sample cannot keep a server out (LeastOutstanding) long after the server got fast again.
  int64_t latency_trust_ms = 1000;
};

// backoff_initial_ms doubled `exponent` times, never above backoff_max_ms. Never overflows,
// whatever the exponent.
int64_t BackoffMs(int64_t initial_ms, int64_t max_ms, uint32_t exponent);

// A delay in [ceil(backoff_ms / 2), backoff_ms] chosen by `random_bits`, so that shards and
// proxies that saw the same failure do not probe in lockstep. 0 for backoff_ms <= 0.
int64_t JitteredMs(int64_t backoff_ms, uint64_t random_bits);

class ServerHealth {
 public:
  explicit ServerHealth(const HealthOptions& options = HealthOptions());

  // Failure reports. Each returns true when it marked the server down. While the server is down,
  // a failure counts only as the result of the probe in flight (it doubles the backoff and
  // schedules the next probe); failures of attempts started before the server went down are
  // ignored, so N connections failing together back off once, not N times.
  //
  // A TCP connect or TLS handshake failed or timed out (certificate rejection included).
  bool OnConnectFailure(int64_t now_ms, Rng& rng);
  // A query attempt got no answer within its timeout. Counts only if no timeout was counted in
  // the last timeout_interval_ms (see HealthOptions).
  bool OnQueryTimeout(int64_t now_ms, Rng& rng);

  // Success reports. Each returns true when it brought the server back up.
  //
  // A TLS handshake completed. Restores a down server and clears the failure counts, but keeps
  // the backoff exponent: until it answers a query, going down again doubles the backoff (a
  // server that accepts TLS but drops queries backs off like a dead one). Clearing the timeout
  // count means a handshake cannot leave a healthy server one slow query away from down.
  bool OnConnected(int64_t now_ms);
  // A matched answer arrived `latency_us` after its attempt was sent. Clears every failure count
  // and the backoff, and feeds the latency EWMA.
  bool OnResponse(int64_t now_ms, int64_t latency_us);

  // True when the server is down and its backoff has expired (at exactly next_probe_ms()).
  bool IsProbeDue(int64_t now_ms) const;
  // The caller is starting one probe (a reconnect). No other probe is due until the probe
  // reports back or, if it never does, until one more backoff period has passed.
  void StartProbe(int64_t now_ms);

  bool is_down() const { return is_down_; }
  bool is_probing() const { return is_probing_; }
  // The un-jittered backoff of the current (or last) down period; 0 if none since the last answer.
  int64_t backoff_ms() const { return backoff_ms_; }
  // When the next probe is due; meaningful only while is_down().
  int64_t next_probe_ms() const { return next_probe_ms_; }
  uint32_t consecutive_connect_failures() const { return connect_failures_; }
  uint32_t consecutive_query_timeouts() const { return query_timeouts_; }
  uint32_t consecutive_failures() const { return connect_failures_ + query_timeouts_; }
  // Smoothed answer latency; 0 until the first answer.
  double ewma_latency_us() const { return ewma_latency_us_; }
  // When the last answer was measured (0: never).
  int64_t last_response_ms() const { return last_response_ms_; }

 private:
  void MarkDown(int64_t now_ms, Rng& rng);
  void ProbeFailed(int64_t now_ms, Rng& rng);
  void ScheduleProbe(int64_t now_ms, Rng& rng);
  bool Restore(int64_t now_ms);

  HealthOptions options_;
  bool is_down_ = false;
  bool is_probing_ = false;
  bool has_backed_off_ = false;  // a down period since the last answer: the exponent is live
  uint32_t exponent_ = 0;        // doublings of backoff_initial_ms in the current down period
  uint32_t connect_failures_ = 0;
  uint32_t query_timeouts_ = 0;
  int64_t last_timeout_ms_ = 0;  // when the last counted query timeout was
  int64_t backoff_ms_ = 0;
  int64_t next_probe_ms_ = 0;
  int64_t up_since_ms_ = 0;  // when the last down period ended
  double ewma_latency_us_ = 0;
  int64_t last_response_ms_ = 0;
};

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_HEALTH_H_
