#include "proxy/query_table.h"

#include <cstring>
#include <random>

#include "base/check.h"
#include "dns/edns.h"
#include "dns/header.h"
#include "net/send_queue.h"
#include "proxy/handoff_relay.h"

namespace dotproxy::proxy {
namespace {

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

// Connections a query may see the server close under it before it is answered SERVFAIL.
constexpr uint8_t kQuarantineLosses = 2;

// Forgets attempt `i` of `slot`, keeping the others in order (oldest first).
void RemoveAttempt(QueryTable::Slot& slot, uint8_t i) {
  for (; i + 1 < slot.live; ++i) {
    slot.upstream_conn[i] = slot.upstream_conn[i + 1];
    slot.upstream_id[i] = slot.upstream_id[i + 1];
    slot.attempt_sent_ns[i] = slot.attempt_sent_ns[i + 1];
    slot.attempt_padded[i] = slot.attempt_padded[i + 1];
  }
  --slot.live;
}

}  // namespace

QueryTable::QueryTable(core::Reactor& reactor, const config::Config& config,
                       metrics::ShardCounters& counters, uint32_t capacity)
    : reactor_(reactor),
      config_(config),
      counters_(counters),
      slots_(capacity),
      shares_(config.listener.max_queries_per_client, capacity, std::random_device{}()) {
  const uint32_t timer_kind = reactor_.OnTimer<&QueryTable::OnTimer>(this);
  free_slots_.reserve(capacity);
  for (uint32_t i = capacity; i > 0; --i) {
    Slot& slot = slots_[i - 1];
    slot.timer.owner = &slot;
    slot.timer.kind = timer_kind;
    free_slots_.push_back(i - 1);
  }
  scratch_.resize(dns::kMaxMessageSize + 2);
}

int32_t QueryTable::Acquire(ClientSide* client, const base::IpAddress& source) {
  if (free_slots_.empty()) {
    return kTableFull;
  }
  if (!shares_.Acquire(source)) {
    return kOverShare;
  }
  return TakeFreeSlot(client, source, /*is_handed_in=*/false);
}

int32_t QueryTable::AcquireHandedIn(ClientSide* relay) {
  if (free_slots_.empty()) {
    return kTableFull;
  }
  return TakeFreeSlot(relay, base::IpAddress(), /*is_handed_in=*/true);
}

int32_t QueryTable::TakeFreeSlot(ClientSide* client, const base::IpAddress& source,
                                 bool is_handed_in) {
  const uint32_t index = free_slots_.back();
  free_slots_.pop_back();
  Slot& slot = slots_[index];
  slot.state = Slot::State::kWaiting;
  slot.client = client;
  slot.source = source;
  slot.attempts = 0;
  slot.live = 0;
  slot.is_queued = false;
  slot.is_handed_in = is_handed_in;
  slot.pinned_server = -1;
  slot.lost = 0;
  slot.last_server = -1;
  slot.deadline_ms = reactor_.now_ms() + Millis(config_.upstream.query_timeout);
  slot.arrival_ns = reactor_.now_ns();
  counters_.slots_in_use.Set(slots_.size() - free_slots_.size());
  return static_cast<int32_t>(index);
}

void QueryTable::Release(uint32_t index) {
  Slot& slot = slots_[index];
  DCHECK(slot.state != Slot::State::kFree);
  DCHECK(slot.live == 0);
  reactor_.timers().Cancel(&slot.timer);
  slot.state = Slot::State::kFree;
  ++slot.generation;
  if (!slot.is_handed_in) {
    shares_.Release(slot.source);
  }
  net::ReleaseIfLarge(slot.query);
  free_slots_.push_back(index);
  counters_.slots_in_use.Set(slots_.size() - free_slots_.size());
}

void QueryTable::FailAllWaiting() {
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].state == Slot::State::kWaiting) {
      ++counters_.servfail_shutdown;
      slots_[i].is_queued = false;
      Fail(i);
    }
  }
}

void QueryTable::Start(uint32_t index, dns::LocalAnswer answer) {
  if (!slots_[index].is_handed_in) {
    counters_.request_bytes.Record(slots_[index].query.size());
  }
  if (answer == dns::LocalAnswer::kForward) {
    Forward(index, -1);
  } else {
    AnswerLocally(index, answer);
  }
}

