#include "proxy/handoff_relay.h"

#include <cerrno>
#include <cstring>
#include <type_traits>

#include "base/log.h"
#include "dns/message.h"

namespace dotproxy::proxy {
namespace {

// A handed-in query's slot keeps its origin in client_index: shard << 16 | slot.
constexpr uint32_t kSlotBits = 16;
static_assert(config::kQuerySlotsPerShard <= (1u << kSlotBits));
static_assert(config::kMaxWorkers <= (1u << (32 - kSlotBits)));
static_assert(std::is_trivially_copyable_v<dns::QueryInfo>);

template <typename T>
std::span<const uint8_t> BytesOf(const T& value) {
  return {reinterpret_cast<const uint8_t*>(&value), sizeof(value)};
}

}  // namespace

HandoffRelay::HandoffRelay(core::Reactor& reactor, upstream::HandoffHub& hub, QueryTable& table,
                           metrics::ShardCounters& counters, uint32_t shard_id)
    : reactor_(reactor),
      hub_(hub),
      table_(table),
      counters_(counters),
      shard_id_(shard_id),
      failed_ops_(hub.shard_count()),
      needs_wake_(hub.shard_count(), false) {
  wake_list_.reserve(hub.shard_count());
}

HandoffRelay::~HandoffRelay() { hub_.Unregister(shard_id_); }

void HandoffRelay::Init() {
  wake_op_.handler = reactor_.OnCompletion<&HandoffRelay::OnWake>(this);
  const core::HandlerId failed = reactor_.OnCompletion<&HandoffRelay::OnWakeFailed>(this);
  for (uint32_t to = 0; to < failed_ops_.size(); ++to) {
    failed_ops_[to].handler = failed;
    failed_ops_[to].index = to;
  }
  reactor_.OnFlush<&HandoffRelay::Flush>(this);
  hub_.Register(shard_id_, reactor_.ring_fd(), &wake_op_);
}

void HandoffRelay::Start() {
  hub_.MarkStarted();
  DrainAll();
}

// ---- Origin ---------------------------------------------------------------------------------

bool HandoffRelay::HandOff(uint32_t slot, uint32_t to, int32_t server) {
  const QueryTable::Slot& s = table_.slot(slot);
  const QueryRecord header{slot, s.generation, server, 0, s.deadline_ms, s.info};
  MarkWake(to);
  if (!hub_.Producer(upstream::HandoffHub::Lane::kQueries, shard_id_, to)
           .TryPush(BytesOf(header), s.query)) {
    ++counters_.handoff_ring_full;
    waiting_.push_back({slot, s.generation});
    return false;
  }
  return true;
}

// ---- Owner ----------------------------------------------------------------------------------

void HandoffRelay::Deliver(uint32_t slot, const uint8_t* response, size_t len) {
  QueryTable::Slot& s = table_.slot(slot);
  const uint32_t to = s.client_index >> kSlotBits;
  const AnswerRecord header{s.client_index & ((1u << kSlotBits) - 1), s.client_generation};
  if (PushAnswer(to, header, response, len)) {
    table_.Release(slot);
    return;
  }
  // No room: the slot keeps the answer (its query is no longer needed) until the next flush.
  s.query.assign(response, response + len);
  unanswered_.push_back(slot);
}

bool HandoffRelay::PushAnswer(uint32_t to, const AnswerRecord& header, const uint8_t* msg,
                              size_t len) {
  MarkWake(to);
  return hub_.Producer(upstream::HandoffHub::Lane::kAnswers, shard_id_, to)
      .TryPush(BytesOf(header), {msg, len});
}

bool HandoffRelay::TakeQuery(uint32_t from, std::span<const uint8_t> record) {
  QueryRecord header;
  memcpy(&header, record.data(), sizeof(header));
  const std::span<const uint8_t> query = record.subspan(sizeof(header));
  const int32_t slot = table_.AcquireHandedIn(this);
  if (slot < 0) {
    // Our table is full: declined at once (an empty answer), and the origin tries elsewhere
    // within its retries (never lost).
    ++counters_.handoff_declined;
    return PushAnswer(from, {header.slot, header.generation}, query.data(), 0);
  }
  ++counters_.handed_in;
  QueryTable::Slot& s = table_.slot(slot);
  s.query.assign(query.begin(), query.end());
  s.info = header.info;
  s.deadline_ms = header.deadline_ms;  // the origin's deadline rules (one monotonic clock)
  s.client_index = from << kSlotBits | header.slot;
  s.client_generation = header.generation;
  s.pinned_server = header.server;
  table_.Start(static_cast<uint32_t>(slot), dns::LocalAnswer::kForward);
  return true;
}

// ---- Both -----------------------------------------------------------------------------------

void HandoffRelay::OnWake(const core::Operation& /*op*/, const io_uring_cqe& /*cqe*/) {
  // Cleared before draining: whatever is written after this wakes us again.
  hub_.ClearWake(shard_id_);
  DrainAll();
}

void HandoffRelay::OnWakeFailed(const core::Operation& op, const io_uring_cqe& cqe) {
  // Only failed MSG_RINGs complete here (successes post no CQE). A ring that is gone
  // (shutdown) is not woken again; a full CQ ring (-EOVERFLOW) is, at the next flush.
  hub_.ReleaseWake(op.index);
  if (cqe.res != -EBADF && cqe.res != -EBADFD) {
    LOG_EVERY_N_SEC(kWarn, 1, "shard %u: waking shard %u failed: %s; retrying", shard_id_,
                    op.index, strerror(-cqe.res));
    MarkWake(op.index);
  }
}

void HandoffRelay::DrainAll() {
  for (uint32_t from = 0; from < hub_.shard_count(); ++from) {
    if (from != shard_id_) {
      DrainAnswers(from);
      has_stalled_queries_ |= !DrainQueries(from);
    }
  }
}

bool HandoffRelay::DrainQueries(uint32_t from) {
  core::SpscByteRing* ring = hub_.Consumer(upstream::HandoffHub::Lane::kQueries, from, shard_id_);
  if (ring == nullptr) {
    return true;
  }
  for (std::span<const uint8_t> record = ring->Peek(); !record.empty(); record = ring->Peek()) {
    if (!TakeQuery(from, record)) {
      return false;  // left in the ring: taken again once our answers have room
    }
    ring->Pop();
  }
  return true;
}

void HandoffRelay::DrainAnswers(uint32_t from) {
  core::SpscByteRing* ring = hub_.Consumer(upstream::HandoffHub::Lane::kAnswers, from, shard_id_);
  if (ring == nullptr) {
    return;
  }
  for (std::span<const uint8_t> record = ring->Peek(); !record.empty(); record = ring->Peek()) {
    AnswerRecord header;
    memcpy(&header, record.data(), sizeof(header));
    const std::span<const uint8_t> msg = record.subspan(sizeof(header));
    table_.OnHandoffAnswer(header.slot, header.generation, from, msg.data(), msg.size());
    ring->Pop();
  }
}

void HandoffRelay::MarkWake(uint32_t shard) {
  if (!needs_wake_[shard]) {
    needs_wake_[shard] = true;
    wake_list_.push_back(shard);
  }
}

bool HandoffRelay::Flush() {
  bool did_work = false;
  // Owner: answers that found their ring full.
  for (size_t n = unanswered_.size(); n > 0; --n) {
    const uint32_t slot = unanswered_.front();
    unanswered_.pop_front();
    QueryTable::Slot& s = table_.slot(slot);
    const AnswerRecord header{s.client_index & ((1u << kSlotBits) - 1), s.client_generation};
    if (PushAnswer(s.client_index >> kSlotBits, header, s.query.data(), s.query.size())) {
      table_.Release(slot);
      did_work = true;
    } else {
      unanswered_.push_back(slot);
    }
  }
  if (has_stalled_queries_ && unanswered_.empty()) {
    has_stalled_queries_ = false;
    DrainAll();
    did_work = true;
  }
  // Origin: queries whose ring was full go again (handed off, or sent here if we now can).
  if (!waiting_.empty()) {
    std::deque<Waiting> retry;
    retry.swap(waiting_);
    for (const Waiting& w : retry) {
      if (table_.slot(w.slot).generation == w.generation) {
        table_.OnBacklogReady(w.slot);
      }
    }
    did_work |= waiting_.size() < retry.size();
  }
  // One wake-up per destination per iteration, none while one is pending.
  for (uint32_t to : wake_list_) {
    needs_wake_[to] = false;
    const int fd = hub_.ring_fd(to);
    if (fd >= 0 && hub_.ClaimWake(to)) {
      reactor_.SendWake(fd, hub_.wake_op(to), &failed_ops_[to]);
    }
  }
  wake_list_.clear();
  return did_work;
}

}  // namespace dotproxy::proxy
