#include "dns/query_id.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace dotproxy::dns {
namespace {

constexpr uint32_t kMaxCapacity = 4096;
constexpr uint32_t kIdBits = 16;

}  // namespace

IdSlotTable::IdSlotTable(uint32_t capacity) {
  const uint32_t slot_count = std::bit_ceil(std::clamp<uint32_t>(capacity, 1, kMaxCapacity));
  slot_bits_ = static_cast<uint32_t>(std::countr_zero(slot_count));
  slots_.resize(slot_count);
  free_.resize(slot_count);
  for (uint32_t i = 0; i < slot_count; ++i) {
    free_[i] = static_cast<uint16_t>(i);
  }
}

bool IdSlotTable::Acquire(uint32_t value, uint16_t* id) {
  if (is_full()) {
    return false;
  }
  const uint16_t slot_index = free_[free_head_];
  free_head_ = (free_head_ + 1) & (capacity() - 1);
  Slot& slot = slots_[slot_index];
  slot.value = value;
  slot.is_used = true;
  ++in_use_;
  *id = MakeId(slot_index, slot.generation);
  return true;
}

bool IdSlotTable::Lookup(uint16_t id, uint32_t* value) const {
  const Slot& slot = slots_[id & (slots_.size() - 1)];
  if (!slot.is_used || slot.generation != (uint32_t{id} >> slot_bits_)) {
    return false;
  }
  *value = slot.value;
  return true;
}

void IdSlotTable::Release(uint16_t id) {
  const uint32_t slot_index = id & static_cast<uint32_t>(slots_.size() - 1);
  Slot& slot = slots_[slot_index];
  if (!slot.is_used || slot.generation != (uint32_t{id} >> slot_bits_)) {
    return;
  }
  slot.is_used = false;
  // The generation has 16 - slot_bits bits and wraps; an ID is stale for 2^(16 - slot_bits) - 1
  // further uses of its slot.
  const uint32_t generation_mask = (uint32_t{1} << (kIdBits - slot_bits_)) - 1;
  slot.generation = static_cast<uint16_t>((slot.generation + 1u) & generation_mask);
  // Behind every slot already free: reused only after all of them (issue 9).
  const uint32_t free_count = capacity() - in_use_;
  free_[(free_head_ + free_count) & (capacity() - 1)] = static_cast<uint16_t>(slot_index);
  --in_use_;
}

uint16_t IdSlotTable::MakeId(uint32_t slot, uint16_t generation) const {
  return static_cast<uint16_t>((uint32_t{generation} << slot_bits_) | slot);
}

}  // namespace dotproxy::dns
