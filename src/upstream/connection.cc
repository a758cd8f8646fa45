#include "upstream/connection.h"

#include <cstring>

#include "base/check.h"
#include "dns/edns.h"
#include "dns/header.h"
#include "net/ktls.h"
#include "net/sockets.h"

namespace dotproxy::upstream {

Connection::Connection(uint32_t index, uint32_t server, uint32_t max_inflight,
                       const Handlers& handlers)
    : index_(index), server_(server), ids_(max_inflight) {
  connect_op_ = {handlers.connect, index, 0};
  recv_op_ = {handlers.recv, index, 0};
  send_op_ = {handlers.send, index, 0};
  timer_.owner = this;
  timer_.kind = handlers.timer_kind;
}

absl::Status Connection::StartConnect(core::Reactor& reactor, const base::SocketAddress& addr) {
  DCHECK(state_ == State::kIdle || state_ == State::kFree);
  ++generation_;
  recent_count_ = 0;
  recent_next_ = 0;
  auto fd = net::CreateTcpClientSocket(addr);
  if (!fd.ok()) {
    return fd.status();
  }
  fd_ = std::move(fd).value();
  state_ = State::kConnecting;
  connect_op_.generation = generation_;
  io_uring_sqe* sqe = reactor.GetSqe(&connect_op_);
  io_uring_prep_connect(sqe, fd_.get(), addr.raw(), addr.length());
  is_connect_pending_ = true;
  return absl::OkStatus();
}

bool Connection::StartTls(tls::ClientContext& context, bool allow_ktls) {
  DCHECK(state_ == State::kConnecting);
  tls_ = tls::TlsStream::Create(context, &output_.pending());
  if (tls_ == nullptr) {
    return false;
  }
  is_ktls_enabled_ = allow_ktls && context.is_ktls_enabled();
  is_ulp_set_ = false;
  ktls_error_ = 0;
  if (is_ktls_enabled_) {
    if (own_buffer_ == nullptr) {
      own_buffer_ = std::make_unique<uint8_t[]>(kOwnBufferBytes);
    }
    tls_->EnableKtls(this);
  }
  state_ = State::kHandshaking;
  return true;
}

void Connection::MarkReady(int64_t now_ms) {
  DCHECK(state_ == State::kHandshaking);
  state_ = State::kReady;
  consecutive_failures = 0;
  has_answered = false;
  last_read_ms = now_ms;
  ready_since_ms = now_ms;
  last_used_ms = now_ms;
}

void Connection::ArmRecv(core::Reactor& reactor, const core::BufferRing& buffers) {
  DCHECK(!is_recv_pending_);
  recv_op_.generation = generation_;
  io_uring_sqe* sqe = reactor.GetSqe(&recv_op_);
  is_recv_pending_ = true;
  if (tls_->ktls_rx()) {
    // A control record (alert, ticket) at the head of a kTLS stream fails a read without room
    // for its type with EIO; with it, each read returns one record type.
    recv_kind_ = RecvKind::kKtlsRecord;
    recv_iov_ = {own_buffer_.get() + kRecordHeader, kOwnBufferBytes - kRecordHeader};
    recv_msg_ = {};
    recv_msg_.msg_iov = &recv_iov_;
    recv_msg_.msg_iovlen = 1;
    recv_msg_.msg_control = recv_control_;
    recv_msg_.msg_controllen = sizeof(recv_control_);
    io_uring_prep_recvmsg(sqe, fd_.get(), &recv_msg_, 0);
  } else if (is_ktls_enabled_ && state_ == State::kHandshaking) {
    recv_kind_ = RecvKind::kExact;
    const size_t want = std::clamp<size_t>(tls_->read_hint(), 1, kOwnBufferBytes);
    io_uring_prep_recv(sqe, fd_.get(), own_buffer_.get(), want, 0);
  } else {
    // Ciphertext lands in a shared provided buffer that is handed back as soon as TLS has
    // consumed it, so an idle connection holds no receive buffer.
    recv_kind_ = RecvKind::kShared;
    buffers.PrepareRecv(sqe, fd_.get());
  }
}

bool Connection::TakeOwnInput(size_t len, int64_t now_ms, const char** why) {
  last_read_ms = now_ms;
  if (recv_kind_ == RecvKind::kExact) {
    tls_->SetInput(own_buffer_.get(), len);
    return true;
  }
  const int type = net::KtlsRecordType(&recv_msg_);
  if (type < 0) {
    *why = "kTLS receive: the record type did not fit (MSG_CTRUNC)";
    return false;
  }
  // What OpenSSL 3.0's own socket BIO hands its record layer on a kTLS RX socket.
  uint8_t* record = own_buffer_.get();
  record[0] = static_cast<uint8_t>(type);
  record[1] = 3;
  record[2] = 3;
  record[3] = static_cast<uint8_t>(len >> 8);
  record[4] = static_cast<uint8_t>(len);
  tls_->SetInput(record, kRecordHeader + len);
  return true;
}

bool Connection::DrainNow(std::vector<uint8_t>& bytes) {
  // Bytes handed to io_uring but not yet sent would go through the kernel's TLS too.
  if (output_.is_sending()) {
    return false;
  }
  if (bytes.empty()) {
    return true;
  }
  const long n = net::SendNow(fd_.get(), bytes.data(), bytes.size());  // NOLINT(runtime/int)
  if (n > 0) {
    bytes.erase(bytes.begin(), bytes.begin() + n);
  }
  return bytes.empty();
}

bool Connection::InstallKey(bool tx, const void* crypto_info) {
  const int err = net::InstallKtlsKey(fd_.get(), &is_ulp_set_, tx, crypto_info);
  if (err != 0 && ktls_error_ == 0) {
    ktls_error_ = err;
  }
  return err == 0;
}

bool Connection::SendRecord(uint8_t type, const uint8_t* data, size_t len) {
  return net::SendKtlsRecord(fd_.get(), type, data, len);
}

void Connection::SetInput(const uint8_t* data, size_t len, int64_t now_ms) {
  last_read_ms = now_ms;
  tls_->SetInput(data, len);
}

bool Connection::WasRecentlyReleased(uint16_t id) const {
  for (uint32_t i = 0; i < recent_count_; ++i) {
    if (recent_ids_[i] == id) {
      return true;
    }
  }
  return false;
}

bool Connection::MayBeResponse(std::span<const uint8_t> start) const {
  if (start.size() < dns::kFlagsOffset + 2) {
    return true;
  }
  uint32_t slot = 0;
  const uint16_t id = dns::GetId(start.data());
  return dns::IsResponse(start.data()) && (ids_.Lookup(id, &slot) || WasRecentlyReleased(id));
}

bool Connection::QueueQuery(std::span<const uint8_t> query, uint16_t id, bool pad) {
  DCHECK(is_alive());
  const size_t offset = plain_pending_.size();
  if (pad) {
    // RFC 7830 / RFC 8467: on the encrypted leg every query is a multiple of 128 bytes, so its
    // size says little about the name.
    plain_pending_.resize(offset + 2 + query.size() + dns::kMaxPaddingGrowth);
    uint8_t* frame = plain_pending_.data() + offset;
    const size_t n = dns::PadQuery(query.data(), query.size(), frame + 2,
                                   query.size() + dns::kMaxPaddingGrowth);
    if (n > 0) {
      plain_pending_.resize(offset + 2 + n);
      dns::WriteLengthPrefix(frame, n);
      dns::SetId(frame + 2, id);
      return true;
    }
  }
  plain_pending_.resize(offset + 2 + query.size());
  dns::WriteLengthPrefix(plain_pending_.data() + offset, query.size());
  memcpy(plain_pending_.data() + offset + 2, query.data(), query.size());
  dns::SetId(plain_pending_.data() + offset + 2, id);
  return false;
}

bool Connection::WriteQueued() {
  if (state_ != State::kReady || plain_pending_.empty()) {
    return true;
  }
  const tls::IoResult r = tls_->TryWrite(plain_pending_.data(), plain_pending_.size());
  if (r == tls::IoResult::kWantRead) {
    return true;  // kept queued: the pool writes again after the next recv
  }
  plain_pending_.clear();
  net::ReleaseIfLarge(plain_pending_);
  return r == tls::IoResult::kDone;
}

void Connection::StartSend(core::Reactor& reactor) {
  if (!fd_.is_valid() || (state_ == State::kClosing && !is_graceful_close_)) {
    return;
  }
  send_op_.generation = generation_;
  if (output_.Start(reactor.ring(), &send_op_, fd_.get())) {
    send_progress_ms_ = reactor.now_ms();
  }
}

net::SendQueue::Result Connection::OnSendCompleted(core::Reactor& reactor, int res) {
  const bool is_aborting = state_ == State::kClosing && !is_graceful_close_;
  if (res > 0) {
    send_progress_ms_ = reactor.now_ms();
  }
  return output_.OnComplete(reactor.ring(), &send_op_, fd_.get(), is_aborting ? -ECANCELED : res);
}

void Connection::BeginGracefulClose() {
  DCHECK(state_ == State::kReady);
  tls_->Shutdown();
  is_graceful_close_ = true;
}

void Connection::BeginClose(core::Reactor& reactor) {
  DCHECK(state_ != State::kClosing && state_ != State::kFree);
  state_ = State::kClosing;
  reactor.timers().Cancel(&timer_);
  plain_pending_.clear();
  reader_.Clear();
  if (is_connect_pending_ || is_recv_pending_ || (output_.is_sending() && !is_graceful_close_)) {
    io_uring_sqe* sqe = reactor.GetSqe(nullptr);
    if (is_graceful_close_) {
      io_uring_prep_cancel(sqe, &recv_op_, 0);  // let the close_notify go out
    } else {
      io_uring_prep_cancel_fd(sqe, fd_.get(), IORING_ASYNC_CANCEL_ALL);
    }
  }
}

void Connection::AbortClose(core::Reactor& reactor) {
  DCHECK(state_ == State::kClosing);
  is_graceful_close_ = false;
  if (ops_in_flight() != 0) {
    io_uring_prep_cancel_fd(reactor.GetSqe(nullptr), fd_.get(), IORING_ASYNC_CANCEL_ALL);
  }
}

bool Connection::FinishCloseIfIdle() {
  if (state_ != State::kClosing || ops_in_flight() != 0) {
    return false;
  }
  tls_.reset();
  fd_.reset();
  is_graceful_close_ = false;
  output_.Clear();
  reader_.Clear();
  state_ = State::kFree;
  ++generation_;
  return true;
}

}  // namespace dotproxy::upstream
