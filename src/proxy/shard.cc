#include "proxy/shard.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "core/clock.h"
#include "dns/header.h"

namespace dotproxy::proxy {
namespace {

// Per shard: the most client queries in flight at once. Beyond it UDP queries are dropped
// (counted) and TCP clients stop being read.
constexpr uint32_t kQuerySlots = 8192;
// Plaintext read per SSL_read call.
constexpr size_t kPlaintextChunk = 64 * 1024;
// Upstream ciphertext buffers, shared by the shard's upstream connections: 16 KiB holds a full
// TLS record.
constexpr uint16_t kUpstreamBufferGroup = 3;
constexpr uint32_t kUpstreamBufferCount = 128;
constexpr uint32_t kUpstreamBufferSize = 16 * 1024 + 512;

}  // namespace

Shard::Shard(const config::Config& config, uint32_t shard_id, uint32_t shard_count)
    : config_(config),
      shard_id_(shard_id),
      shard_count_(shard_count),
      timers_(core::MonotonicMillis()) {}

Shard::~Shard() {
  // Unregister the buffer rings, then tear the ring down, which cancels every request still in
  // flight, before any memory those requests point at (msghdrs, send buffers) is freed.
  udp_buffers_.reset();
  tcp_buffers_.reset();
  upstream_buffers_.reset();
  ring_.reset();
}

absl::StatusOr<std::unique_ptr<Shard>> Shard::Create(const config::Config& config,
                                                     uint32_t shard_id, uint32_t shard_count) {
  auto shard = std::unique_ptr<Shard>(new Shard(config, shard_id, shard_count));
  RETURN_IF_ERROR(shard->Init());
  return shard;
}

absl::Status Shard::Init() {
  now_ns_ = core::MonotonicNanos();
  now_ms_ = now_ns_ / 1'000'000;
  ASSIGN_OR_RETURN(ring_, core::Ring::Create({}));
  wake_fd_.reset(eventfd(0, EFD_CLOEXEC));
  if (!wake_fd_.is_valid()) {
    return absl::ErrnoToStatus(errno, "eventfd");
  }
  wake_op_.kind = core::OpKind::kWake;
  slots_.resize(kQuerySlots);
  free_slots_.reserve(kQuerySlots);
  for (uint32_t i = kQuerySlots; i > 0; --i) {
    QuerySlot& slot = slots_[i - 1];
    slot.timer.owner = &slot;
    slot.timer.kind = kTimerQuery;
    slot.send_op.kind = core::OpKind::kUdpSend;
    slot.send_op.index = i - 1;
    free_slots_.push_back(i - 1);
  }
  plaintext_.resize(kPlaintextChunk);
  scratch_.resize(dns::kMaxMessageSize + 2);
  RETURN_IF_ERROR(InitUdp());
  if (config_.listener.tcp.enabled) {
    RETURN_IF_ERROR(InitTcp());
  }
  ASSIGN_OR_RETURN(upstream_buffers_,
                   core::BufferRing::Create(ring_->raw(), kUpstreamBufferGroup,
                                            kUpstreamBufferCount, kUpstreamBufferSize));
  RETURN_IF_ERROR(InitUpstreams());
  ArmWake();
  LOG(kInfo, "shard %u: io_uring %s, udp port %u, tcp port %u, %zu upstream connections",
      shard_id_, ring_->setup_mode(), udp_port(), tcp_port(), upstream_conns_.size());
  return absl::OkStatus();
}

void Shard::RequestStop() {
  stop_requested_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_.get(), &one, sizeof(one));
}

void Shard::ArmWake() {
  io_uring_sqe* sqe = ring_->GetSqe(&wake_op_);
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_value_, sizeof(wake_value_), 0);
}

