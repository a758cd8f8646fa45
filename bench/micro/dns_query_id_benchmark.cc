// Micro benchmarks for dns/query_id: the per-query ID rewrite bookkeeping on an upstream.
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "dns/query_id.h"

namespace dotproxy::dns {
namespace {

// One Acquire + Lookup + Release with `state.range(0)` other IDs already in flight.
void BM_IdSlotAcquireRelease(benchmark::State& state) {
  IdSlotTable table(4096);
  std::vector<uint16_t> held(static_cast<size_t>(state.range(0)));
  for (uint16_t& id : held) {
    table.Acquire(1, &id);
  }
  uint32_t value = 0;
  for (auto _ : state) {
    uint16_t id = 0;
    benchmark::DoNotOptimize(table.Acquire(42, &id));
    benchmark::DoNotOptimize(table.Lookup(id, &value));
    table.Release(id);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IdSlotAcquireRelease)->Arg(0)->Arg(1024)->Arg(4000);

}  // namespace
}  // namespace dotproxy::dns

BENCHMARK_MAIN();
