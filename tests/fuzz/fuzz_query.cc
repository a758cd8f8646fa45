// Fuzz target: dns::ParseQuery on any bytes, plus what must then hold for an accepted query:
// QueryInfo agrees with the bytes, the verdict ignores trailing bytes and every cut inside the
// question is rejected, the echoed question matches (ResponseMatchesQuery), and
// BuildServfail / BuildFormerrHeaderOnly write what message.h promises; a rejected request with
// another opcode gets a header-only NOTIMP (ParseUnsupportedOpcode).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/byte_order.h"
#include "base/check.h"
#include "dns/header.h"
#include "dns/message.h"
#include "dns/query_checks.h"
#include "tests/fuzz/fuzz_common.h"

namespace dotproxy::fuzz {
namespace {

using dns::QueryError;
using dns::QueryInfo;

QueryError Parse(const std::vector<uint8_t>& msg, QueryInfo* info) {
  return dns::ParseQuery(msg.data(), msg.size(), info);
}

bool SameInfo(const QueryInfo& a, const QueryInfo& b) {
  return a.id == b.id && a.question_end == b.question_end && a.qtype == b.qtype &&
         a.qclass == b.qclass && a.has_opt == b.has_opt && a.do_bit == b.do_bit &&
         a.udp_payload_size == b.udp_payload_size;
}

// The header checks come first and in this order (message.h, QueryError).
void CheckHeaderVerdict(const std::vector<uint8_t>& msg, QueryError error) {
  CHECK(dns::QueryErrorName(error) != nullptr);
  if (msg.size() < dns::kHeaderSize) {
    CHECK(error == QueryError::kTooShort);
  } else if (dns::IsResponse(msg.data())) {
    CHECK(error == QueryError::kNotQuery);
  } else if (dns::GetQdcount(msg.data()) != 1) {
    CHECK(error == QueryError::kBadQdcount);
  } else {
    CHECK(error == QueryError::kOk || error == QueryError::kBadQuestion ||
          error == QueryError::kBadRecords);
  }
}

// QueryInfo describes the bytes: an uncompressed QNAME (labels of 1..63 octets, at most 255
// octets in all) ending 4 bytes before question_end, then QTYPE and QCLASS.
void CheckInfo(const std::vector<uint8_t>& msg, const QueryInfo& info) {
  CHECK(info.id == dns::GetId(msg.data()));
  CHECK(info.question_end <= msg.size());
  CHECK(info.question_end >= dns::kHeaderSize + 1 + 4);
  const size_t name_end = info.question_end - 4u;
  size_t pos = dns::kHeaderSize;
  while (msg[pos] != 0) {
    CHECK(msg[pos] <= 63);
    pos += 1u + msg[pos];
    CHECK(pos < name_end);
  }
  CHECK(pos + 1 == name_end);
  CHECK(name_end - dns::kHeaderSize <= 255);
  CHECK(info.qtype == base::LoadBigEndian16(msg.data() + name_end));
  CHECK(info.qclass == base::LoadBigEndian16(msg.data() + name_end + 2));
  if (!info.has_opt) {
    CHECK(!info.do_bit);
    CHECK(info.udp_payload_size == 512);
    CHECK(dns::ClientUdpLimit(info) == dns::kMinUdpPayload);
  } else {
    CHECK(dns::GetArcount(msg.data()) > 0);  // only the additional section holds an OPT
    const size_t limit = dns::ClientUdpLimit(info);
    CHECK(limit >= dns::kMinUdpPayload && limit <= dns::kMaxUdpPayload);
    CHECK(limit == std::max<size_t>(info.udp_payload_size, dns::kMinUdpPayload) ||
          limit == dns::kMaxUdpPayload);
  }
}

// Bytes after the last record are ignored; a message cut inside the header or question is
// rejected as such; a cut after the question can only fail on the records.
void CheckCuts(const std::vector<uint8_t>& msg, const QueryInfo& info) {
  std::vector<uint8_t> longer = msg;
  longer.insert(longer.end(), {0xc0, 0x0c, 0xff});
  QueryInfo longer_info;
  CHECK(Parse(longer, &longer_info) == QueryError::kOk);
  CHECK(SameInfo(info, longer_info));

  QueryInfo cut_info;
  for (size_t len = dns::kHeaderSize; len < info.question_end; ++len) {
    const std::vector<uint8_t> cut(msg.begin(), msg.begin() + static_cast<ptrdiff_t>(len));
    CHECK(Parse(cut, &cut_info) == QueryError::kBadQuestion);
  }
  const bool no_records = dns::GetAncount(msg.data()) == 0 && dns::GetNscount(msg.data()) == 0 &&
                          dns::GetArcount(msg.data()) == 0;
  for (const size_t len : {size_t{info.question_end}, (info.question_end + msg.size()) / 2}) {
    const std::vector<uint8_t> cut(msg.begin(), msg.begin() + static_cast<ptrdiff_t>(len));
    const QueryError error = Parse(cut, &cut_info);
    CHECK(error == QueryError::kOk || (error == QueryError::kBadRecords && !no_records));
  }
}

std::vector<uint8_t> EchoQuestion(const std::vector<uint8_t>& msg, const QueryInfo& info) {
  std::vector<uint8_t> echo(msg.begin(), msg.begin() + info.question_end);
  dns::SetFlags(echo.data(), dns::GetFlags(msg.data()) | dns::kFlagQr);
  base::StoreBigEndian16(echo.data() + dns::kAncountOffset, 0);
  base::StoreBigEndian16(echo.data() + dns::kNscountOffset, 0);
  base::StoreBigEndian16(echo.data() + dns::kArcountOffset, 0);
  return echo;
}

bool Matches(const std::vector<uint8_t>& msg, const QueryInfo& info,
             const std::vector<uint8_t>& response) {
  return dns::ResponseMatchesQuery(msg.data(), info, response.data(), response.size());
}

// A response that repeats the question matches, in any letter case (RFC 4343); one with another
// QTYPE, a cut question, or no question and NOERROR does not.
void CheckEchoMatches(const std::vector<uint8_t>& msg, const QueryInfo& info) {
  std::vector<uint8_t> echo = EchoQuestion(msg, info);
  CHECK(Matches(msg, info, echo));
  for (size_t i = dns::kHeaderSize; i + 4 < info.question_end; ++i) {
    const uint8_t c = echo[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      echo[i] = static_cast<uint8_t>(c ^ 0x20);
    }
  }
  CHECK(Matches(msg, info, echo));

  std::vector<uint8_t> other_type = echo;
  base::StoreBigEndian16(other_type.data() + info.question_end - 4,
                         static_cast<uint16_t>(info.qtype + 1));
  CHECK(!Matches(msg, info, other_type));
  const std::vector<uint8_t> cut(echo.begin(), echo.end() - 1);
  CHECK(!Matches(msg, info, cut));

  std::vector<uint8_t> no_question(echo.begin(), echo.begin() + dns::kHeaderSize);
  base::StoreBigEndian16(no_question.data() + dns::kQdcountOffset, 0);
  dns::SetFlags(no_question.data(), dns::kFlagQr | dns::kRcodeNoError);
  CHECK(!Matches(msg, info, no_question));
  dns::SetFlags(no_question.data(), dns::kFlagQr | dns::kRcodeServFail);
  CHECK(Matches(msg, info, no_question));
}

// FORMERR: the 12-byte header with QR = 1, RCODE = 1 and zero counts, also when written in place.
void CheckFormerr(const std::vector<uint8_t>& msg) {
  std::vector<uint8_t> out(dns::kHeaderSize);
  CHECK(dns::BuildFormerrHeaderOnly(msg.data(), msg.size(), out.data(), out.size() - 1) == 0);
  const size_t len = dns::BuildFormerrHeaderOnly(msg.data(), msg.size(), out.data(), out.size());
  if (msg.size() < dns::kHeaderSize) {
    CHECK(len == 0);
    return;
  }
  CHECK(len == dns::kHeaderSize);
  const uint16_t flags = dns::GetFlags(out.data());
  CHECK(dns::GetId(out.data()) == dns::GetId(msg.data()));
  CHECK((flags & dns::kFlagQr) != 0);
  CHECK((flags & dns::kOpcodeMask) == (dns::GetFlags(msg.data()) & dns::kOpcodeMask));
  CHECK(dns::GetRcode(out.data()) == dns::kRcodeFormErr);
  CHECK(dns::GetQdcount(out.data()) == 0 && dns::GetAncount(out.data()) == 0 &&
        dns::GetNscount(out.data()) == 0 && dns::GetArcount(out.data()) == 0);
  std::vector<uint8_t> in_place = msg;
  CHECK(dns::BuildFormerrHeaderOnly(in_place.data(), in_place.size(), in_place.data(),
                                    in_place.size()) == dns::kHeaderSize);
  CHECK(std::equal(out.begin(), out.end(), in_place.begin()));
}

// A rejected request with an opcode other than QUERY gets a header-only NOTIMP; nothing else
// rejected is answered (query_checks.h).
void CheckUnsupportedOpcode(const std::vector<uint8_t>& msg) {
  dns::QueryInfo info;
  const bool is_other_opcode = dns::ParseUnsupportedOpcode(msg.data(), msg.size(), &info);
  CHECK(is_other_opcode == (msg.size() >= dns::kHeaderSize && !dns::IsResponse(msg.data()) &&
                            (dns::GetFlags(msg.data()) & dns::kOpcodeMask) != 0));
  if (!is_other_opcode) {
    return;
  }
  CHECK(dns::CheckQuery(msg.data(), info) == dns::LocalAnswer::kNotImp);
  std::vector<uint8_t> out(dns::kHeaderSize);
  CHECK(dns::BuildLocalAnswer(msg.data(), info, dns::LocalAnswer::kNotImp, out.data(),
                              out.size()) == dns::kHeaderSize);
  const uint16_t flags = dns::GetFlags(out.data());
  CHECK(dns::GetId(out.data()) == dns::GetId(msg.data()));
  CHECK((flags & dns::kFlagQr) != 0);
  CHECK((flags & dns::kOpcodeMask) == (dns::GetFlags(msg.data()) & dns::kOpcodeMask));
  CHECK(dns::GetRcode(out.data()) == 4);
  CHECK(dns::GetQdcount(out.data()) == 0 && dns::GetAncount(out.data()) == 0 &&
        dns::GetNscount(out.data()) == 0 && dns::GetArcount(out.data()) == 0);
}

}  // namespace
}  // namespace dotproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dotproxy;  // NOLINT(google-build-using-namespace): one entry point
  const std::vector<uint8_t> msg(data, data + size);
  dns::QueryInfo info;
  const dns::QueryError error = dns::ParseQuery(msg.data(), msg.size(), &info);
  fuzz::CheckHeaderVerdict(msg, error);
  fuzz::CheckFormerr(msg);
  if (error != dns::QueryError::kOk) {
    fuzz::CheckUnsupportedOpcode(msg);
    return 0;
  }
  fuzz::CheckInfo(msg, info);
  fuzz::CheckCuts(msg, info);
  fuzz::CheckEchoMatches(msg, info);
  fuzz::CheckServfail(msg, info, fuzz::ReplySize(info));
  fuzz::CheckServfail(msg, info, fuzz::ReplySize(info) - 1);
  return 0;
}
