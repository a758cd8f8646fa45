// ConnectionPool, second half: the life of each connection (connect, handshake, receive and
// match responses, failures and replacement, stale close, reconnect backoff).
// connection_pool.cc has the query side and the health transitions of servers.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/check.h"
#include "base/log.h"
#include "dns/header.h"
#include "upstream/connection_pool.h"

namespace dotproxy::upstream {
namespace {

// A connection that dies sooner than this after its handshake counts as a failure, so a server
// that accepts and then drops every connection is backed off instead of hammered.
constexpr int64_t kMinHealthyLifetimeMs = 1000;
constexpr uint32_t kMaxImmediateReconnects = 2;
constexpr int64_t kReconnectBaseMs = 100;
constexpr int64_t kReconnectCapMs = 10'000;
// A retired connection's close_notify that cannot go out within this is abandoned.
constexpr int64_t kStuckCloseMs = 1000;

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

// Out of fds, socket buffers or memory on this machine: not the server's fault (issue 9).
bool IsLocalResourceError(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

}  // namespace

void ConnectionPool::CloseAll() {
  is_shutting_down_ = true;
  for (uint32_t ci = 0; ci < conns_.size(); ++ci) {
    Connection& c = *conns_[ci];
    if (c.is_ready()) {
      c.BeginGracefulClose();
      c.StartSend(reactor_);
      FailConnection(ci, "shutting down");
    } else if (c.is_alive()) {
      FailConnection(ci, "shutting down");
    }
  }
  for (Server& server : servers_) {
    reactor_.timers().Cancel(&server.probe_timer);
    reactor_.timers().Cancel(&server.regrow_timer);
  }
}

bool ConnectionPool::has_open_connections() const {
  for (const auto& c : conns_) {
    if (c->state() != Connection::State::kIdle && c->state() != Connection::State::kFree) {
      return true;
    }
  }
  return false;
}

void ConnectionPool::Connect(uint32_t conn) {
  Connection& c = *conns_[conn];
  if (is_shutting_down_) {
    c.SetIdle();
    reactor_.timers().Cancel(&c.timer());
    return;
  }
  const config::ServerConfig& sc = *servers_[c.server()].config;
  const absl::Status started = c.StartConnect(reactor_, sc.addr);
  // Of the errors socket() can return, ErrnoToStatus maps exactly EMFILE, ENFILE, ENOBUFS and
  // ENOMEM to this code.
  if (absl::IsResourceExhausted(started)) {
    ++counters_.local_resource_errors;
    LOG_EVERY_N_SEC(kError, 1, "upstream %s: %s: a local resource limit, not a server failure; "
                    "retrying", sc.addr_text, started.ToString());
    c.SetIdle();
    ScheduleLocalRetry(c);
    return;
  }
  c.local_failures = 0;
  if (!started.ok()) {
    LOG_EVERY_N_SEC(kError, 1, "upstream %s: %s", sc.addr_text, started.ToString());
    ++counters_.connect_failures;
    ++CountersOf(c.server()).connect_errors;
    ++c.consecutive_failures;
    OnServerConnectFailure(c.server());
    ScheduleReconnect(conn, false);
    return;
  }
  ++counters_.connects;
  ++CountersOf(c.server()).connects;
  // The connect deadline is a timer-wheel entry like every other deadline; expiry cancels it.
  const int64_t timeout = Millis(sc.connect_timeout);
  if (timeout > 0) {
    reactor_.timers().Schedule(&c.timer(), reactor_.now_ms() + timeout);
  } else {
    reactor_.timers().Cancel(&c.timer());
  }
}

void ConnectionPool::OnConnectDone(const core::Operation& op, const io_uring_cqe& cqe) {
  Connection& c = *conns_[op.index];
  c.OnConnectCompleted();
  if (c.state() != Connection::State::kConnecting) {
    FinishClose(op.index);
    return;
  }
  if (cqe.res < 0 && IsLocalResourceError(-cqe.res)) {
    ++counters_.local_resource_errors;
    FailConnection(op.index, strerror(-cqe.res), Cause::kLocalResource);
    return;
  }
  if (cqe.res < 0) {
    ++counters_.connect_failures;
    ++CountersOf(c.server()).connect_errors;
    FailConnection(op.index, strerror(-cqe.res));
    return;
  }
  Server& server = servers_[c.server()];
  if (!c.StartTls(*server.tls, !server.is_ktls_rekeyed)) {
    ++counters_.handshake_failures;
    ++CountersOf(c.server()).connect_errors;
    FailConnection(op.index, "cannot create a TLS session");
    return;
  }
  const int64_t timeout = Millis(server.config->handshake_timeout);
  if (timeout > 0) {
    reactor_.timers().Schedule(&c.timer(), reactor_.now_ms() + timeout);
  } else {
    reactor_.timers().Cancel(&c.timer());
  }
  c.ArmRecv(reactor_, *buffers_);
  DriveTls(c);
}

void ConnectionPool::OnRecvDone(const core::Operation& op, const io_uring_cqe& cqe) {
  Connection& c = *conns_[op.index];
  c.OnRecvCompleted();
  uint16_t bid = 0;
  const bool has_buffer = core::BufferRing::BufferOf(cqe, &bid);
  const bool is_own = c.is_own_recv();
  const bool is_live = c.state() == Connection::State::kHandshaking || c.is_ready();
  if (!is_live) {
    if (has_buffer) {
      buffers_->Recycle(bid);
    }
    FinishClose(op.index);
    return;
  }
  if (cqe.res == -ENOBUFS && !is_own) {
    c.ArmRecv(reactor_, *buffers_);  // every shared buffer is in use this instant; bytes wait
    return;
  }
  // On a kTLS socket a record the kernel cannot decrypt (EBADMSG), or an unexpected one, fails
  // the read: the connection is replaced and its queries re-sent, never read again.
  if (cqe.res <= 0 || (!is_own && !has_buffer)) {
    FailConnection(op.index,
                   cqe.res == 0 ? "connection closed by the server" : strerror(-cqe.res),
                   cqe.res == 0 ? Cause::kServerClosed : Cause::kServer);
    return;
  }
  if (is_own) {
    const char* why = nullptr;
    if (!c.TakeOwnInput(static_cast<size_t>(cqe.res), reactor_.now_ms(), &why)) {
      FailConnection(op.index, why, Cause::kServer);
      return;
    }
  } else {
    c.SetInput(buffers_->buffer(bid), static_cast<size_t>(cqe.res), reactor_.now_ms());
  }
  DriveTls(c);
  // TLS reads until its BIO is empty, so the buffer is fully consumed (or the connection failed).
  c.ForgetInput();
  if (!is_own) {
    buffers_->Recycle(bid);
  }
  if (c.state() == Connection::State::kHandshaking || c.is_ready()) {
    c.ArmRecv(reactor_, *buffers_);
  }
}

void ConnectionPool::DriveTls(Connection& c) {
  if (c.state() == Connection::State::kHandshaking) {
    const tls::IoResult r = c.Handshake();
    if (r == tls::IoResult::kDone) {
      OnReady(c);
    } else if (r == tls::IoResult::kWantRead) {
      c.StartSend(reactor_);
      return;
    } else {
      // Verification failures end here: no query is ever written to this connection.
      ++counters_.handshake_failures;
      ++CountersOf(c.server()).connect_errors;
      c.StartSend(reactor_);  // flush the alert, best effort
      FailConnection(c.index(), c.tls().error().c_str());
      return;
    }
  }
  const Connection::ReadResult result = c.ReadResponses(
      plaintext_, [&](const uint8_t* msg, size_t len) { return OnMessage(c, msg, len); });
  switch (result) {
    case Connection::ReadResult::kWantMore:
      break;
    case Connection::ReadResult::kClosed:
      FailConnection(c.index(), "close_notify from the server", Cause::kServerClosed);
      return;
    case Connection::ReadResult::kFailed:
      if (c.tls().is_key_update_blocked()) {
        Server& server = servers_[c.server()];
        if (!server.is_ktls_rekeyed) {
          server.is_ktls_rekeyed = true;
          LOG(kWarn, "upstream %s: sends TLS 1.3 KeyUpdates, which kernel TLS cannot follow "
              "here; its connections keep TLS in user space from now on", server.config->addr_text);
        }
        FailConnection(c.index(), c.tls().error().c_str(), Cause::kKtlsRekey);
        return;
      }
      FailConnection(c.index(), c.tls().error().c_str(), Cause::kServer);
      return;
    case Connection::ReadResult::kZeroLength:
      FailConnection(c.index(), "zero-length DNS message", Cause::kServer);
      return;
    case Connection::ReadResult::kDesync:
      // The framing can no longer be trusted: every later byte might be misread. Close now and
      // re-send what was in flight, rather than let each query wait for its timeout.
      ++counters_.desyncs;
      FailConnection(c.index(), "desynchronized: a message that answers no query in flight",
                     Cause::kServer);
      return;
  }
  // TLS may have produced records while reading (alerts, key updates): send them now. Queries
  // whose write had to wait for this read go out in this iteration's flush.
  c.StartSend(reactor_);
  ArmWriteDeadline(c);
  if (c.is_ready() && c.has_queued_queries()) {
    MarkDirty(c);
  }
}

void ConnectionPool::OnReady(Connection& c) {
  const int64_t now_ms = reactor_.now_ms();
  Server& server = servers_[c.server()];
  c.MarkReady(now_ms);
  const bool is_resumed = c.tls().session_reused();
  ++(is_resumed ? counters_.handshakes_resumed : counters_.handshakes_full);
  ++(is_resumed ? CountersOf(c.server()).handshakes_resumed
               : CountersOf(c.server()).handshakes_full);
  CountTlsPath(c);
  const int64_t stale = Millis(server.config->stale_timeout);
  if (stale > 0) {
    reactor_.timers().Schedule(&c.timer(), now_ms + stale);
  } else {
    reactor_.timers().Cancel(&c.timer());
  }
  if (c.has_queued_queries()) {
    MarkDirty(c);
  }
  if (server.health.OnConnected(now_ms)) {
    LOG(kWarn, "upstream %s: up again (handshake completed)", server.config->addr_text);
    ConnectUpToTarget(c.server());
  }
  RefreshServerViews();
  has_backlog_ = true;
}

bool ConnectionPool::OnMessage(Connection& c, const uint8_t* msg, size_t len) {
  uint32_t slot = 0;
  if (len < dns::kHeaderSize || !dns::IsResponse(msg)) {
    return false;  // not a response at all: desynchronized
  }
  if (!c.ids().Lookup(dns::GetId(msg), &slot)) {
    if (!c.WasRecentlyReleased(dns::GetId(msg))) {
      return false;  // answers nothing we sent: desynchronized
    }
    ++counters_.unknown_id;
    ++CountersOf(c.server()).dropped_answers;
    LOG_EVERY_N_SEC(kInfo, 1, "upstream %s: dropped a late response (its query is gone)",
                    servers_[c.server()].config->addr_text);
    return true;
  }
  const int64_t now_ms = reactor_.now_ms();
  int64_t sent_ns = 0;
  // RFC 7766 §7: the owner matches ID and question; never hand a client someone else's answer.
  if (!owner_.OnResponse(slot, c.index(), dns::GetId(msg), msg, len, &sent_ns)) {
    ++counters_.mismatch;
    ++CountersOf(c.server()).dropped_answers;
    LOG_EVERY_N_SEC(kWarn, 1, "upstream %s: dropped a response whose question does not match",
                    servers_[c.server()].config->addr_text);
    return true;
  }
  c.last_used_ms = now_ms;
  c.has_answered = true;
  ++CountersOf(c.server()).answers;
  CountersOf(c.server()).latency_us.Record((reactor_.now_ns() - sent_ns) / 1000);
  Server& server = servers_[c.server()];
  if (server.health.OnResponse(now_ms, (reactor_.now_ns() - sent_ns) / 1000)) {
    LOG(kInfo, "upstream %s: up again (answered a query)", server.config->addr_text);
    RefreshServerViews();
  } else {
    views_[c.server()].ewma_latency_us = server.health.ewma_latency_us();
  }
  return true;
}

void ConnectionPool::OnSendDone(const core::Operation& op, const io_uring_cqe& cqe) {
  Connection& c = *conns_[op.index];
  const bool is_closing = c.state() == Connection::State::kClosing;
  const net::SendQueue::Result result = c.OnSendCompleted(reactor_, cqe.res);
  if (result == net::SendQueue::Result::kPartial) {
    return;
  }
  if (is_closing) {
    if (result == net::SendQueue::Result::kDone && c.is_graceful_close()) {
      c.StartSend(reactor_);  // the close_notify, if it was queued behind
    }
    FinishClose(op.index);
    return;
  }
  if (result == net::SendQueue::Result::kFailed) {
    ++CountersOf(c.server()).write_errors;
    FailConnection(op.index, cqe.res == 0 ? "send made no progress" : strerror(-cqe.res));
    return;
  }
  c.StartSend(reactor_);
  ArmWriteDeadline(c);
}

void ConnectionPool::FailConnection(uint32_t conn, const char* reason, Cause cause) {
  Connection& c = *conns_[conn];
  if (c.state() == Connection::State::kClosing || c.state() == Connection::State::kFree) {
    return;
  }
  const int64_t now_ms = reactor_.now_ms();
  const uint32_t server_index = c.server();
  Server& server = servers_[server_index];
  const Connection::State old_state = c.state();
  const bool was_ready = old_state == Connection::State::kReady;
  const bool is_graceful = c.is_graceful_close();
  // A server that closes fresh, healthy connections caps its clients: not a failure, but no
  // reconnect loop either (adaptive_pool.cc).
  const bool is_cap = IsCapClose(c, cause, now_ms);
  // A healthy connection that lived a while and was closed (idle close by the server, our stale
  // close, a reset mid-query) is replaced at once; set-up failures and short lives back off.
  const bool is_failure = !is_graceful && !is_cap && cause != Cause::kLocalResource &&
                          cause != Cause::kKtlsRekey &&
                          (!was_ready || now_ms - c.ready_since_ms < kMinHealthyLifetimeMs);
  // A connection that was carrying queries is replaced at once even if short-lived, so its
  // queries can be re-sent; only repeated short lives back off.
  const bool reconnect_now =
      (!is_failure && !is_cap && cause != Cause::kLocalResource) ||
      (was_ready && c.consecutive_failures + 1 <= kMaxImmediateReconnects);
  if (is_failure && !reconnect_now) {
    OnServerConnectFailure(server_index);
  }
  if (old_state == Connection::State::kIdle) {
    return;
  }
  if (is_failure) {
    LOG_EVERY_N_SEC(kWarn, 1, "upstream %s: connection %u failed: %s", server.config->addr_text,
                    conn, reason);
  } else {
    LOG(kDebug, "upstream %s: connection %u closed: %s", server.config->addr_text, conn, reason);
  }
  if (!is_graceful) {
    ++counters_.closed;
  }
  if (was_ready) {
    ++CountersOf(server_index).closed;
    CountersOf(server_index).queries_per_connection.Record(c.queries_sent);
  }
  c.queries_sent = 0;
  // The queries on this connection lose their attempt here, and are re-sent elsewhere (or
  // failed) once it is out of the pool.
  // A cap close is the server's limit, not something a query did: no quarantine for it.
  const std::vector<uint32_t> orphans =
      DetachQueries(c, cause == Cause::kServer || (cause == Cause::kServerClosed && !is_cap), is_cap);
  c.BeginClose(reactor_);
  if (c.is_graceful_close() && c.is_sending()) {
    // close_notify waits behind a send; a server that stopped reading must not keep the fd.
    const int64_t write_timeout = Millis(server.config->write_timeout);
    reactor_.timers().Schedule(&c.timer(), now_ms + (write_timeout > 0 ? write_timeout : 1000));
  }
  if (hub_ != nullptr && server.conns.size() > PoolShare(server_index, *server.config)) {
    // A connection this shard opened because no shard had one (ConnectLocally): not replaced.
    if (is_cap) {
      OnCapClose(c, cause, now_ms);  // counted, and the target follows it
    }
    std::vector<uint32_t>& pool = server.conns;
    pool.erase(std::remove(pool.begin(), pool.end(), conn), pool.end());
    FinishClose(conn);
    RefreshServerViews();
    for (uint32_t slot : orphans) {
      owner_.OnLostAttemptsDone(slot);
    }
    return;
  }
  // Put a fresh connection in this one's place in the pool.
  const uint32_t replacement = SpareOrNewConnection(server_index);
  Connection& next = *conns_[replacement];
  next.consecutive_failures = is_failure ? c.consecutive_failures + 1 : 0;
  next.is_cap_replacement = is_cap;
  next.SetIdle();
  for (uint32_t& slot_in_pool : server.conns) {
    if (slot_in_pool == conn) {
      slot_in_pool = replacement;
    }
  }
  if (!is_cap) {
    ScheduleReconnect(replacement, reconnect_now);
  } else {
    // Back off (the exponent grows with the streak of cap closes); above the lowered target the
    // replacement stays parked until the regrow timer wants one more.
    next.consecutive_failures = OnCapClose(c, cause, now_ms);
    if (LiveConnections(server_index) < server.target_connections) {
      ScheduleReconnect(replacement, false);
    } else {
      reactor_.timers().Cancel(&next.timer());
    }
  }
  FinishClose(conn);
  RefreshServerViews();
  for (uint32_t slot : orphans) {
    owner_.OnLostAttemptsDone(slot);
  }
}

std::vector<uint32_t> ConnectionPool::DetachQueries(Connection& c, bool by_server, bool by_cap) {
  std::vector<std::pair<uint16_t, uint32_t>> lost;
  c.ids().ForEach([&](uint16_t id, uint32_t slot) { lost.emplace_back(id, slot); });
  std::vector<uint32_t> slots;
  slots.reserve(lost.size());
  for (const auto& [id, slot] : lost) {
    Release(c.index(), id);
    owner_.OnAttemptLost(slot, c.index(), by_server, by_cap);
    slots.push_back(slot);
  }
  return slots;
}

void ConnectionPool::RetireConnection(uint32_t conn) {
  Connection& c = *conns_[conn];
  if (c.server() != Connection::kNoServer) {
    std::vector<uint32_t>& pool = servers_[c.server()].conns;
    pool.erase(std::remove(pool.begin(), pool.end(), conn), pool.end());
  }
  if (c.state() == Connection::State::kIdle) {
    reactor_.timers().Cancel(&c.timer());
    return;  // no socket: simply out of the pool
  }
  if (c.state() == Connection::State::kClosing || c.state() == Connection::State::kFree) {
    return;
  }
  const std::vector<uint32_t> orphans = DetachQueries(c, /*by_server=*/false);
  if (c.is_ready()) {
    c.BeginGracefulClose();
    c.StartSend(reactor_);
  }
  c.BeginClose(reactor_);
  if (c.is_graceful_close() && c.is_sending()) {
    // As in FailConnection: a close_notify stuck behind a send is aborted (kClosing timer).
    reactor_.timers().Schedule(&c.timer(), reactor_.now_ms() + kStuckCloseMs);
  }
  FinishClose(conn);
  RefreshServerViews();
  for (uint32_t slot : orphans) {
    owner_.OnLostAttemptsDone(slot);
  }
}

void ConnectionPool::FinishClose(uint32_t conn) {
  Connection& c = *conns_[conn];
  if (c.FinishCloseIfIdle()) {
    reactor_.timers().Cancel(&c.timer());
    if (c.server() != Connection::kNoServer) {
      servers_[c.server()].spare.push_back(conn);
    }
  }
}

void ConnectionPool::ScheduleReconnect(uint32_t conn, bool immediately) {
  Connection& c = *conns_[conn];
  if (servers_[c.server()].health.is_down()) {
    // A down server is reconnected only by its probe timer, one connection at a time.
    c.SetIdle();
    reactor_.timers().Cancel(&c.timer());
    ArmProbeTimer(c.server());
    return;
  }
  if (immediately) {
    Connect(conn);
    return;
  }
  c.SetIdle();
  const uint32_t exponent = std::min<uint32_t>(c.consecutive_failures, 8);
  int64_t delay = std::min<int64_t>(kReconnectCapMs, kReconnectBaseMs << exponent);
  // Jitter in [delay/2, delay]: shards and proxies that failed together retry apart.
  delay = absl::Uniform<int64_t>(rng_, delay / 2, delay + 1);
  reactor_.timers().Schedule(&c.timer(), reactor_.now_ms() + delay);
}

void ConnectionPool::ScheduleLocalRetry(Connection& c) {
  // Short and capped: the limit may lift any moment (a client closes), and retrying costs one
  // failed socket() call.
  const uint32_t exponent = std::min<uint32_t>(c.local_failures, 4);
  ++c.local_failures;
  const int64_t delay = kReconnectBaseMs << exponent;
  reactor_.timers().Schedule(&c.timer(),
                             reactor_.now_ms() + absl::Uniform<int64_t>(rng_, delay / 2, delay + 1));
}

void ConnectionPool::OnConnectionTimer(core::Timer* timer) {
  Connection& c = *static_cast<Connection*>(timer->owner);
  const uint32_t conn = c.index();
  const int64_t now_ms = reactor_.now_ms();
  switch (c.state()) {
    case Connection::State::kIdle:
      Connect(conn);
      RefreshServerViews();
      break;
    case Connection::State::kConnecting:
      ++counters_.connect_failures;
      ++CountersOf(c.server()).connect_errors;
      FailConnection(conn, "connect timeout", SetUpTimeoutCause(c));
      break;
    case Connection::State::kHandshaking:
      ++counters_.handshake_failures;
      ++CountersOf(c.server()).connect_errors;
      FailConnection(conn, "handshake timeout", SetUpTimeoutCause(c));
      break;
    case Connection::State::kReady: {
      const config::ServerConfig& sc = *servers_[c.server()].config;
      const int64_t write_timeout = Millis(sc.write_timeout);
      if (write_timeout > 0 && c.is_sending() && now_ms - c.send_progress_ms() >= write_timeout) {
        // The server stopped reading: ciphertext piles up behind a send that never completes.
        // Its queries are re-sent on the replacement (or elsewhere).
        ++counters_.write_timeouts;
        FailConnection(conn, "write timeout: the server stopped reading");
        break;
      }
      const int64_t stale = Millis(sc.stale_timeout);
      int64_t next = INT64_MAX;
      if (stale > 0) {
        if (c.ids().in_use() == 0 && !c.has_queued_queries() &&
            now_ms - c.last_used_ms >= stale) {
          // Close before the server does (Cloudflare: ~10 s), so the next query never meets a
          // dead socket; the replacement connects at once and resumes the TLS session.
          ++counters_.stale_closed;
          ++CountersOf(c.server()).stale_closed;
          c.BeginGracefulClose();
          c.StartSend(reactor_);
          FailConnection(conn, "stale");
          break;
        }
        next = c.ids().in_use() == 0 ? c.last_used_ms + stale : now_ms + stale;
      }
      if (write_timeout > 0 && c.is_sending()) {
        next = std::min(next, c.send_progress_ms() + write_timeout);
      }
      if (next != INT64_MAX) {
        reactor_.timers().Schedule(&c.timer(), std::max(next, now_ms + 1));
      }
      break;
    }
    case Connection::State::kClosing:
      // A graceful close whose close_notify (or the send before it) never went out.
      ++counters_.write_timeouts;
      c.AbortClose(reactor_);
      break;
    case Connection::State::kFree:
      break;
  }
}

void ConnectionPool::ArmWriteDeadline(Connection& c) {
  // Only a ready connection: before that its timer is the connect or handshake deadline.
  if (!c.is_ready() || !c.is_sending()) {
    return;
  }
  const int64_t write_timeout = Millis(servers_[c.server()].config->write_timeout);
  if (write_timeout <= 0) {
    return;
  }
  const int64_t deadline = c.send_progress_ms() + write_timeout;
  if (!c.timer().is_armed || c.timer().expiry_ms > deadline) {
    reactor_.timers().Schedule(&c.timer(), deadline);
  }
}

}  // namespace dotproxy::upstream
