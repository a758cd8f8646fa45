// File: core/clock.h
//
// Monotonic time for the data path: milliseconds for deadlines, nanoseconds for latency.
#ifndef DOTPROXY_CORE_CLOCK_H_
#define DOTPROXY_CORE_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace dotproxy::core {

inline int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline int64_t MonotonicMillis() { return MonotonicNanos() / 1'000'000; }

}  // namespace dotproxy::core

#endif  // DOTPROXY_CORE_CLOCK_H_
