#include "dns/query_id.h"

#include <cstdint>
#include <map>
#include <set>
#include <vector>

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
  IdSlotTable table(1);
  uint16_t old_id = 0;
  ASSERT_TRUE(table.Acquire(1, &old_id));
  table.Release(old_id);
  EXPECT_EQ(table.in_use(), 0u);
  uint32_t value = 0;
  EXPECT_FALSE(table.Lookup(old_id, &value));

  // The only slot is reused under a new generation.
  uint16_t new_id = 0;
  ASSERT_TRUE(table.Acquire(2, &new_id));
  EXPECT_NE(new_id, old_id);
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
  for (uint32_t slot = 0; slot < 16; ++slot) {
    ASSERT_TRUE(table.Acquire(0, &id));
    EXPECT_EQ(id, slot);
    table.Release(id);
  }
  ASSERT_TRUE(table.Acquire(0, &id));
  EXPECT_EQ(id, 1 << 4);
}

TEST(IdSlotTableTest, GenerationWrapsModuloRemainingBits) {
  IdSlotTable table(4096);  // 12 slot bits: 16 generations per slot
  std::vector<uint16_t> slot0_ids;
  for (uint32_t i = 0; i < 17 * 4096; ++i) {
    uint16_t id = 0;
    ASSERT_TRUE(table.Acquire(0, &id));
    if ((id & 4095) == 0) {
      slot0_ids.push_back(id);
    }
    table.Release(id);
  }
  ASSERT_EQ(slot0_ids.size(), 17u);
  EXPECT_EQ(std::set<uint16_t>(slot0_ids.begin(), slot0_ids.begin() + 16).size(), 16u);
  EXPECT_EQ(slot0_ids[16], slot0_ids[0]);
}

TEST(IdSlotTableTest, ReleasedSlotIsReusedAfterEveryOtherFreeSlot) {
  // Issue 9: last-freed-first reuse handed a just-released ID's slot to the very next query, so
  // a late answer could meet it. Reuse now goes round every free slot first.
  IdSlotTable table(8);
  uint16_t held = 0;
  ASSERT_TRUE(table.Acquire(1, &held));  // slot 0 stays busy
  uint16_t id = 0;
  ASSERT_TRUE(table.Acquire(2, &id));    // slot 1
  table.Release(id);
  std::vector<uint16_t> next;
  for (int i = 0; i < 7; ++i) {
    uint16_t n = 0;
    ASSERT_TRUE(table.Acquire(3, &n));
    next.push_back(n & 7);
  }
  EXPECT_EQ(next, (std::vector<uint16_t>{2, 3, 4, 5, 6, 7, 1}));
  EXPECT_TRUE(table.is_full());
}

TEST(IdSlotTableTest, InterleavedReleasesKeepEveryIdDistinctAndLive) {
  IdSlotTable table(64);
  std::vector<uint16_t> live;
  uint32_t value = 0;
  for (uint32_t round = 0; round < 5000; ++round) {
    uint16_t id = 0;
    if (!table.is_full() && (round % 3 != 2 || live.empty())) {
      ASSERT_TRUE(table.Acquire(round, &id));
      live.push_back(id);
    } else {
      const size_t victim = (round * 7919u) % live.size();
      table.Release(live[victim]);
      EXPECT_FALSE(table.Lookup(live[victim], &value));
      live.erase(live.begin() + static_cast<ptrdiff_t>(victim));
    }
    ASSERT_EQ(table.in_use(), live.size());
  }
  EXPECT_EQ(std::set<uint16_t>(live.begin(), live.end()).size(), live.size());
  for (uint16_t id : live) {
    EXPECT_TRUE(table.Lookup(id, &value));
  }
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
