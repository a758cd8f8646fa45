// Fuzz target: dns::BuildTruncatedResponse and dns::BuildServfail for a query that
// dns::ParseQuery accepted, any upstream response and any output capacity.
// Input: [u16 query length][query][u16 capacity][response]. The output buffer is exactly
// `capacity` bytes, so ASan catches any write past it. A truncated reply is never longer than
// the buffer or the client's UDP limit, has TC = 1, the response's ID and flags, and the query's
// question (and OPT), and it matches the query.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/check.h"
#include "dns/header.h"
#include "dns/message.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dotproxy;  // NOLINT(google-build-using-namespace): one entry point
  fuzz::InputReader in(data, size);
  std::vector<uint8_t> query;
  dns::QueryInfo info;
  if (!fuzz::TakeParsedQuery(in, &query, &info)) {
    return -1;  // not a query: keep it out of the corpus
  }
  const size_t cap = in.U16();
  const std::vector<uint8_t> response = in.Rest();
  std::vector<uint8_t> out(cap);
  const size_t len = dns::BuildTruncatedResponse(response.data(), response.size(), query.data(),
                                                 info, out.data(), out.size());
  CHECK(len <= cap);
  if (response.size() < dns::kHeaderSize || cap < fuzz::ReplySize(info)) {
    CHECK(len == 0);
  } else {
    CHECK(len == fuzz::ReplySize(info));
    CHECK(len <= dns::ClientUdpLimit(info));  // so the client always gets the TC bit over UDP
    CHECK(dns::GetId(out.data()) == dns::GetId(response.data()));
    CHECK(dns::GetFlags(out.data()) == (dns::GetFlags(response.data()) | dns::kFlagTc));
    fuzz::CheckReplyBody(query, info, out.data(), len);
  }
  fuzz::CheckServfail(query, info, cap);
  return 0;
}
