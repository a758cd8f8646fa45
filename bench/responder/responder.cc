#include "bench/responder/responder.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "core/clock.h"
#include "dns/header.h"
#include "net/sockets.h"

namespace dotproxy::bench {
namespace {

constexpr uint16_t kUdpBufferGroup = 1;
constexpr uint32_t kUdpBufferCount = 4096;
constexpr uint32_t kUdpBufferSize = 2048;   // recvmsg_out + name + any sane query
constexpr uint16_t kStreamBufferGroup = 2;
constexpr uint32_t kStreamBufferCount = 1024;
constexpr uint32_t kStreamBufferSize = 16 * 1024;
constexpr uint32_t kUdpReplySlots = 16384;  // UDP answers in flight (or delayed) at once
constexpr size_t kPlaintextChunk = 64 * 1024;
constexpr size_t kKeepCapacity = 64 * 1024;

void Bump(std::atomic<uint64_t>& counter) {
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

absl::StatusOr<base::UniqueFd> CreateUdpServerSocket(const base::SocketAddress& addr) {
  base::UniqueFd fd(socket(addr.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.is_valid()) {
    return absl::ErrnoToStatus(errno, "socket(udp)");
  }
  const int one = 1;
  const int buffer_bytes = 8 << 20;
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    return absl::ErrnoToStatus(errno, "setsockopt SO_REUSEPORT");
  }
  // Failures only leave the default sizes.
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof(buffer_bytes));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof(buffer_bytes));
  if (bind(fd.get(), addr.raw(), addr.length()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("bind udp ", addr.ToString()));
  }
  return fd;
}

}  // namespace

Responder::Responder(const ResponderOptions& options, uint32_t thread_id)
    : options_(options), thread_id_(thread_id), timers_(core::MonotonicMillis()) {}

Responder::~Responder() {
  // The ring goes first: tearing it down cancels every request, so no buffer, msghdr or
  // connection the kernel could still write into is freed before it.
  udp_buffers_.reset();
  stream_buffers_.reset();
  ring_.reset();
}

absl::StatusOr<std::unique_ptr<Responder>> Responder::Create(const ResponderOptions& options,
                                                             uint32_t thread_id) {
  auto out = std::unique_ptr<Responder>(new Responder(options, thread_id));
  RETURN_IF_ERROR(out->Init());
  return out;
}

absl::Status Responder::Init() {
  now_ms_ = core::MonotonicMillis();
  ASSIGN_OR_RETURN(ring_, core::Ring::Create({}));
  plaintext_.resize(kPlaintextChunk);
  scratch_.resize(dns::kMaxMessageSize + 2);
  if (options_.has_udp) {
    ASSIGN_OR_RETURN(udp_fd_, CreateUdpServerSocket(options_.udp_addr));
    ASSIGN_OR_RETURN(udp_buffers_, core::BufferRing::Create(ring_->raw(), kUdpBufferGroup,
                                                            kUdpBufferCount, kUdpBufferSize));
    udp_recv_template_.msg_namelen = sizeof(sockaddr_in6);
    udp_recv_op_.kind = core::OpKind::kUdpRecv;
    // Room for the largest answer the padding can produce; a UDP answer never exceeds 65507.
    udp_reply_bytes_ = std::min<size_t>(dns::kMaxUdpPayload,
                                        std::max<size_t>(1024, options_.answer.target_size + 600));
    udp_arena_.resize(udp_reply_bytes_ * kUdpReplySlots);
    udp_replies_ = std::vector<UdpReply>(kUdpReplySlots);
    free_udp_replies_.reserve(kUdpReplySlots);
    for (uint32_t i = kUdpReplySlots; i > 0; --i) {
      UdpReply& r = udp_replies_[i - 1];
      r.send_op = {core::OpKind::kUdpSend, i - 1, 0};
      r.timer.owner = &r;
      r.timer.kind = kTimerUdpReply;
      r.buf = udp_arena_.data() + static_cast<size_t>(i - 1) * udp_reply_bytes_;
      free_udp_replies_.push_back(i - 1);
    }
    ArmUdpRecv();
  }
  if (options_.has_tcp || options_.has_dot) {
    ASSIGN_OR_RETURN(stream_buffers_,
                     core::BufferRing::Create(ring_->raw(), kStreamBufferGroup,
                                              kStreamBufferCount, kStreamBufferSize));
  }
  if (options_.has_tcp) {
    ASSIGN_OR_RETURN(listen_fds_[kListenerTcp], net::CreateTcpListener(options_.tcp_addr, 4096));
  }
  if (options_.has_dot) {
    ASSIGN_OR_RETURN(tls_, tls::ServerContext::Create({options_.cert_file, options_.key_file}));
    ASSIGN_OR_RETURN(listen_fds_[kListenerDot], net::CreateTcpListener(options_.dot_addr, 4096));
  }
  for (uint32_t l : {kListenerTcp, kListenerDot}) {
    accept_ops_[l] = {core::OpKind::kTcpAccept, l, 0};
    if (listen_fds_[l].is_valid()) {
      ArmAccept(l);
    }
  }
  LOG(kInfo, "responder thread %u: io_uring %s", thread_id_, ring_->setup_mode());
  return absl::OkStatus();
}

