// File: tests/fuzz/fuzz_common.h
//
// Shared by the libFuzzer targets in tests/fuzz: a cursor over the fuzzer's input that never reads
// past its end, and the checks every reply built from a parsed query must pass. Copies are exact
// size on purpose, so ASan flags any read past the end of a message.
#ifndef DOTPROXY_TESTS_FUZZ_FUZZ_COMMON_H_
#define DOTPROXY_TESTS_FUZZ_FUZZ_COMMON_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/byte_order.h"
#include "base/check.h"
#include "dns/header.h"
#include "dns/message.h"

namespace dotproxy::fuzz {

// Reads the fuzzer's input front to back; bytes past the end read as zero.
class InputReader {
 public:
  InputReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() {
    const uint16_t high = U8();
    return static_cast<uint16_t>((high << 8) | U8());
  }
  // Up to `n` bytes (fewer at the end), as an exact-size copy.
  std::vector<uint8_t> Bytes(size_t n) {
    const size_t take = std::min(n, remaining());
    std::vector<uint8_t> out(data_ + pos_, data_ + pos_ + take);
    pos_ += take;
    return out;
  }
  std::vector<uint8_t> Rest() { return Bytes(remaining()); }
  size_t remaining() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Input layout of the targets that need a client query: [u16 length][query]... . Returns false
// (the input is skipped) unless the query passes dns::ParseQuery.
inline bool TakeParsedQuery(InputReader& in, std::vector<uint8_t>* query, dns::QueryInfo* info) {
  *query = in.Bytes(in.U16());
  return dns::ParseQuery(query->data(), query->size(), info) == dns::QueryError::kOk;
}

// Bytes of the reply that BuildTruncatedResponse and BuildServfail write for this query.
inline size_t ReplySize(const dns::QueryInfo& info) {
  constexpr size_t kOptRecordBytes = 11;  // root name, TYPE, CLASS, TTL, RDLENGTH
  return info.question_end + (info.has_opt ? kOptRecordBytes : 0);
}

// What both reply builders promise besides ID and flags: QDCOUNT = 1, no answers or authority,
// the query's question byte for byte, and an OPT (payload 1232, DO copied) iff the query had one.
// Such a reply must also match its query.
inline void CheckReplyBody(const std::vector<uint8_t>& query, const dns::QueryInfo& info,
                           const uint8_t* reply, size_t len) {
  CHECK(len == ReplySize(info));
  CHECK(dns::GetQdcount(reply) == 1);
  CHECK(dns::GetAncount(reply) == 0);
  CHECK(dns::GetNscount(reply) == 0);
  CHECK(dns::GetArcount(reply) == (info.has_opt ? 1 : 0));
  CHECK(std::equal(query.begin() + dns::kHeaderSize, query.begin() + info.question_end,
                   reply + dns::kHeaderSize));
  if (info.has_opt) {
    const uint8_t* opt = reply + info.question_end;
    CHECK(opt[0] == 0);
    CHECK(base::LoadBigEndian16(opt + 1) == dns::kTypeOpt);
    CHECK(base::LoadBigEndian16(opt + 3) == 1232);
    CHECK(base::LoadBigEndian16(opt + 5) == 0);
    CHECK(base::LoadBigEndian16(opt + 7) == (info.do_bit ? 0x8000 : 0));
    CHECK(base::LoadBigEndian16(opt + 9) == 0);
  }
  CHECK(dns::ResponseMatchesQuery(query.data(), info, reply, len));
}

// BuildServfail into a buffer of exactly `cap` bytes: 0 when the reply does not fit, else a
// SERVFAIL with the query's ID, opcode and RD, QR = RA = 1, TC = 0, and the body above.
inline void CheckServfail(const std::vector<uint8_t>& query, const dns::QueryInfo& info,
                          size_t cap) {
  std::vector<uint8_t> out(cap);
  const size_t len = dns::BuildServfail(query.data(), info, out.data(), out.size());
  if (cap < ReplySize(info)) {
    CHECK(len == 0);
    return;
  }
  CHECK(len == ReplySize(info));
  const uint16_t query_flags = dns::GetFlags(query.data());
  const uint16_t flags = dns::GetFlags(out.data());
  CHECK(dns::GetId(out.data()) == info.id);
  CHECK((flags & dns::kFlagQr) != 0);
  CHECK((flags & dns::kFlagRa) != 0);
  CHECK((flags & dns::kFlagTc) == 0);
  CHECK((flags & dns::kOpcodeMask) == (query_flags & dns::kOpcodeMask));
  CHECK((flags & dns::kFlagRd) == (query_flags & dns::kFlagRd));
  CHECK(dns::GetRcode(out.data()) == dns::kRcodeServFail);
  CheckReplyBody(query, info, out.data(), len);
}

}  // namespace dotproxy::fuzz

#endif  // DOTPROXY_TESTS_FUZZ_FUZZ_COMMON_H_
