// File: upstream/handoff_hub.h
//
// HandoffHub is the only state the shards share on the data path (issue 15). It is created by
// main before the shards and freed after they were joined. It holds:
//
// - the directory: per upstream server × shard one word, written only by that shard (relaxed
//   atomics), read by the others: how many READY and live (connecting, handshaking or ready)
//   connections the shard holds to the server, and whether the shard sees it down;
// - per ordered pair of shards, two SpscByteRings (queries handed from `from` to `to`, answers
//   going back), each created by its producer the first time it hands something over, so only
//   pairs that hand off pay for them (2 × kRingBytes);
// - per shard its io_uring fd, the Operation a wake-up CQE must carry, and a "wake pending" flag,
//   so that a producer sends at most one IORING_OP_MSG_RING per destination until it has drained.
//
// The hub knows nothing of what a record contains: proxy/handoff_relay.cc writes and reads them.
#ifndef DOTPROXY_UPSTREAM_HANDOFF_HUB_H_
#define DOTPROXY_UPSTREAM_HANDOFF_HUB_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "core/operation.h"
#include "core/spsc_ring.h"

namespace dotproxy::upstream {

class HandoffHub {
 public:
  // Bytes of one ring: two 64 KiB messages (the largest DNS message plus a header) always fit.
  static constexpr size_t kRingBytes = 256 * 1024;
  // Servers the directory has room for; a reload beyond this leaves the extra servers without
  // hand-off (their shards connect themselves).
  static constexpr uint32_t kMaxServers = 64;

  // One shard's view of one server, as published in the directory.
  struct Entry {
    uint32_t ready = 0;
    uint32_t live = 0;
    bool is_down = false;
  };
  // What the other shards say of a server.
  struct Summary {
    bool any_ready = false;
    bool any_live = false;
    bool any_down = false;
  };

  explicit HandoffHub(uint32_t shard_count);
  ~HandoffHub();
  HandoffHub(const HandoffHub&) = delete;
  HandoffHub& operator=(const HandoffHub&) = delete;

  uint32_t shard_count() const { return shard_count_; }

  // ---- Directory --------------------------------------------------------------------------
  // Shard `shard` publishes its view of `server` (only that shard calls this for that pair).
  void Publish(uint32_t server, uint32_t shard, const Entry& entry);
  // The other shards' views of `server`.
  Summary Summarize(uint32_t server, uint32_t except_shard) const;
  // A shard other than `from` that holds a READY (else, when `ready_only` is false, a live)
  // connection to `server`, or -1. Different shards pick different owners (from % owners), and
  // one shard keeps picking the same owner while the directory is unchanged.
  int32_t FindOwner(uint32_t server, uint32_t from, bool ready_only) const;

  // ---- Rings -----------------------------------------------------------------------------
  enum class Lane : uint8_t { kQueries, kAnswers };
  // Producer side of the ring from `from` to `to` (created on first use, by the producer).
  core::SpscByteRing& Producer(Lane lane, uint32_t from, uint32_t to);
  // Consumer side, or null while the producer has never written.
  core::SpscByteRing* Consumer(Lane lane, uint32_t from, uint32_t to) const {
    return Slot(lane, from, to).load(std::memory_order_acquire);
  }

  // ---- Wake-ups --------------------------------------------------------------------------
  // Shard `shard` is ready to receive: its ring fd and the Operation (owned by that shard)
  // that its wake-up CQEs carry.
  void Register(uint32_t shard, int ring_fd, const core::Operation* wake_op);
  void Unregister(uint32_t shard);
  // Shard set-up is complete (its pool connects): counted, so that a shard connects itself for
  // lack of a live connection only once every shard had the chance to open its own.
  void MarkStarted() { started_.fetch_add(1, std::memory_order_release); }
  bool all_started() const {
    return started_.load(std::memory_order_acquire) == shard_count_;
  }
  int ring_fd(uint32_t shard) const { return shards_[shard].ring_fd.load(std::memory_order_acquire); }
  const core::Operation* wake_op(uint32_t shard) const { return shards_[shard].wake_op; }
  // Producer, after writing: true when the caller must send the wake-up (none was pending).
  bool ClaimWake(uint32_t shard) { return !shards_[shard].wake_pending.exchange(true); }
  // Consumer, before draining its rings: later writes wake it again.
  // An exchange, not a store: reading the flag synchronizes with the producer's ClaimWake, so the
  // drain that follows sees every record committed before a wake-up that was skipped.
  void ClearWake(uint32_t shard) { shards_[shard].wake_pending.exchange(false); }
  // A wake-up could not be sent (MSG_RING failed): the next producer tries again.
  void ReleaseWake(uint32_t shard) { shards_[shard].wake_pending.store(false); }

 private:
  struct alignas(64) ShardEntry {
    std::atomic<int> ring_fd{-1};
    const core::Operation* wake_op = nullptr;  // written before ring_fd (release)
    std::atomic<bool> wake_pending{false};
  };
  std::atomic<core::SpscByteRing*>& Slot(Lane lane, uint32_t from, uint32_t to) const {
    return rings_[(static_cast<size_t>(lane) * shard_count_ + from) * shard_count_ + to];
  }
  static uint32_t Pack(const Entry& e);
  static Entry Unpack(uint32_t word);

  const uint32_t shard_count_;
  std::atomic<uint32_t> started_{0};
  std::unique_ptr<ShardEntry[]> shards_;
  // [server][shard]: one writer each.
  std::unique_ptr<std::atomic<uint32_t>[]> directory_;
  // [lane][from][to]
  std::unique_ptr<std::atomic<core::SpscByteRing*>[]> rings_;
};

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_HANDOFF_HUB_H_
