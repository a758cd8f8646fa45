// Micro benchmarks for dns/tcp_framing: splitting a TCP/TLS byte stream into DNS messages.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "dns/tcp_framing.h"

namespace dotproxy::dns {
namespace {

constexpr size_t kMessageBytes = 64;  // a typical query

// `count` length-prefixed messages of kMessageBytes each, back to back.
std::vector<uint8_t> MakeStream(int64_t count) {
  std::vector<uint8_t> stream;
  for (int64_t i = 0; i < count; ++i) {
    uint8_t prefix[2];
    WriteLengthPrefix(prefix, kMessageBytes);
    stream.insert(stream.end(), prefix, prefix + 2);
    stream.insert(stream.end(), kMessageBytes, static_cast<uint8_t>(i));
  }
  return stream;
}

// Whole messages per chunk: the zero-copy path.
void BM_FrameReaderFeed(benchmark::State& state) {
  const std::vector<uint8_t> chunk = MakeStream(state.range(0));
  FrameReader reader;
  size_t total_bytes = 0;
  auto on_message = [&](const uint8_t* msg, size_t len) {
    benchmark::DoNotOptimize(msg);
    total_bytes += len;
    return true;
  };
  for (auto _ : state) {
    benchmark::DoNotOptimize(reader.Feed(chunk.data(), chunk.size(), on_message));
  }
  benchmark::DoNotOptimize(total_bytes);
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(chunk.size()));
}
BENCHMARK(BM_FrameReaderFeed)->Arg(1)->Arg(4)->Arg(16)->Arg(64)->Arg(256);

// The same stream fed in chunks that split every message (the copying path).
void BM_FrameReaderFeedSplit(benchmark::State& state) {
  const std::vector<uint8_t> stream = MakeStream(64);
  const size_t chunk_bytes = static_cast<size_t>(state.range(0));
  FrameReader reader;
  auto on_message = [](const uint8_t* msg, size_t) {
    benchmark::DoNotOptimize(msg);
    return true;
  };
  for (auto _ : state) {
    for (size_t pos = 0; pos < stream.size(); pos += chunk_bytes) {
      const size_t n = std::min(chunk_bytes, stream.size() - pos);
      benchmark::DoNotOptimize(reader.Feed(stream.data() + pos, n, on_message));
    }
  }
  state.SetItemsProcessed(state.iterations() * 64);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(stream.size()));
}
BENCHMARK(BM_FrameReaderFeedSplit)->Arg(1)->Arg(37)->Arg(1000);

}  // namespace
}  // namespace dotproxy::dns

BENCHMARK_MAIN();
