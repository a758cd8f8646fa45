#include "dns/query_checks.h"

#include <cstdint>
#include <vector>

#include "dns/header.h"
#include "dns/message.h"
#include "gtest/gtest.h"
#include "testing/dns_wire_builder.h"

namespace dotproxy::dns {
namespace {

using testutil::kClassIn;
using testutil::kTypeA;
using testutil::WireBuilder;

constexpr uint16_t kOpcodeNotify = 4 << 11;
constexpr uint16_t kOpcodeUpdate = 5 << 11;

struct Parsed {
  std::vector<uint8_t> wire;
  QueryInfo info;
};

Parsed Parse(std::vector<uint8_t> wire) {
  Parsed p{std::move(wire), {}};
  EXPECT_EQ(ParseQuery(p.wire.data(), p.wire.size(), &p.info), QueryError::kOk);
  return p;
}

LocalAnswer Check(const WireBuilder& builder) {
  const Parsed p = Parse(builder.Build());
  return CheckQuery(p.wire.data(), p.info);
}

WireBuilder Query(uint16_t flags, uint16_t an, uint16_t ns, uint16_t ar) {
  WireBuilder b;
  b.Header(0x4242, flags, 1, an, ns, ar).Question("example.com", kTypeA, kClassIn);
  return b;
}

// An A record owned by the question's name (compression pointer to offset 12).
WireBuilder& AddA(WireBuilder& b) {
  return b.Pointer(12).RecordTail(kTypeA, kClassIn, 60, {1, 2, 3, 4});
}

TEST(QueryChecksTest, ForwardsPlainAndEdnsQueries) {
  EXPECT_EQ(Check(Query(kFlagRd, 0, 0, 0)), LocalAnswer::kForward);
  WireBuilder edns = Query(kFlagRd | kFlagCd, 0, 0, 1);
  edns.Opt(1232, true);
  EXPECT_EQ(Check(edns), LocalAnswer::kForward);
}

TEST(QueryChecksTest, OpcodeOtherThanQueryIsNotImplemented) {
  EXPECT_EQ(Check(Query(kOpcodeNotify, 0, 0, 0)), LocalAnswer::kNotImp);
  WireBuilder update = Query(kOpcodeUpdate, 0, 1, 0);  // UPDATE: records in the update section
  AddA(update);
  EXPECT_EQ(Check(update), LocalAnswer::kNotImp);
}

TEST(QueryChecksTest, TruncatedQueryIsFormErr) {
  EXPECT_EQ(Check(Query(kFlagRd | kFlagTc, 0, 0, 0)), LocalAnswer::kFormErr);
}

TEST(QueryChecksTest, AnswerOrAuthorityRecordsAreFormErr) {
  WireBuilder answer = Query(kFlagRd, 1, 0, 0);
  AddA(answer);
  EXPECT_EQ(Check(answer), LocalAnswer::kFormErr);
  WireBuilder authority = Query(kFlagRd, 0, 1, 0);
  AddA(authority);
  EXPECT_EQ(Check(authority), LocalAnswer::kFormErr);
  WireBuilder additional = Query(kFlagRd, 0, 0, 1);  // additional records are allowed
  AddA(additional);
  EXPECT_EQ(Check(additional), LocalAnswer::kForward);
}

TEST(QueryChecksTest, TwoOptRecordsAreFormErr) {
  WireBuilder b = Query(kFlagRd, 0, 0, 2);
  b.Opt(1232, false).Opt(4096, false);
  EXPECT_EQ(Check(b), LocalAnswer::kFormErr);
}

TEST(QueryChecksTest, EdnsVersionOneIsBadVers) {
  WireBuilder b = Query(kFlagRd, 0, 0, 1);
  b.Opt(1232, false, 1);
  EXPECT_EQ(Check(b), LocalAnswer::kBadVers);
}

TEST(QueryChecksTest, BadVersReplyCarriesExtendedRcodeInOpt) {
  WireBuilder b = Query(kFlagRd, 0, 0, 1);
  b.Opt(4096, true, 3);
  const Parsed p = Parse(b.Build());
  std::vector<uint8_t> out(512);
  const size_t n =
      BuildLocalAnswer(p.wire.data(), p.info, LocalAnswer::kBadVers, out.data(), out.size());
  ASSERT_EQ(n, p.info.question_end + 11u);
  EXPECT_EQ(GetId(out.data()), 0x4242);
  EXPECT_TRUE(IsResponse(out.data()));
  EXPECT_EQ(GetRcode(out.data()), 0);  // 16 = extended 1 << 4 | header 0
  EXPECT_EQ(GetArcount(out.data()), 1);
  const uint8_t* opt = out.data() + p.info.question_end;
  EXPECT_EQ(opt[5], 1);            // extended RCODE
  EXPECT_EQ(opt[6], 0);            // our version
  EXPECT_EQ(opt[7] & 0x80, 0x80);  // DO copied
}

TEST(QueryChecksTest, LocalAnswersKeepIdOpcodeQuestionAndSetRcode) {
  struct Case {
    uint16_t flags;
    LocalAnswer answer;
    uint16_t rcode;
  };
  for (const Case& c : {Case{kOpcodeNotify, LocalAnswer::kNotImp, 4},
                        Case{kFlagRd | kFlagTc, LocalAnswer::kFormErr, 1},
                        Case{kFlagRd, LocalAnswer::kRefused, 5}}) {
    SCOPED_TRACE(LocalAnswerName(c.answer));
    const Parsed p = Parse(Query(c.flags, 0, 0, 0).Build());
    std::vector<uint8_t> out(512);
    const size_t n = BuildLocalAnswer(p.wire.data(), p.info, c.answer, out.data(), out.size());
    ASSERT_EQ(n, p.info.question_end);
    EXPECT_EQ(GetId(out.data()), 0x4242);
    EXPECT_EQ(GetFlags(out.data()) & kOpcodeMask, c.flags & kOpcodeMask);
    EXPECT_EQ(GetFlags(out.data()) & kFlagTc, 0);
    EXPECT_EQ(GetRcode(out.data()), c.rcode);
    EXPECT_EQ(GetQdcount(out.data()), 1);
    EXPECT_EQ(GetAncount(out.data()) + GetNscount(out.data()) + GetArcount(out.data()), 0);
    EXPECT_TRUE(ResponseMatchesQuery(p.wire.data(), p.info, out.data(), n));
  }
}

// RFC 8490 §5.1: a DSO request (opcode 6) has QDCOUNT = 0, which ParseQuery rejects; a server
// without DSO answers NOTIMP. So does any other request with an opcode we do not implement and
// a question that does not parse.
TEST(QueryChecksTest, UnparsableRequestWithOtherOpcodeGetsHeaderOnlyNotImp) {
  constexpr uint16_t kOpcodeDso = 6 << 11;
  WireBuilder dso;
  dso.Header(0x7777, kOpcodeDso | kFlagRd, 0, 0, 0, 0);
  std::vector<uint8_t> wire = dso.Build();
  wire.insert(wire.end(), {0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x3a, 0x98});  // a keepalive TLV
  QueryInfo info;
  ASSERT_EQ(ParseQuery(wire.data(), wire.size(), &info), QueryError::kBadQdcount);
  ASSERT_TRUE(ParseUnsupportedOpcode(wire.data(), wire.size(), &info));
  EXPECT_EQ(CheckQuery(wire.data(), info), LocalAnswer::kNotImp);
  std::vector<uint8_t> out(512);
  const size_t n = BuildLocalAnswer(wire.data(), info, LocalAnswer::kNotImp, out.data(),
                                    out.size());
  ASSERT_EQ(n, kHeaderSize);
  EXPECT_EQ(GetId(out.data()), 0x7777);
  EXPECT_TRUE(IsResponse(out.data()));
  EXPECT_EQ(GetFlags(out.data()) & kOpcodeMask, kOpcodeDso);
  EXPECT_EQ(GetFlags(out.data()) & kFlagRd, kFlagRd);
  EXPECT_EQ(GetRcode(out.data()), 4);
  EXPECT_EQ(GetQdcount(out.data()) + GetAncount(out.data()) + GetNscount(out.data()) +
                GetArcount(out.data()),
            0);

  // NOTIFY whose question runs past the end: still a request with an opcode we do not do.
  std::vector<uint8_t> cut = Query(kOpcodeNotify, 0, 0, 0).Build();
  cut.resize(cut.size() - 3);
  ASSERT_EQ(ParseQuery(cut.data(), cut.size(), &info), QueryError::kBadQuestion);
  EXPECT_TRUE(ParseUnsupportedOpcode(cut.data(), cut.size(), &info));
  EXPECT_EQ(BuildLocalAnswer(cut.data(), info, LocalAnswer::kRefused, out.data(), out.size()),
            kHeaderSize);  // the rate limiter's REFUSED has the same shape
  EXPECT_EQ(GetRcode(out.data()), 5);
}

TEST(QueryChecksTest, MalformedQueriesAndResponsesAreNotTakenForOtherOpcodes) {
  QueryInfo info;
  // Opcode QUERY with no question: malformed, dropped.
  WireBuilder empty;
  empty.Header(0x1111, kFlagRd, 0, 0, 0, 0);
  std::vector<uint8_t> wire = empty.Build();
  EXPECT_FALSE(ParseUnsupportedOpcode(wire.data(), wire.size(), &info));
  // A response (QR = 1) is never answered, whatever its opcode: no reflection loops.
  WireBuilder response;
  response.Header(0x2222, kFlagQr | kOpcodeNotify, 0, 0, 0, 0);
  wire = response.Build();
  EXPECT_FALSE(ParseUnsupportedOpcode(wire.data(), wire.size(), &info));
  // Shorter than a header.
  WireBuilder notify;
  notify.Header(0x3333, kOpcodeNotify, 0, 0, 0, 0);
  wire = notify.Build();
  EXPECT_FALSE(ParseUnsupportedOpcode(wire.data(), kHeaderSize - 1, &info));
  EXPECT_TRUE(ParseUnsupportedOpcode(wire.data(), kHeaderSize, &info));
}

TEST(QueryChecksTest, LocalAnswerFailsWhenBufferTooSmall) {
  const Parsed p = Parse(Query(kFlagRd, 0, 0, 0).Build());
  std::vector<uint8_t> out(p.info.question_end - 1);
  EXPECT_EQ(BuildLocalAnswer(p.wire.data(), p.info, LocalAnswer::kFormErr, out.data(), out.size()),
            0u);
}

}  // namespace
}  // namespace dotproxy::dns
