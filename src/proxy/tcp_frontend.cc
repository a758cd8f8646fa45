#include "proxy/tcp_frontend.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "base/status_macros.h"
#include "dns/header.h"
#include "dns/message.h"
#include "dns/query_checks.h"
#include "net/sockets.h"
#include <sys/socket.h>

namespace dotproxy::proxy {
namespace {

constexpr uint32_t kBufferCount = 512;
constexpr uint32_t kBufferSize = 4096;
// Entries beyond max_connections for connections still closing (their requests are cancelled
// asynchronously), so shedding an idle client can admit a new one at once.
constexpr uint32_t kClosingSpare = 256;
constexpr int64_t kAcceptRetryMs = 100;
constexpr int kListenBacklog = 4096;

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

}  // namespace

TcpFrontend::TcpFrontend(core::Reactor& reactor, const config::Config& config, ClientGate& gate,
                         QueryTable& table, metrics::ShardCounters& counters)
    : reactor_(reactor), config_(config), gate_(gate), table_(table), counters_(counters) {}

absl::Status TcpFrontend::Init() {
  ASSIGN_OR_RETURN(buffers_, reactor_.AddBufferRing(kBufferCount, kBufferSize));
  const core::HandlerId recv_handler = reactor_.OnCompletion<&TcpFrontend::OnRecv>(this);
  const core::HandlerId send_handler = reactor_.OnCompletion<&TcpFrontend::OnSendDone>(this);
  const uint32_t timer_kind = reactor_.OnTimer<&TcpFrontend::OnClientTimer>(this);
  const uint32_t table = config_.listener.tcp.max_connections + kClosingSpare;
  clients_ = std::vector<Client>(table);
  free_clients_.reserve(table);
  for (uint32_t i = table; i > 0; --i) {
    Client& c = clients_[i - 1];
    c.recv_op = {recv_handler, i - 1, 0};
    c.send_op = {send_handler, i - 1, 0};
    c.timer.owner = &c;
    c.timer.kind = timer_kind;
    free_clients_.push_back(i - 1);
  }
  scratch_.resize(dns::kMaxMessageSize + 2);
  accept_handler_ = reactor_.OnCompletion<&TcpFrontend::OnAccept>(this);
  accept_retry_kind_ = reactor_.OnTimer<&TcpFrontend::OnAcceptRetry>(this);
  reactor_.OnFlush<&TcpFrontend::Flush>(this);
  for (const base::SocketAddress& addr : config::ListenAddresses(config_.listener.tcp)) {
    RETURN_IF_ERROR(OpenListener(addr));
  }
  return absl::OkStatus();
}

absl::Status TcpFrontend::OpenListener(const base::SocketAddress& addr) {
  ASSIGN_OR_RETURN(base::UniqueFd fd, net::CreateTcpListener(
                                          addr, kListenBacklog,
                                          {.freebind = config_.listener.freebind}));
  auto listener = std::make_unique<Listener>();
  listener->addr = addr;
  listener->fd = std::move(fd);
  listener->accept_op = {accept_handler_, static_cast<uint32_t>(listeners_.size()), 0};
  listener->retry_timer.owner = listener.get();
  listener->retry_timer.kind = accept_retry_kind_;
  listeners_.push_back(std::move(listener));
  ArmAccept(*listeners_.back());
  return absl::OkStatus();
}

absl::Status TcpFrontend::Reconfigure() {
  const std::vector<base::SocketAddress> wanted =
      config_.listener.tcp.enabled ? config::ListenAddresses(config_.listener.tcp)
                                   : std::vector<base::SocketAddress>{};
  const size_t first_new = listeners_.size();
  for (const base::SocketAddress& addr : wanted) {
    const bool is_open = std::any_of(listeners_.begin(), listeners_.end(), [&](const auto& l) {
      return !l->is_closing && l->addr == addr;
    });
    if (is_open) {
      continue;
    }
    if (absl::Status opened = OpenListener(addr); !opened.ok()) {
      for (size_t i = first_new; i < listeners_.size(); ++i) {
        CloseListener(*listeners_[i]);  // keep serving what was served
      }
      return opened;
    }
  }
  for (size_t i = 0; i < first_new; ++i) {
    if (std::find(wanted.begin(), wanted.end(), listeners_[i]->addr) == wanted.end()) {
      CloseListener(*listeners_[i]);
    }
  }
  return absl::OkStatus();
}

void TcpFrontend::CloseListener(Listener& listener) {
  if (listener.is_closing) {
    return;
  }
  listener.is_closing = true;
  reactor_.timers().Cancel(&listener.retry_timer);
  if (listener.is_accept_pending) {
    io_uring_prep_cancel(reactor_.GetSqe(nullptr), &listener.accept_op, 0);  // closes at its end
  } else {
    listener.fd.reset();
  }
}

uint16_t TcpFrontend::port() const {
  return listeners_.empty() ? 0 : net::LocalPort(listeners_.front()->fd.get());
}

void TcpFrontend::ArmAccept(Listener& listener) {
  io_uring_sqe* sqe = reactor_.GetSqe(&listener.accept_op);
  io_uring_prep_multishot_accept(sqe, listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
  listener.is_accept_pending = true;
}

void TcpFrontend::OnAcceptRetry(core::Timer* timer) {
  Listener& listener = *static_cast<Listener*>(timer->owner);
  if (!listener.is_closing) {
    ArmAccept(listener);
  }
}

void TcpFrontend::Drain() {
  if (is_draining_) {
    return;
  }
  is_draining_ = true;
  for (const auto& listener : listeners_) {
    CloseListener(*listener);
  }
  // Reading stops as if every client had shut down its side: what was read is answered, then
  // the connection closes (at once for idle ones).
  for (uint32_t i = 0; i < clients_.size(); ++i) {
    if (clients_[i].state == Client::State::kOpen) {
      clients_[i].is_peer_closed = true;
      MaybeCloseAfterPeerEof(i);
    }
  }
}

void TcpFrontend::OnAccept(const core::Operation& op, const io_uring_cqe& cqe) {
  Listener& listener = *listeners_[op.index];
  const bool must_rearm = (cqe.flags & IORING_CQE_F_MORE) == 0;
  if (must_rearm) {
    listener.is_accept_pending = false;
    if (listener.is_closing) {
      listener.fd.reset();
    }
  }
  if (cqe.res < 0) {
    ++counters_.tcp_accept_errors;
    int64_t delay_ms = listener.backoff.OnFailure();
    if (cqe.res == -EMFILE || cqe.res == -ENFILE || cqe.res == -ENOBUFS || cqe.res == -ENOMEM) {
      delay_ms = std::max(delay_ms, kAcceptRetryMs);  // out of resources: give them time back
    }
    if (must_rearm && !listener.is_closing) {
      LOG_EVERY_N_SEC(kWarn, 1, "tcp accept: %s; re-arming in %ldms", strerror(-cqe.res),
                      delay_ms);
      if (delay_ms > 0) {
        reactor_.timers().Schedule(&listener.retry_timer, reactor_.now_ms() + delay_ms);
      } else {
        ArmAccept(listener);
      }
    }
    return;
  }
  listener.backoff.OnSuccess();
  base::UniqueFd fd(cqe.res);
  if (is_draining_) {
    return;  // accepted just before the cancel: closes here
  }
  if (must_rearm && !listener.is_closing) {
    ArmAccept(listener);
  }
  sockaddr_in6 peer{};
  socklen_t peer_len = sizeof(peer);
  if (getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
    return;  // the peer is already gone
  }
  const base::IpAddress source =
      base::IpAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&peer), peer_len);
  if (!gate_.IsAllowed(source)) {
    ++counters_.tcp_acl_refused;
    return;  // fd closes here
  }
  if (open_clients_ >= config_.listener.tcp.max_connections && !ShedIdleClient()) {
    ++counters_.tcp_refused;
    return;  // fd closes here
  }
  if (free_clients_.empty()) {
    ++counters_.tcp_refused;
    return;
  }
  const uint32_t index = free_clients_.back();
  free_clients_.pop_back();
  Client& c = clients_[index];
  net::SetNoDelay(fd.get());
  c.fd = std::move(fd);
  c.state = Client::State::kOpen;
  c.is_peer_closed = false;
  c.is_paused = false;
  c.inflight = 0;
  c.answers_queued = 0;
  c.answers_sending = 0;
  c.source = source;
  c.last_activity_ms = reactor_.now_ms();
  ++open_clients_;
  ++counters_.tcp_accepted;
  reactor_.timers().Schedule(&c.timer,
                             reactor_.now_ms() + Millis(config_.listener.tcp.read_timeout));
  ArmRecv(index);
}

