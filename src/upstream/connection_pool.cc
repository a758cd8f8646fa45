#include "upstream/connection_pool.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "config/load_config.h"
#include "dns/header.h"

namespace dotproxy::upstream {
namespace {

// Plaintext read per SSL_read call.
constexpr size_t kPlaintextChunk = 64 * 1024;
// Upstream ciphertext buffers, shared by the shard's connections: 16 KiB holds a full TLS record.
constexpr uint32_t kBufferCount = 128;
constexpr uint32_t kBufferSize = 16 * 1024 + 512;

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

}  // namespace

ConnectionPool::ConnectionPool(core::Reactor& reactor, const config::Config& config,
                               QueryOwner& owner, UpstreamCounters& counters, uint32_t shard_id,
                               uint32_t shard_count, HandoffHub* hub)
    : reactor_(reactor),
      config_(config),
      owner_(owner),
      counters_(counters),
      shard_id_(shard_id),
      shard_count_(shard_count),
      hub_(shard_count > 1 ? hub : nullptr) {}

ConnectionPool::~ConnectionPool() = default;

absl::Status ConnectionPool::Init() {
  handlers_.connect = reactor_.OnCompletion<&ConnectionPool::OnConnectDone>(this);
  handlers_.recv = reactor_.OnCompletion<&ConnectionPool::OnRecvDone>(this);
  handlers_.send = reactor_.OnCompletion<&ConnectionPool::OnSendDone>(this);
  handlers_.timer_kind = reactor_.OnTimer<&ConnectionPool::OnConnectionTimer>(this);
  probe_timer_kind_ = reactor_.OnTimer<&ConnectionPool::OnProbeTimer>(this);
  regrow_timer_kind_ = reactor_.OnTimer<&ConnectionPool::OnRegrowTimer>(this);
  reactor_.OnFlush<&ConnectionPool::Flush>(this);
  ASSIGN_OR_RETURN(buffers_, reactor_.AddBufferRing(kBufferCount, kBufferSize));
  plaintext_.resize(kPlaintextChunk);
  pick_ = PolicyFunction(config_.upstream.load_balancing_policy);
  servers_.resize(config_.upstream.servers.size());
  views_.resize(servers_.size());
  has_pending_.resize(servers_.size());
  has_ready_.resize(servers_.size());
  has_usable_.resize(servers_.size());
  has_live_.resize(servers_.size());
  view_pending_.resize(servers_.size());
  published_.assign(servers_.size(), UINT32_MAX);
  balancer_ = BalancerState(servers_.size(), absl::Uniform<uint64_t>(rng_));
  for (uint32_t s = 0; s < servers_.size(); ++s) {
    RETURN_IF_ERROR(InitServer(s));
  }
  for (Server& server : servers_) {
    for (uint32_t ci : server.conns) {
      Connect(ci);
    }
  }
  RefreshServerViews();
  return absl::OkStatus();
}

absl::Status ConnectionPool::InitServer(uint32_t s) {
  const config::ServerConfig& sc = config_.upstream.servers[s];
  Server& server = servers_[s];
  server.config = &sc;
  server.identity = config::ServerIdentity(sc);
  // A server added back by a reload continues its old counters; its gauges start afresh.
  server.counters = &counters_.Block(sc.metrics_id);
  server.counters->is_up.Set(1);
  server.counters->inflight.Set(0);
  server.counters->backlog.Set(0);
  HealthOptions health;
  health.backoff_initial_ms = Millis(config_.upstream.backoff_initial);
  health.backoff_max_ms = Millis(config_.upstream.backoff_max);
  // One timer pass's worth of timeouts is one piece of evidence (issue 9).
  health.timeout_interval_ms = Millis(sc.read_timeout) > 0 ? Millis(sc.read_timeout) : 1000;
  server.health = ServerHealth(health);
  server.probe_timer.owner = &server;
  server.probe_timer.kind = probe_timer_kind_;
  const bool ktls = sc.ktls == config::Ktls::kAuto || sc.ktls == config::Ktls::kOn;
  auto tls = tls::ClientContext::Create({sc.server_name, sc.ca_file, ktls});
  if (!tls.ok()) {
    return absl::Status(tls.status().code(),
                        absl::StrCat("upstream ", sc.addr_text, ": ", tls.status().message()));
  }
  server.tls = std::move(tls).value();
  server.tls->set_spki_pins(sc.spki_pins);
  const uint32_t share = PoolShare(s, sc);
  for (uint32_t i = 0; i < share; ++i) {
    server.conns.push_back(NewConnection(s));
  }
  ResetTarget(s);
  return absl::OkStatus();
}

uint32_t ConnectionPool::NewConnection(uint32_t server) {
  const uint32_t index = static_cast<uint32_t>(conns_.size());
  conns_.push_back(std::make_unique<Connection>(index, server,
                                                servers_[server].config->max_inflight, handlers_));
  return index;
}

uint32_t ConnectionPool::SpareOrNewConnection(uint32_t server) {
  std::vector<uint32_t>& spare = servers_[server].spare;
  if (spare.empty()) {
    return NewConnection(server);
  }
  const uint32_t index = spare.back();
  spare.pop_back();
  return index;
}

// ---- Queries --------------------------------------------------------------------------------

ConnectionPool::SendResult ConnectionPool::Send(uint32_t slot, std::span<const uint8_t> query,
                                                int exclude_server, Attempt* attempt,
                                                bool may_hand_off, int pinned_server) {
  const int64_t now_ms = reactor_.now_ms();
  if (has_remote_servers_ && views_iteration_ != reactor_.iterations()) {
    FinishViews();  // other shards' connections change without telling us: once per iteration
  }
  if (config_.upstream.load_balancing_policy == config::Policy::kLeastOutstanding) {
    // A latency is trusted for a second: a server that lost every comparison since then counts
    // as unmeasured again, is tried, and re-measured (otherwise one slow answer, or the time
    // before an outage, could keep it out for good).
    for (uint32_t s = 0; s < servers_.size(); ++s) {
      if (now_ms - servers_[s].health.last_response_ms() > HealthOptions().latency_trust_ms) {
        views_[s].ewma_latency_us = 0;
      }
    }
  }
  const bool is_pinned = pinned_server >= 0 && pinned_server != exclude_server &&
                         static_cast<size_t>(pinned_server) < servers_.size() &&
                         has_usable_[pinned_server];
  const int server = is_pinned ? pinned_server : pick_(balancer_, views_, exclude_server);
  int32_t ci = server < 0 ? -1 : PickConnection(static_cast<uint32_t>(server));
  if (hub_ != nullptr && server >= 0 && !has_ready_[server] &&
      RouteWithoutReady(static_cast<uint32_t>(server), may_hand_off, &ci, attempt)) {
    return SendResult::kHandOff;
  }
  if (ci < 0) {
    return QueueOnBusyServer(slot) ? SendResult::kQueued : SendResult::kNoServer;
  }
  Connection& c = *conns_[ci];
  uint16_t id = 0;
  const bool is_acquired = c.ids().Acquire(slot, &id);
  DCHECK(is_acquired);
  (void)is_acquired;
  if (c.ids().is_full()) {
    RefreshServerViews();
  }
  // RFC 7858 §3.3 / RFC 7766 §6.2.1.1: pipeline; the rewritten ID tells the answers apart.
  const bool is_padded = c.QueueQuery(query, id, servers_[server].config->edns_padding);
  *attempt = {static_cast<uint32_t>(ci), id, server, is_padded};
  Server& chosen = servers_[server];
  ++chosen.outstanding;
  views_[server].outstanding = chosen.outstanding;
  chosen.counters->inflight.Set(chosen.outstanding);
  ++chosen.counters->queries;
  ++c.queries_sent;
  c.last_used_ms = now_ms;
  if (c.is_ready()) {
    MarkDirty(c);
  }
  return SendResult::kSent;
}

void ConnectionPool::Release(uint32_t conn, uint16_t id) {
  Connection& c = *conns_[conn];
  const bool was_full = c.ids().is_full();
  c.ids().Release(id);
  if (c.server() == Connection::kNoServer) {
    return;  // its server was removed by a reload
  }
  c.NoteReleased(id);
  Server& server = servers_[c.server()];
  --server.outstanding;
  views_[c.server()].outstanding = server.outstanding;
  server.counters->inflight.Set(server.outstanding);
  if (was_full) {
    RefreshServerViews();
  }
  if (!server.backlog.empty()) {
    has_backlog_ = true;
  }
}

void ConnectionPool::Reconfigure() {
  std::vector<Server> old = std::move(servers_);
  for (Server& s : old) {
    reactor_.timers().Cancel(&s.probe_timer);
    reactor_.timers().Cancel(&s.regrow_timer);
  }
  const size_t count = config_.upstream.servers.size();
  servers_ = std::vector<Server>(count);
  std::vector<int64_t> old_to_new(old.size(), -1);
  for (uint32_t s = 0; s < count; ++s) {
    const config::ServerConfig& sc = config_.upstream.servers[s];
    const std::string identity = config::ServerIdentity(sc);
    for (uint32_t o = 0; o < old.size(); ++o) {
      if (old_to_new[o] < 0 && old[o].identity == identity) {
        old_to_new[o] = s;
        servers_[s] = std::move(old[o]);
        servers_[s].config = &sc;
        servers_[s].counters = &counters_.Block(sc.metrics_id);  // same identity, same id
        servers_[s].probe_timer.owner = &servers_[s];
        break;
      }
    }
  }
  for (const auto& c : conns_) {
    if (c->server() != Connection::kNoServer) {
      const int64_t to = old_to_new[c->server()];
      c->set_server(to < 0 ? Connection::kNoServer : static_cast<uint32_t>(to));
    }
  }
  std::vector<uint32_t> retired;
  std::vector<uint32_t> requeued;
  for (uint32_t o = 0; o < old.size(); ++o) {
    if (old_to_new[o] < 0) {
      LOG(kInfo, "upstream %s: removed by the reload", old[o].identity);
      // Its series is no longer published; levels must not linger in the shard's sums.
      old[o].counters->inflight.Set(0);
      old[o].counters->backlog.Set(0);
      old[o].counters->target_connections.Set(0);
      retired.insert(retired.end(), old[o].conns.begin(), old[o].conns.end());
      requeued.insert(requeued.end(), old[o].backlog.begin(), old[o].backlog.end());
    }
  }
  for (size_t s = count; hub_ != nullptr && s < old.size(); ++s) {
    hub_->Publish(static_cast<uint32_t>(s), shard_id_, {});  // indices past the new list
  }
  views_.assign(count, ServerView{});
  has_pending_.assign(count, false);
  has_ready_.assign(count, false);
  has_usable_.assign(count, false);
  has_live_.assign(count, false);
  view_pending_.assign(count, false);
  published_.assign(count, UINT32_MAX);
  balancer_ = BalancerState(count, absl::Uniform<uint64_t>(rng_));
  pick_ = PolicyFunction(config_.upstream.load_balancing_policy);
  for (uint32_t s = 0; s < count; ++s) {
    Server& server = servers_[s];
    if (server.config == nullptr) {
      if (absl::Status added = InitServer(s); !added.ok()) {
        LOG(kError, "reload: %s", added.message());  // main checked it; keep it unusable
      }
      for (uint32_t ci : server.conns) {
        Connect(ci);
      }
      continue;
    }
    // The share of a kept server follows its connection_pool_size.
    const uint32_t share = PoolShare(s, *server.config);
    while (server.conns.size() < share) {
      const uint32_t ci = NewConnection(s);
      server.conns.push_back(ci);
      Connect(ci);
    }
    for (size_t i = share; i < server.conns.size(); ++i) {
      retired.push_back(server.conns[i]);
    }
  }
  for (uint32_t ci : retired) {
    RetireConnection(ci);
  }
  for (uint32_t s = 0; s < count; ++s) {
    ResetTarget(s);  // a reload starts the adaptive pool afresh from the (new) share
    ConnectUpToTarget(s);
  }
  RefreshServerViews();
  for (uint32_t s = 0; s < count; ++s) {
    if (servers_[s].health.is_down()) {
      ArmProbeTimer(s);
    }
  }
  for (uint32_t slot : requeued) {
    owner_.OnBacklogReady(slot);
  }
  has_backlog_ = true;
}

int64_t ConnectionPool::attempt_timeout_ms(int32_t server) const {
  return Millis(servers_[server].config->read_timeout);
}

ConnectionPool::TimeoutVerdict ConnectionPool::OnAttemptTimeout(uint32_t conn, bool may_recycle) {
  Connection& c = *conns_[conn];
  const uint32_t server = c.server();
  const int64_t now_ms = reactor_.now_ms();
  // Timeouts can mean a black hole or merely slow answers (a cold upstream cache). Marking the
  // last server that is up as down would turn slowness into SERVFAILs for everyone, so only a
  // server with an alternative is taken out for timeouts; half-dead connections are still
  // replaced below.
  bool has_alternative = false;
  for (uint32_t s = 0; s < servers_.size(); ++s) {
    has_alternative |= s != server && !servers_[s].health.is_down();
  }
  if (has_alternative && servers_[server].health.OnQueryTimeout(now_ms, balancer_.rng)) {
    // Too many timeouts in a row: the server is down. Its connections are recycled (which
    // re-sends their queries elsewhere) and it is probed again after its backoff.
    OnServerDown(server);
    return TimeoutVerdict::kServerDown;
  }
  // Half-dead connection (a NAT dropped its state, say): nothing at all has arrived on it for a
  // whole query_timeout while queries wait. Replacing it re-sends its queries. A shorter silence
  // may just be a slow upstream, whose answers must not be lost.
  if (may_recycle && c.is_ready() &&
      now_ms - c.last_read_ms >= Millis(config_.upstream.query_timeout)) {
    FailConnection(conn, "no response to several queries");
    return TimeoutVerdict::kRecycled;
  }
  return TimeoutVerdict::kSlow;
}

bool ConnectionPool::QueueOnBusyServer(uint32_t slot) {
  // Every connection of the chosen server is at max_inflight: wait for a free ID rather than
  // fail. Only servers with a live connection qualify (or whose last one a connection cap closed
  // and which reconnects after a short back-off); a server with none is down.
  int32_t best = -1;
  for (uint32_t s = 0; s < servers_.size(); ++s) {
    if (servers_[s].health.is_down()) {
      continue;
    }
    bool is_alive = IsCapBackingOff(s);
    for (uint32_t ci : servers_[s].conns) {
      is_alive |= conns_[ci]->is_alive();
    }
    if (is_alive && (best < 0 || servers_[s].backlog.size() < servers_[best].backlog.size())) {
      best = static_cast<int32_t>(s);
    }
  }
  if (best < 0) {
    return false;
  }
  servers_[best].backlog.push_back(slot);
  CountersOf(best).backlog.Set(servers_[best].backlog.size());
  return true;
}

void ConnectionPool::DrainBacklogs() {
  has_backlog_ = false;
  for (uint32_t s = 0; s < servers_.size(); ++s) {
    std::deque<uint32_t>& backlog = servers_[s].backlog;
    // Each query queued now gets one try: one that finds no connection yet is queued again
    // (with nothing usable, a server being set up counts as usable), and draining until the
    // backlog is empty would then never end. It is tried again at the next event.
    for (size_t n = backlog.size(); n > 0 && !backlog.empty() && views_[s].is_usable; --n) {
      const uint32_t slot = backlog.front();
      backlog.pop_front();
      owner_.OnBacklogReady(slot);
    }
    CountersOf(s).backlog.Set(backlog.size());
  }
}

bool ConnectionPool::Flush() {
  const bool had_backlog = has_backlog_;
  if (has_backlog_) {
    DrainBacklogs();
  }
  const bool had_dirty = !dirty_.empty();
  for (size_t i = 0; i < dirty_.size(); ++i) {
    Connection& c = *conns_[dirty_[i]];
    c.is_dirty = false;
    if (!c.is_ready() || !c.has_queued_queries()) {
      continue;
    }
    if (!c.WriteQueued()) {
      FailConnection(c.index(), c.tls().error().c_str());
      continue;
    }
    c.StartSend(reactor_);
    ArmWriteDeadline(c);
  }
  dirty_.clear();
  return had_backlog || had_dirty;
}

void ConnectionPool::MarkDirty(Connection& c) {
  if (!c.is_dirty) {
    c.is_dirty = true;
    dirty_.push_back(c.index());
  }
}

void ConnectionPool::RefreshServerViews() {
  for (uint32_t s = 0; s < servers_.size(); ++s) {
    bool is_usable = false;
    bool is_pending = false;
    uint32_t ready = 0;
    uint32_t live = 0;
    for (uint32_t ci : servers_[s].conns) {
      const Connection& c = *conns_[ci];
      ready += c.is_ready() ? 1 : 0;
      live += c.is_alive() ? 1 : 0;
      if (c.CanAccept()) {
        is_usable |= c.is_ready();
        is_pending = true;
      }
    }
    has_usable_[s] = is_usable;
    has_ready_[s] = ready > 0;
    has_pending_[s] = is_pending;
    has_live_[s] = live > 0;
    views_[s].weight = servers_[s].config->weight;
    views_[s].ewma_latency_us = servers_[s].health.ewma_latency_us();
    views_[s].outstanding = servers_[s].outstanding;
    CountersOf(s).is_up.Set(servers_[s].health.is_down() ? 0 : 1);
    if (hub_ != nullptr) {
      PublishDirectory(s, ready, live);
    }
  }
  FinishViews();
}

int32_t ConnectionPool::PickConnection(uint32_t server) const {
  // The ready connection with the fewest queries in flight; else one still being set up (the
  // query is sent as soon as its handshake completes).
  int32_t best = -1;
  bool best_ready = false;
  uint32_t best_load = UINT32_MAX;
  for (uint32_t ci : servers_[server].conns) {
    const Connection& c = *conns_[ci];
    if (!c.CanAccept()) {
      continue;
    }
    const bool is_ready = c.is_ready();
    const uint32_t load = c.ids().in_use();
    if (best < 0 || (is_ready && !best_ready) || (is_ready == best_ready && load < best_load)) {
      best = static_cast<int32_t>(ci);
      best_ready = is_ready;
      best_load = load;
    }
  }
  return best;
}

// ---- Server health --------------------------------------------------------------------------

void ConnectionPool::OnServerConnectFailure(uint32_t server) {
  Server& s = servers_[server];
  const int64_t now_ms = reactor_.now_ms();
  if (s.health.OnConnectFailure(now_ms, balancer_.rng)) {
    ++CountersOf(server).down_transitions;
    LOG(kWarn, "upstream %s: down; next probe in %ld ms", s.config->addr_text,
        s.health.next_probe_ms() - now_ms);
    RefreshServerViews();
    ArmProbeTimer(server);
    MoveBacklog(server);
  }
}

void ConnectionPool::OnServerDown(uint32_t server) {
  Server& s = servers_[server];
  ++CountersOf(server).down_transitions;
  LOG(kWarn, "upstream %s: down after repeated query timeouts; next probe in %ld ms",
      s.config->addr_text, s.health.next_probe_ms() - reactor_.now_ms());
  const std::vector<uint32_t> conns = s.conns;
  for (uint32_t ci : conns) {
    if (conns_[ci]->is_alive()) {
      FailConnection(ci, "server marked down");
    }
  }
  RefreshServerViews();
  ArmProbeTimer(server);
  MoveBacklog(server);
}

void ConnectionPool::MoveBacklog(uint32_t server) {
  // A down server answers nothing until its probe succeeds: the queries waiting for one of its
  // IDs go to another server now (or fail at once when none is up), not at their deadline.
  std::deque<uint32_t>& backlog = servers_[server].backlog;
  const size_t count = backlog.size();
  for (size_t i = 0; i < count && !backlog.empty(); ++i) {
    const uint32_t slot = backlog.front();
    backlog.pop_front();
    ++counters_.backlog_moved;
    owner_.OnBacklogReady(slot);
  }
}

void ConnectionPool::ArmProbeTimer(uint32_t server) {
  Server& s = servers_[server];
  reactor_.timers().Schedule(&s.probe_timer,
                             std::max(s.health.next_probe_ms(), reactor_.now_ms() + 1));
}

void ConnectionPool::OnProbeTimer(core::Timer* timer) {
  Server& s = *static_cast<Server*>(timer->owner);
  const uint32_t server = static_cast<uint32_t>(&s - servers_.data());
  if (!s.health.is_down()) {
    return;
  }
  const int64_t now_ms = reactor_.now_ms();
  if (s.health.IsProbeDue(now_ms)) {
    for (uint32_t ci : s.conns) {
      if (conns_[ci]->state() == Connection::State::kIdle) {
        s.health.StartProbe(now_ms);
        Connect(ci);
        break;
      }
    }
  }
  ArmProbeTimer(server);
}

void ConnectionPool::CountTlsPath(const Connection& c) {
  ServerCounters& counters = CountersOf(c.server());
  const tls::TlsStream& tls = c.tls();
  if (tls.ktls_tx()) {
    ++counters.ktls_tx;
  }
  if (tls.ktls_rx()) {
    ++counters.ktls_rx;
  }
  if (!tls.ktls_tx() && !tls.ktls_rx()) {
    ++counters.tls_user_space;
  }
  const char* path = tls.ktls_tx() ? (tls.ktls_rx() ? "kTLS tx+rx" : "kTLS tx, rx in user space")
                     : tls.ktls_rx() ? "kTLS rx, tx in user space"
                                     : "user space";
  LOG(kDebug, "upstream %s: connection %u ready (%s handshake, %s, %s%s%s)",
      servers_[c.server()].config->addr_text, c.index(), tls.session_reused() ? "resumed" : "full",
      tls.version(), path, c.ktls_error() != 0 ? ": kTLS set-up failed: " : "",
      c.ktls_error() != 0 ? strerror(c.ktls_error()) : "");
}

}  // namespace dotproxy::upstream