void QueryTable::AnswerLocally(uint32_t index, dns::LocalAnswer answer) {
  switch (answer) {
    case dns::LocalAnswer::kForward:
      break;
    case dns::LocalAnswer::kNotImp:
      ++counters_.local_notimp;
      break;
    case dns::LocalAnswer::kFormErr:
      ++counters_.local_formerr;
      break;
    case dns::LocalAnswer::kBadVers:
      ++counters_.local_badvers;
      break;
    case dns::LocalAnswer::kRefused:
      ++counters_.rate_limited_refused;
      break;
  }
  const Slot& slot = slots_[index];
  const size_t n =
      dns::BuildLocalAnswer(slot.query.data(), slot.info, answer, scratch_.data(), scratch_.size());
  Deliver(index, scratch_.data(), n);
}

void QueryTable::Forward(uint32_t index, int exclude_server) {
  Slot& slot = slots_[index];
  upstream::ConnectionPool::Attempt attempt;
  switch (pool_->Send(index, slot.query, exclude_server, &attempt, !slot.is_handed_in,
                      slot.pinned_server)) {
    case upstream::ConnectionPool::SendResult::kSent:
      break;
    case upstream::ConnectionPool::SendResult::kQueued:
      slot.is_queued = true;
      reactor_.timers().Schedule(&slot.timer, slot.deadline_ms);
      return;
    case upstream::ConnectionPool::SendResult::kNoServer:
      if (slot.is_handed_in) {
        Decline(index);
        return;
      }
      ++counters_.servfail_no_upstream;
      Fail(index);
      return;
    case upstream::ConnectionPool::SendResult::kHandOff:
      // Another shard owns the connection: it sends the query and runs its retries; this slot
      // waits for the answer until its own deadline. A full ring keeps the query queued here.
      if (!relay_->HandOff(index, attempt.conn, attempt.server)) {
        slot.is_queued = true;
        reactor_.timers().Schedule(&slot.timer, slot.deadline_ms);
        return;
      }
      ++counters_.handed_off;
      attempt.conn |= kHandedOff;
      attempt.id = 0;
      attempt.is_padded = false;
      AddAttempt(index, attempt, 0);
      return;
  }
  AddAttempt(index, attempt, pool_->attempt_timeout_ms(attempt.server));
}

void QueryTable::AddAttempt(uint32_t index, const upstream::ConnectionPool::Attempt& attempt,
                            int64_t attempt_timeout_ms) {
  Slot& slot = slots_[index];
  if (slot.live == kMaxLiveAttempts) {
    DetachAttempt(index, 0);  // keep the newest attempts
  }
  slot.upstream_conn[slot.live] = attempt.conn;
  slot.upstream_id[slot.live] = attempt.id;
  slot.attempt_sent_ns[slot.live] = reactor_.now_ns();
  slot.attempt_padded[slot.live] = attempt.is_padded;
  ++slot.live;
  slot.last_server = attempt.server;
  ++slot.attempts;
  int64_t expiry = slot.deadline_ms;
  if (attempt_timeout_ms > 0) {
    expiry = std::min(expiry, reactor_.now_ms() + attempt_timeout_ms);
  }
  reactor_.timers().Schedule(&slot.timer, expiry);
}

void QueryTable::DetachAttempt(uint32_t index, uint8_t attempt) {
  Slot& slot = slots_[index];
  DCHECK(attempt < slot.live);
  const uint32_t conn = slot.upstream_conn[attempt];
  const uint16_t id = slot.upstream_id[attempt];
  RemoveAttempt(slot, attempt);
  if ((conn & kHandedOff) == 0) {
    pool_->Release(conn, id);  // a handed-off attempt's late answer is dropped by generation
  }
}

void QueryTable::DetachFromUpstream(uint32_t index) {
  while (slots_[index].live > 0) {
    DetachAttempt(index, slots_[index].live - 1);
  }
}

void QueryTable::Complete(uint32_t index, const uint8_t* response, size_t len) {
  if (!slots_[index].is_handed_in) {  // the shard that received the query counts it
    ++counters_.responses;
    counters_.rtt_us.Record((reactor_.now_ns() - slots_[index].arrival_ns) / 1000);
  }
  Deliver(index, response, len);
}

