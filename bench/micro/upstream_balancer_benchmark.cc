// Micro benchmarks for upstream/balancer and upstream/health: one pick per query through the
// policy's function pointer, over `state.range(0)` servers, and the health update per answer.
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "upstream/balancer.h"
#include "upstream/health.h"

namespace dotproxy::upstream {
namespace {

constexpr uint64_t kSeed = 1;

// A shard's view under load: mixed weights, load and latency, and every eighth server down.
std::vector<ServerView> MakeServers(int64_t count) {
  std::vector<ServerView> servers(static_cast<size_t>(count));
  for (size_t i = 0; i < servers.size(); ++i) {
    servers[i].is_usable = true;
    servers[i].is_down = i % 8 == 7;
    servers[i].weight = 1 + static_cast<uint32_t>(i % 3);
    servers[i].outstanding = static_cast<uint32_t>((i * 7) % 13);
    servers[i].ewma_latency_us = 5000.0 + static_cast<double>((i * 1931) % 20'000);
  }
  return servers;
}

void RunPicks(benchmark::State& state, PickFn pick) {
  const std::vector<ServerView> servers = MakeServers(state.range(0));
  BalancerState balancer(servers.size(), kSeed);
  for (auto _ : state) {
    benchmark::DoNotOptimize(pick(balancer, servers, -1));
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PickRoundRobin(benchmark::State& state) { RunPicks(state, &PickRoundRobin); }
BENCHMARK(BM_PickRoundRobin)->Arg(2)->Arg(8)->Arg(64);

void BM_PickRandom(benchmark::State& state) { RunPicks(state, &PickRandom); }
BENCHMARK(BM_PickRandom)->Arg(2)->Arg(8)->Arg(64);

void BM_PickHistoricalConnections(benchmark::State& state) {
  RunPicks(state, &PickHistoricalConnections);
}
BENCHMARK(BM_PickHistoricalConnections)->Arg(2)->Arg(8)->Arg(64);

void BM_PickFailover(benchmark::State& state) { RunPicks(state, &PickFailover); }
BENCHMARK(BM_PickFailover)->Arg(2)->Arg(8)->Arg(64);

void BM_PickLeastOutstanding(benchmark::State& state) { RunPicks(state, &PickLeastOutstanding); }
BENCHMARK(BM_PickLeastOutstanding)->Arg(2)->Arg(8)->Arg(64);

// A retry: the same pick with the previous server excluded, which costs one more scan.
void BM_PickRoundRobinRetry(benchmark::State& state) {
  const std::vector<ServerView> servers = MakeServers(state.range(0));
  BalancerState balancer(servers.size(), kSeed);
  int previous = 0;
  for (auto _ : state) {
    previous = PickRoundRobin(balancer, servers, previous);
    benchmark::DoNotOptimize(previous);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PickRoundRobinRetry)->Arg(2)->Arg(8)->Arg(64);

// The health update for every answer: failure counts cleared and the latency EWMA fed.
void BM_HealthOnResponse(benchmark::State& state) {
  ServerHealth health;
  int64_t now_ms = 1'000'000;
  int64_t latency_us = 8000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(health.OnResponse(now_ms, latency_us));
    ++now_ms;
    latency_us = 8000 + (latency_us + 977) % 4000;
  }
  benchmark::DoNotOptimize(health.ewma_latency_us());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HealthOnResponse);

}  // namespace
}  // namespace dotproxy::upstream

BENCHMARK_MAIN();
