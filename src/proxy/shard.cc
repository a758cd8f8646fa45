#include "proxy/shard.h"

#include <random>

#include "base/ip_prefix.h"
#include "base/log.h"
#include "base/status_macros.h"

namespace dotproxy::proxy {

Shard::Shard(const config::Config& config, uint32_t shard_id, uint32_t shard_count)
    : config_(config), shard_id_(shard_id), shard_count_(shard_count) {}

Shard::~Shard() {
  // The reactor goes first: it unregisters the buffer rings and tears the ring down, which
  // cancels every request still in flight, before the memory those requests point at (the
  // frontends' msghdrs, the send buffers) is freed with the components below.
  reactor_.reset();
}

absl::StatusOr<std::unique_ptr<Shard>> Shard::Create(const config::Config& config,
                                                     uint32_t shard_id, uint32_t shard_count) {
  auto shard = std::unique_ptr<Shard>(new Shard(config, shard_id, shard_count));
  RETURN_IF_ERROR(shard->Init());
  return shard;
}

absl::Status Shard::Init() {
  ASSIGN_OR_RETURN(reactor_, core::Reactor::Create());
  ASSIGN_OR_RETURN(base::PrefixSet allow, base::PrefixSet::Create(config_.listener.allow));
  gate_ = std::make_unique<ClientGate>(std::move(allow), config_.listener.rate_limit,
                                       std::random_device{}());
  table_ = std::make_unique<QueryTable>(*reactor_, config_, counters_, config::kQuerySlotsPerShard);
  pool_ = std::make_unique<upstream::ConnectionPool>(*reactor_, config_, *table_,
                                                     counters_.upstream, shard_id_, shard_count_);
  table_->set_pool(pool_.get());
  // The pool first: its flush hook (backlogs, then one write per connection) runs before the TCP
  // frontend's, as answers follow queries; hooks re-run while one of them made work.
  RETURN_IF_ERROR(pool_->Init());
  udp_ = std::make_unique<UdpFrontend>(*reactor_, config_, *gate_, *table_, counters_);
  RETURN_IF_ERROR(udp_->Init());
  if (config_.listener.tcp.enabled) {
    tcp_ = std::make_unique<TcpFrontend>(*reactor_, config_, *gate_, *table_, counters_);
    RETURN_IF_ERROR(tcp_->Init());
  }
  LOG(kInfo, "shard %u: io_uring %s, udp port %u, tcp port %u, %zu upstream connections",
      shard_id_, reactor_->ring().setup_mode(), udp_port(), tcp_port(),
      pool_->connection_count());
  return absl::OkStatus();
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
      "%lu, resumed %lu, failures %lu, lost %lu, stale %lu, retries %lu, unknown id %lu, "
      "mismatch %lu) acl(udp %lu, tcp %lu) rate_limited(dropped %lu, refused %lu) local(notimp "
      "%lu, formerr %lu, badvers %lu) share_dropped %lu tcp(paused_output %lu, write_timeouts "
      "%lu) errors(udp_recv %lu, accept %lu)",
      shard_id_, c.udp_queries, c.tcp_queries, c.responses, c.truncated, c.servfail_timeout,
      c.servfail_no_upstream, c.servfail_retries, c.udp_malformed, c.tcp_malformed, u.connects,
      u.handshakes_full, u.handshakes_resumed, u.connect_failures + u.handshake_failures, u.closed,
      u.stale_closed, c.upstream_retries, u.unknown_id, u.mismatch, c.udp_acl_dropped,
      c.tcp_acl_refused, c.rate_limited_dropped, c.rate_limited_refused, c.local_notimp,
      c.local_formerr, c.local_badvers, c.client_share_dropped, c.tcp_paused_output,
      c.tcp_write_timeouts, c.udp_recv_errors, c.tcp_accept_errors);
}

}  // namespace dotproxy::proxy
