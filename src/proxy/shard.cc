#include "proxy/shard.h"

#include <random>

#include "base/ip_prefix.h"
#include "base/log.h"
#include "base/status_macros.h"

namespace dotproxy::proxy {
namespace {

// Shutdown: how often the drain steps are checked, and how long the last two may take at most
// (answers going out to clients, then close_notify to the upstreams).
constexpr int64_t kDrainPollMs = 5;
constexpr int64_t kFlushAnswersMs = 500;
constexpr int64_t kCloseUpstreamsMs = 200;

}  // namespace

Shard::Shard(const config::Config& config, uint32_t shard_id, uint32_t shard_count,
             upstream::HandoffHub* hub)
    : config_(config),
      shard_id_(shard_id),
      shard_count_(shard_count),
      hub_(shard_count > 1 ? hub : nullptr) {}

Shard::~Shard() {
  // The reactor goes first: it unregisters the buffer rings and tears the ring down, which
  // cancels every request still in flight, before the memory those requests point at (the
  // frontends' msghdrs, the send buffers) is freed with the components below.
  reactor_.reset();
}

absl::StatusOr<std::unique_ptr<Shard>> Shard::Create(const config::Config& config,
                                                     uint32_t shard_id, uint32_t shard_count,
                                                     upstream::HandoffHub* hub) {
  auto shard = std::unique_ptr<Shard>(new Shard(config, shard_id, shard_count, hub));
  RETURN_IF_ERROR(shard->Init());
  return shard;
}

void Shard::Reconfigure(std::shared_ptr<const config::Config> next) {
  // Here, on the control thread, before the shard can see `next`: its servers' counter blocks
  // exist (and the reporter may read them) before the pool counts into them.
  ReserveServerBlocks(*next);
  reactor_->Post([this, next = std::move(next)] { ApplyConfig(*next); });
}

void Shard::ReserveServerBlocks(const config::Config& config) {
  for (const config::ServerConfig& server : config.upstream.servers) {
    counters_.upstream.Reserve(server.metrics_id);
  }
}

absl::Status Shard::Init() {
  ReserveServerBlocks(config_);  // nobody else sees the shard yet
  ASSIGN_OR_RETURN(reactor_, core::Reactor::Create());
  reactor_->set_busy_poll_ns(absl::ToInt64Nanoseconds(config_.server.busy_poll));
  ASSIGN_OR_RETURN(base::PrefixSet allow, base::PrefixSet::Create(config_.listener.allow));
  gate_ = std::make_unique<ClientGate>(std::move(allow), config_.listener.rate_limit,
                                       std::random_device{}());
  table_ = std::make_unique<QueryTable>(*reactor_, config_, counters_, config::kQuerySlotsPerShard);
  pool_ = std::make_unique<upstream::ConnectionPool>(*reactor_, config_, *table_,
                                                     counters_.upstream, shard_id_, shard_count_,
                                                     hub_);
  table_->set_pool(pool_.get());
  if (hub_ != nullptr) {
    // Before the pool connects: other shards hand us queries once the directory shows ours.
    relay_ = std::make_unique<HandoffRelay>(*reactor_, *hub_, *table_, counters_, shard_id_);
    table_->set_relay(relay_.get());
    relay_->Init();
  }
  // The pool first: its flush hook (backlogs, then one write per connection) runs before the TCP
  // frontend's, as answers follow queries; hooks re-run while one of them made work.
  RETURN_IF_ERROR(pool_->Init());
  udp_ = std::make_unique<UdpFrontend>(*reactor_, config_, *gate_, *table_, counters_);
  RETURN_IF_ERROR(udp_->Init());
  if (config_.listener.tcp.enabled) {
    tcp_ = std::make_unique<TcpFrontend>(*reactor_, config_, *gate_, *table_, counters_);
    RETURN_IF_ERROR(tcp_->Init());
  }
  if (relay_ != nullptr) {
    relay_->Start();
  }
  LOG(kInfo, "shard %u: io_uring %s, udp port %u, tcp port %u, %zu upstream connections",
      shard_id_, reactor_->ring().setup_mode(), udp_port(), tcp_port(),
      pool_->connection_count());
  return absl::OkStatus();
}

void Shard::ApplyConfig(const config::Config& next) {
  if (drain_state_ != DrainState::kRunning) {
    return;
  }
  const config::ListenerConfig previous_listener = config_.listener;
  config_ = next;
  reactor_->set_busy_poll_ns(absl::ToInt64Nanoseconds(config_.server.busy_poll));
  pool_->Reconfigure();
  // The ACL and the rate limit: rebuilt in place (the frontends hold a reference) when they
  // changed; the buckets then start full again.
  const config::RateLimitConfig& old_rate = previous_listener.rate_limit;
  const config::RateLimitConfig& new_rate = config_.listener.rate_limit;
  if (previous_listener.allow != config_.listener.allow || old_rate.enabled != new_rate.enabled ||
      old_rate.qps != new_rate.qps || old_rate.burst != new_rate.burst ||
      old_rate.action != new_rate.action) {
    auto allow = base::PrefixSet::Create(config_.listener.allow);
    if (allow.ok()) {  // the loader checked every CIDR
      *gate_ = ClientGate(std::move(allow).value(), new_rate, std::random_device{}());
    }
  }
  // Listeners: a new address that cannot be bound keeps the old set (and says why).
  if (absl::Status udp = udp_->Reconfigure(); !udp.ok()) {
    LOG(kError, "shard %u: reload: udp listeners unchanged: %s", shard_id_, udp.message());
    config_.listener.udp = previous_listener.udp;
  }
  if (tcp_ != nullptr) {
    if (absl::Status tcp = tcp_->Reconfigure(); !tcp.ok()) {
      LOG(kError, "shard %u: reload: tcp listeners unchanged: %s", shard_id_, tcp.message());
      config_.listener.tcp = previous_listener.tcp;
    }
  } else if (tcp_ == nullptr && config_.listener.tcp.enabled) {
    LOG(kWarn, "shard %u: reload: enabling the TCP listener needs a restart", shard_id_);
    config_.listener.tcp = previous_listener.tcp;
  }
  LOG(kDebug, "shard %u: configuration applied", shard_id_);
}

void Shard::StartDrain(int64_t grace_ms) {
  if (drain_state_ != DrainState::kRunning) {
    return;
  }
  drain_state_ = DrainState::kAnswering;
  drain_deadline_ms_ = reactor_->now_ms() + grace_ms;
  udp_->StopReading();
  if (tcp_ != nullptr) {
    tcp_->Drain();
  }
  drain_timer_.owner = this;
  drain_timer_.kind = reactor_->OnTimer<&Shard::OnDrainTimer>(this);
  reactor_->timers().Schedule(&drain_timer_, reactor_->now_ms());
}

void Shard::OnDrainTimer(core::Timer* /*timer*/) {
  const int64_t now_ms = reactor_->now_ms();
  switch (drain_state_) {
    case DrainState::kRunning:
      return;
    case DrainState::kAnswering:
      if (table_->in_use() > 0 && now_ms < drain_deadline_ms_) {
        break;
      }
      if (table_->in_use() > 0) {
        LOG(kWarn, "shard %u: shutdown grace over; SERVFAIL for the queries still waiting",
            shard_id_);
        table_->FailAllWaiting();
      }
      drain_state_ = DrainState::kFlushing;
      drain_deadline_ms_ = now_ms + kFlushAnswersMs;
      [[fallthrough]];
    case DrainState::kFlushing:
      if ((table_->in_use() > 0 || (tcp_ != nullptr && tcp_->has_open_clients())) &&
          now_ms < drain_deadline_ms_) {
        break;
      }
      pool_->CloseAll();
      drain_state_ = DrainState::kClosing;
      drain_deadline_ms_ = now_ms + kCloseUpstreamsMs;
      [[fallthrough]];
    case DrainState::kClosing:
      if (pool_->has_open_connections() && now_ms < drain_deadline_ms_) {
        break;
      }
      reactor_->RequestStop();
      return;
  }
  reactor_->timers().Schedule(&drain_timer_, now_ms + kDrainPollMs);
}

void Shard::Run() {
  reactor_->Run();
  LogCounters();
}

void Shard::LogCounters() const {
  const metrics::ShardCounters& c = counters_;
  const upstream::UpstreamCounters& u = c.upstream;
  LOG(kInfo,
      "shard %u: stopping; udp %lu tcp %lu answered %lu truncated %lu servfail(timeout %lu, "
      "no upstream %lu, retries %lu) malformed(udp %lu, tcp %lu) upstream(connects %lu, full "
      "%lu, resumed %lu, failures %lu, lost %lu, stale %lu, retries %lu, late id %lu, "
      "mismatch %lu, desyncs %lu, write timeouts %lu, quarantined %lu, capped %lu, "
      "local resource errors %lu, backlog moved %lu) acl(udp %lu, tcp %lu) "
      "rate_limited(dropped %lu, refused %lu) local(notimp %lu, formerr %lu, badvers %lu) "
      "share_dropped %lu tcp(paused_output %lu, write_timeouts %lu) "
      "handoff(out %lu, in %lu, ring_full %lu, late %lu, declined %lu) "
      "errors(udp_recv %lu, accept %lu)",
      shard_id_, c.udp_queries.value(), c.tcp_queries.value(), c.responses.value(),
      c.truncated.value(), c.servfail_timeout.value(), c.servfail_no_upstream.value(),
      c.servfail_retries.value(), c.udp_malformed.value(), c.tcp_malformed.value(),
      u.connects.value(), u.handshakes_full.value(), u.handshakes_resumed.value(),
      u.connect_failures.value() + u.handshake_failures.value(), u.closed.value(),
      u.stale_closed.value(), c.upstream_retries.value(), u.unknown_id.value(),
      u.mismatch.value(), u.desyncs.value(), u.write_timeouts.value(), u.quarantined.value(),
      u.cap_closed.value(), u.local_resource_errors.value(), u.backlog_moved.value(), c.udp_acl_dropped.value(),
      c.tcp_acl_refused.value(), c.rate_limited_dropped.value(), c.rate_limited_refused.value(),
      c.local_notimp.value(), c.local_formerr.value(), c.local_badvers.value(),
      c.client_share_dropped.value(), c.tcp_paused_output.value(), c.tcp_write_timeouts.value(),
      c.handed_off.value(), c.handed_in.value(), c.handoff_ring_full.value(),
      c.handoff_late_answers.value(), c.handoff_declined.value(),
      c.udp_recv_errors.value(), c.tcp_accept_errors.value());
}

}  // namespace dotproxy::proxy