void QueryTable::Fail(uint32_t index) {
  Slot& slot = slots_[index];
  DetachFromUpstream(index);
  const size_t n = dns::BuildServfail(slot.query.data(), slot.info, scratch_.data(),
                                      scratch_.size());
  Deliver(index, scratch_.data(), n);
}

void QueryTable::Decline(uint32_t index) {
  // A handed-in query this shard has no connection for (its connection to the chosen server was
  // lost, the retry picked a server it does not own, or the server is down here): the shard
  // that received it may reach a server through another owner or itself, within its own retries.
  ++counters_.handoff_declined;
  slots_[index].is_queued = false;
  Deliver(index, scratch_.data(), 0);  // an empty answer: declined
}

void QueryTable::Deliver(uint32_t index, const uint8_t* response, size_t len) {
  Slot& slot = slots_[index];
  reactor_.timers().Cancel(&slot.timer);
  DetachFromUpstream(index);
  slot.state = Slot::State::kReplying;
  if (!slot.is_handed_in) {
    ++counters_.rcodes[len > 3 ? response[3] & 0x0F : 0];
    counters_.response_bytes.Record(len);
  }
  slot.client->Deliver(index, response, len);
}

void QueryTable::OnTimer(core::Timer* timer) {
  const auto index = static_cast<uint32_t>(static_cast<Slot*>(timer->owner) - slots_.data());
  Slot& slot = slots_[index];
  if (slot.state != Slot::State::kWaiting) {
    return;
  }
  if (reactor_.now_ms() >= slot.deadline_ms) {
    ++counters_.servfail_timeout;
    slot.is_queued = false;
    Fail(index);
    return;
  }
  // The latest attempt took longer than the server's read_timeout: send another copy elsewhere
  // (RFC 7766 §6.2.1: queries are idempotent) but keep listening for the slow one.
  if (slot.live > 0 && (slot.upstream_conn[slot.live - 1] & kHandedOff) != 0) {
    // The owning shard runs the retries of a handed-off attempt; ours is only the deadline.
    reactor_.timers().Schedule(&slot.timer, slot.deadline_ms);
    return;
  }
  if (slot.live > 0) {
    const bool has_retries = slot.attempts <= config_.upstream.max_connection_retries;
    // A quarantined query (see OnLostAttemptsDone) keeps the attempt it has but gets no other.
    const bool may_retry = has_retries && slot.lost < kQuarantineLosses;
    const auto verdict = pool_->OnAttemptTimeout(slot.upstream_conn[slot.live - 1], has_retries);
    if (verdict == upstream::ConnectionPool::TimeoutVerdict::kServerDown) {
      // The server's connections were recycled, which re-sent this query if it had no other
      // attempt left; otherwise send it elsewhere now.
      if (slot.state == Slot::State::kWaiting && slot.live == 0 && !slot.is_queued && may_retry) {
        Forward(index, slot.last_server);
      } else if (slot.state == Slot::State::kWaiting) {
        reactor_.timers().Schedule(&slot.timer, slot.deadline_ms);
      }
      return;
    }
    if (may_retry) {
      ++counters_.upstream_retries;
      ++counters_.hedged_retries;
      pool_->CountRetry(slot.last_server);
      if (verdict != upstream::ConnectionPool::TimeoutVerdict::kRecycled) {
        Forward(index, slot.last_server);
      }
      return;
    }
  }
  reactor_.timers().Schedule(&slot.timer, slot.deadline_ms);
}

