#include "upstream/handoff_hub.h"

#include <algorithm>

namespace dotproxy::upstream {

HandoffHub::HandoffHub(uint32_t shard_count)
    : shard_count_(shard_count),
      shards_(new ShardEntry[shard_count]),
      directory_(new std::atomic<uint32_t>[kMaxServers * shard_count]),
      rings_(new std::atomic<core::SpscByteRing*>[2 * shard_count * shard_count]) {
  for (size_t i = 0; i < kMaxServers * shard_count; ++i) {
    directory_[i].store(0, std::memory_order_relaxed);
  }
  for (size_t i = 0; i < 2 * size_t{shard_count} * shard_count; ++i) {
    rings_[i].store(nullptr, std::memory_order_relaxed);
  }
}

HandoffHub::~HandoffHub() {
  for (size_t i = 0; i < 2 * size_t{shard_count_} * shard_count_; ++i) {
    delete rings_[i].load(std::memory_order_relaxed);
  }
}

uint32_t HandoffHub::Pack(const Entry& e) {
  return std::min<uint32_t>(e.ready, 0xFFFF) | std::min<uint32_t>(e.live, 0x7FFF) << 16 |
         (e.is_down ? 1u << 31 : 0);
}

HandoffHub::Entry HandoffHub::Unpack(uint32_t word) {
  return {word & 0xFFFF, (word >> 16) & 0x7FFF, (word >> 31) != 0};
}

void HandoffHub::Publish(uint32_t server, uint32_t shard, const Entry& entry) {
  if (server < kMaxServers) {
    directory_[server * shard_count_ + shard].store(Pack(entry), std::memory_order_relaxed);
  }
}

HandoffHub::Summary HandoffHub::Summarize(uint32_t server, uint32_t except_shard) const {
  Summary summary;
  if (server >= kMaxServers) {
    return summary;
  }
  for (uint32_t shard = 0; shard < shard_count_; ++shard) {
    if (shard == except_shard) {
      continue;
    }
    const Entry e = Unpack(directory_[server * shard_count_ + shard].load(std::memory_order_relaxed));
    summary.any_ready |= e.ready > 0;
    summary.any_live |= e.live > 0;
    summary.any_down |= e.is_down;
  }
  return summary;
}

int32_t HandoffHub::FindOwner(uint32_t server, uint32_t from, bool ready_only) const {
  if (server >= kMaxServers) {
    return -1;
  }
  auto holds = [&](uint32_t shard) {
    const Entry e = Unpack(directory_[server * shard_count_ + shard].load(std::memory_order_relaxed));
    return shard != from && (ready_only ? e.ready > 0 : e.live > 0);
  };
  uint32_t owners = 0;
  for (uint32_t shard = 0; shard < shard_count_; ++shard) {
    owners += holds(shard) ? 1 : 0;
  }
  if (owners == 0) {
    return -1;
  }
  uint32_t pick = from % owners;
  for (uint32_t shard = 0; shard < shard_count_; ++shard) {
    if (holds(shard) && pick-- == 0) {
      return static_cast<int32_t>(shard);
    }
  }
  return -1;  // the directory changed while we looked: try again later
}

core::SpscByteRing& HandoffHub::Producer(Lane lane, uint32_t from, uint32_t to) {
  std::atomic<core::SpscByteRing*>& slot = Slot(lane, from, to);
  core::SpscByteRing* ring = slot.load(std::memory_order_relaxed);
  if (ring == nullptr) {
    ring = new core::SpscByteRing(kRingBytes);  // once per pair and lane, never on a later query
    slot.store(ring, std::memory_order_release);
  }
  return *ring;
}

void HandoffHub::Register(uint32_t shard, int ring_fd, const core::Operation* wake_op) {
  shards_[shard].wake_op = wake_op;
  shards_[shard].ring_fd.store(ring_fd, std::memory_order_release);
}

void HandoffHub::Unregister(uint32_t shard) {
  shards_[shard].ring_fd.store(-1, std::memory_order_release);
}

}  // namespace dotproxy::upstream
