// File: proxy/handoff_relay.h
//
// HandoffRelay carries queries between shards (issue 15). A shard whose pool holds no ready
// connection to the server the balancer picked hands the query to a shard that does; that
// shard sends it on its own connection, runs the retries, timeouts and SERVFAIL as for any of
// its queries, and hands the answer back. The client stays with the shard that received it:
// its slot waits in that shard's QueryTable until the answer or its own deadline.
//
//   origin shard                              owning shard
//   QueryTable::Forward → pool: kHandOff
//   HandOff(slot, to, server) ── query ring ──▶ OnWake → AcquireHandedIn → Start (pinned server)
//                                               ... upstream answer → Deliver (this ClientSide)
//   OnWake → QueryTable::OnHandoffAnswer ◀── answer ring ──
//
// The rings are the hub's SpscByteRings (one writer, one reader, fixed size). After writing,
// the producer marks the destination; its end-of-iteration flush hook sends at most one
// IORING_OP_MSG_RING per destination, none while the last one is still pending. A full ring
// never loses a query: the origin keeps it queued and tries again, the owner keeps an answer
// in its slot until there is room. An owner that cannot send a query (no usable connection, or
// its table is full) answers with an empty message; the origin retries it as a lost attempt.
#ifndef DOTPROXY_PROXY_HANDOFF_RELAY_H_
#define DOTPROXY_PROXY_HANDOFF_RELAY_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "core/reactor.h"
#include "metrics/counters.h"
#include "proxy/query_table.h"
#include "upstream/handoff_hub.h"

namespace dotproxy::proxy {

class HandoffRelay final : public ClientSide {
 public:
  HandoffRelay(core::Reactor& reactor, upstream::HandoffHub& hub, QueryTable& table,
               metrics::ShardCounters& counters, uint32_t shard_id);
  ~HandoffRelay() override;
  HandoffRelay(const HandoffRelay&) = delete;
  HandoffRelay& operator=(const HandoffRelay&) = delete;

  // Registers the wake-up handler and flush hook, then tells the hub this shard can receive.
  void Init();
  // Once the shard is set up (its pool too): takes what other shards handed over meanwhile.
  void Start();

  // Origin: writes the query of `slot` into the ring to shard `to`, for `server`. False: the
  // ring is full; the slot is queued here and handed again (or sent locally) at a later flush.
  bool HandOff(uint32_t slot, uint32_t to, int32_t server);

  // Owner: the answer (or SERVFAIL) for a query handed in; goes back to its shard. An empty one
  // (len 0) declines the query: the origin sends it again elsewhere (QueryTable::Decline).
  void Deliver(uint32_t slot, const uint8_t* response, size_t len) override;

 private:
  // A query on the wire between shards (followed by its bytes).
  struct QueryRecord {
    uint32_t slot;
    uint32_t generation;
    int32_t server;
    uint32_t unused;
    int64_t deadline_ms;
    dns::QueryInfo info;
  };
  // An answer on the way back (followed by its bytes).
  struct AnswerRecord {
    uint32_t slot;
    uint32_t generation;
  };

  void OnWake(const core::Operation& op, const io_uring_cqe& cqe);
  void OnWakeFailed(const core::Operation& op, const io_uring_cqe& cqe);
  bool Flush();
  // Takes what shard `from` wrote; false when an answer could not be written (stalled).
  bool DrainQueries(uint32_t from);
  void DrainAnswers(uint32_t from);
  void DrainAll();
  bool TakeQuery(uint32_t from, std::span<const uint8_t> record);
  bool PushAnswer(uint32_t to, const AnswerRecord& header, const uint8_t* msg, size_t len);
  void MarkWake(uint32_t shard);

  core::Reactor& reactor_;
  upstream::HandoffHub& hub_;
  QueryTable& table_;
  metrics::ShardCounters& counters_;
  const uint32_t shard_id_;
  core::Operation wake_op_;                  // carried by the CQEs other shards post here
  std::vector<core::Operation> failed_ops_;  // per destination: a MSG_RING that failed
  std::vector<bool> needs_wake_;             // per destination: written since the last wake
  std::vector<uint32_t> wake_list_;          // destinations with needs_wake_ set
  struct Waiting {
    uint32_t slot;
    uint32_t generation;
  };
  std::deque<Waiting> waiting_;      // origin: queries whose ring was full
  std::deque<uint32_t> unanswered_;  // owner: slots whose answer found the ring full
  bool has_stalled_queries_ = false;  // owner: left queries in a ring (no room to answer)
};

}  // namespace dotproxy::proxy

#endif  // DOTPROXY_PROXY_HANDOFF_RELAY_H_