bool QueryTable::OnResponse(uint32_t index, uint32_t conn, uint16_t id, const uint8_t* msg,
                            size_t len, int64_t* sent_ns) {
  Slot& slot = slots_[index];
  int attempt = -1;
  for (uint8_t i = 0; i < slot.live; ++i) {
    if (slot.upstream_conn[i] == conn && slot.upstream_id[i] == id) {
      attempt = i;
    }
  }
  // RFC 7766 §7: match by ID and question; never hand a client someone else's answer. A message
  // that is not a response (QR=0, say an echo of the query) or answers another opcode is as
  // wrong as one for another question.
  // Issue 9: CD and DO are copied into answers (RFC 4035 §3.1.6, RFC 3225 §3), so a late answer
  // to a query for the same name with other DNSSEC bits is told apart too.
  const uint16_t flag_diff = dns::GetFlags(msg) ^ dns::GetFlags(slot.query.data());
  dns::OptRecord opt;
  const bool is_match =
      slot.state == Slot::State::kWaiting && attempt >= 0 && dns::IsResponse(msg) &&
      (flag_diff & (dns::kOpcodeMask | dns::kFlagCd)) == 0 &&
      dns::ResponseMatchesQuery(slot.query.data(), slot.info, msg, len) &&
      dns::FindOpt(msg, len, &opt) && opt.do_bit == slot.info.do_bit;
  if (!is_match) {
    return false;
  }
  *sent_ns = slot.attempt_sent_ns[attempt];
  ++counters_.answers_by_attempt[std::min(slot.attempts - slot.live + attempt,
                                          metrics::kMaxAttemptOrdinal - 1)];
  if (slot.attempt_padded[attempt]) {
    // The client gets the OPT it would have got without our padding: none if it sent none.
    memcpy(scratch_.data(), msg, len);
    Complete(index, scratch_.data(),
             dns::StripPadding(scratch_.data(), len, /*remove_opt=*/!slot.info.has_opt));
    return true;
  }
  Complete(index, msg, len);
  return true;
}

void QueryTable::OnHandoffAnswer(uint32_t index, uint32_t generation, uint32_t from,
                                 const uint8_t* msg, size_t len) {
  if (index >= slots_.size()) {
    return;
  }
  Slot& slot = slots_[index];
  bool is_waiting = false;
  for (uint8_t i = 0; i < slot.live; ++i) {
    is_waiting |= slot.upstream_conn[i] == (kHandedOff | from);
  }
  if (slot.generation != generation || slot.state != Slot::State::kWaiting || !is_waiting) {
    ++counters_.handoff_late_answers;  // answered or failed here meanwhile: discarded
    return;
  }
  if (len == 0) {
    // Declined: that shard could not send it. Like an attempt lost with its connection, it
    // costs one of our retries, so a query cannot go back and forth until its deadline.
    for (uint8_t i = 0; i < slot.live; ++i) {
      if (slot.upstream_conn[i] == (kHandedOff | from)) {
        RemoveAttempt(slot, i);
        break;
      }
    }
    OnLostAttemptsDone(index);
    return;
  }
  // The owning shard matched the question and took its padding out.
  Complete(index, msg, len);
}

void QueryTable::OnAttemptLost(uint32_t index, uint32_t conn, bool by_server, bool by_cap) {
  Slot& slot = slots_[index];
  if (by_server && slot.lost < kQuarantineLosses) {
    ++slot.lost;
  }
  for (uint8_t i = 0; i < slot.live; ++i) {
    if (slot.upstream_conn[i] == conn) {
      RemoveAttempt(slot, i);
      if (by_cap) {
        --slot.attempts;  // the server's connection cap, not the query: no retry is spent
      }
      return;
    }
  }
}

void QueryTable::OnLostAttemptsDone(uint32_t index) {
  Slot& slot = slots_[index];
  if (slot.state != Slot::State::kWaiting || slot.live > 0 || slot.is_queued) {
    return;  // answered meanwhile, or another attempt is still in flight
  }
  if (slot.lost >= kQuarantineLosses) {
    // Issue 9: a query that was in flight on two connections the server closed (a resolver that
    // resets on queries it rejects) is not sent a third time to break everyone's pipeline.
    ++counters_.upstream.quarantined;
    Fail(index);
    return;
  }
  if (slot.attempts <= config_.upstream.max_connection_retries &&
      reactor_.now_ms() < slot.deadline_ms) {
    ++counters_.upstream_retries;
    pool_->CountRetry(slot.last_server);
    Forward(index, slot.last_server);
  } else {
    ++counters_.servfail_retries;
    Fail(index);
  }
}

void QueryTable::OnBacklogReady(uint32_t index) {
  Slot& slot = slots_[index];
  if (!slot.is_queued || slot.state != Slot::State::kWaiting) {
    return;  // answered or failed while queued
  }
  slot.is_queued = false;
  Forward(index, -1);
}

}  // namespace dotproxy::proxy
