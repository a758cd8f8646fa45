// ConnectionPool, adaptive part: a server that caps its TLS/TCP clients (Unbound's
// incoming-num-tcp, 10 per thread by default) closes the connections beyond its cap right after
// the handshake, or after a very short idle time. Reconnecting at once would loop (issue 15), so
// the pool lowers the server's target_connections in this shard to what the server keeps open,
// parks the rest, and tries one more connection after a long, doubling back-off, so that a raised
// cap is found again. The server is never marked down for it, and the queries on a closed
// connection are re-sent (FailConnection's usual path), without counting towards quarantine.
#include <algorithm>

#include "base/log.h"
#include "upstream/connection_pool.h"

namespace dotproxy::upstream {
namespace {

// A connection the server closes this soon after its handshake, before any answer, is fresh.
constexpr int64_t kFreshLifetimeMs = 1000;
// Unbound gives connections accepted above half its cap an idle timeout of 200-300 ms; a normal
// idle close (Cloudflare ~10 s, our own stale_timeout) is far longer.
constexpr int64_t kShortIdleMs = 500;
// Cap closes this close together make a streak: the replacement backs off longer, and a shard
// whose last connection was capped backlogs its queries meanwhile.
constexpr int64_t kCapWindowMs = 10'000;
// Trying one more connection: first after this, doubling while the trials are closed too.
constexpr int64_t kRegrowBaseMs = 10'000;
constexpr int64_t kRegrowMaxMs = 600'000;

}  // namespace

bool ConnectionPool::IsCapClose(const Connection& c, Cause cause, int64_t now_ms) const {
  if (c.is_graceful_close() || servers_[c.server()].health.is_down()) {
    return false;
  }
  if (cause == Cause::kStalled) {
    return true;
  }
  if (cause != Cause::kServerClosed || !c.is_ready()) {
    return false;
  }
  const bool is_fresh = !c.has_answered && now_ms - c.ready_since_ms < kFreshLifetimeMs;
  // Closed with a query in flight is not a cap: the query may have caused it (issue 9).
  const bool is_short_idle =
      c.has_answered && c.ids().in_use() == 0 && now_ms - c.last_used_ms < kShortIdleMs;
  return is_fresh || is_short_idle;
}

ConnectionPool::Cause ConnectionPool::SetUpTimeoutCause(const Connection& c) const {
  for (uint32_t ci : servers_[c.server()].conns) {
    if (ci != c.index() && conns_[ci]->is_ready()) {
      return Cause::kStalled;
    }
  }
  // A shard with one connection has no second one of its own to tell it the server works; a
  // ready connection of another shard (the hub's directory) does as well.
  if (hub_ != nullptr && hub_->Summarize(c.server(), shard_id_).any_ready) {
    return Cause::kStalled;
  }
  return Cause::kOurs;
}

uint32_t ConnectionPool::LiveConnections(uint32_t server) const {
  uint32_t live = 0;
  for (uint32_t ci : servers_[server].conns) {
    live += conns_[ci]->is_alive() ? 1 : 0;
  }
  return live;
}

uint32_t ConnectionPool::OnCapClose(const Connection& c, Cause cause, int64_t now_ms) {
  const uint32_t server = c.server();
  Server& s = servers_[server];
  ++counters_.cap_closed;
  ++CountersOf(server).cap_closed;
  const bool is_repeated = s.last_cap_close_ms >= 0 && now_ms - s.last_cap_close_ms < kCapWindowMs;
  s.cap_streak = is_repeated ? s.cap_streak + 1 : 1;
  s.last_cap_close_ms = now_ms;
  // What the server keeps open: this shard's other established connections to it.
  uint32_t kept = 0;
  for (uint32_t ci : s.conns) {
    kept += conns_[ci]->is_ready() ? 1 : 0;
  }
  // A shard may give up its last connection only while another shard holds a ready one to hand
  // its queries to; otherwise it keeps one, so a server that keeps nothing open still fails
  // queries over to another server through the normal failure path.
  const uint32_t min_target =
      hub_ != nullptr && hub_->Summarize(server, shard_id_).any_ready ? 0 : 1;
  const uint32_t target = std::max(kept, min_target);
  const bool is_conclusive = c.is_cap_replacement || s.is_regrowing || cause == Cause::kStalled;
  if (is_conclusive && target < s.target_connections) {
    s.regrow_backoff_ms = s.is_regrowing
                              ? std::min(kRegrowMaxMs, std::max(kRegrowBaseMs, 2 * s.regrow_backoff_ms))
                              : kRegrowBaseMs;
    s.is_regrowing = false;
    s.target_connections = target;
    CountersOf(server).target_connections.Set(target);
    if (!s.has_logged_cap) {
      s.has_logged_cap = true;
      LOG(kWarn,
          "upstream %s: closes new connections (a connection limit, such as unbound's "
          "incoming-num-tcp): shard %u now keeps %u connection(s) to it, trying one more in %ld s",
          s.config->addr_text, shard_id_, target, s.regrow_backoff_ms / 1000);
    } else {
      LOG(kDebug, "upstream %s: still capped: shard %u keeps %u connection(s), next try in %ld s",
          s.config->addr_text, shard_id_, target, s.regrow_backoff_ms / 1000);
    }
    reactor_.timers().Schedule(&s.regrow_timer, now_ms + s.regrow_backoff_ms);
  }
  // At most 1.6 s: queries wait for the shard's last connection (see IsCapBackingOff).
  return std::min<uint32_t>(s.cap_streak, 4);
}

bool ConnectionPool::IsCapBackingOff(uint32_t server) const {
  const Server& s = servers_[server];
  return s.last_cap_close_ms >= 0 && s.target_connections > 0 && !s.health.is_down() &&
         reactor_.now_ms() - s.last_cap_close_ms < kCapWindowMs && LiveConnections(server) == 0;
}

void ConnectionPool::ConnectUpToTarget(uint32_t server) {
  Server& s = servers_[server];
  if (s.health.is_down() || is_shutting_down_) {
    return;  // a down server is reconnected by its probe timer only
  }
  uint32_t live = LiveConnections(server);
  for (uint32_t ci : s.conns) {
    if (live >= s.target_connections) {
      break;
    }
    Connection& c = *conns_[ci];
    if (c.state() == Connection::State::kIdle && !c.timer().is_armed) {
      Connect(ci);
      ++live;
    }
  }
}

void ConnectionPool::OnRegrowTimer(core::Timer* timer) {
  Server& s = *static_cast<Server*>(timer->owner);
  const uint32_t server = static_cast<uint32_t>(&s - servers_.data());
  const uint32_t share = PoolShare(server, *s.config);
  if (is_shutting_down_ || s.target_connections >= share) {
    return;
  }
  // One more connection on trial: a cap close of it lowers the target again and doubles the wait.
  ++s.target_connections;
  CountersOf(server).target_connections.Set(s.target_connections);
  s.is_regrowing = true;
  LOG(kDebug, "upstream %s: shard %u tries %u connection(s)", s.config->addr_text, shard_id_,
      s.target_connections);
  ConnectUpToTarget(server);
  RefreshServerViews();
  if (s.target_connections < share) {
    reactor_.timers().Schedule(&s.regrow_timer, reactor_.now_ms() + s.regrow_backoff_ms);
  }
}

void ConnectionPool::ResetTarget(uint32_t server) {
  Server& s = servers_[server];
  s.regrow_timer.owner = &s;
  s.regrow_timer.kind = regrow_timer_kind_;
  reactor_.timers().Cancel(&s.regrow_timer);
  s.target_connections = PoolShare(server, *s.config);
  s.cap_streak = 0;
  s.last_cap_close_ms = -1;
  s.is_regrowing = false;
  CountersOf(server).target_connections.Set(s.target_connections);
}

}  // namespace dotproxy::upstream
