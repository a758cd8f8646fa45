#include "upstream/counters.h"

namespace dotproxy::upstream {

UpstreamCounters::~UpstreamCounters() {
  for (std::atomic<Chunk*>& slot : chunks_) {
    Chunk* chunk = slot.load(std::memory_order_acquire);
    if (chunk == nullptr) {
      continue;
    }
    for (std::atomic<ServerCounters*>& block : chunk->blocks) {
      delete block.load(std::memory_order_acquire);
    }
    delete chunk;
  }
}

void UpstreamCounters::Reserve(uint32_t id) {
  if (id >= kMaxServerIds) {
    return;  // counts into `spare`
  }
  std::atomic<Chunk*>& slot = chunks_[id / kIdsPerChunk];
  Chunk* chunk = slot.load(std::memory_order_acquire);
  if (chunk == nullptr) {
    chunk = new Chunk();
    slot.store(chunk, std::memory_order_release);
  }
  std::atomic<ServerCounters*>& block = chunk->blocks[id % kIdsPerChunk];
  if (block.load(std::memory_order_acquire) == nullptr) {
    auto* fresh = new ServerCounters();
    fresh->is_up.Set(1);
    block.store(fresh, std::memory_order_release);
  }
  if (id >= id_limit_.load(std::memory_order_relaxed)) {
    id_limit_.store(id + 1, std::memory_order_release);
  }
}

ServerCounters* UpstreamCounters::Lookup(uint32_t id) const {
  if (id >= kMaxServerIds) {
    return nullptr;
  }
  const Chunk* chunk = chunks_[id / kIdsPerChunk].load(std::memory_order_acquire);
  return chunk == nullptr ? nullptr
                          : chunk->blocks[id % kIdsPerChunk].load(std::memory_order_acquire);
}

const ServerCounters* UpstreamCounters::Find(uint32_t id) const { return Lookup(id); }

ServerCounters& UpstreamCounters::Block(uint32_t id) {
  ServerCounters* block = Lookup(id);
  return block == nullptr ? spare : *block;
}

}  // namespace dotproxy::upstream
