// Micro benchmarks for dns/message: the per-query parse, the response check and the TC rewrite.
#include <cstdint>
#include <string_view>
#include <vector>

#include "benchmark/benchmark.h"
#include "dns/header.h"
#include "dns/message.h"

namespace dotproxy::dns {
namespace {

void Append16(std::vector<uint8_t>* out, uint16_t v) {
  out->push_back(static_cast<uint8_t>(v >> 8));
  out->push_back(static_cast<uint8_t>(v));
}

// A typical stub query: "www.example.com A IN" with an EDNS0 OPT (payload 1232, DO set).
std::vector<uint8_t> MakeQuery() {
  std::vector<uint8_t> msg;
  for (uint16_t field :
       {uint16_t{0x1234}, kFlagRd, uint16_t{1}, uint16_t{0}, uint16_t{0}, uint16_t{1}}) {
    Append16(&msg, field);
  }
  for (const char* label : {"www", "example", "com"}) {
    const std::string_view view(label);
    msg.push_back(static_cast<uint8_t>(view.size()));
    msg.insert(msg.end(), view.begin(), view.end());
  }
  msg.push_back(0);
  Append16(&msg, 1);  // A
  Append16(&msg, 1);  // IN
  msg.push_back(0);   // OPT owner: root
  Append16(&msg, kTypeOpt);
  Append16(&msg, 1232);
  Append16(&msg, 0);
  Append16(&msg, 0x8000);
  Append16(&msg, 0);
  return msg;
}

// The query's question echoed with 0x20-style case changes, plus `answers` A records.
std::vector<uint8_t> MakeResponse(const std::vector<uint8_t>& query, const QueryInfo& info,
                                  uint16_t answers) {
  std::vector<uint8_t> msg(query.begin(), query.begin() + info.question_end);
  SetFlags(msg.data(), kFlagQr | kFlagRd | kFlagRa);
  msg[kHeaderSize + 1] = 'W';  // first letter of the QNAME
  msg[kAncountOffset] = static_cast<uint8_t>(answers >> 8);
  msg[kAncountOffset + 1] = static_cast<uint8_t>(answers);
  msg[kArcountOffset] = 0;
  msg[kArcountOffset + 1] = 0;
  for (uint16_t i = 0; i < answers; ++i) {
    Append16(&msg, 0xc00c);
    Append16(&msg, 1);
    Append16(&msg, 1);
    Append16(&msg, 0);
    Append16(&msg, 300);
    Append16(&msg, 4);
    Append16(&msg, 0xc000);
    Append16(&msg, static_cast<uint16_t>(0x0200 + i));
  }
  return msg;
}

void BM_ParseQuery(benchmark::State& state) {
  const std::vector<uint8_t> query = MakeQuery();
  QueryInfo info;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ParseQuery(query.data(), query.size(), &info));
    benchmark::DoNotOptimize(info);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(query.size()));
}
BENCHMARK(BM_ParseQuery);

void BM_ResponseMatchesQuery(benchmark::State& state) {
  const std::vector<uint8_t> query = MakeQuery();
  QueryInfo info;
  ParseQuery(query.data(), query.size(), &info);
  const std::vector<uint8_t> response = MakeResponse(query, info, 4);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        ResponseMatchesQuery(query.data(), info, response.data(), response.size()));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ResponseMatchesQuery);

void BM_BuildTruncatedResponse(benchmark::State& state) {
  const std::vector<uint8_t> query = MakeQuery();
  QueryInfo info;
  ParseQuery(query.data(), query.size(), &info);
  const std::vector<uint8_t> response =
      MakeResponse(query, info, static_cast<uint16_t>(state.range(0)));
  uint8_t out[512];
  for (auto _ : state) {
    benchmark::DoNotOptimize(BuildTruncatedResponse(response.data(), response.size(), query.data(),
                                                    info, out, sizeof(out)));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BuildTruncatedResponse)->Arg(4)->Arg(100);

}  // namespace
}  // namespace dotproxy::dns

BENCHMARK_MAIN();
