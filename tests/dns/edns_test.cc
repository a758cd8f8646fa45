#include "dns/edns.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dns/header.h"
#include "gtest/gtest.h"

namespace dotproxy::dns {
namespace {

using Bytes = std::vector<uint8_t>;

void Put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

// An OPT record: payload 1232, DO as given, these raw options.
Bytes Opt(bool do_bit, const Bytes& options = {}) {
  Bytes b = {0};
  Put16(b, kTypeOpt);
  Put16(b, 1232);
  b.push_back(0);
  b.push_back(0);
  Put16(b, do_bit ? 0x8000 : 0);
  Put16(b, static_cast<uint16_t>(options.size()));
  b.insert(b.end(), options.begin(), options.end());
  return b;
}

Bytes Option(uint16_t code, size_t size, uint8_t fill = 0xab) {
  Bytes b;
  Put16(b, code);
  Put16(b, static_cast<uint16_t>(size));
  b.insert(b.end(), size, fill);
  return b;
}

// "www.example.com. A" with ID 0x1234; `flags` as given; `additional` records appended (ARCOUNT
// = `arcount`); an A answer when `answer`.
Bytes Message(uint16_t flags, const Bytes& additional = {}, uint16_t arcount = 0,
              bool answer = false) {
  Bytes b;
  Put16(b, 0x1234);
  Put16(b, flags);
  Put16(b, 1);
  Put16(b, answer ? 1 : 0);
  Put16(b, 0);
  Put16(b, arcount);
  for (const char* label : {"www", "example", "com"}) {
    b.push_back(static_cast<uint8_t>(strlen(label)));
    b.insert(b.end(), label, label + strlen(label));
  }
  b.push_back(0);
  Put16(b, 1);
  Put16(b, 1);
  if (answer) {
    b.insert(b.end(), {0xc0, 0x0c});
    Put16(b, 1);
    Put16(b, 1);
    b.insert(b.end(), {0, 0, 0, 60});
    Put16(b, 4);
    b.insert(b.end(), {10, 1, 2, 3});
  }
  b.insert(b.end(), additional.begin(), additional.end());
  return b;
}

Bytes Pad(const Bytes& query) {
  Bytes out(query.size() + kMaxPaddingGrowth);
  const size_t n = PadQuery(query.data(), query.size(), out.data(), out.size());
  out.resize(n);
  return out;
}

TEST(EdnsTest, FindsTheOptAndItsDoBit) {
  const Bytes with_do = Message(0x0100, Opt(true, Option(10, 8)), 1, true);
  OptRecord opt;
  ASSERT_TRUE(FindOpt(with_do.data(), with_do.size(), &opt));
  EXPECT_TRUE(opt.found);
  EXPECT_TRUE(opt.do_bit);
  EXPECT_EQ(opt.rdlength, 12);
  EXPECT_EQ(opt.rdata + opt.rdlength, with_do.size());
  const Bytes without = Message(0x0100);
  ASSERT_TRUE(FindOpt(without.data(), without.size(), &opt));
  EXPECT_FALSE(opt.found);
  EXPECT_FALSE(opt.do_bit);
}

TEST(EdnsTest, TruncatedMessagesDoNotParse) {
  const Bytes full = Message(0x8180, Opt(false), 1, true);
  OptRecord opt;
  for (size_t len = 0; len < full.size(); ++len) {
    if (FindOpt(full.data(), len, &opt)) {
      EXPECT_FALSE(opt.found) << len;
    }
  }
}

TEST(EdnsTest, PadsAQueryWithoutOptToTheBlock) {
  const Bytes query = Message(0x0100);
  const Bytes padded = Pad(query);
  ASSERT_FALSE(padded.empty());
  EXPECT_EQ(padded.size() % kPaddingBlock, 0u);
  EXPECT_EQ(GetArcount(padded.data()), 1);
  EXPECT_TRUE(std::equal(query.begin() + kHeaderSize, query.end(), padded.begin() + kHeaderSize));
  OptRecord opt;
  ASSERT_TRUE(FindOpt(padded.data(), padded.size(), &opt));
  ASSERT_TRUE(opt.found);
  EXPECT_FALSE(opt.do_bit);
  EXPECT_EQ(opt.rdata + opt.rdlength, padded.size());
  EXPECT_EQ(padded[opt.rdata + 1], kOptionPadding);
}

TEST(EdnsTest, PadsIntoTheClientsOptKeepingItsOptionsAndWhatFollows) {
  // The OPT is not last: a record follows it, which must survive the move.
  Bytes additional = Opt(true, Option(10, 8));
  const Bytes tail = {0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 1, 'x'};  // ". TXT" with one string
  additional.insert(additional.end(), tail.begin(), tail.end());
  const Bytes query = Message(0x0110, additional, 2);
  const Bytes padded = Pad(query);
  ASSERT_FALSE(padded.empty());
  EXPECT_EQ(padded.size() % kPaddingBlock, 0u);
  EXPECT_EQ(GetArcount(padded.data()), 2);
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), padded.end() - tail.size()));
  OptRecord opt;
  ASSERT_TRUE(FindOpt(padded.data(), padded.size(), &opt));
  EXPECT_TRUE(opt.do_bit);
  EXPECT_EQ(opt.rdlength, padded.size() - query.size() + 12);
}