bool TcpFrontend::ShedIdleClient() {
  int64_t oldest = INT64_MAX;
  int32_t victim = -1;
  for (uint32_t i = 0; i < clients_.size(); ++i) {
    const Client& c = clients_[i];
    if (c.state == Client::State::kOpen && c.inflight == 0 && c.output.is_idle() &&
        c.last_activity_ms < oldest) {
      oldest = c.last_activity_ms;
      victim = static_cast<int32_t>(i);
    }
  }
  if (victim < 0) {
    return false;
  }
  ++counters_.tcp_shed;
  Close(static_cast<uint32_t>(victim));
  return true;
}

void TcpFrontend::ArmRecv(uint32_t index) {
  Client& c = clients_[index];
  c.recv_op.generation = c.generation;
  buffers_->PrepareRecv(reactor_.GetSqe(&c.recv_op), c.fd.get());
  c.is_recv_pending = true;
}

void TcpFrontend::OnRecv(const core::Operation& op, const io_uring_cqe& cqe) {
  const uint32_t index = op.index;
  Client& c = clients_[index];
  c.is_recv_pending = false;
  uint16_t bid = 0;
  const bool has_buffer = core::BufferRing::BufferOf(cqe, &bid);
  if (c.state != Client::State::kOpen) {
    if (has_buffer) {
      buffers_->Recycle(bid);
    }
    MaybeFinishClose(index);
    return;
  }
  if (cqe.res == -ENOBUFS) {
    ArmRecv(index);  // the buffer ring ran dry for a moment; the bytes wait in the socket
    return;
  }
  if (cqe.res < 0) {
    Close(index);
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
  c.last_activity_ms = reactor_.now_ms();
  HandleFrames(index, [&](auto&& on_message) {
    return c.reader.Feed(buffers_->buffer(bid), static_cast<size_t>(cqe.res), on_message);
  });
  buffers_->Recycle(bid);
}

template <typename Feed>
void TcpFrontend::HandleFrames(uint32_t index, Feed&& feed) {
  Client& c = clients_[index];
  bool is_malformed = false;
  const dns::FrameResult result = feed([&](const uint8_t* msg, size_t len) {
    if (!OnMessage(index, msg, len)) {
      // Refused for a reason other than the limits: the message is bad.
      is_malformed = !IsOverLimit(c);
      return false;
    }
    return true;
  });
  if (result == dns::FrameResult::kZeroLength || is_malformed) {
    ++counters_.tcp_malformed;
    Close(index);
    return;
  }
  if (result == dns::FrameResult::kPaused) {
    c.is_paused = true;  // back-pressure: no recv until answers drain (Resume)
    if (!c.output.is_idle()) {
      ++counters_.tcp_paused_output;
    }
    return;
  }
  if (c.is_peer_closed) {
    MaybeCloseAfterPeerEof(index);
  } else if (!c.is_recv_pending) {
    ArmRecv(index);
  }
}

bool TcpFrontend::IsOverLimit(const Client& c) const {
  return c.inflight + c.answers_queued + c.answers_sending >=
             config_.listener.tcp.max_inflight_per_connection ||
         c.output.queued_bytes() >= kMaxOutputBytes;
}

bool TcpFrontend::OnMessage(uint32_t index, const uint8_t* msg, size_t len) {
  Client& c = clients_[index];
  if (IsOverLimit(c)) {
    return false;
  }
  dns::QueryInfo info;
  const dns::QueryError err = dns::ParseQuery(msg, len, &info);
  if (err != dns::QueryError::kOk && !dns::ParseUnsupportedOpcode(msg, len, &info)) {
    LOG_EVERY_N_SEC(kDebug, 1, "tcp: closing connection after malformed query (%s)",
                    dns::QueryErrorName(err));
    return false;
  }
  dns::LocalAnswer answer = dns::CheckQuery(msg, info);
  switch (gate_.CheckRate(c.source, reactor_.now_ms())) {
    case ClientGate::Rate::kPass:
      break;
    case ClientGate::Rate::kDrop:
      ++counters_.rate_limited_dropped;
      return true;  // consumed, never answered
    case ClientGate::Rate::kRefuse:
      answer = dns::LocalAnswer::kRefused;
      break;
  }
  ++counters_.tcp_queries;
  ++c.inflight;
  const int32_t si = table_.Acquire(this, c.source);
  if (si < 0) {
    const size_t n = dns::BuildServfail(msg, info, scratch_.data(), scratch_.size());
    ++(si == QueryTable::kOverShare ? counters_.client_share_dropped
                                    : counters_.servfail_no_upstream);
    QueueResponse(index, scratch_.data(), n, info.id);
    return true;
  }
  QueryTable::Slot& slot = table_.slot(si);
  slot.client_index = index;
  slot.client_generation = c.generation;
  slot.info = info;
  slot.query.assign(msg, msg + len);
  table_.Start(static_cast<uint32_t>(si), answer);
  return true;
}

void TcpFrontend::Deliver(uint32_t slot_index, const uint8_t* response, size_t len) {
  const QueryTable::Slot& slot = table_.slot(slot_index);
  const Client& c = clients_[slot.client_index];
  if (c.state == Client::State::kOpen && c.generation == slot.client_generation) {
    QueueResponse(slot.client_index, response, len, slot.info.id);
  } else {
    ++counters_.client_gone;
  }
  table_.Release(slot_index);
}

void TcpFrontend::QueueResponse(uint32_t index, const uint8_t* msg, size_t len,
                                uint16_t client_id) {
  Client& c = clients_[index];
  const int64_t now_ms = reactor_.now_ms();
  const int64_t write_timeout = Millis(config_.listener.tcp.write_timeout);
  if (c.output.is_idle()) {
    // write_timeout runs from here until the output is empty again, however steadily the
    // client reads meanwhile.
    c.output_since_ms = now_ms;
    if (write_timeout > 0 && c.timer.expiry_ms > now_ms + write_timeout) {
      reactor_.timers().Schedule(&c.timer, now_ms + write_timeout);
    }
  }
  std::vector<uint8_t>& out = c.output.pending();
  const size_t offset = out.size();
  out.resize(offset + 2 + len);
  dns::WriteLengthPrefix(out.data() + offset, len);
  memcpy(out.data() + offset + 2, msg, len);
  dns::SetId(out.data() + offset + 2, client_id);
  --c.inflight;
  ++c.answers_queued;
  c.last_activity_ms = now_ms;
  if (!c.is_dirty) {
    c.is_dirty = true;
    dirty_.push_back(index);
  }
}

void TcpFrontend::Resume(uint32_t index) {
  Client& c = clients_[index];
  if (c.state != Client::State::kOpen || !c.is_paused || IsOverLimit(c)) {
    return;
  }
  c.is_paused = false;
  HandleFrames(index, [&](auto&& on_message) { return c.reader.Resume(on_message); });
}

bool TcpFrontend::Flush() {
  const bool had_work = !dirty_.empty();
  // Resuming a paused client can answer at once (SERVFAIL) and append to dirty_.
  for (size_t i = 0; i < dirty_.size(); ++i) {
    const uint32_t index = dirty_[i];
    clients_[index].is_dirty = false;
    StartSend(index);
  }
  dirty_.clear();
  return had_work;
}

void TcpFrontend::StartSend(uint32_t index) {
  Client& c = clients_[index];
  if (c.state != Client::State::kOpen) {
    return;
  }
  if (c.is_paused) {
    Resume(index);
  }
  if (c.output.is_idle()) {
    MaybeCloseAfterPeerEof(index);
    return;
  }
  c.send_op.generation = c.generation;
  if (c.output.Start(reactor_.ring(), &c.send_op, c.fd.get())) {
    c.answers_sending = c.answers_queued;
    c.answers_queued = 0;
  }
}

void TcpFrontend::OnSendDone(const core::Operation& op, const io_uring_cqe& cqe) {
  const uint32_t index = op.index;
  Client& c = clients_[index];
  const bool is_open = c.state == Client::State::kOpen;
  const net::SendQueue::Result result =
      c.output.OnComplete(reactor_.ring(), &c.send_op, c.fd.get(), is_open ? cqe.res : -ECANCELED);
  if (!is_open) {
    MaybeFinishClose(index);
    return;
  }
  if (result == net::SendQueue::Result::kFailed) {
    Close(index);
    return;
  }
  if (result == net::SendQueue::Result::kDone) {
    c.answers_sending = 0;
    c.last_activity_ms = reactor_.now_ms();
    StartSend(index);
  }
}

void TcpFrontend::MaybeCloseAfterPeerEof(uint32_t index) {
  Client& c = clients_[index];
  if (c.state == Client::State::kOpen && c.is_peer_closed && c.inflight == 0 &&
      c.output.is_idle() && !c.is_paused) {
    Close(index);
  }
}

void TcpFrontend::OnClientTimer(core::Timer* timer) {
  const auto index = static_cast<uint32_t>(static_cast<Client*>(timer->owner) - clients_.data());
  Client& c = clients_[index];
  if (c.state != Client::State::kOpen) {
    return;
  }
  const int64_t now_ms = reactor_.now_ms();
  const int64_t read_timeout = Millis(config_.listener.tcp.read_timeout);
  const int64_t write_timeout = Millis(config_.listener.tcp.write_timeout);
  const bool has_output = !c.output.is_idle();
  if (has_output && write_timeout > 0 && now_ms - c.output_since_ms >= write_timeout) {
    ++counters_.tcp_write_timeouts;
    Close(index);
    return;
  }
  const bool is_idle = c.inflight == 0 && c.output.is_idle();
  if (is_idle && read_timeout > 0 && now_ms - c.last_activity_ms >= read_timeout) {
    ++counters_.tcp_idle_closed;
    Close(index);
    return;
  }
  int64_t next = c.last_activity_ms + read_timeout;
  if (next <= now_ms) {
    next = now_ms + std::max<int64_t>(read_timeout, 100);
  }
  if (has_output && write_timeout > 0) {
    next = std::min(next, c.output_since_ms + write_timeout);
  }
  reactor_.timers().Schedule(&c.timer, next);
}

void TcpFrontend::Close(uint32_t index) {
  Client& c = clients_[index];
  if (c.state != Client::State::kOpen) {
    return;
  }
  c.state = Client::State::kClosing;
  --open_clients_;
  reactor_.timers().Cancel(&c.timer);
  if (c.is_recv_pending || c.output.is_sending()) {
    // close() would not end a pending request (it holds its own file reference): cancel, then
    // free the entry when the last completion has arrived.
    io_uring_sqe* sqe = reactor_.GetSqe(nullptr);
    io_uring_prep_cancel_fd(sqe, c.fd.get(), IORING_ASYNC_CANCEL_ALL);
  }
  MaybeFinishClose(index);
}

void TcpFrontend::MaybeFinishClose(uint32_t index) {
  Client& c = clients_[index];
  if (c.state != Client::State::kClosing || c.is_recv_pending || c.output.is_sending()) {
    return;
  }
  c.fd.reset();
  c.reader.Clear();
  c.output.Clear();
  c.state = Client::State::kFree;
  ++c.generation;
  free_clients_.push_back(index);
}

}  // namespace dotproxy::proxy