void Shard::Run() {
  while (!stop_requested_.load(std::memory_order_acquire)) {
    FlushDirty();
    const int64_t timeout = timers_.NextTimeoutMs(now_ms_, 1000);
    ring_->SubmitAndWait(timeout < 0 ? 1000 : timeout);
    now_ns_ = core::MonotonicNanos();
    now_ms_ = now_ns_ / 1'000'000;
    ring_->Drain([this](const io_uring_cqe& cqe) { Dispatch(cqe); });
    timers_.Advance(now_ms_, [this](core::Timer* timer) { OnTimer(timer); });
  }
  LOG(kInfo,
      "shard %u: stopping; udp %lu tcp %lu answered %lu truncated %lu servfail(timeout %lu, "
      "no upstream %lu, retries %lu) malformed(udp %lu, tcp %lu) upstream(connects %lu, full "
      "%lu, resumed %lu, failures %lu, lost %lu, stale %lu, retries %lu, unknown id %lu, "
      "mismatch %lu)",
      shard_id_, counters_.udp_queries, counters_.tcp_queries, counters_.responses,
      counters_.truncated, counters_.servfail_timeout, counters_.servfail_no_upstream,
      counters_.servfail_retries, counters_.udp_malformed, counters_.tcp_malformed,
      counters_.upstream_connects, counters_.upstream_handshakes_full,
      counters_.upstream_handshakes_resumed,
      counters_.upstream_connect_failures + counters_.upstream_handshake_failures,
      counters_.upstream_closed, counters_.upstream_stale_closed, counters_.upstream_retries,
      counters_.upstream_unknown_id, counters_.upstream_mismatch);
}

void Shard::Dispatch(const io_uring_cqe& cqe) {
  auto* op = reinterpret_cast<core::Operation*>(io_uring_cqe_get_data(&cqe));
  if (op == nullptr) {
    return;  // cancel requests
  }
  switch (op->kind) {
    case core::OpKind::kIgnore:
      break;
    case core::OpKind::kWake:
      if (!stop_requested_.load(std::memory_order_acquire)) {
        ArmWake();
      }
      break;
    case core::OpKind::kUdpRecv:
      OnUdpRecv(cqe);
      break;
    case core::OpKind::kUdpSend:
      OnUdpSendDone(op->index, cqe.res);
      break;
    case core::OpKind::kTcpAccept:
      OnAccept(cqe);
      break;
    case core::OpKind::kTcpRecv:
      OnTcpRecv(op->index, cqe);
      break;
    case core::OpKind::kTcpSend:
      OnTcpSendDone(op->index, cqe.res);
      break;
    case core::OpKind::kUpstreamConnect:
      OnUpstreamConnect(op->index, cqe.res);
      break;
    case core::OpKind::kUpstreamRecv:
      OnUpstreamRecv(op->index, cqe);
      break;
    case core::OpKind::kUpstreamSend:
      OnUpstreamSendDone(op->index, cqe.res);
      break;
  }
}

void Shard::OnTimer(core::Timer* timer) {
  switch (timer->kind) {
    case kTimerQuery:
      OnQueryTimer(static_cast<uint32_t>(static_cast<QuerySlot*>(timer->owner) - slots_.data()));
      break;
    case kTimerTcpClient:
      OnTcpTimer(
          static_cast<uint32_t>(static_cast<TcpClient*>(timer->owner) - tcp_clients_.data()));
      break;
    case kTimerUpstream:
      OnUpstreamTimer(static_cast<upstream::Connection*>(timer->owner)->index());
      break;
    case kTimerAcceptRetry:
      ArmAccept();
      break;
    case kTimerProbe:
      OnProbeTimer(static_cast<uint32_t>(static_cast<Server*>(timer->owner) - servers_.data()));
      break;
    default:
      break;
  }
}

void Shard::FlushDirty() {
  if (has_backlog_) {
    DrainBacklogs();
  }
  for (size_t i = 0; i < dirty_upstreams_.size(); ++i) {
    FlushUpstream(dirty_upstreams_[i]);
  }
  dirty_upstreams_.clear();
  for (size_t i = 0; i < dirty_tcp_clients_.size(); ++i) {
    const uint32_t index = dirty_tcp_clients_[i];
    tcp_clients_[index].is_dirty = false;
    StartTcpSend(index);
  }
  dirty_tcp_clients_.clear();
}

}  // namespace dotproxy::proxy
