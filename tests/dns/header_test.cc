#include "dns/header.h"

#include <array>
#include <cstdint>

#include "gtest/gtest.h"

namespace dotproxy::dns {
namespace {

TEST(HeaderTest, ReadsFieldsBigEndianAtRfcOffsets) {
  const std::array<uint8_t, kHeaderSize> msg = {0x12, 0x34, 0x81, 0x83, 0x00, 0x01,
                                                0x00, 0x02, 0x00, 0x03, 0x01, 0x04};
  EXPECT_EQ(GetId(msg.data()), 0x1234);
  EXPECT_EQ(GetFlags(msg.data()), 0x8183);
  EXPECT_EQ(GetQdcount(msg.data()), 1);
  EXPECT_EQ(GetAncount(msg.data()), 2);
  EXPECT_EQ(GetNscount(msg.data()), 3);
  EXPECT_EQ(GetArcount(msg.data()), 0x0104);
  EXPECT_TRUE(IsResponse(msg.data()));
  EXPECT_EQ(GetRcode(msg.data()), 3);
}

TEST(HeaderTest, SetIdAndSetFlagsTouchOnlyTheirBytes) {
  std::array<uint8_t, kHeaderSize> msg{};
  msg.fill(0xee);
  SetId(msg.data(), 0xbeef);
  SetFlags(msg.data(), kFlagRd | kFlagCd);
  EXPECT_EQ(msg[0], 0xbe);
  EXPECT_EQ(msg[1], 0xef);
  EXPECT_EQ(msg[2], 0x01);
  EXPECT_EQ(msg[3], 0x10);
  for (size_t i = 4; i < kHeaderSize; ++i) {
    EXPECT_EQ(msg[i], 0xee) << "byte " << i;
  }
  EXPECT_FALSE(IsResponse(msg.data()));
  EXPECT_EQ(GetRcode(msg.data()), kRcodeNoError);
}

TEST(HeaderTest, FlagMasksMatchRfc1035Layout) {
  // RFC 1035 §4.1.1: QR | Opcode(4) | AA | TC | RD | RA | Z | AD | CD | RCODE(4).
  EXPECT_EQ(kFlagQr | kOpcodeMask | kFlagAa | kFlagTc | kFlagRd | kFlagRa, 0xff80);
  EXPECT_EQ(kRcodeMask, 0x000f);
  EXPECT_EQ(kFlagQr & kOpcodeMask, 0);
  EXPECT_EQ(kFlagCd & kRcodeMask, 0);
}

}  // namespace
}  // namespace dotproxy::dns
