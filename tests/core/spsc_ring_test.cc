#include "core/spsc_ring.h"

#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace dotproxy::core {
namespace {

std::vector<uint8_t> Record(uint32_t seq, size_t len) {
  std::vector<uint8_t> r(len);
  for (size_t i = 0; i < len; ++i) {
    r[i] = static_cast<uint8_t>(seq * 31 + i);
  }
  if (len >= 4) {
    memcpy(r.data(), &seq, 4);
  }
  return r;
}

TEST(SpscByteRingTest, EmptyRingHasNothing) {
  SpscByteRing ring(256);
  EXPECT_TRUE(ring.Peek().empty());
}

TEST(SpscByteRingTest, RecordsComeOutInOrder) {
  SpscByteRing ring(1024);
  for (uint32_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(ring.TryPush(Record(i, 10 + i)));
  }
  for (uint32_t i = 0; i < 5; ++i) {
    const std::span<const uint8_t> r = ring.Peek();
    ASSERT_EQ(r.size(), 10 + i);
    EXPECT_EQ(std::vector<uint8_t>(r.begin(), r.end()), Record(i, 10 + i));
    ring.Pop();
  }
  EXPECT_TRUE(ring.Peek().empty());
}

TEST(SpscByteRingTest, TwoPartsAreOneRecord) {
  SpscByteRing ring(256);
  const uint8_t a[] = {1, 2, 3};
  const uint8_t b[] = {4, 5};
  ASSERT_TRUE(ring.TryPush(a, b));
  const std::span<const uint8_t> r = ring.Peek();
  EXPECT_EQ(std::vector<uint8_t>(r.begin(), r.end()), (std::vector<uint8_t>{1, 2, 3, 4, 5}));
}

TEST(SpscByteRingTest, WrapsAroundKeepingEveryRecordWhole) {
  // Sizes that do not divide the capacity: records regularly meet the end of the buffer and
  // must be written at its start, whole.
  SpscByteRing ring(256);
  uint32_t pushed = 0;
  uint32_t popped = 0;
  for (int round = 0; round < 2000; ++round) {
    const size_t len = 1 + (round * 37) % 100;
    while (!ring.TryPush(Record(pushed, len))) {
      const std::span<const uint8_t> r = ring.Peek();
      ASSERT_FALSE(r.empty());
      const size_t expected_len = 1 + (popped * 37) % 100;
      ASSERT_EQ(r.size(), expected_len) << "record " << popped;
      ASSERT_EQ(std::vector<uint8_t>(r.begin(), r.end()), Record(popped, expected_len));
      ring.Pop();
      ++popped;
    }
    ++pushed;
  }
  for (std::span<const uint8_t> r = ring.Peek(); !r.empty(); r = ring.Peek()) {
    const size_t expected_len = 1 + (popped * 37) % 100;
    ASSERT_EQ(std::vector<uint8_t>(r.begin(), r.end()), Record(popped, expected_len));
    ring.Pop();
    ++popped;
  }
  EXPECT_EQ(popped, pushed);
  EXPECT_GT(pushed * 16, 256u * 10) << "the test should wrap many times";
}

TEST(SpscByteRingTest, FullRingRefusesUntilTheConsumerPops) {
  SpscByteRing ring(256);
  // 24-byte records (8 header + 16): exactly 256 / 24 = 10 fit.
  int count = 0;
  while (ring.TryPush(Record(count, 16))) {
    ++count;
    ASSERT_LT(count, 100);
  }
  EXPECT_EQ(count, 10);
  EXPECT_EQ(ring.BeginWrite(16), nullptr);
  ring.Peek();
  ring.Pop();
  EXPECT_TRUE(ring.TryPush(Record(count, 16)));
  EXPECT_FALSE(ring.TryPush(Record(count + 1, 16)));
}

TEST(SpscByteRingTest, LargestRecordFitsAndLargerIsRefused) {
  SpscByteRing ring(256);
  EXPECT_EQ(ring.max_record(), 120u);
  EXPECT_EQ(ring.BeginWrite(121), nullptr);
  // Whatever the position, an empty ring takes the largest record.
  for (int steps : {0, 1, 4, 9, 13, 15}) {
    SpscByteRing r(256);
    for (int i = 0; i < steps; ++i) {  // 16 bytes per step
      ASSERT_TRUE(r.TryPush(std::vector<uint8_t>(8)));
      r.Peek();
      r.Pop();
    }
    EXPECT_TRUE(r.TryPush(std::vector<uint8_t>(120))) << "offset " << steps * 16;
    EXPECT_EQ(r.Peek().size(), 120u);
  }
}

TEST(SpscByteRingTest, TwoThreadsUnderLoad) {
  // One producer, one consumer, a small ring: constant wrap-around and full/empty races. The
  // consumer checks every record's length, sequence and bytes. Bounded by the record count.
  constexpr uint32_t kRecords = 200000;
  SpscByteRing ring(4096);
  std::thread producer([&] {
    for (uint32_t seq = 0; seq < kRecords; ++seq) {
      const std::vector<uint8_t> r = Record(seq, 4 + seq % 300);
      while (!ring.TryPush(r)) {
        std::this_thread::yield();
      }
    }
  });
  uint32_t expected = 0;
  uint32_t errors = 0;
  while (expected < kRecords) {
    const std::span<const uint8_t> r = ring.Peek();
    if (r.empty()) {
      std::this_thread::yield();
      continue;
    }
    if (std::vector<uint8_t>(r.begin(), r.end()) != Record(expected, 4 + expected % 300)) {
      ++errors;
    }
    ring.Pop();
    ++expected;
  }
  producer.join();
  EXPECT_EQ(errors, 0u);
  EXPECT_TRUE(ring.Peek().empty());
}

}  // namespace
}  // namespace dotproxy::core
