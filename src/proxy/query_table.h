// File: proxy/query_table.h
//
// QueryTable holds one shard's client queries from arrival until their answer has been handed
// to the frontend that received them: a fixed table of slots, each with the query bytes, its
// deadline (upstream.query_timeout) and its upstream attempts. It sends queries through the
// upstream::ConnectionPool, sends a hedged retry when an attempt outlives its server's
// read_timeout, re-sends queries whose connection was lost, matches answers (RFC 7766 §7) and
// answers SERVFAIL when the deadline passes or no server is up.
//
//   int32_t slot = table.Acquire(this);          // a frontend, on a query
//   table.slot(slot).info = ...; .query = ...;   // fill in, then
//   table.Start(slot);
//   ... later ClientSide::Deliver(slot, answer) on the frontend, which calls table.Release(slot)
//   once it no longer needs the slot (UDP: when its reply has been sent).
#ifndef DOTPROXY_PROXY_QUERY_TABLE_H_
#define DOTPROXY_PROXY_QUERY_TABLE_H_

#include <cstdint>
#include <vector>

#include "base/ip_prefix.h"
#include "config/config.h"
#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "dns/message.h"
#include "dns/query_checks.h"
#include "metrics/counters.h"
#include "proxy/client_limits.h"
#include "upstream/connection_pool.h"

namespace dotproxy::proxy {

// A frontend: where a slot's answer goes.
class ClientSide {
 public:
  virtual ~ClientSide() = default;
  // The answer (or a SERVFAIL) for `slot`, client ID not yet restored. The frontend calls
  // QueryTable::Release(slot) when done with the slot.
  virtual void Deliver(uint32_t slot, const uint8_t* response, size_t len) = 0;
};

class HandoffRelay;

class QueryTable final : public upstream::QueryOwner {
 public:
  // upstream_conn of an attempt handed to another shard: this flag | that shard.
  static constexpr uint32_t kHandedOff = 0x80000000u;
  static constexpr uint8_t kMaxLiveAttempts = 2;
  // Acquire's failures.
  static constexpr int32_t kTableFull = -1;
  static constexpr int32_t kOverShare = -2;  // the client holds listener.max_queries_per_client

  // One client query from arrival until its answer has been delivered.
  struct Slot {
    enum class State : uint8_t { kFree, kWaiting, kReplying };
    State state = State::kFree;
    uint8_t attempts = 0;       // upstream sends so far
    uint8_t live = 0;           // attempts in flight: attempt[0..live)
    bool is_queued = false;     // in a server's backlog (or the hand-off queue), waiting
    bool is_handed_in = false;  // another shard's query (its client is the HandoffRelay)
    int32_t pinned_server = -1;  // handed in: the server the other shard chose
    uint8_t lost = 0;           // attempts lost with a connection the server closed
    uint32_t generation = 0;
    ClientSide* client = nullptr;
    uint32_t client_index = 0;  // the frontend's own reference (TCP: connection index...)
    uint32_t client_generation = 0;
    base::IpAddress source;  // the client's address, for its share of the table
    // A retry after an attempt timeout does not cancel the slow attempt: whichever answers first
    // wins (the older is dropped when a third is sent).
    uint32_t upstream_conn[kMaxLiveAttempts] = {};
    uint16_t upstream_id[kMaxLiveAttempts] = {};
    int64_t attempt_sent_ns[kMaxLiveAttempts] = {};  // for the server's latency EWMA
    bool attempt_padded[kMaxLiveAttempts] = {};      // the pool added EDNS padding
    int32_t last_server = -1;   // server of the latest attempt
    int64_t deadline_ms = 0;
    int64_t arrival_ns = 0;     // for the round-trip histogram
    dns::QueryInfo info;
    std::vector<uint8_t> query;  // the client's message (client ID in bytes 0-1)
    core::Timer timer;
  };

  QueryTable(core::Reactor& reactor, const config::Config& config,
             metrics::ShardCounters& counters, uint32_t capacity);
  // The pool to send through; set once, before the first Start().
  void set_pool(upstream::ConnectionPool* pool) { pool_ = pool; }
  // The relay to other shards (with more than one shard); set once, before the first Start().
  void set_relay(HandoffRelay* relay) { relay_ = relay; }

  uint32_t capacity() const { return static_cast<uint32_t>(slots_.size()); }
  Slot& slot(uint32_t index) { return slots_[index]; }
  // A free slot for a query of `client` from `source`, its deadline set; kTableFull, or
  // kOverShare when that client already holds its share.
  int32_t Acquire(ClientSide* client, const base::IpAddress& source);
  // A free slot for a query another shard handed in (no client share: that shard counted it),
  // or kTableFull.
  int32_t AcquireHandedIn(ClientSide* relay);
  // The answer (or SERVFAIL) for a query this shard handed to shard `from`: completes the slot
  // when `generation` still matches and it still waits for that shard; else it is dropped. An
  // empty message: that shard declined the query; it is sent again if retries and time are left.
  void OnHandoffAnswer(uint32_t slot, uint32_t generation, uint32_t from, const uint8_t* msg,
                       size_t len);
  // Forwards the query the frontend filled in, or (answer != kForward) answers it locally with
  // the proxy's own NOTIMP, FORMERR, BADVERS or REFUSED (counted), through the same Deliver.
  void Start(uint32_t slot, dns::LocalAnswer answer);
  // Frees a slot after its answer was delivered.
  void Release(uint32_t slot);
  // Slots taken: queries waiting for an answer or whose answer is still being sent.
  uint32_t in_use() const { return capacity() - static_cast<uint32_t>(free_slots_.size()); }
  // Answers SERVFAIL to every query still waiting (shutdown deadline).
  void FailAllWaiting();
  // upstream::QueryOwner
  bool OnResponse(uint32_t slot, uint32_t conn, uint16_t id, const uint8_t* msg, size_t len,
                  int64_t* sent_ns) override;
  void OnAttemptLost(uint32_t slot, uint32_t conn, bool by_server, bool by_cap) override;
  void OnLostAttemptsDone(uint32_t slot) override;
  void OnBacklogReady(uint32_t slot) override;

 private:
  int32_t TakeFreeSlot(ClientSide* client, const base::IpAddress& source, bool is_handed_in);
  void Forward(uint32_t slot, int exclude_server);
  // Records the attempt `attempt` (sent) and arms the slot's timer.
  void AddAttempt(uint32_t slot, const upstream::ConnectionPool::Attempt& attempt,
                  int64_t attempt_timeout_ms);
  void AnswerLocally(uint32_t slot, dns::LocalAnswer answer);
  void OnTimer(core::Timer* timer);
  void Complete(uint32_t slot, const uint8_t* response, size_t len);
  void Fail(uint32_t slot);
  // A handed-in query no connection of this shard can take goes back to its shard (an empty
  // answer), which sends it again elsewhere; never SERVFAIL for what another shard could send.
  void Decline(uint32_t slot);
  // Cancels the timer and every attempt, and hands the answer to the client's frontend.
  void Deliver(uint32_t slot, const uint8_t* response, size_t len);
  void DetachAttempt(uint32_t slot, uint8_t attempt);
  void DetachFromUpstream(uint32_t slot);

  core::Reactor& reactor_;
  const config::Config& config_;
  metrics::ShardCounters& counters_;
  upstream::ConnectionPool* pool_ = nullptr;
  HandoffRelay* relay_ = nullptr;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  ClientShares shares_;           // slots held per client address
  std::vector<uint8_t> scratch_;  // SERVFAIL and local answer assembly
};

}  // namespace dotproxy::proxy

#endif  // DOTPROXY_PROXY_QUERY_TABLE_H_
