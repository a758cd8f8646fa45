// The forwarding core: query slots, server choice, and the pipelined DoT connections to the
// upstream servers (connect, TLS over a custom BIO, ID rewriting, response matching, retries).
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/log.h"
#include "dns/header.h"
#include "net/sockets.h"
#include "proxy/shard.h"

namespace dotproxy::proxy {
namespace {

// A connection that dies sooner than this after its handshake counts as a failure, so a server
// that accepts and then drops every connection is backed off instead of hammered.
constexpr int64_t kMinHealthyLifetimeMs = 1000;
constexpr uint32_t kMaxImmediateReconnects = 2;
constexpr int64_t kReconnectBaseMs = 100;
constexpr int64_t kLatencyTrustMs = 1000;
constexpr int64_t kReconnectCapMs = 10'000;

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

}  // namespace

// ---- Query slots ----------------------------------------------------------------------------

int32_t Shard::AcquireQuerySlot() {
  if (free_slots_.empty()) {
    return -1;
  }
  const uint32_t si = free_slots_.back();
  free_slots_.pop_back();
  QuerySlot& slot = slots_[si];
  slot.state = QuerySlot::State::kWaiting;
  slot.attempts = 0;
  slot.live = 0;
  slot.is_queued = false;
  slot.last_server = -1;
  slot.deadline_ms = now_ms_ + Millis(config_.upstream.query_timeout);
  return static_cast<int32_t>(si);
}

void Shard::ReleaseQuerySlot(uint32_t slot_index) {
  QuerySlot& slot = slots_[slot_index];
  timers_.Cancel(&slot.timer);
  slot.state = QuerySlot::State::kFree;
  ++slot.generation;
  net::ReleaseIfLarge(slot.query);
  net::ReleaseIfLarge(slot.reply);
  free_slots_.push_back(slot_index);
}

void Shard::Forward(uint32_t slot_index, int exclude_server) {
  QuerySlot& slot = slots_[slot_index];
  if (config_.upstream.load_balancing_policy == config::Policy::kLeastOutstanding) {
    // A latency is trusted for a second: a server that lost every comparison since then counts
    // as unmeasured again, is tried, and re-measured (otherwise one slow answer, or the time
    // before an outage, could keep it out for good).
    for (uint32_t s = 0; s < servers_.size(); ++s) {
      if (now_ms_ - servers_[s].health.last_response_ms() > kLatencyTrustMs) {
        server_views_[s].ewma_latency_us = 0;
      }
    }
  }
  const int server = pick_(balancer_, server_views_, exclude_server);
  const int32_t ci = server < 0 ? -1 : PickConnection(static_cast<uint32_t>(server));
  if (ci < 0) {
    if (QueueOnBusyServer(slot_index)) {
      return;
    }
    ++counters_.servfail_no_upstream;
    FailQuery(slot_index);
    return;
  }
  if (slot.live == kMaxLiveAttempts) {
    DetachAttempt(slot_index, 0);  // keep the newest attempts
  }
  upstream::Connection& conn = *upstream_conns_[ci];
  uint16_t id = 0;
  const bool is_acquired = conn.ids().Acquire(slot_index, &id);
  DCHECK(is_acquired);
  (void)is_acquired;
  if (conn.ids().is_full()) {
    RefreshServerViews();
  }
  // RFC 7858 §3.3 / RFC 7766 §6.2.1.1: pipeline; the rewritten ID tells the answers apart.
  const size_t offset = conn.plain_pending.size();
  conn.plain_pending.resize(offset + 2 + slot.query.size());
  dns::WriteLengthPrefix(conn.plain_pending.data() + offset, slot.query.size());
  memcpy(conn.plain_pending.data() + offset + 2, slot.query.data(), slot.query.size());
  dns::SetId(conn.plain_pending.data() + offset + 2, id);
  slot.upstream_conn[slot.live] = static_cast<uint32_t>(ci);
  slot.upstream_id[slot.live] = id;
  slot.attempt_sent_ns[slot.live] = now_ns_;
  ++slot.live;
  slot.last_server = server;
  ++slot.attempts;
  ++servers_[server].outstanding;
  server_views_[server].outstanding = servers_[server].outstanding;
  conn.last_used_ms = now_ms_;
  if (conn.state == upstream::Connection::State::kReady) {
    MarkUpstreamDirty(static_cast<uint32_t>(ci));
  }
  int64_t expiry = slot.deadline_ms;
  const int64_t attempt = Millis(servers_[server].config->read_timeout);
  if (attempt > 0) {
    expiry = std::min(expiry, now_ms_ + attempt);
  }
  timers_.Schedule(&slot.timer, expiry);
}

void Shard::DetachFromUpstream(uint32_t slot_index) {
  while (slots_[slot_index].live > 0) {
    DetachAttempt(slot_index, slots_[slot_index].live - 1);
  }
}

void Shard::DetachAttempt(uint32_t slot_index, uint8_t attempt) {
  QuerySlot& slot = slots_[slot_index];
  DCHECK(attempt < slot.live);
  upstream::Connection& conn = *upstream_conns_[slot.upstream_conn[attempt]];
  const bool was_full = conn.ids().is_full();
  conn.ids().Release(slot.upstream_id[attempt]);
  Server& server = servers_[conn.server()];
  --server.outstanding;
  server_views_[conn.server()].outstanding = server.outstanding;
  for (uint8_t i = attempt; i + 1 < slot.live; ++i) {
    slot.upstream_conn[i] = slot.upstream_conn[i + 1];
    slot.upstream_id[i] = slot.upstream_id[i + 1];
    slot.attempt_sent_ns[i] = slot.attempt_sent_ns[i + 1];
  }
  --slot.live;
  if (was_full) {
    RefreshServerViews();
  }
  if (!server.backlog.empty()) {
    has_backlog_ = true;
  }
}

bool Shard::QueueOnBusyServer(uint32_t slot_index) {
  // Every connection of the chosen server is at max_inflight: wait for a free ID rather than
  // fail. Only servers with a live connection qualify; a server with none is down.
  int32_t best = -1;
  for (uint32_t s = 0; s < servers_.size(); ++s) {
    if (servers_[s].health.is_down()) {
      continue;
    }
    bool is_alive = false;
    for (uint32_t ci : servers_[s].conns) {
      const auto state = upstream_conns_[ci]->state;
      if (state == upstream::Connection::State::kReady ||
          state == upstream::Connection::State::kConnecting ||
          state == upstream::Connection::State::kHandshaking) {
        is_alive = true;
        break;
      }
    }
    if (is_alive && (best < 0 || servers_[s].backlog.size() < servers_[best].backlog.size())) {
      best = static_cast<int32_t>(s);
    }
  }
  if (best < 0) {
    return false;
  }
  QuerySlot& slot = slots_[slot_index];
  slot.is_queued = true;
  servers_[best].backlog.push_back(slot_index);
  timers_.Schedule(&slot.timer, slot.deadline_ms);
  return true;
}

void Shard::DrainBacklogs() {
  has_backlog_ = false;
  for (uint32_t s = 0; s < servers_.size(); ++s) {
    std::deque<uint32_t>& backlog = servers_[s].backlog;
    while (!backlog.empty() && server_views_[s].is_usable) {
      const uint32_t si = backlog.front();
      backlog.pop_front();
      QuerySlot& slot = slots_[si];
      if (!slot.is_queued || slot.state != QuerySlot::State::kWaiting) {
        continue;  // answered or failed while queued
      }
      slot.is_queued = false;
      Forward(si, -1);
    }
  }
}

void Shard::CompleteQuery(uint32_t slot_index, const uint8_t* response, size_t len) {
  ++counters_.responses;
  Reply(slot_index, response, len);
}

void Shard::Reply(uint32_t slot_index, const uint8_t* response, size_t len) {
  FinishQuery(slot_index);
  QuerySlot& slot = slots_[slot_index];
  if (slot.client_kind == ClientKind::kTcp) {
    const TcpClient& c = tcp_clients_[slot.tcp_index];
    if (c.state == TcpClient::State::kOpen && c.generation == slot.tcp_generation) {
      QueueTcpResponse(slot.tcp_index, response, len, slot.info.id);
    } else {
      ++counters_.client_gone;
    }
    ReleaseQuerySlot(slot_index);
    return;
  }
  // RFC 1035 §4.2.1 / RFC 6891 §7: never more than the client can take over UDP; send TC=1 so
  // it retries over TCP (RFC 7766 §5).
  if (len > dns::ClientUdpLimit(slot.info)) {
    ++counters_.truncated;
    slot.reply.resize(dns::kMinUdpPayload);
    const size_t n = dns::BuildTruncatedResponse(response, len, slot.query.data(), slot.info,
                                                 slot.reply.data(), slot.reply.size());
    slot.reply.resize(n);
  } else {
    slot.reply.assign(response, response + len);
  }
  if (slot.reply.size() < dns::kHeaderSize) {
    ReleaseQuerySlot(slot_index);
    return;
  }
  dns::SetId(slot.reply.data(), slot.info.id);
  SendUdpReply(slot_index);
}

void Shard::FailQuery(uint32_t slot_index) {
  QuerySlot& slot = slots_[slot_index];
  DetachFromUpstream(slot_index);
  const size_t n = dns::BuildServfail(slot.query.data(), slot.info, scratch_.data(),
                                      scratch_.size());
  Reply(slot_index, scratch_.data(), n);
}

void Shard::FinishQuery(uint32_t slot_index) {
  QuerySlot& slot = slots_[slot_index];
  timers_.Cancel(&slot.timer);
  DetachFromUpstream(slot_index);
}

void Shard::OnQueryTimer(uint32_t slot_index) {
  QuerySlot& slot = slots_[slot_index];
  if (slot.state != QuerySlot::State::kWaiting) {
    return;
  }
  if (now_ms_ >= slot.deadline_ms) {
    ++counters_.servfail_timeout;
    slot.is_queued = false;
    FailQuery(slot_index);
    return;
  }
  // The latest attempt took longer than the server's read_timeout: send another copy elsewhere
  // (RFC 7766 §6.2.1: queries are idempotent) but keep listening for the slow one.
  if (slot.live > 0) {
    upstream::Connection& conn = *upstream_conns_[slot.upstream_conn[slot.live - 1]];
    const uint32_t server = conn.server();
    // Timeouts can mean a black hole or merely slow answers (a cold upstream cache). Marking the
    // last server that is up as down would turn slowness into SERVFAILs for everyone, so only a
    // server with an alternative is taken out for timeouts; half-dead connections are still
    // replaced below.
    bool has_alternative = false;
    for (uint32_t s = 0; s < servers_.size(); ++s) {
      has_alternative |= s != server && !servers_[s].health.is_down();
    }
    if (has_alternative && servers_[server].health.OnQueryTimeout(now_ms_, balancer_.rng)) {
      // Too many timeouts in a row: the server is down. Its connections are recycled (which
      // re-sends their queries elsewhere) and it is probed again after its backoff.
      OnServerDown(server);
      if (slot.state == QuerySlot::State::kWaiting && slot.live == 0 && !slot.is_queued &&
          slot.attempts <= config_.upstream.max_connection_retries) {
        Forward(slot_index, static_cast<int>(server));
      } else if (slot.state == QuerySlot::State::kWaiting) {
        timers_.Schedule(&slot.timer, slot.deadline_ms);
      }
      return;
    }
    if (slot.attempts <= config_.upstream.max_connection_retries) {
      ++counters_.upstream_retries;
      // Half-dead connection (a NAT dropped its state, say): nothing at all has arrived on it for
      // a whole query_timeout while queries wait. Replacing it re-sends its queries, this one
      // included. A shorter silence may just be a slow upstream, whose answers must not be lost.
      if (conn.state == upstream::Connection::State::kReady &&
          now_ms_ - conn.last_read_ms >= Millis(config_.upstream.query_timeout)) {
        FailConnection(conn.index(), "no response to several queries");
      } else {
        Forward(slot_index, slot.last_server);
      }
      return;
    }
  }
  timers_.Schedule(&slot.timer, slot.deadline_ms);
}

// ---- Upstream connections -------------------------------------------------------------------

absl::Status Shard::InitUpstreams() {
  pick_ = upstream::PolicyFunction(config_.upstream.load_balancing_policy);
  servers_.resize(config_.upstream.servers.size());
  server_views_.resize(servers_.size());
  server_has_pending_.resize(servers_.size());
  balancer_ = upstream::BalancerState(servers_.size(), absl::Uniform<uint64_t>(rng_));
  for (uint32_t s = 0; s < servers_.size(); ++s) {
    const config::ServerConfig& sc = config_.upstream.servers[s];
    Server& server = servers_[s];
    server.config = &sc;
    upstream::HealthOptions health;
    health.backoff_initial_ms = Millis(config_.upstream.backoff_initial);
    health.backoff_max_ms = Millis(config_.upstream.backoff_max);
    server.health = upstream::ServerHealth(health);
    server.probe_timer.owner = &server;
    server.probe_timer.kind = kTimerProbe;
    auto tls = tls::ClientContext::Create({sc.server_name, sc.ca_file});
    if (!tls.ok()) {
      return absl::Status(tls.status().code(),
                          absl::StrCat("upstream ", sc.addr_text, ": ", tls.status().message()));
    }
    server.tls = std::move(tls).value();
    // connection_pool_size is the server's total over all shards; each shard gets at least one.
    uint32_t share = sc.connection_pool_size / shard_count_ +
                     (shard_id_ < sc.connection_pool_size % shard_count_ ? 1 : 0);
    share = std::max<uint32_t>(share, 1);
    for (uint32_t i = 0; i < share; ++i) {
      const uint32_t index = static_cast<uint32_t>(upstream_conns_.size());
      auto conn = std::make_unique<upstream::Connection>(index, s, sc.max_inflight);
      conn->connect_op = {core::OpKind::kUpstreamConnect, index, 0};
      conn->recv_op = {core::OpKind::kUpstreamRecv, index, 0};
      conn->send_op = {core::OpKind::kUpstreamSend, index, 0};
      conn->timer.owner = conn.get();
      conn->timer.kind = kTimerUpstream;
      upstream_conns_.push_back(std::move(conn));
      server.conns.push_back(index);
    }
  }
  for (Server& server : servers_) {
    for (uint32_t ci : server.conns) {
      Connect(ci);
    }
  }
  RefreshServerViews();
  return absl::OkStatus();
}

void Shard::RefreshServerViews() {
  // A server counts as usable when it has an established connection with a free ID. Only when no
  // server that is up has one (start-up, a reconnect) do connections still being set up count:
  // queries wait on them rather than fail, but never while a ready server could answer now (a
  // black-holed server would hold them until read_timeout).
  bool any_ready = false;
  for (uint32_t s = 0; s < servers_.size(); ++s) {
    bool is_ready = false;
    bool is_pending = false;
    for (uint32_t ci : servers_[s].conns) {
      const upstream::Connection& c = *upstream_conns_[ci];
      if (c.CanAccept()) {
        is_ready |= c.state == upstream::Connection::State::kReady;
        is_pending = true;
      }
    }
    server_views_[s].is_usable = is_ready;
    server_views_[s].is_down = servers_[s].health.is_down();
    server_views_[s].weight = servers_[s].config->weight;
    server_views_[s].ewma_latency_us = servers_[s].health.ewma_latency_us();
    server_views_[s].outstanding = servers_[s].outstanding;
    server_has_pending_[s] = is_pending;
    any_ready |= is_ready && !server_views_[s].is_down;
  }
  if (!any_ready) {
    for (uint32_t s = 0; s < servers_.size(); ++s) {
      server_views_[s].is_usable = server_has_pending_[s];
    }
  }
}

int32_t Shard::PickConnection(uint32_t server) {
  // The ready connection with the fewest queries in flight; else one still being set up (the
  // query is sent as soon as its handshake completes).
  int32_t best = -1;
  bool best_ready = false;
  uint32_t best_load = UINT32_MAX;
  for (uint32_t ci : servers_[server].conns) {
    const upstream::Connection& c = *upstream_conns_[ci];
    if (!c.CanAccept()) {
      continue;
    }
    const bool is_ready = c.state == upstream::Connection::State::kReady;
    const uint32_t load = c.ids().in_use();
    if (best < 0 || (is_ready && !best_ready) || (is_ready == best_ready && load < best_load)) {
      best = static_cast<int32_t>(ci);
      best_ready = is_ready;
      best_load = load;
    }
  }
  return best;
}

void Shard::MarkUpstreamDirty(uint32_t conn) {
  upstream::Connection& c = *upstream_conns_[conn];
  if (!c.is_dirty) {
    c.is_dirty = true;
    dirty_upstreams_.push_back(conn);
  }
}

void Shard::Connect(uint32_t conn) {
  upstream::Connection& c = *upstream_conns_[conn];
  const config::ServerConfig& sc = *servers_[c.server()].config;
  ++c.generation;
  auto fd = net::CreateTcpClientSocket(sc.addr);
  if (!fd.ok()) {
    LOG_EVERY_N_SEC(kError, 1, "upstream %s: %s", sc.addr_text, fd.status().ToString());
    ++counters_.upstream_connect_failures;
    ++c.consecutive_failures;
    OnServerConnectFailure(c.server());
    ScheduleReconnect(conn, false);
    return;
  }
  c.fd = std::move(fd).value();
  c.state = upstream::Connection::State::kConnecting;
  c.connect_op.generation = c.generation;
  ++counters_.upstream_connects;
  io_uring_sqe* sqe = ring_->GetSqe(&c.connect_op);
  io_uring_prep_connect(sqe, c.fd.get(), sc.addr.raw(), sc.addr.length());
  c.is_connect_pending = true;
  // The connect deadline is a timer-wheel entry like every other deadline; expiry cancels it.
  const int64_t timeout = Millis(sc.connect_timeout);
  if (timeout > 0) {
    timers_.Schedule(&c.timer, now_ms_ + timeout);
  } else {
    timers_.Cancel(&c.timer);
  }
}

void Shard::OnUpstreamConnect(uint32_t conn, int res) {
  upstream::Connection& c = *upstream_conns_[conn];
  c.is_connect_pending = false;
  if (c.state != upstream::Connection::State::kConnecting) {
    MaybeFinishUpstreamClose(conn);
    return;
  }
  if (res < 0) {
    ++counters_.upstream_connect_failures;
    FailConnection(conn, strerror(-res));
    return;
  }
  Server& server = servers_[c.server()];
  c.tls = tls::TlsStream::Create(*server.tls, &c.output.pending());
  if (c.tls == nullptr) {
    ++counters_.upstream_handshake_failures;
    FailConnection(conn, "cannot create a TLS session");
    return;
  }
  c.state = upstream::Connection::State::kHandshaking;
  const int64_t timeout = Millis(server.config->handshake_timeout);
  if (timeout > 0) {
    timers_.Schedule(&c.timer, now_ms_ + timeout);
  } else {
    timers_.Cancel(&c.timer);
  }
  ArmUpstreamRecv(conn);
  DriveTls(conn);
}

void Shard::ArmUpstreamRecv(uint32_t conn) {
  upstream::Connection& c = *upstream_conns_[conn];
  c.recv_op.generation = c.generation;
  io_uring_sqe* sqe = ring_->GetSqe(&c.recv_op);
  // Ciphertext lands in a shared provided buffer that is handed back as soon as TLS has consumed
  // it, so an idle connection holds no receive buffer.
  io_uring_prep_recv(sqe, c.fd.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = upstream_buffers_->group_id();
  c.is_recv_pending = true;
}

void Shard::OnUpstreamRecv(uint32_t conn, const io_uring_cqe& cqe) {
  upstream::Connection& c = *upstream_conns_[conn];
  c.is_recv_pending = false;
  const int res = cqe.res;
  const bool has_buffer = (cqe.flags & IORING_CQE_F_BUFFER) != 0;
  const uint16_t bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  if (c.state != upstream::Connection::State::kHandshaking &&
      c.state != upstream::Connection::State::kReady) {
    if (has_buffer) {
      upstream_buffers_->Recycle(bid);
    }
    MaybeFinishUpstreamClose(conn);
    return;
  }
  if (res == -ENOBUFS) {
    ArmUpstreamRecv(conn);  // every shared buffer is in use this instant; the bytes wait
    return;
  }
  if (res <= 0 || !has_buffer) {
    FailConnection(conn, res == 0 ? "connection closed by the server" : strerror(-res));
    return;
  }
  c.last_read_ms = now_ms_;
  c.tls->SetInput(upstream_buffers_->buffer(bid), static_cast<size_t>(res));
  DriveTls(conn);
  // TLS reads until its BIO is empty, so the buffer is fully consumed (or the connection failed).
  c.tls_input_done();
  upstream_buffers_->Recycle(bid);
  if (c.state == upstream::Connection::State::kHandshaking ||
      c.state == upstream::Connection::State::kReady) {
    ArmUpstreamRecv(conn);
  }
}

void Shard::DriveTls(uint32_t conn) {
  upstream::Connection& c = *upstream_conns_[conn];
  if (c.state == upstream::Connection::State::kHandshaking) {
    const tls::IoResult r = c.tls->Handshake();
    if (r == tls::IoResult::kDone) {
      OnUpstreamReady(conn);
    } else if (r == tls::IoResult::kWantRead) {
      StartUpstreamSend(conn);
      return;
    } else {
      // Verification failures end here: no query is ever written to this connection.
      ++counters_.upstream_handshake_failures;
      StartUpstreamSend(conn);  // flush the alert, best effort
      FailConnection(conn, c.tls->error().c_str());
      return;
    }
  }
  while (c.state == upstream::Connection::State::kReady) {
    size_t n = 0;
    const tls::IoResult r = c.tls->Read(plaintext_.data(), plaintext_.size(), &n);
    if (r == tls::IoResult::kWantRead) {
      break;
    }
    if (r == tls::IoResult::kClosed) {
      FailConnection(conn, "close_notify from the server");
      return;
    }
    if (r == tls::IoResult::kFailed) {
      FailConnection(conn, c.tls->error().c_str());
      return;
    }
    const dns::FrameResult fr = c.reader.Feed(
        plaintext_.data(), n,
        [&](const uint8_t* msg, size_t len) { return OnUpstreamMessage(conn, msg, len); });
    if (fr == dns::FrameResult::kZeroLength) {
      FailConnection(conn, "zero-length DNS message");
      return;
    }
  }
  // TLS may have produced records while reading (alerts, key updates): send them now.
  StartUpstreamSend(conn);
}

void Shard::OnUpstreamReady(uint32_t conn) {
  upstream::Connection& c = *upstream_conns_[conn];
  Server& server = servers_[c.server()];
  c.state = upstream::Connection::State::kReady;
  c.consecutive_failures = 0;
  c.last_read_ms = now_ms_;
  c.ready_since_ms = now_ms_;
  c.last_used_ms = now_ms_;
  if (c.tls->session_reused()) {
    ++counters_.upstream_handshakes_resumed;
  } else {
    ++counters_.upstream_handshakes_full;
  }
  LOG(kDebug, "upstream %s: connection %u ready (%s handshake)", server.config->addr_text, conn,
      c.tls->session_reused() ? "resumed" : "full");
  const int64_t stale = Millis(server.config->stale_timeout);
  if (stale > 0) {
    timers_.Schedule(&c.timer, now_ms_ + stale);
  } else {
    timers_.Cancel(&c.timer);
  }
  if (!c.plain_pending.empty()) {
    MarkUpstreamDirty(conn);
  }
  if (server.health.OnConnected(now_ms_)) {
    LOG(kWarn, "upstream %s: up again (handshake completed)", server.config->addr_text);
    for (uint32_t ci : server.conns) {
      if (upstream_conns_[ci]->state == upstream::Connection::State::kIdle) {
        Connect(ci);
      }
    }
  }
  RefreshServerViews();
  has_backlog_ = true;
}

bool Shard::OnUpstreamMessage(uint32_t conn, const uint8_t* msg, size_t len) {
  upstream::Connection& c = *upstream_conns_[conn];
  uint32_t slot_index = 0;
  if (len < dns::kHeaderSize || !c.ids().Lookup(dns::GetId(msg), &slot_index)) {
    ++counters_.upstream_unknown_id;
    LOG_EVERY_N_SEC(kWarn, 1, "upstream %s: dropped a response with an unknown or stale id",
                    servers_[c.server()].config->addr_text);
    return true;
  }
  QuerySlot& slot = slots_[slot_index];
  // RFC 7766 §7: match by ID and question; never hand a client someone else's answer.
  int attempt = -1;
  for (uint8_t i = 0; i < slot.live; ++i) {
    if (slot.upstream_conn[i] == conn && slot.upstream_id[i] == dns::GetId(msg)) {
      attempt = i;
    }
  }
  const bool is_attempt = attempt >= 0;
  // A message that is not a response (QR=0, say an echo of the query) or answers another opcode
  // is as wrong as one for another question.
  const bool is_match =
      slot.state == QuerySlot::State::kWaiting && is_attempt && dns::IsResponse(msg) &&
      ((dns::GetFlags(msg) ^ dns::GetFlags(slot.query.data())) & dns::kOpcodeMask) == 0 &&
      dns::ResponseMatchesQuery(slot.query.data(), slot.info, msg, len);
  if (!is_match) {
    ++counters_.upstream_mismatch;
    LOG_EVERY_N_SEC(kWarn, 1, "upstream %s: dropped a response whose question does not match",
                    servers_[c.server()].config->addr_text);
    return true;
  }
  c.last_used_ms = now_ms_;
  Server& server = servers_[c.server()];
  const int64_t latency_us = (now_ns_ - slot.attempt_sent_ns[attempt]) / 1000;
  if (server.health.OnResponse(now_ms_, latency_us)) {
    LOG(kInfo, "upstream %s: up again (answered a query)", server.config->addr_text);
    RefreshServerViews();
  } else {
    server_views_[c.server()].ewma_latency_us = server.health.ewma_latency_us();
  }
  CompleteQuery(slot_index, msg, len);
  return true;
}

void Shard::FlushUpstream(uint32_t conn) {
  upstream::Connection& c = *upstream_conns_[conn];
  c.is_dirty = false;
  if (c.state != upstream::Connection::State::kReady || c.plain_pending.empty()) {
    return;
  }
  // One SSL_write for every frame queued this iteration: one record, one send.
  if (!c.tls->Write(c.plain_pending.data(), c.plain_pending.size())) {
    c.plain_pending.clear();
    FailConnection(conn, c.tls->error().c_str());
    return;
  }
  c.plain_pending.clear();
  net::ReleaseIfLarge(c.plain_pending);
  StartUpstreamSend(conn);
}

void Shard::StartUpstreamSend(uint32_t conn) {
  upstream::Connection& c = *upstream_conns_[conn];
  if (!c.fd.is_valid() ||
      (c.state == upstream::Connection::State::kClosing && !c.is_graceful_close)) {
    return;
  }
  c.send_op.generation = c.generation;
  c.output.Start(*ring_, &c.send_op, c.fd.get());
}

void Shard::OnUpstreamSendDone(uint32_t conn, int res) {
  upstream::Connection& c = *upstream_conns_[conn];
  const bool is_closing = c.state == upstream::Connection::State::kClosing;
  const net::SendQueue::Result result = c.output.OnComplete(
      *ring_, &c.send_op, c.fd.get(), is_closing && !c.is_graceful_close ? -ECANCELED : res);
  if (result == net::SendQueue::Result::kPartial) {
    return;
  }
  if (is_closing) {
    if (result == net::SendQueue::Result::kDone && c.is_graceful_close) {
      StartUpstreamSend(conn);  // the close_notify, if it was queued behind
    }
    MaybeFinishUpstreamClose(conn);
    return;
  }
  if (result == net::SendQueue::Result::kFailed) {
    FailConnection(conn, res == 0 ? "send made no progress" : strerror(-res));
    return;
  }
  StartUpstreamSend(conn);
}

void Shard::FailConnection(uint32_t conn, const char* reason) {
  upstream::Connection& c = *upstream_conns_[conn];
  if (c.state == upstream::Connection::State::kClosing ||
      c.state == upstream::Connection::State::kFree) {
    return;
  }
  Server& server = servers_[c.server()];
  const upstream::Connection::State old_state = c.state;
  const bool was_ready = old_state == upstream::Connection::State::kReady;
  const bool is_graceful = c.is_graceful_close;
  // A healthy connection that lived a while and was closed (idle close by the server, our stale
  // close, a reset mid-query) is replaced at once; set-up failures and short lives back off.
  const bool is_failure = !is_graceful && (!was_ready || now_ms_ - c.ready_since_ms <
                                                             kMinHealthyLifetimeMs);
  // A connection that was carrying queries is replaced at once even if short-lived, so its
  // queries can be re-sent; only repeated short lives back off.
  const bool reconnect_now =
      !is_failure || (was_ready && c.consecutive_failures + 1 <= kMaxImmediateReconnects);
  if (is_failure && !reconnect_now) {
    OnServerConnectFailure(c.server());
  }
  if (old_state == upstream::Connection::State::kIdle) {
    return;
  }
  if (is_failure) {
    LOG_EVERY_N_SEC(kWarn, 1, "upstream %s: connection %u failed: %s", server.config->addr_text,
                    conn, reason);
  } else {
    LOG(kDebug, "upstream %s: connection %u closed: %s", server.config->addr_text, conn, reason);
  }
  if (!is_graceful) {
    ++counters_.upstream_closed;
  }
  // Queries on this connection, to re-send elsewhere once it is out of the pool.
  std::vector<uint32_t> orphans;
  c.ids().ForEach([&](uint16_t /*id*/, uint32_t slot_index) { orphans.push_back(slot_index); });
  for (uint32_t si : orphans) {
    QuerySlot& slot = slots_[si];
    for (uint8_t i = 0; i < slot.live; ++i) {
      if (slot.upstream_conn[i] == conn) {
        DetachAttempt(si, i);
        break;
      }
    }
  }
  c.state = upstream::Connection::State::kClosing;
  timers_.Cancel(&c.timer);
  c.plain_pending.clear();
  c.reader.Clear();
  if (c.is_connect_pending || c.is_recv_pending || (c.output.is_sending() && !is_graceful)) {
    io_uring_sqe* sqe = ring_->GetSqe(nullptr);
    if (is_graceful) {
      io_uring_prep_cancel(sqe, &c.recv_op, 0);  // let the close_notify go out
    } else {
      io_uring_prep_cancel_fd(sqe, c.fd.get(), IORING_ASYNC_CANCEL_ALL);
    }
  }
  // Put a fresh connection in this one's place in the pool.
  uint32_t replacement;
  if (!server.spare.empty()) {
    replacement = server.spare.back();
    server.spare.pop_back();
  } else {
    replacement = static_cast<uint32_t>(upstream_conns_.size());
    auto fresh = std::make_unique<upstream::Connection>(replacement, c.server(),
                                                        server.config->max_inflight);
    fresh->connect_op = {core::OpKind::kUpstreamConnect, replacement, 0};
    fresh->recv_op = {core::OpKind::kUpstreamRecv, replacement, 0};
    fresh->send_op = {core::OpKind::kUpstreamSend, replacement, 0};
    fresh->timer.owner = fresh.get();
    fresh->timer.kind = kTimerUpstream;
    upstream_conns_.push_back(std::move(fresh));
  }
  upstream::Connection& next = *upstream_conns_[replacement];
  upstream::Connection& old = *upstream_conns_[conn];  // push_back may have moved the vector
  next.consecutive_failures = is_failure ? old.consecutive_failures + 1 : 0;
  next.state = upstream::Connection::State::kIdle;
  for (uint32_t& slot_in_pool : server.conns) {
    if (slot_in_pool == conn) {
      slot_in_pool = replacement;
    }
  }
  ScheduleReconnect(replacement, reconnect_now);
  MaybeFinishUpstreamClose(conn);
  RefreshServerViews();
  for (uint32_t si : orphans) {
    QuerySlot& slot = slots_[si];
    if (slot.state != QuerySlot::State::kWaiting || slot.live > 0 || slot.is_queued) {
      continue;  // answered meanwhile, or another attempt is still in flight
    }
    if (slot.attempts <= config_.upstream.max_connection_retries && now_ms_ < slot.deadline_ms) {
      ++counters_.upstream_retries;
      Forward(si, slot.last_server);
    } else {
      ++counters_.servfail_retries;
      FailQuery(si);
    }
  }
}

void Shard::MaybeFinishUpstreamClose(uint32_t conn) {
  upstream::Connection& c = *upstream_conns_[conn];
  if (c.state != upstream::Connection::State::kClosing || c.ops_in_flight() != 0) {
    return;
  }
  c.tls.reset();
  c.fd.reset();
  c.is_graceful_close = false;
  c.output.Clear();
  c.reader.Clear();
  c.state = upstream::Connection::State::kFree;
  ++c.generation;
  servers_[c.server()].spare.push_back(conn);
}

void Shard::ScheduleReconnect(uint32_t conn, bool immediately) {
  upstream::Connection& c = *upstream_conns_[conn];
  if (servers_[c.server()].health.is_down()) {
    // A down server is reconnected only by its probe timer, one connection at a time.
    c.state = upstream::Connection::State::kIdle;
    timers_.Cancel(&c.timer);
    ArmProbeTimer(c.server());
    return;
  }
  if (immediately) {
    Connect(conn);
    return;
  }
  c.state = upstream::Connection::State::kIdle;
  const uint32_t exponent = std::min<uint32_t>(c.consecutive_failures, 8);
  int64_t delay = std::min<int64_t>(kReconnectCapMs, kReconnectBaseMs << exponent);
  // Jitter in [delay/2, delay]: shards and proxies that failed together retry apart.
  delay = absl::Uniform<int64_t>(rng_, delay / 2, delay + 1);
  timers_.Schedule(&c.timer, now_ms_ + delay);
}

void Shard::OnUpstreamTimer(uint32_t conn) {
  upstream::Connection& c = *upstream_conns_[conn];
  switch (c.state) {
    case upstream::Connection::State::kIdle:
      Connect(conn);
      RefreshServerViews();
      break;
    case upstream::Connection::State::kConnecting:
      ++counters_.upstream_connect_failures;
      FailConnection(conn, "connect timeout");
      break;
    case upstream::Connection::State::kHandshaking:
      ++counters_.upstream_handshake_failures;
      FailConnection(conn, "handshake timeout");
      break;
    case upstream::Connection::State::kReady: {
      const int64_t stale = Millis(servers_[c.server()].config->stale_timeout);
      if (stale <= 0) {
        break;
      }
      if (c.ids().in_use() == 0 && c.plain_pending.empty() &&
          now_ms_ - c.last_used_ms >= stale) {
        // Close before the server does (Cloudflare: ~10 s), so the next query never meets a dead
        // socket; the replacement connects at once and resumes the TLS session.
        ++counters_.upstream_stale_closed;
        c.tls->Shutdown();
        c.is_graceful_close = true;
        StartUpstreamSend(conn);
        FailConnection(conn, "stale");
        break;
      }
      const int64_t next = c.ids().in_use() == 0 ? c.last_used_ms + stale : now_ms_ + stale;
      timers_.Schedule(&c.timer, std::max(next, now_ms_ + 1));
      break;
    }
    case upstream::Connection::State::kClosing:
    case upstream::Connection::State::kFree:
      break;
  }
}

}  // namespace dotproxy::proxy

namespace dotproxy::proxy {

void Shard::OnServerConnectFailure(uint32_t server) {
  Server& s = servers_[server];
  if (s.health.OnConnectFailure(now_ms_, balancer_.rng)) {
    LOG(kWarn, "upstream %s: down; next probe in %ld ms", s.config->addr_text,
        s.health.next_probe_ms() - now_ms_);
    RefreshServerViews();
    ArmProbeTimer(server);
  }
}

void Shard::OnServerDown(uint32_t server) {
  Server& s = servers_[server];
  LOG(kWarn, "upstream %s: down after repeated query timeouts; next probe in %ld ms",
      s.config->addr_text, s.health.next_probe_ms() - now_ms_);
  const std::vector<uint32_t> conns = s.conns;
  for (uint32_t ci : conns) {
    const auto state = upstream_conns_[ci]->state;
    if (state == upstream::Connection::State::kReady ||
        state == upstream::Connection::State::kConnecting ||
        state == upstream::Connection::State::kHandshaking) {
      FailConnection(ci, "server marked down");
    }
  }
  RefreshServerViews();
  ArmProbeTimer(server);
}

void Shard::ArmProbeTimer(uint32_t server) {
  Server& s = servers_[server];
  timers_.Schedule(&s.probe_timer, std::max(s.health.next_probe_ms(), now_ms_ + 1));
}

void Shard::OnProbeTimer(uint32_t server) {
  Server& s = servers_[server];
  if (!s.health.is_down()) {
    return;
  }
  if (s.health.IsProbeDue(now_ms_)) {
    for (uint32_t ci : s.conns) {
      if (upstream_conns_[ci]->state == upstream::Connection::State::kIdle) {
        s.health.StartProbe(now_ms_);
        Connect(ci);
        break;
      }
    }
  }
  ArmProbeTimer(server);
}

}  // namespace dotproxy::proxy
