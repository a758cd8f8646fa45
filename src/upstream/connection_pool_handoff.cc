// ConnectionPool's side of the hand-off between shards (issue 15): the spread of
// connection_pool_size over the shards, the directory, the views of servers this shard holds no
// ready connection to, and the fallback that connects locally when no shard holds one.
#include <algorithm>

#include "base/log.h"
#include "upstream/connection_pool.h"

namespace dotproxy::upstream {

uint32_t ConnectionPool::PoolShare(uint32_t server, const config::ServerConfig& sc) const {
  // connection_pool_size is the server's total over all shards. Connection k of server s lives
  // on shard (s + k) mod shards, so with servers × pool >= shards every shard owns one.
  const uint32_t pool = sc.connection_pool_size;
  const uint32_t distance = (shard_id_ + shard_count_ - server % shard_count_) % shard_count_;
  const uint32_t share = pool / shard_count_ + (distance < pool % shard_count_ ? 1 : 0);
  // Without a hub (a single shard, or a caller that does not hand off) every shard needs one.
  return hub_ == nullptr ? std::max<uint32_t>(share, 1) : share;
}

void ConnectionPool::PublishDirectory(uint32_t server, uint32_t ready, uint32_t live) {
  const bool is_down = servers_[server].health.is_down();
  const uint32_t key = std::min<uint32_t>(ready, 0xFFFF) | std::min<uint32_t>(live, 0x7FFF) << 16 |
                       (is_down ? 1u << 31 : 0);
  if (published_[server] != key) {
    published_[server] = key;
    hub_->Publish(server, shard_id_, {ready, live, is_down});
  }
}

void ConnectionPool::FinishViews() {
  // A server counts as usable when this shard has an established connection to it with a free
  // ID, or (with a hub) when it has no ready connection of its own but another shard has one:
  // the query is handed to that shard. Only when no server that is up is usable (start-up, a
  // reconnect) do connections still being set up count: queries wait on them rather than fail,
  // but never while a ready server could answer now (a black-holed server would hold them
  // until read_timeout).
  views_iteration_ = reactor_.iterations();
  bool any_usable = false;
  bool has_remote = false;
  for (uint32_t s = 0; s < servers_.size(); ++s) {
    bool is_usable = has_usable_[s];
    bool is_down = servers_[s].health.is_down();
    bool is_pending = has_pending_[s];
    if (hub_ != nullptr && !has_ready_[s]) {
      has_remote = true;
      const HandoffHub::Summary other = hub_->Summarize(s, shard_id_);
      is_usable = other.any_ready;
      // A ready connection anywhere overrides a verdict of ours (our probe may still be setting
      // up): the query is handed to that shard rather than failed here.
      is_down = is_down && !other.any_ready;
      if (!has_live_[s]) {
        // No connection of our own: the shards that have one say whether the server is down.
        is_down = is_down || (other.any_down && !other.any_ready && !other.any_live);
        // A query waits at another shard's connection being set up, or we connect ourselves.
        is_pending = !is_down;
      }
    }
    views_[s].is_usable = is_usable;
    views_[s].is_down = is_down;
    view_pending_[s] = is_pending;
    any_usable |= is_usable && !is_down;
  }
  has_remote_servers_ = has_remote;
  if (!any_usable) {
    for (uint32_t s = 0; s < servers_.size(); ++s) {
      views_[s].is_usable = view_pending_[s];
    }
  }
}

bool ConnectionPool::RouteWithoutReady(uint32_t server, bool may_hand_off, int32_t* ci,
                                       Attempt* attempt) {
  // A ready connection on another shard first: the query goes out now rather than wait for a
  // handshake of ours.
  int32_t owner = may_hand_off ? hub_->FindOwner(server, shard_id_, /*ready_only=*/true) : -1;
  if (owner < 0 && *ci >= 0) {
    return false;  // our own connection being set up takes it
  }
  if (owner < 0 && !hub_->Summarize(server, shard_id_).any_live) {
    if (!hub_->all_started() && may_hand_off && server % shard_count_ != shard_id_) {
      // Start-up: shard (server mod shards) always owns one of its connections and connects
      // as soon as it is set up; the query waits in its ring until then.
      owner = static_cast<int32_t>(server % shard_count_);
    } else {
      if (!servers_[server].health.is_down()) {
        *ci = ConnectLocally(server);
      }
      return false;
    }
  }
  if (owner < 0 && may_hand_off) {
    owner = hub_->FindOwner(server, shard_id_, /*ready_only=*/false);
  }
  if (owner < 0) {
    return false;
  }
  attempt->server = static_cast<int32_t>(server);
  attempt->conn = static_cast<uint32_t>(owner);
  return true;
}

int32_t ConnectionPool::ConnectLocally(uint32_t server) {
  Server& s = servers_[server];
  if (is_shutting_down_ || LiveConnections(server) > 0) {
    return -1;
  }
  // A connection the adaptive pool parked (idle, no reconnect timer) is used first; ours that
  // are reconnecting after a backoff are waited for: no extra connection then.
  int32_t parked = -1;
  for (uint32_t ci : s.conns) {
    Connection& c = *conns_[ci];
    if (c.state() == Connection::State::kIdle && !c.timer().is_armed) {
      parked = static_cast<int32_t>(ci);
      break;
    }
  }
  if (parked < 0 && !s.conns.empty()) {
    return -1;
  }
  LOG_EVERY_N_SEC(kInfo, 1, "upstream %s: no shard holds a connection; shard %u connects itself",
                  s.config->addr_text, shard_id_);
  uint32_t ci = 0;
  if (parked >= 0) {
    ci = static_cast<uint32_t>(parked);
    s.target_connections = std::max<uint32_t>(s.target_connections, 1);
    CountersOf(server).target_connections.Set(s.target_connections);
  } else {
    ci = SpareOrNewConnection(server);
    conns_[ci]->SetIdle();
    s.conns.push_back(ci);
  }
  Connect(ci);
  RefreshServerViews();
  return conns_[ci]->CanAccept() ? static_cast<int32_t>(ci) : -1;
}

}  // namespace dotproxy::upstream