void Responder::Run(const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) {
    FlushDirty();
    const int64_t timeout = timers_.NextTimeoutMs(now_ms_, 100);
    ring_->SubmitAndWait(timeout < 0 ? 100 : timeout);
    now_ms_ = core::MonotonicMillis();
    ring_->Drain([this](const io_uring_cqe& cqe) { Dispatch(cqe); });
    timers_.Advance(now_ms_, [this](core::Timer* timer) { OnTimer(timer); });
  }
}

void Responder::Dispatch(const io_uring_cqe& cqe) {
  auto* op = reinterpret_cast<core::Operation*>(io_uring_cqe_get_data(&cqe));
  if (op == nullptr) {
    return;  // cancel requests
  }
  switch (op->kind) {
    case core::OpKind::kUdpRecv:
      OnUdpRecv(cqe);
      break;
    case core::OpKind::kUdpSend:
      OnUdpSendDone(op->index, cqe.res);
      break;
    case core::OpKind::kTcpAccept:
      OnAccept(op->index, cqe);
      break;
    case core::OpKind::kTcpRecv:
      OnRecv(op->index, cqe);
      break;
    case core::OpKind::kTcpSend:
      OnSendDone(op->index, cqe.res);
      break;
    default:
      break;
  }
}

void Responder::OnTimer(core::Timer* timer) {
  if (timer->kind == kTimerUdpReply) {
    SendUdp(static_cast<uint32_t>(static_cast<UdpReply*>(timer->owner) - udp_replies_.data()));
    return;
  }
  auto* answer = static_cast<StreamAnswer*>(timer->owner);
  const Conn& c = *conns_[answer->conn];
  if (c.state == Conn::State::kOpen && c.generation == answer->generation) {
    QueueFrame(answer->conn, answer->frame.data(), answer->frame.size());
  }
  answer->frame.clear();
  free_stream_answers_.push_back(answer->index);
}

// ---- UDP ------------------------------------------------------------------------------------

