// File: base/counter.h
//
// Counter and Gauge: one uint64_t written by a single thread (the shard that owns it) and read by
// another (the metrics reporter). The writer does a relaxed load and a relaxed store, which
// compiles to a plain add with no lock prefix; the reader's relaxed load sees a whole value. That
// is enough because each counter has exactly one writer. Never increment from two threads.
//
//   ++counters.udp_queries;           // shard thread
//   uint64_t n = counters.udp_queries.value();  // reporter thread
#ifndef DOTPROXY_BASE_COUNTER_H_
#define DOTPROXY_BASE_COUNTER_H_

#include <atomic>
#include <cstdint>

namespace dotproxy::base {

class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Single writer only: a load and a store, not a read-modify-write.
  Counter& operator++() {
    value_.store(value_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return *this;
  }
  Counter& operator+=(uint64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    return *this;
  }
  // Any thread.
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A level (queries in flight, slots in use) rather than a count of events.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(uint64_t v) { value_.store(v, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_COUNTER_H_
