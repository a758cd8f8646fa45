#include "dns/query_id.h"

#include <cstdint>
#include <map>
#include <set>

#include "gtest/gtest.h"

namespace dotproxy::dns {
namespace {

TEST(IdSlotTableTest, RoundsCapacityUpToPowerOfTwoWithinBounds) {
  EXPECT_EQ(IdSlotTable(0).capacity(), 1u);
  EXPECT_EQ(IdSlotTable(1).capacity(), 1u);
  EXPECT_EQ(IdSlotTable(3).capacity(), 4u);
  EXPECT_EQ(IdSlotTable(64).capacity(), 64u);
  EXPECT_EQ(IdSlotTable(100).capacity(), 128u);
  EXPECT_EQ(IdSlotTable(4096).capacity(), 4096u);
  EXPECT_EQ(IdSlotTable(100000).capacity(), 4096u);
}

TEST(IdSlotTableTest, AcquiresDistinctIdsUntilFull) {
  IdSlotTable table(8);
  std::set<uint16_t> ids;
  for (uint32_t i = 0; i < 8; ++i) {
    uint16_t id = 0;
    ASSERT_TRUE(table.Acquire(100 + i, &id));
    EXPECT_TRUE(ids.insert(id).second);
  }
  EXPECT_TRUE(table.is_full());
  EXPECT_EQ(table.in_use(), 8u);
  uint16_t id = 0;
  EXPECT_FALSE(table.Acquire(999, &id));
}

TEST(IdSlotTableTest, LookupReturnsStoredValue) {
  IdSlotTable table(16);
  uint16_t a = 0;
  uint16_t b = 0;
  ASSERT_TRUE(table.Acquire(7, &a));
  ASSERT_TRUE(table.Acquire(0xdeadbeef, &b));
  uint32_t value = 0;
  ASSERT_TRUE(table.Lookup(a, &value));
  EXPECT_EQ(value, 7u);
  ASSERT_TRUE(table.Lookup(b, &value));
  EXPECT_EQ(value, 0xdeadbeefu);
}

TEST(IdSlotTableTest, LookupOfFreeSlotFails) {
  IdSlotTable table(16);
  uint32_t value = 0;
  for (uint32_t id = 0; id < 65536; id += 97) {
    EXPECT_FALSE(table.Lookup(static_cast<uint16_t>(id), &value));
  }
}

TEST(IdSlotTableTest, ReleaseMakesOldIdStale) {
  IdSlotTable table(4);
  uint16_t old_id = 0;
  ASSERT_TRUE(table.Acquire(1, &old_id));
  table.Release(old_id);
  EXPECT_EQ(table.in_use(), 0u);
  uint32_t value = 0;
  EXPECT_FALSE(table.Lookup(old_id, &value));

  // The slot is reused (free slots are a stack) under a new generation.
  uint16_t new_id = 0;
  ASSERT_TRUE(table.Acquire(2, &new_id));
  EXPECT_NE(new_id, old_id);
  EXPECT_EQ(new_id & 3, old_id & 3);
  EXPECT_FALSE(table.Lookup(old_id, &value));
  ASSERT_TRUE(table.Lookup(new_id, &value));
  EXPECT_EQ(value, 2u);

  // Releasing the stale id must not free the live slot.
  table.Release(old_id);
  EXPECT_EQ(table.in_use(), 1u);
  EXPECT_TRUE(table.Lookup(new_id, &value));
}

TEST(IdSlotTableTest, DoubleReleaseIsNoOp) {
  IdSlotTable table(2);
  uint16_t id = 0;
  ASSERT_TRUE(table.Acquire(1, &id));
  table.Release(id);
  table.Release(id);
  EXPECT_EQ(table.in_use(), 0u);
  uint16_t a = 0;
  uint16_t b = 0;
  EXPECT_TRUE(table.Acquire(1, &a));
  EXPECT_TRUE(table.Acquire(2, &b));
  EXPECT_TRUE(table.is_full());
}

TEST(IdSlotTableTest, IdEncodesGenerationAboveSlotBits) {
  IdSlotTable table(16);  // 4 slot bits, 12 generation bits
  uint16_t id = 0;
  ASSERT_TRUE(table.Acquire(0, &id));
  EXPECT_EQ(id, 0);
  table.Release(id);
  ASSERT_TRUE(table.Acquire(0, &id));
  EXPECT_EQ(id, 1 << 4);
}

TEST(IdSlotTableTest, GenerationWrapsModuloRemainingBits) {
  IdSlotTable table(4096);  // 12 slot bits: 16 generations per slot
  uint16_t first = 0;
  ASSERT_TRUE(table.Acquire(0, &first));
  uint16_t id = first;
  std::set<uint16_t> seen = {first};
  for (int i = 0; i < 15; ++i) {
    table.Release(id);
    ASSERT_TRUE(table.Acquire(0, &id));
    EXPECT_TRUE(seen.insert(id).second) << "generation repeated early at " << i;
  }
  table.Release(id);
  ASSERT_TRUE(table.Acquire(0, &id));
  EXPECT_EQ(id, first);
}

TEST(IdSlotTableTest, SingleSlotUsesAllSixteenBitsForGeneration) {
  IdSlotTable table(1);
  uint16_t id = 0;
  ASSERT_TRUE(table.Acquire(0, &id));
  EXPECT_EQ(id, 0);
  for (uint32_t i = 1; i <= 65536; ++i) {
    table.Release(id);
    ASSERT_TRUE(table.Acquire(0, &id));
    ASSERT_EQ(id, static_cast<uint16_t>(i));
  }
}

TEST(IdSlotTableTest, ForEachVisitsEveryLiveSlot) {
  IdSlotTable table(8);
  std::map<uint16_t, uint32_t> expected;
  for (uint32_t i = 0; i < 6; ++i) {
    uint16_t id = 0;
    ASSERT_TRUE(table.Acquire(i * 10, &id));
    expected[id] = i * 10;
  }
  // Free two, one of them re-acquired under a new generation.
  auto it = expected.begin();
  const uint16_t gone = it->first;
  table.Release(gone);
  expected.erase(it);
  const uint16_t recycled_old = expected.begin()->first;
  table.Release(recycled_old);
  expected.erase(recycled_old);
  uint16_t recycled = 0;
  ASSERT_TRUE(table.Acquire(555, &recycled));
  expected[recycled] = 555;

  std::map<uint16_t, uint32_t> visited;
  table.ForEach([&](uint16_t id, uint32_t value) { visited[id] = value; });
  EXPECT_EQ(visited, expected);
}

}  // namespace
}  // namespace dotproxy::dns