void Responder::ArmUdpRecv() {
  io_uring_sqe* sqe = ring_->GetSqe(&udp_recv_op_);
  io_uring_prep_recvmsg_multishot(sqe, udp_fd_.get(), &udp_recv_template_, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kUdpBufferGroup;
}

void Responder::OnUdpRecv(const io_uring_cqe& cqe) {
  // The multishot ends on any CQE without F_MORE (ENOBUFS, CQ overflow); datagrams wait in the
  // socket queue meanwhile, so re-arming loses nothing.
  const bool must_rearm = (cqe.flags & IORING_CQE_F_MORE) == 0;
  if (cqe.res >= 0 && (cqe.flags & IORING_CQE_F_BUFFER) != 0) {
    const auto bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    uint8_t* buf = udp_buffers_->buffer(bid);
    io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, cqe.res, &udp_recv_template_);
    if (out == nullptr || (out->flags & MSG_TRUNC) != 0 || out->namelen > sizeof(sockaddr_in6) ||
        free_udp_replies_.empty()) {
      Bump(counters_.dropped);
    } else {
      const auto* payload =
          static_cast<const uint8_t*>(io_uring_recvmsg_payload(out, &udp_recv_template_));
      const size_t len = io_uring_recvmsg_payload_length(out, cqe.res, &udp_recv_template_);
      const uint32_t ri = free_udp_replies_.back();
      UdpReply& r = udp_replies_[ri];
      const size_t n =
          BuildAnswer(payload, len, options_.answer, true, r.buf, udp_reply_bytes_);
      if (n == 0) {
        Bump(counters_.dropped);
      } else {
        free_udp_replies_.pop_back();
        Bump(counters_.udp_queries);
        memcpy(&r.peer, io_uring_recvmsg_name(out), out->namelen);
        r.iov = {r.buf, n};
        r.msg = msghdr{};
        r.msg.msg_name = &r.peer;
        r.msg.msg_namelen = out->namelen;
        r.msg.msg_iov = &r.iov;
        r.msg.msg_iovlen = 1;
        if (options_.delay_ms > 0) {
          timers_.Schedule(&r.timer, now_ms_ + options_.delay_ms);
        } else {
          SendUdp(ri);
        }
      }
    }
    udp_buffers_->Recycle(bid);
  } else if (cqe.res < 0 && cqe.res != -ENOBUFS) {
    LOG_EVERY_N_SEC(kWarn, 1, "udp recvmsg: %s", strerror(-cqe.res));
  }
  if (must_rearm) {
    ArmUdpRecv();
  }
}

void Responder::SendUdp(uint32_t reply) {
  UdpReply& r = udp_replies_[reply];
  io_uring_sqe* sqe = ring_->GetSqe(&r.send_op);
  io_uring_prep_sendmsg(sqe, udp_fd_.get(), &r.msg, MSG_NOSIGNAL);
}

void Responder::OnUdpSendDone(uint32_t reply, int res) {
  if (res < 0) {
    LOG_EVERY_N_SEC(kWarn, 1, "udp sendmsg: %s", strerror(-res));
  }
  free_udp_replies_.push_back(reply);
}

// ---- TCP and DoT ----------------------------------------------------------------------------

void Responder::ArmAccept(uint32_t listener) {
  io_uring_sqe* sqe = ring_->GetSqe(&accept_ops_[listener]);
  io_uring_prep_multishot_accept(sqe, listen_fds_[listener].get(), nullptr, nullptr,
                                 SOCK_CLOEXEC);
}

void Responder::OnAccept(uint32_t listener, const io_uring_cqe& cqe) {
  if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
    ArmAccept(listener);
  }
  if (cqe.res < 0) {
    LOG_EVERY_N_SEC(kWarn, 1, "accept: %s", strerror(-cqe.res));
    return;
  }
  base::UniqueFd fd(cqe.res);
  uint32_t index;
  if (!free_conns_.empty()) {
    index = free_conns_.back();
    free_conns_.pop_back();
  } else {
    index = static_cast<uint32_t>(conns_.size());
    conns_.push_back(std::make_unique<Conn>());
    conns_[index]->recv_op = {core::OpKind::kTcpRecv, index, 0};
    conns_[index]->send_op = {core::OpKind::kTcpSend, index, 0};
  }
  Conn& c = *conns_[index];
  c.state = Conn::State::kOpen;
  c.is_dot = listener == kListenerDot;
  c.fd = std::move(fd);
  c.out_offset = 0;
  Bump(counters_.connections);
  if (c.is_dot) {
    c.tls = tls::TlsStream::CreateServer(*tls_, &c.out);
    if (c.tls == nullptr) {
      Bump(counters_.handshake_failures);
      CloseConn(index);
      MaybeFreeConn(index);  // nothing in flight yet: free it now
      return;
    }
  }
  ArmRecv(index);
}

