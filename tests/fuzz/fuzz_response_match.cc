// Fuzz target: dns::ResponseMatchesQuery with a query that dns::ParseQuery accepted and any
// response. Input: [u16 query length][query][response]. The verdict is compared with a plain
// byte-wise model of the rule in message.h, and must not depend on letter case in the response's
// QNAME nor on anything after its question.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/byte_order.h"
#include "base/check.h"
#include "dns/header.h"
#include "dns/message.h"
#include "tests/fuzz/fuzz_common.h"

namespace dotproxy::fuzz {
namespace {

uint8_t Lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c | 0x20) : c; }

// The model: a response without a question matches only a failure RCODE; with one question, its
// QNAME must equal the query's (which is uncompressed) octet by octet ignoring ASCII case, and
// QTYPE and QCLASS must be equal. Length octets are at most 63, below 'A', so lowering every
// octet compares the labels case-insensitively and the length octets exactly.
bool ModelMatches(const std::vector<uint8_t>& query, const dns::QueryInfo& info,
                  const std::vector<uint8_t>& response) {
  if (response.size() < dns::kHeaderSize) {
    return false;
  }
  const uint16_t qdcount = dns::GetQdcount(response.data());
  if (qdcount != 1) {
    return qdcount == 0 && dns::GetRcode(response.data()) != dns::kRcodeNoError;
  }
  if (response.size() < info.question_end) {
    return false;
  }
  const size_t name_end = info.question_end - 4u;
  for (size_t i = dns::kHeaderSize; i < name_end; ++i) {
    if (Lower(query[i]) != Lower(response[i])) {
      return false;
    }
  }
  return base::LoadBigEndian16(response.data() + name_end) == info.qtype &&
         base::LoadBigEndian16(response.data() + name_end + 2) == info.qclass;
}

bool Matches(const std::vector<uint8_t>& query, const dns::QueryInfo& info,
             const std::vector<uint8_t>& response) {
  return dns::ResponseMatchesQuery(query.data(), info, response.data(), response.size());
}

}  // namespace
}  // namespace dotproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dotproxy;  // NOLINT(google-build-using-namespace): one entry point
  fuzz::InputReader in(data, size);
  std::vector<uint8_t> query;
  dns::QueryInfo info;
  if (!fuzz::TakeParsedQuery(in, &query, &info)) {
    return -1;  // not a query: keep it out of the corpus
  }
  std::vector<uint8_t> response = in.Rest();
  const bool matches = fuzz::Matches(query, info, response);
  CHECK(matches == fuzz::ModelMatches(query, info, response));

  // Letter case in the response's QNAME and anything after its question do not matter.
  const size_t name_end = std::min<size_t>(response.size(), info.question_end - 4u);
  for (size_t i = dns::kHeaderSize; i < name_end; ++i) {
    const uint8_t c = response[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      response[i] = static_cast<uint8_t>(c ^ 0x20);
    }
  }
  CHECK(fuzz::Matches(query, info, response) == matches);
  if (response.size() >= info.question_end && dns::GetQdcount(response.data()) == 1) {
    response.resize(info.question_end);
    CHECK(fuzz::Matches(query, info, response) == matches);
  }
  return 0;
}
