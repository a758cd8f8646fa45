// File: dns/query_id.h
//
// IdSlotTable hands out the 16-bit IDs of queries in flight on one upstream connection:
// id = (generation << slot_bits) | slot. Each slot remembers an opaque 32-bit value (the proxy's
// query slot) and its generation, which advances on every release, so a late response carrying
// an old ID is recognised as stale. Free slots are reused oldest-released first (a FIFO), so an
// ID comes back as late as possible and a late answer meets its own stale generation rather
// than another query's. Fixed capacity, no allocation after construction.
#ifndef DOTPROXY_DNS_QUERY_ID_H_
#define DOTPROXY_DNS_QUERY_ID_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dotproxy::dns {

class IdSlotTable {
 public:
  // capacity is rounded up to a power of two, clamped to 1..4096.
  explicit IdSlotTable(uint32_t capacity);

  // Takes a free slot for `value` and returns its ID in *id. False when all slots are taken.
  bool Acquire(uint32_t value, uint16_t* id);
  // True (and *value set) when `id` names a slot in use with the same generation.
  bool Lookup(uint16_t id, uint32_t* value) const;
  // Frees the slot of a live `id` and advances its generation. No-op for a stale or free id.
  void Release(uint16_t id);
  // Calls fn(uint16_t id, uint32_t value) for every slot in use.
  template <typename Fn>
  void ForEach(Fn&& fn) const;

  uint32_t in_use() const { return in_use_; }
  uint32_t capacity() const { return static_cast<uint32_t>(slots_.size()); }
  bool is_full() const { return in_use_ == slots_.size(); }

 private:
  struct Slot {
    uint32_t value = 0;
    uint16_t generation = 0;
    bool is_used = false;
  };

  uint16_t MakeId(uint32_t slot, uint16_t generation) const;

  std::vector<Slot> slots_;
  std::vector<uint16_t> free_;  // ring of free slot indices, oldest released at free_head_
  uint32_t free_head_ = 0;
  uint32_t slot_bits_ = 0;
  uint32_t in_use_ = 0;
};

template <typename Fn>
void IdSlotTable::ForEach(Fn&& fn) const {
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].is_used) {
      fn(MakeId(i, slots_[i].generation), slots_[i].value);
    }
  }
}

}  // namespace dotproxy::dns

#endif  // DOTPROXY_DNS_QUERY_ID_H_