void Responder::ArmRecv(uint32_t conn) {
  Conn& c = *conns_[conn];
  io_uring_sqe* sqe = ring_->GetSqe(&c.recv_op);
  io_uring_prep_recv_multishot(sqe, c.fd.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kStreamBufferGroup;
  c.is_recv_pending = true;
}

void Responder::OnRecv(uint32_t conn, const io_uring_cqe& cqe) {
  Conn& c = *conns_[conn];
  const bool has_more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  if (!has_more) {
    c.is_recv_pending = false;
  }
  if (cqe.res > 0 && (cqe.flags & IORING_CQE_F_BUFFER) != 0) {
    const auto bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    const uint8_t* data = stream_buffers_->buffer(bid);
    if (c.state == Conn::State::kOpen) {
      if (c.is_dot) {
        // The stream consumes all of it before returning kWantRead (OpenSSL keeps a partial
        // record), so the buffer can go back to the kernel right after.
        c.tls->SetInput(data, static_cast<size_t>(cqe.res));
        DriveTls(conn);
      } else {
        const dns::FrameResult r =
            c.reader.Feed(data, static_cast<size_t>(cqe.res),
                          [this, conn](const uint8_t* msg, size_t len) {
                            return OnFrame(conn, msg, len);
                          });
        if (r == dns::FrameResult::kZeroLength) {
          Bump(counters_.dropped);
          CloseConn(conn);
        }
      }
    }
    stream_buffers_->Recycle(bid);
  } else if (cqe.res == 0 || (cqe.res < 0 && cqe.res != -ENOBUFS)) {
    // EOF, reset or cancellation.
    CloseConn(conn);
  }
  if (c.state == Conn::State::kOpen && !c.is_recv_pending) {
    ArmRecv(conn);
  }
  MaybeFreeConn(conn);
}

void Responder::DriveTls(uint32_t conn) {
  Conn& c = *conns_[conn];
  if (!c.tls->is_established()) {
    const tls::IoResult r = c.tls->Handshake();
    if (r == tls::IoResult::kWantRead) {
      MarkDirty(conn);  // handshake messages to send
      return;
    }
    if (r != tls::IoResult::kDone) {
      Bump(counters_.handshake_failures);
      LOG_EVERY_N_SEC(kWarn, 1, "dot handshake: %s", c.tls->error());
      MarkDirty(conn);  // the alert, best effort
      CloseConn(conn);
      return;
    }
    Bump(counters_.handshakes);
    if (c.tls->session_reused()) {
      Bump(counters_.handshakes_resumed);
    }
  }
  for (;;) {
    size_t n = 0;
    const tls::IoResult r = c.tls->Read(plaintext_.data(), plaintext_.size(), &n);
    if (r == tls::IoResult::kWantRead) {
      break;
    }
    if (r != tls::IoResult::kDone) {
      CloseConn(conn);
      return;
    }
    const dns::FrameResult fr = c.reader.Feed(
        plaintext_.data(), n,
        [this, conn](const uint8_t* msg, size_t len) { return OnFrame(conn, msg, len); });
    if (fr == dns::FrameResult::kZeroLength) {
      Bump(counters_.dropped);
      CloseConn(conn);
      return;
    }
  }
  MarkDirty(conn);  // session tickets and other post-handshake messages
}

bool Responder::OnFrame(uint32_t conn, const uint8_t* msg, size_t len) {
  Conn& c = *conns_[conn];
  const size_t n =
      BuildAnswer(msg, len, options_.answer, false, scratch_.data() + 2, scratch_.size() - 2);
  if (n == 0) {
    Bump(counters_.dropped);
    return true;
  }
  Bump(c.is_dot ? counters_.dot_queries : counters_.tcp_queries);
  dns::WriteLengthPrefix(scratch_.data(), n);
  if (options_.delay_ms <= 0) {
    QueueFrame(conn, scratch_.data(), n + 2);
    return true;
  }
  uint32_t ai;
  if (!free_stream_answers_.empty()) {
    ai = free_stream_answers_.back();
    free_stream_answers_.pop_back();
  } else {
    ai = static_cast<uint32_t>(stream_answers_.size());
    stream_answers_.push_back(std::make_unique<StreamAnswer>());
    stream_answers_[ai]->timer.owner = stream_answers_[ai].get();
    stream_answers_[ai]->timer.kind = kTimerStreamAnswer;
    stream_answers_[ai]->index = ai;
  }
  StreamAnswer& a = *stream_answers_[ai];
  a.conn = conn;
  a.generation = c.generation;
  a.frame.assign(scratch_.data(), scratch_.data() + n + 2);
  timers_.Schedule(&a.timer, now_ms_ + options_.delay_ms);
  return true;
}

void Responder::QueueFrame(uint32_t conn, const uint8_t* frame, size_t len) {
  Conn& c = *conns_[conn];
  std::vector<uint8_t>& dest = c.is_dot ? c.plain_out : c.out;
  dest.insert(dest.end(), frame, frame + len);
  MarkDirty(conn);
}

void Responder::MarkDirty(uint32_t conn) {
  Conn& c = *conns_[conn];
  if (!c.is_dirty) {
    c.is_dirty = true;
    dirty_conns_.push_back(conn);
  }
}

void Responder::FlushDirty() {
  for (size_t i = 0; i < dirty_conns_.size(); ++i) {
    const uint32_t conn = dirty_conns_[i];
    Conn& c = *conns_[conn];
    c.is_dirty = false;
    if (c.is_dot && c.state == Conn::State::kOpen && !c.plain_out.empty()) {
      // One SSL_write for everything answered on this connection in this iteration.
      if (!c.tls->Write(c.plain_out.data(), c.plain_out.size())) {
        CloseConn(conn);
      }
      c.plain_out.clear();
    }
    StartSend(conn);
  }
  dirty_conns_.clear();
}

void Responder::StartSend(uint32_t conn) {
  Conn& c = *conns_[conn];
  if (c.is_send_pending || c.out.empty() || !c.fd.is_valid()) {
    return;
  }
  // RFC 7766 §6.2.1.1 allows answers in any order, but bytes of two sends in flight at once
  // could interleave: one send per socket, the rest waits in `out`.
  c.out_inflight.swap(c.out);
  c.out.clear();
  c.out_offset = 0;
  io_uring_sqe* sqe = ring_->GetSqe(&c.send_op);
  io_uring_prep_send(sqe, c.fd.get(), c.out_inflight.data(), c.out_inflight.size(),
                     MSG_NOSIGNAL);
  c.is_send_pending = true;
}

void Responder::OnSendDone(uint32_t conn, int res) {
  Conn& c = *conns_[conn];
  c.is_send_pending = false;
  if (c.state != Conn::State::kOpen) {
    MaybeFreeConn(conn);
    return;
  }
  if (res < 0) {
    CloseConn(conn);
    MaybeFreeConn(conn);
    return;
  }
  c.out_offset += static_cast<size_t>(res);
  if (c.out_offset < c.out_inflight.size()) {
    // Short write: the rest goes first, before anything queued since.
    io_uring_sqe* sqe = ring_->GetSqe(&c.send_op);
    io_uring_prep_send(sqe, c.fd.get(), c.out_inflight.data() + c.out_offset,
                       c.out_inflight.size() - c.out_offset, MSG_NOSIGNAL);
    c.is_send_pending = true;
    return;
  }
  if (c.out_inflight.capacity() > kKeepCapacity) {
    std::vector<uint8_t>().swap(c.out_inflight);
  }
  c.out_inflight.clear();
  StartSend(conn);
}

void Responder::CloseConn(uint32_t conn) {
  Conn& c = *conns_[conn];
  if (c.state != Conn::State::kOpen) {
    return;
  }
  c.state = Conn::State::kClosing;
  if (c.is_recv_pending || c.is_send_pending) {
    // close() would not end the multishot recv: cancel everything on the fd, then wait for the
    // final CQEs before the entry is reused.
    io_uring_sqe* sqe = ring_->GetSqe(nullptr);
    io_uring_prep_cancel_fd(sqe, c.fd.get(), IORING_ASYNC_CANCEL_ALL);
  }
}

void Responder::MaybeFreeConn(uint32_t conn) {
  Conn& c = *conns_[conn];
  if (c.state != Conn::State::kClosing || c.is_recv_pending || c.is_send_pending) {
    return;
  }
  c.fd.reset();
  c.tls.reset();
  c.reader.Clear();
  std::vector<uint8_t>().swap(c.plain_out);
  std::vector<uint8_t>().swap(c.out);
  std::vector<uint8_t>().swap(c.out_inflight);
  c.state = Conn::State::kFree;
  ++c.generation;
  free_conns_.push_back(conn);
}

}  // namespace dotproxy::bench