TEST(EdnsTest, EveryQuerySizePadsToAMultipleOf128) {
  for (size_t extra = 0; extra < 300; ++extra) {
    const Bytes query = Message(0x0100, Opt(false, Option(65001, extra)), 1);
    const Bytes padded = Pad(query);
    ASSERT_FALSE(padded.empty()) << extra;
    EXPECT_EQ(padded.size() % kPaddingBlock, 0u) << extra;
    EXPECT_LT(padded.size() - query.size(), 4 + kPaddingBlock) << extra;
  }
}

TEST(EdnsTest, LeavesAQueryTheClientPaddedAlone) {
  const Bytes query = Message(0x0100, Opt(false, Option(kOptionPadding, 20, 0)), 1);
  EXPECT_TRUE(Pad(query).empty());
}

TEST(EdnsTest, DoesNotPadWhenTheBufferIsTooSmall) {
  const Bytes query = Message(0x0100);
  Bytes out(query.size() + 10);
  EXPECT_EQ(PadQuery(query.data(), query.size(), out.data(), out.size()), 0u);
}

TEST(EdnsTest, StripRemovesTheOptTheProxyAdded) {
  // The client sent no OPT; the server answered the padded query with an OPT (and padding).
  const Bytes expected = Message(0x8180, {}, 0, true);
  Bytes response = Message(0x8180, Opt(false, Option(kOptionPadding, 100, 0)), 1, true);
  const size_t n = StripPadding(response.data(), response.size(), /*remove_opt=*/true);
  response.resize(n);
  EXPECT_EQ(response, expected);
}

TEST(EdnsTest, StripRemovesOnlyPaddingFromTheClientsOpt) {
  const Bytes expected = Message(0x8180, Opt(true, Option(10, 8)), 1, true);
  Bytes options = Option(kOptionPadding, 50, 0);
  const Bytes cookie = Option(10, 8);
  options.insert(options.end(), cookie.begin(), cookie.end());
  const Bytes more_padding = Option(kOptionPadding, 3, 0);
  options.insert(options.end(), more_padding.begin(), more_padding.end());
  Bytes response = Message(0x8180, Opt(true, options), 1, true);
  response.resize(StripPadding(response.data(), response.size(), /*remove_opt=*/false));
  EXPECT_EQ(response, expected);
}

TEST(EdnsTest, StripLeavesResponsesWithoutPaddingOrOptUnchanged) {
  Bytes plain = Message(0x8180, {}, 0, true);
  const Bytes before = plain;
  EXPECT_EQ(StripPadding(plain.data(), plain.size(), true), before.size());
  Bytes with_opt = Message(0x8180, Opt(false, Option(10, 8)), 1, true);
  EXPECT_EQ(StripPadding(with_opt.data(), with_opt.size(), false), with_opt.size());
}

TEST(EdnsTest, StripLeavesMalformedOptionsAlone) {
  Bytes bad_options = Option(kOptionPadding, 4, 0);
  bad_options.push_back(0xff);  // a stray byte after the last option
  Bytes response = Message(0x8180, Opt(false, bad_options), 1, true);
  const Bytes before = response;
  EXPECT_EQ(StripPadding(response.data(), response.size(), false), response.size());
  EXPECT_EQ(response, before);
}

}  // namespace
}  // namespace dotproxy::dns
