// TCP clients (RFC 7766): multishot accept, recv from a provided-buffer ring into a frame reader,
// pipelined queries answered as they complete, one send in flight per connection.
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "base/status_macros.h"
#include "dns/header.h"
#include "net/sockets.h"
#include "proxy/shard.h"

namespace dotproxy::proxy {
namespace {

constexpr uint16_t kTcpBufferGroup = 2;
constexpr uint32_t kTcpBufferCount = 512;
constexpr uint32_t kTcpBufferSize = 4096;
// Entries beyond max_connections for connections still closing (their requests are cancelled
// asynchronously), so shedding an idle client can admit a new one at once.
constexpr uint32_t kClosingSpare = 256;
}  // namespace

absl::Status Shard::InitTcp() {
  ASSIGN_OR_RETURN(tcp_fd_, net::CreateTcpListener(config_.listener.tcp.addr, 4096));
  ASSIGN_OR_RETURN(tcp_buffers_, core::BufferRing::Create(ring_->raw(), kTcpBufferGroup,
                                                          kTcpBufferCount, kTcpBufferSize));
  const uint32_t table = config_.listener.tcp.max_connections + kClosingSpare;
  tcp_clients_ = std::vector<TcpClient>(table);
  free_tcp_clients_.reserve(table);
  for (uint32_t i = table; i > 0; --i) {
    TcpClient& c = tcp_clients_[i - 1];
    c.recv_op.kind = core::OpKind::kTcpRecv;
    c.recv_op.index = i - 1;
    c.send_op.kind = core::OpKind::kTcpSend;
    c.send_op.index = i - 1;
    c.timer.owner = &c;
    c.timer.kind = kTimerTcpClient;
    free_tcp_clients_.push_back(i - 1);
  }
  accept_op_.kind = core::OpKind::kTcpAccept;
  accept_retry_timer_.owner = this;
  accept_retry_timer_.kind = kTimerAcceptRetry;
  ArmAccept();
  return absl::OkStatus();
}

uint16_t Shard::tcp_port() const {
  return tcp_fd_.is_valid() ? net::LocalPort(tcp_fd_.get()) : 0;
}

void Shard::ArmAccept() {
  io_uring_sqe* sqe = ring_->GetSqe(&accept_op_);
  io_uring_prep_multishot_accept(sqe, tcp_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
}

void Shard::OnAccept(const io_uring_cqe& cqe) {
  const bool must_rearm = (cqe.flags & IORING_CQE_F_MORE) == 0;
  if (cqe.res < 0) {
    if (cqe.res == -EMFILE || cqe.res == -ENFILE || cqe.res == -ENOBUFS || cqe.res == -ENOMEM) {
      LOG_EVERY_N_SEC(kWarn, 1, "tcp accept: %s; pausing accepts for 100ms", strerror(-cqe.res));
      if (must_rearm) {
        timers_.Schedule(&accept_retry_timer_, now_ms_ + 100);
      }
      return;
    }
    if (must_rearm) {
      ArmAccept();
    }
    return;
  }
  base::UniqueFd fd(cqe.res);
  if (must_rearm) {
    ArmAccept();
  }
  if (open_tcp_clients_ >= config_.listener.tcp.max_connections && !ShedIdleTcpClient()) {
    ++counters_.tcp_refused;
    return;  // fd closes here
  }
  if (free_tcp_clients_.empty()) {
    ++counters_.tcp_refused;
    return;
  }
  const uint32_t index = free_tcp_clients_.back();
  free_tcp_clients_.pop_back();
  TcpClient& c = tcp_clients_[index];
  net::SetNoDelay(fd.get());
  c.fd = std::move(fd);
  c.state = TcpClient::State::kOpen;
  c.is_peer_closed = false;
  c.is_paused = false;
  c.inflight = 0;
  c.last_activity_ms = now_ms_;
  ++open_tcp_clients_;
  ++counters_.tcp_accepted;
  timers_.Schedule(&c.timer, now_ms_ + absl::ToInt64Milliseconds(config_.listener.tcp.read_timeout));
  ArmTcpRecv(index);
}

bool Shard::ShedIdleTcpClient() {
  int64_t oldest = INT64_MAX;
  int32_t victim = -1;
  for (uint32_t i = 0; i < tcp_clients_.size(); ++i) {
    const TcpClient& c = tcp_clients_[i];
    if (c.state == TcpClient::State::kOpen && c.inflight == 0 && c.output.is_idle() &&
        c.last_activity_ms < oldest) {
      oldest = c.last_activity_ms;
      victim = static_cast<int32_t>(i);
    }
  }
  if (victim < 0) {
    return false;
  }
  ++counters_.tcp_shed;
  CloseTcpClient(static_cast<uint32_t>(victim));
  return true;
}

void Shard::ArmTcpRecv(uint32_t index) {
  TcpClient& c = tcp_clients_[index];
  c.recv_op.generation = c.generation;
  io_uring_sqe* sqe = ring_->GetSqe(&c.recv_op);
  io_uring_prep_recv(sqe, c.fd.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kTcpBufferGroup;
  c.is_recv_pending = true;
}

void Shard::OnTcpRecv(uint32_t index, const io_uring_cqe& cqe) {
  TcpClient& c = tcp_clients_[index];
  c.is_recv_pending = false;
  const bool has_buffer = (cqe.flags & IORING_CQE_F_BUFFER) != 0;
  const uint16_t bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  if (c.state != TcpClient::State::kOpen) {
    if (has_buffer) {
      tcp_buffers_->Recycle(bid);
    }
    MaybeFinishTcpClose(index);
    return;
  }
  if (cqe.res == -ENOBUFS) {
    ArmTcpRecv(index);  // the buffer ring ran dry for a moment; the bytes wait in the socket
    return;
  }
  if (cqe.res < 0) {
    CloseTcpClient(index);
    return;
  }
  if (cqe.res == 0) {
    // The client shut down its sending side; answer what it already sent (RFC 7766 §6.2.4).
    c.is_peer_closed = true;
    if (c.reader.has_partial()) {
      ++counters_.tcp_malformed;  // a frame cut off by the close
      c.reader.Clear();
    }
    MaybeCloseAfterPeerEof(index);
    return;
  }
  c.last_activity_ms = now_ms_;
  bool is_malformed = false;
  const dns::FrameResult result =
      c.reader.Feed(tcp_buffers_->buffer(bid), static_cast<size_t>(cqe.res),
                    [&](const uint8_t* msg, size_t len) {
                      if (!OnTcpMessage(index, msg, len)) {
                        is_malformed = c.inflight < config_.listener.tcp.max_inflight_per_connection;
                        return false;
                      }
                      return true;
                    });
  tcp_buffers_->Recycle(bid);
  if (result == dns::FrameResult::kZeroLength || is_malformed) {
    ++counters_.tcp_malformed;
    CloseTcpClient(index);
    return;
  }
  if (result == dns::FrameResult::kPaused) {
    c.is_paused = true;  // back-pressure: no recv until answers drain (ResumeTcpClient)
    return;
  }
  ArmTcpRecv(index);
}

bool Shard::OnTcpMessage(uint32_t index, const uint8_t* msg, size_t len) {
  TcpClient& c = tcp_clients_[index];
  if (c.inflight >= config_.listener.tcp.max_inflight_per_connection) {
    return false;
  }
  dns::QueryInfo info;
  const dns::QueryError err = dns::ParseQuery(msg, len, &info);
  if (err != dns::QueryError::kOk) {
    LOG_EVERY_N_SEC(kDebug, 1, "tcp: closing connection after malformed query (%s)",
                    dns::QueryErrorName(err));
    return false;
  }
  ++counters_.tcp_queries;
  const int32_t si = AcquireQuerySlot();
  if (si < 0) {
    const size_t n = dns::BuildServfail(msg, info, scratch_.data(), scratch_.size());
    ++c.inflight;
    ++counters_.servfail_no_upstream;
    QueueTcpResponse(index, scratch_.data(), n, info.id);
    return true;
  }
  QuerySlot& slot = slots_[si];
  slot.client_kind = ClientKind::kTcp;
  slot.tcp_index = index;
  slot.tcp_generation = c.generation;
  slot.info = info;
  slot.query.assign(msg, msg + len);
  ++c.inflight;
  Forward(static_cast<uint32_t>(si), -1);
  return true;
}

void Shard::QueueTcpResponse(uint32_t index, const uint8_t* msg, size_t len, uint16_t client_id) {
  TcpClient& c = tcp_clients_[index];
  std::vector<uint8_t>& out = c.output.pending();
  const size_t offset = out.size();
  out.resize(offset + 2 + len);
  dns::WriteLengthPrefix(out.data() + offset, len);
  memcpy(out.data() + offset + 2, msg, len);
  dns::SetId(out.data() + offset + 2, client_id);
  --c.inflight;
  c.last_activity_ms = now_ms_;
  if (!c.is_dirty) {
    c.is_dirty = true;
    dirty_tcp_clients_.push_back(index);
  }
}

void Shard::ResumeTcpClient(uint32_t index) {
  TcpClient& c = tcp_clients_[index];
  if (c.state != TcpClient::State::kOpen || !c.is_paused ||
      c.inflight >= config_.listener.tcp.max_inflight_per_connection) {
    return;
  }
  c.is_paused = false;
  bool is_malformed = false;
  const dns::FrameResult result = c.reader.Resume([&](const uint8_t* msg, size_t len) {
    if (!OnTcpMessage(index, msg, len)) {
      is_malformed = c.inflight < config_.listener.tcp.max_inflight_per_connection;
      return false;
    }
    return true;
  });
  if (result == dns::FrameResult::kZeroLength || is_malformed) {
    ++counters_.tcp_malformed;
    CloseTcpClient(index);
    return;
  }
  if (result == dns::FrameResult::kPaused) {
    c.is_paused = true;
    return;
  }
  if (c.is_peer_closed) {
    MaybeCloseAfterPeerEof(index);
  } else if (!c.is_recv_pending) {
    ArmTcpRecv(index);
  }
}

void Shard::StartTcpSend(uint32_t index) {
  TcpClient& c = tcp_clients_[index];
  if (c.state != TcpClient::State::kOpen) {
    return;
  }
  if (c.is_paused) {
    ResumeTcpClient(index);
  }
  if (c.output.is_idle()) {
    MaybeCloseAfterPeerEof(index);
    return;
  }
  c.send_op.generation = c.generation;
  if (c.output.Start(*ring_, &c.send_op, c.fd.get())) {
    c.send_started_ms = now_ms_;
  }
}

void Shard::OnTcpSendDone(uint32_t index, int res) {
  TcpClient& c = tcp_clients_[index];
  const net::SendQueue::Result result = c.output.OnComplete(*ring_, &c.send_op, c.fd.get(),
                                                            c.state == TcpClient::State::kOpen
                                                                ? res
                                                                : -ECANCELED);
  if (c.state != TcpClient::State::kOpen) {
    MaybeFinishTcpClose(index);
    return;
  }
  if (result == net::SendQueue::Result::kFailed) {
    CloseTcpClient(index);
    return;
  }
  if (result == net::SendQueue::Result::kDone) {
    c.last_activity_ms = now_ms_;
    StartTcpSend(index);
  }
}

void Shard::MaybeCloseAfterPeerEof(uint32_t index) {
  TcpClient& c = tcp_clients_[index];
  if (c.state == TcpClient::State::kOpen && c.is_peer_closed && c.inflight == 0 &&
      c.output.is_idle() && !c.is_paused) {
    CloseTcpClient(index);
  }
}

void Shard::OnTcpTimer(uint32_t index) {
  TcpClient& c = tcp_clients_[index];
  if (c.state != TcpClient::State::kOpen) {
    return;
  }
  const int64_t read_timeout = absl::ToInt64Milliseconds(config_.listener.tcp.read_timeout);
  const int64_t write_timeout = absl::ToInt64Milliseconds(config_.listener.tcp.write_timeout);
  if (c.output.is_sending() && write_timeout > 0 &&
      now_ms_ - c.send_started_ms >= write_timeout) {
    ++counters_.tcp_idle_closed;
    CloseTcpClient(index);
    return;
  }
  const bool is_idle = c.inflight == 0 && c.output.is_idle();
  if (is_idle && read_timeout > 0 && now_ms_ - c.last_activity_ms >= read_timeout) {
    ++counters_.tcp_idle_closed;
    CloseTcpClient(index);
    return;
  }
  int64_t next = c.last_activity_ms + read_timeout;
  if (next <= now_ms_) {
    next = now_ms_ + std::max<int64_t>(read_timeout, 100);
  }
  if (c.output.is_sending() && write_timeout > 0) {
    next = std::min(next, c.send_started_ms + write_timeout);
  }
  timers_.Schedule(&c.timer, next);
}

void Shard::CloseTcpClient(uint32_t index) {
  TcpClient& c = tcp_clients_[index];
  if (c.state != TcpClient::State::kOpen) {
    return;
  }
  c.state = TcpClient::State::kClosing;
  --open_tcp_clients_;
  timers_.Cancel(&c.timer);
  if (c.is_recv_pending || c.output.is_sending()) {
    // close() would not end a pending request (it holds its own file reference): cancel, then
    // free the entry when the last completion has arrived.
    io_uring_sqe* sqe = ring_->GetSqe(nullptr);
    io_uring_prep_cancel_fd(sqe, c.fd.get(), IORING_ASYNC_CANCEL_ALL);
  }
  MaybeFinishTcpClose(index);
}

void Shard::MaybeFinishTcpClose(uint32_t index) {
  TcpClient& c = tcp_clients_[index];
  if (c.state != TcpClient::State::kClosing || c.is_recv_pending || c.output.is_sending()) {
    return;
  }
  c.fd.reset();
  c.reader.Clear();
  c.output.Clear();
  c.state = TcpClient::State::kFree;
  ++c.generation;
  free_tcp_clients_.push_back(index);
}

}  // namespace dotproxy::proxy
