#include "dns/message.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dns/header.h"
#include "gtest/gtest.h"
#include "testing/dns_wire_builder.h"

namespace dotproxy::dns {
namespace {

using testutil::kClassCh;
using testutil::kClassIn;
using testutil::kTypeA;
using testutil::kTypeAaaa;
using testutil::WireBuilder;

std::vector<uint8_t> SimpleQuery(std::string_view name = "www.example.com",
                                 uint16_t qtype = kTypeA) {
  return WireBuilder().Header(0xabcd, kFlagRd, 1, 0, 0, 0).Question(name, qtype, kClassIn).Build();
}

std::vector<uint8_t> EdnsQuery(uint16_t payload, bool do_bit) {
  return WireBuilder()
      .Header(0x0102, kFlagRd, 1, 0, 0, 1)
      .Question("example.org", kTypeAaaa, kClassIn)
      .Opt(payload, do_bit)
      .Build();
}

QueryError Parse(const std::vector<uint8_t>& msg, QueryInfo* info) {
  return ParseQuery(msg.data(), msg.size(), info);
}

QueryInfo MustParse(const std::vector<uint8_t>& msg) {
  QueryInfo info;
  EXPECT_EQ(Parse(msg, &info), QueryError::kOk);
  return info;
}

// ---- ParseQuery ----

TEST(MessageTest, ParsesSimpleQuery) {
  const std::vector<uint8_t> msg = SimpleQuery();
  QueryInfo info;
  ASSERT_EQ(Parse(msg, &info), QueryError::kOk);
  EXPECT_EQ(info.id, 0xabcd);
  EXPECT_EQ(info.qtype, kTypeA);
  EXPECT_EQ(info.qclass, kClassIn);
  EXPECT_EQ(info.question_end, msg.size());
  EXPECT_FALSE(info.has_opt);
  EXPECT_FALSE(info.do_bit);
  EXPECT_EQ(info.udp_payload_size, 512);
}

TEST(MessageTest, ParsesRootNameQuery) {
  const std::vector<uint8_t> msg = SimpleQuery(".", 2);
  const QueryInfo info = MustParse(msg);
  EXPECT_EQ(info.question_end, kHeaderSize + 1 + 4);
}

TEST(MessageTest, RejectsMessageShorterThanHeader) {
  const std::vector<uint8_t> msg = SimpleQuery();
  QueryInfo info;
  for (size_t len = 0; len < kHeaderSize; ++len) {
    EXPECT_EQ(ParseQuery(msg.data(), len, &info), QueryError::kTooShort) << len;
  }
}

TEST(MessageTest, RejectsResponse) {
  std::vector<uint8_t> msg = SimpleQuery();
  SetFlags(msg.data(), kFlagQr | kFlagRd);
  QueryInfo info;
  EXPECT_EQ(Parse(msg, &info), QueryError::kNotQuery);
}

TEST(MessageTest, RejectsQdcountZeroAndTwo) {
  QueryInfo info;
  const std::vector<uint8_t> none = WireBuilder().Header(1, 0, 0, 0, 0, 0).Build();
  EXPECT_EQ(Parse(none, &info), QueryError::kBadQdcount);
  const std::vector<uint8_t> two = WireBuilder()
                                       .Header(1, 0, 2, 0, 0, 0)
                                       .Question("a.example", kTypeA, kClassIn)
                                       .Question("b.example", kTypeA, kClassIn)
                                       .Build();
  EXPECT_EQ(Parse(two, &info), QueryError::kBadQdcount);
}

TEST(MessageTest, RejectsEveryTruncationOfTheQuestion) {
  const std::vector<uint8_t> msg = SimpleQuery();
  QueryInfo info;
  for (size_t len = kHeaderSize; len < msg.size(); ++len) {
    EXPECT_EQ(ParseQuery(msg.data(), len, &info), QueryError::kBadQuestion) << len;
  }
}

TEST(MessageTest, AcceptsLabelOf63AndRejectsLabelOf64) {
  QueryInfo info;
  EXPECT_EQ(Parse(SimpleQuery(std::string(63, 'a') + ".com"), &info), QueryError::kOk);
  // A length octet of 64 has the reserved 01 label type (RFC 1035 §4.1.4, RFC 6891 §5).
  EXPECT_EQ(Parse(SimpleQuery(std::string(64, 'a') + ".com"), &info), QueryError::kBadQuestion);
}

TEST(MessageTest, RejectsReservedLabelTypes) {
  QueryInfo info;
  for (uint8_t length_octet : {uint8_t{0x41}, uint8_t{0x80}}) {
    std::vector<uint8_t> msg = WireBuilder().Header(1, 0, 1, 0, 0, 0).Build();
    msg.push_back(length_octet);
    msg.resize(msg.size() + 200, 'x');
    msg.push_back(0);
    const std::vector<uint8_t> tail = WireBuilder().U16(kTypeA).U16(kClassIn).Build();
    msg.insert(msg.end(), tail.begin(), tail.end());
    EXPECT_EQ(Parse(msg, &info), QueryError::kBadQuestion) << int{length_octet};
  }
}

TEST(MessageTest, AcceptsName255BytesAndRejects256) {
  // Four 62-byte labels: 4 * 63 = 252 bytes, plus a label of 1 (2 bytes) and the root = 255.
  const std::string label(62, 'x');
  const std::string name255 = label + "." + label + "." + label + "." + label + ".y";
  const std::string name256 = label + "." + label + "." + label + "." + label + ".yz";
  QueryInfo info;
  EXPECT_EQ(Parse(SimpleQuery(name255), &info), QueryError::kOk);
  EXPECT_EQ(Parse(SimpleQuery(name256), &info), QueryError::kBadQuestion);
}

TEST(MessageTest, RejectsCompressionPointerInQuestion) {
  const std::vector<uint8_t> msg = WireBuilder()
                                       .Header(1, 0, 1, 0, 0, 0)
                                       .Raw({3, 'w', 'w', 'w'})
                                       .Pointer(kHeaderSize)
                                       .U16(kTypeA)
                                       .U16(kClassIn)
                                       .Build();
  QueryInfo info;
  EXPECT_EQ(Parse(msg, &info), QueryError::kBadQuestion);
}

TEST(MessageTest, FindsOptWithPayloadSizeAndDoBit) {
  const QueryInfo with_do = MustParse(EdnsQuery(4096, true));
  EXPECT_TRUE(with_do.has_opt);
  EXPECT_TRUE(with_do.do_bit);
  EXPECT_EQ(with_do.udp_payload_size, 4096);
  EXPECT_EQ(with_do.qtype, kTypeAaaa);

  const QueryInfo without_do = MustParse(EdnsQuery(1232, false));
  EXPECT_TRUE(without_do.has_opt);
  EXPECT_FALSE(without_do.do_bit);
  EXPECT_EQ(without_do.udp_payload_size, 1232);
}

TEST(MessageTest, DoBitIsBit15OfTheTtlLowHalfOnly) {
  // Extended RCODE and version (TTL high half) set, DO clear: not DNSSEC OK.
  const std::vector<uint8_t> msg = WireBuilder()
                                       .Header(1, 0, 1, 0, 0, 1)
                                       .Question("example", kTypeA, kClassIn)
                                       .Name("")
                                       .RecordTail(kTypeOpt, 1400, 0xffff7fff, {})
                                       .Build();
  const QueryInfo info = MustParse(msg);
  EXPECT_TRUE(info.has_opt);
  EXPECT_FALSE(info.do_bit);
}

TEST(MessageTest, FindsOptAfterOtherRecordsAndIgnoresOptOutsideAdditional) {
  // An OPT-typed record in the answer section does not count; the first OPT in the additional
  // section, after a TSIG-like record with a compressed owner name, does.
  const std::vector<uint8_t> msg = WireBuilder()
                                       .Header(7, 0, 1, 1, 1, 3)
                                       .Question("www.example.com", kTypeA, kClassIn)
                                       .Pointer(kHeaderSize)
                                       .RecordTail(kTypeOpt, 999, 0x8000, {})
                                       .Name("example.com")
                                       .RecordTail(6, kClassIn, 300, {1, 2, 3, 4, 5})
                                       .Raw({3, 'k', 'e', 'y'})
                                       .Pointer(kHeaderSize + 4)
                                       .RecordTail(250, 255, 0, {9, 9})
                                       .Opt(2048, true)
                                       .Opt(700, false)
                                       .Build();
  const QueryInfo info = MustParse(msg);
  EXPECT_TRUE(info.has_opt);
  EXPECT_TRUE(info.do_bit);
  EXPECT_EQ(info.udp_payload_size, 2048);
}

TEST(MessageTest, RejectsEveryTruncationOfTheRecords) {
  const std::vector<uint8_t> msg = WireBuilder()
                                       .Header(7, 0, 1, 1, 0, 1)
                                       .Question("www.example.com", kTypeA, kClassIn)
                                       .Pointer(kHeaderSize)
                                       .RecordTail(kTypeA, kClassIn, 60, {192, 0, 2, 1})
                                       .Opt(1232, false)
                                       .Build();
  QueryInfo info;
  ASSERT_EQ(Parse(msg, &info), QueryError::kOk);
  const size_t question_end = info.question_end;
  for (size_t len = question_end; len < msg.size(); ++len) {
    EXPECT_EQ(ParseQuery(msg.data(), len, &info), QueryError::kBadRecords) << len;
  }
}

TEST(MessageTest, RejectsRdlengthRunningPastTheEnd) {
  const std::vector<uint8_t> msg = WireBuilder()
                                       .Header(7, 0, 1, 0, 0, 1)
                                       .Question("example", kTypeA, kClassIn)
                                       .Name("")
                                       .U16(kTypeOpt)
                                       .U16(512)
                                       .U16(0)
                                       .U16(0)
                                       .U16(8)  // RDLENGTH 8, only 4 bytes follow
                                       .Raw({0, 10, 0, 0})
                                       .Build();
  QueryInfo info;
  EXPECT_EQ(Parse(msg, &info), QueryError::kBadRecords);
}

TEST(MessageTest, RejectsRecordCountsLargerThanTheMessage) {
  const std::vector<uint8_t> msg =
      WireBuilder().Header(7, 0, 1, 0xffff, 0xffff, 0xffff).Question("a", kTypeA, kClassIn).Build();
  QueryInfo info;
  EXPECT_EQ(Parse(msg, &info), QueryError::kBadRecords);
}

TEST(MessageTest, RejectsPointerLoopAndOutOfRangePointerInRecords) {
  QueryInfo info;
  // Owner name is a pointer to itself.
  std::vector<uint8_t> loop =
      WireBuilder().Header(7, 0, 1, 1, 0, 0).Question("a", kTypeA, kClassIn).Build();
  const uint16_t self = static_cast<uint16_t>(loop.size());
  const std::vector<uint8_t> loop_tail =
      WireBuilder().Pointer(self).RecordTail(kTypeA, kClassIn, 0, {}).Build();
  loop.insert(loop.end(), loop_tail.begin(), loop_tail.end());
  EXPECT_EQ(Parse(loop, &info), QueryError::kBadRecords);

  // Two pointers pointing at each other.
  std::vector<uint8_t> ping_pong =
      WireBuilder().Header(7, 0, 1, 1, 0, 0).Question("a", kTypeA, kClassIn).Build();
  const uint16_t here = static_cast<uint16_t>(ping_pong.size());
  const std::vector<uint8_t> ping_pong_tail = WireBuilder().Pointer(here + 2).Pointer(here).Build();
  ping_pong.insert(ping_pong.end(), ping_pong_tail.begin(), ping_pong_tail.end());
  EXPECT_EQ(Parse(ping_pong, &info), QueryError::kBadRecords);

  const std::vector<uint8_t> out_of_range = WireBuilder()
                                                .Header(7, 0, 1, 1, 0, 0)
                                                .Question("a", kTypeA, kClassIn)
                                                .Pointer(0x3fff)
                                                .RecordTail(kTypeA, kClassIn, 0, {})
                                                .Build();
  EXPECT_EQ(Parse(out_of_range, &info), QueryError::kBadRecords);
}

TEST(MessageTest, QueryErrorNamesAreDistinct) {
  EXPECT_STREQ(QueryErrorName(QueryError::kOk), "ok");
  EXPECT_STREQ(QueryErrorName(QueryError::kBadQuestion), "bad_question");
  EXPECT_STRNE(QueryErrorName(QueryError::kTooShort), QueryErrorName(QueryError::kBadRecords));
}

// ---- ClientUdpLimit ----

TEST(MessageTest, ClientUdpLimitClampsToRange) {
  QueryInfo info;
  EXPECT_EQ(ClientUdpLimit(info), 512u);
  info.udp_payload_size = 4096;  // ignored without OPT
  EXPECT_EQ(ClientUdpLimit(info), 512u);
  info.has_opt = true;
  EXPECT_EQ(ClientUdpLimit(info), 4096u);
  info.udp_payload_size = 100;
  EXPECT_EQ(ClientUdpLimit(info), 512u);
  info.udp_payload_size = 0;
  EXPECT_EQ(ClientUdpLimit(info), 512u);
  info.udp_payload_size = 65535;
  EXPECT_EQ(ClientUdpLimit(info), kMaxUdpPayload);
}

// ---- BuildTruncatedResponse / BuildServfail / BuildFormerrHeaderOnly ----

std::vector<uint8_t> BigResponse(const std::vector<uint8_t>& query, const QueryInfo& info) {
  WireBuilder builder;
  builder.Header(0x5555, kFlagQr | kFlagRd | kFlagRa | kFlagAa, 1, 3, 0, 0);
  std::vector<uint8_t> response = builder.Build();
  response.insert(response.end(), query.begin() + kHeaderSize, query.begin() + info.question_end);
  for (int i = 0; i < 3; ++i) {
    const std::vector<uint8_t> record =
        WireBuilder().Pointer(kHeaderSize).RecordTail(kTypeA, kClassIn, 60, {10, 0, 0, 1}).Build();
    response.insert(response.end(), record.begin(), record.end());
  }
  return response;
}

void ExpectSameQuestion(const std::vector<uint8_t>& query, const QueryInfo& query_info,
                        const uint8_t* reply, size_t reply_len) {
  ASSERT_GE(reply_len, query_info.question_end);
  EXPECT_EQ(
      std::vector<uint8_t>(reply + kHeaderSize, reply + query_info.question_end),
      std::vector<uint8_t>(query.begin() + kHeaderSize, query.begin() + query_info.question_end));
}

// Parses a reply we built as if it were a query (clearing QR) to read back its OPT.
QueryInfo ParseBuiltReply(const uint8_t* reply, size_t len) {
  std::vector<uint8_t> copy(reply, reply + len);
  SetFlags(copy.data(), GetFlags(copy.data()) & ~kFlagQr);
  return MustParse(copy);
}

TEST(MessageTest, TruncatedResponseKeepsHeaderSetsTcAndDropsRecords) {
  const std::vector<uint8_t> query = SimpleQuery();
  const QueryInfo info = MustParse(query);
  const std::vector<uint8_t> response = BigResponse(query, info);
  uint8_t out[512];
  const size_t len = BuildTruncatedResponse(response.data(), response.size(), query.data(), info,
                                            out, sizeof(out));
  ASSERT_EQ(len, info.question_end);
  EXPECT_EQ(GetId(out), 0x5555);
  EXPECT_EQ(GetFlags(out), kFlagQr | kFlagRd | kFlagRa | kFlagAa | kFlagTc);
  EXPECT_EQ(GetQdcount(out), 1);
  EXPECT_EQ(GetAncount(out), 0);
  EXPECT_EQ(GetNscount(out), 0);
  EXPECT_EQ(GetArcount(out), 0);
  ExpectSameQuestion(query, info, out, len);
  EXPECT_FALSE(ParseBuiltReply(out, len).has_opt);
  EXPECT_TRUE(ResponseMatchesQuery(query.data(), info, out, len));
}

TEST(MessageTest, TruncatedResponseCarriesOptIffQueryHadOne) {
  for (const bool do_bit : {false, true}) {
    const std::vector<uint8_t> query = EdnsQuery(4096, do_bit);
    const QueryInfo info = MustParse(query);
    const std::vector<uint8_t> response = BigResponse(query, info);
    uint8_t out[512];
    const size_t len = BuildTruncatedResponse(response.data(), response.size(), query.data(), info,
                                              out, sizeof(out));
    ASSERT_EQ(len, info.question_end + 11u);
    EXPECT_NE(GetFlags(out) & kFlagTc, 0);
    EXPECT_EQ(GetArcount(out), 1);
    ExpectSameQuestion(query, info, out, len);
    const QueryInfo reply_info = ParseBuiltReply(out, len);
    EXPECT_TRUE(reply_info.has_opt);
    EXPECT_EQ(reply_info.udp_payload_size, 1232);
    EXPECT_EQ(reply_info.do_bit, do_bit);
    // Extended RCODE, version and RDLENGTH are zero.
    const uint8_t* opt = out + info.question_end;
    EXPECT_EQ(opt[0], 0);
    EXPECT_EQ(opt[5], 0);
    EXPECT_EQ(opt[6], 0);
    EXPECT_EQ(opt[8], 0);
    EXPECT_EQ(opt[9], 0);
    EXPECT_EQ(opt[10], 0);
  }
}

TEST(MessageTest, TruncatedResponseFailsWhenOutputTooSmall) {
  const std::vector<uint8_t> query = EdnsQuery(4096, true);
  const QueryInfo info = MustParse(query);
  const std::vector<uint8_t> response = BigResponse(query, info);
  std::vector<uint8_t> out(info.question_end + 10u);
  EXPECT_EQ(BuildTruncatedResponse(response.data(), response.size(), query.data(), info, out.data(),
                                   out.size()),
            0u);
  EXPECT_EQ(
      BuildTruncatedResponse(response.data(), 11, query.data(), info, out.data(), out.size() + 1),
      0u);
}

TEST(MessageTest, ServfailEchoesIdOpcodeRdAndQuestion) {
  std::vector<uint8_t> query = EdnsQuery(1400, true);
  SetFlags(query.data(), kFlagRd | kFlagCd | 0x1000);  // opcode 2 (STATUS), CD set
  const QueryInfo info = MustParse(query);
  uint8_t out[512];
  const size_t len = BuildServfail(query.data(), info, out, sizeof(out));
  ASSERT_EQ(len, info.question_end + 11u);
  EXPECT_EQ(GetId(out), GetId(query.data()));
  EXPECT_EQ(GetFlags(out), kFlagQr | 0x1000 | kFlagRd | kFlagRa | kRcodeServFail);
  EXPECT_EQ(GetRcode(out), kRcodeServFail);
  EXPECT_EQ(GetQdcount(out), 1);
  EXPECT_EQ(GetAncount(out), 0);
  EXPECT_EQ(GetArcount(out), 1);
  ExpectSameQuestion(query, info, out, len);
  EXPECT_TRUE(ParseBuiltReply(out, len).do_bit);
  EXPECT_TRUE(ResponseMatchesQuery(query.data(), info, out, len));
}

TEST(MessageTest, ServfailWithoutRdAndWithoutOpt) {
  std::vector<uint8_t> query = SimpleQuery();
  SetFlags(query.data(), 0);
  const QueryInfo info = MustParse(query);
  uint8_t out[512];
  const size_t len = BuildServfail(query.data(), info, out, sizeof(out));
  ASSERT_EQ(len, info.question_end);
  EXPECT_EQ(GetFlags(out), kFlagQr | kFlagRa | kRcodeServFail);
  EXPECT_EQ(GetArcount(out), 0);
  EXPECT_EQ(BuildServfail(query.data(), info, out, len - 1), 0u);
}

TEST(MessageTest, FormerrEchoesHeaderWithZeroCounts) {
  const std::vector<uint8_t> query = EdnsQuery(1232, false);
  uint8_t out[kHeaderSize];
  ASSERT_EQ(BuildFormerrHeaderOnly(query.data(), query.size(), out, sizeof(out)), kHeaderSize);
  EXPECT_EQ(GetId(out), GetId(query.data()));
  EXPECT_EQ(GetFlags(out), kFlagQr | kFlagRd | kRcodeFormErr);
  EXPECT_EQ(GetQdcount(out), 0);
  EXPECT_EQ(GetArcount(out), 0);
  EXPECT_EQ(BuildFormerrHeaderOnly(query.data(), 11, out, sizeof(out)), 0u);
  EXPECT_EQ(BuildFormerrHeaderOnly(query.data(), query.size(), out, 11), 0u);
}

TEST(MessageTest, FormerrCanBeBuiltInPlace) {
  std::vector<uint8_t> msg = SimpleQuery();
  ASSERT_EQ(BuildFormerrHeaderOnly(msg.data(), msg.size(), msg.data(), msg.size()), kHeaderSize);
  EXPECT_EQ(GetId(msg.data()), 0xabcd);
  EXPECT_EQ(GetRcode(msg.data()), kRcodeFormErr);
  EXPECT_TRUE(IsResponse(msg.data()));
}

// ---- ResponseMatchesQuery ----

std::vector<uint8_t> Response(std::string_view name, uint16_t qtype, uint16_t qclass,
                              uint16_t rcode = kRcodeNoError) {
  return WireBuilder()
      .Header(0xabcd, kFlagQr | kFlagRd | kFlagRa | rcode, 1, 0, 0, 0)
      .Question(name, qtype, qclass)
      .Build();
}

bool Matches(const std::vector<uint8_t>& query, const std::vector<uint8_t>& response) {
  const QueryInfo info = MustParse(query);
  return ResponseMatchesQuery(query.data(), info, response.data(), response.size());
}

TEST(MessageTest, ResponseMatchesQueryIgnoringAsciiCase) {
  const std::vector<uint8_t> query = SimpleQuery("wWw.ExAmple.COM");
  EXPECT_TRUE(Matches(query, Response("www.example.com", kTypeA, kClassIn)));
  EXPECT_TRUE(Matches(query, Response("WWW.EXAMPLE.COM", kTypeA, kClassIn)));
  EXPECT_TRUE(Matches(query, Response("wWw.ExAmple.COM", kTypeA, kClassIn)));
}

TEST(MessageTest, ResponseCaseFoldingIsAsciiOnly) {
  // 0xC9 vs 0xE9 differ only in bit 0x20 but are not ASCII letters; '@' vs '`' likewise.
  std::vector<uint8_t> query = SimpleQuery("xx.example");
  std::vector<uint8_t> response = Response("xx.example", kTypeA, kClassIn);
  query[kHeaderSize + 1] = 0xc9;
  response[kHeaderSize + 1] = 0xe9;
  EXPECT_FALSE(Matches(query, response));
  query[kHeaderSize + 1] = '@';
  response[kHeaderSize + 1] = '`';
  EXPECT_FALSE(Matches(query, response));
  response[kHeaderSize + 1] = '@';
  EXPECT_TRUE(Matches(query, response));
}

TEST(MessageTest, ResponseWithDifferentNameTypeOrClassDoesNotMatch) {
  const std::vector<uint8_t> query = SimpleQuery("www.example.com");
  EXPECT_FALSE(Matches(query, Response("www.example.org", kTypeA, kClassIn)));
  EXPECT_FALSE(Matches(query, Response("www.example.com.org", kTypeA, kClassIn)));
  EXPECT_FALSE(Matches(query, Response("www.example", kTypeA, kClassIn)));
  EXPECT_FALSE(Matches(query, Response("ww.wexample.com", kTypeA, kClassIn)));
  EXPECT_FALSE(Matches(query, Response("www.example.com", kTypeAaaa, kClassIn)));
  EXPECT_FALSE(Matches(query, Response("www.example.com", kTypeA, kClassCh)));
}

TEST(MessageTest, ResponseWithQdcountTwoDoesNotMatch) {
  const std::vector<uint8_t> query = SimpleQuery();
  const std::vector<uint8_t> response = WireBuilder()
                                            .Header(0xabcd, kFlagQr, 2, 0, 0, 0)
                                            .Question("www.example.com", kTypeA, kClassIn)
                                            .Question("www.example.com", kTypeA, kClassIn)
                                            .Build();
  EXPECT_FALSE(Matches(query, response));
}

TEST(MessageTest, ResponseWithoutQuestionMatchesOnlyWithErrorRcode) {
  const std::vector<uint8_t> query = SimpleQuery();
  for (const uint16_t rcode : {kRcodeFormErr, kRcodeServFail, uint16_t{5}}) {
    EXPECT_TRUE(Matches(query, WireBuilder().Header(0xabcd, kFlagQr | rcode, 0, 0, 0, 0).Build()))
        << rcode;
  }
  EXPECT_FALSE(Matches(query, WireBuilder().Header(0xabcd, kFlagQr, 0, 0, 0, 0).Build()));
}

TEST(MessageTest, ResponseWithCompressedQnameDoesNotMatch) {
  const std::vector<uint8_t> query = SimpleQuery("www.example.com");
  const std::vector<uint8_t> response = WireBuilder()
                                            .Header(0xabcd, kFlagQr, 1, 0, 0, 0)
                                            .Raw({3, 'w', 'w', 'w'})
                                            .Pointer(kHeaderSize + 10)
                                            .U16(kTypeA)
                                            .U16(kClassIn)
                                            .Name("example.com")
                                            .Build();
  EXPECT_FALSE(Matches(query, response));
}

TEST(MessageTest, TruncatedResponseQuestionDoesNotMatch) {
  const std::vector<uint8_t> query = SimpleQuery();
  const QueryInfo info = MustParse(query);
  const std::vector<uint8_t> response = Response("www.example.com", kTypeA, kClassIn);
  for (size_t len = 0; len < response.size(); ++len) {
    EXPECT_FALSE(ResponseMatchesQuery(query.data(), info, response.data(), len)) << len;
  }
  EXPECT_TRUE(ResponseMatchesQuery(query.data(), info, response.data(), response.size()));
}

}  // namespace
}  // namespace dotproxy::dns
