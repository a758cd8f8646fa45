// Micro benchmarks for core/timer_wheel: arming and cancelling deadlines, and expiring them.
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/timer_wheel.h"

namespace dotproxy::core {
namespace {

constexpr int64_t kStartMs = 1'000'000;

// A query deadline armed and cancelled when its answer arrives, with `state.range(0)` other
// timers armed.
void BM_TimerScheduleCancel(benchmark::State& state) {
  TimerWheel wheel(kStartMs);
  std::vector<Timer> others(static_cast<size_t>(state.range(0)));
  for (size_t i = 0; i < others.size(); ++i) {
    wheel.Schedule(&others[i], kStartMs + 1 + static_cast<int64_t>(i % 10'000));
  }
  Timer timer;
  int64_t expiry = kStartMs + 2000;
  for (auto _ : state) {
    wheel.Schedule(&timer, expiry);
    wheel.Cancel(&timer);
    expiry = kStartMs + 2000 + (expiry + 7) % 3000;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerScheduleCancel)->Arg(0)->Arg(10'000);

// Advancing 1 ms at a time over a wheel holding `state.range(0)` timers spread over 5 s; each
// timer that fires is re-armed 5 s later, so the population stays constant.
void BM_TimerAdvance(benchmark::State& state) {
  TimerWheel wheel(kStartMs);
  std::vector<Timer> timers(static_cast<size_t>(state.range(0)));
  for (size_t i = 0; i < timers.size(); ++i) {
    wheel.Schedule(&timers[i], kStartMs + 1 + static_cast<int64_t>(i % 5000));
  }
  int64_t now_ms = kStartMs;
  int64_t fired = 0;
  for (auto _ : state) {
    ++now_ms;
    wheel.Advance(now_ms, [&](Timer* t) {
      ++fired;
      wheel.Schedule(t, now_ms + 5000);
    });
  }
  benchmark::DoNotOptimize(fired);
  state.SetItemsProcessed(state.iterations());
  state.counters["fired_per_tick"] =
      benchmark::Counter(static_cast<double>(fired), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_TimerAdvance)->Arg(0)->Arg(1000)->Arg(100'000);

}  // namespace
}  // namespace dotproxy::core

BENCHMARK_MAIN();
