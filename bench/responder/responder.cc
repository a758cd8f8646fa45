#include "bench/responder/responder.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "dns/header.h"
#include "net/sockets.h"

namespace dotproxy::bench {
namespace {

constexpr uint32_t kUdpBufferCount = 4096;
constexpr uint32_t kUdpBufferSize = 2048;   // recvmsg_out + name + any sane query
constexpr uint32_t kStreamBufferCount = 1024;
constexpr uint32_t kStreamBufferSize = 16 * 1024;
constexpr uint32_t kUdpReplySlots = 16384;  // UDP answers in flight (or delayed) at once
constexpr size_t kPlaintextChunk = 64 * 1024;

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
    : options_(options), thread_id_(thread_id) {}

Responder::~Responder() {
  // The reactor goes first: tearing its ring down cancels every request, so no msghdr or
  // connection the kernel could still read or write is freed before it.
  reactor_.reset();
}

absl::StatusOr<std::unique_ptr<Responder>> Responder::Create(const ResponderOptions& options,
                                                             uint32_t thread_id) {
  auto out = std::unique_ptr<Responder>(new Responder(options, thread_id));
  RETURN_IF_ERROR(out->Init());
  return out;
}

absl::Status Responder::Init() {
  ASSIGN_OR_RETURN(reactor_, core::Reactor::Create());
  reactor_->OnFlush<&Responder::FlushDirty>(this);
  plaintext_.resize(kPlaintextChunk);
  scratch_.resize(dns::kMaxMessageSize + 2);
  if (options_.has_udp) {
    ASSIGN_OR_RETURN(udp_fd_, CreateUdpServerSocket(options_.udp_addr));
    ASSIGN_OR_RETURN(udp_buffers_, reactor_->AddBufferRing(kUdpBufferCount, kUdpBufferSize));
    udp_recv_template_.msg_namelen = sizeof(sockaddr_in6);
    udp_recv_op_.handler = reactor_->OnCompletion<&Responder::OnUdpRecv>(this);
    const core::HandlerId send_handler = reactor_->OnCompletion<&Responder::OnUdpSendDone>(this);
    const uint32_t timer_kind = reactor_->OnTimer<&Responder::OnUdpReplyDue>(this);
    // Room for the largest answer the padding can produce; a UDP answer never exceeds 65507.
    udp_reply_bytes_ = std::min<size_t>(dns::kMaxUdpPayload,
                                        std::max<size_t>(1024, options_.answer.target_size + 600));
    udp_arena_.resize(udp_reply_bytes_ * kUdpReplySlots);
    udp_replies_ = std::vector<UdpReply>(kUdpReplySlots);
    free_udp_replies_.reserve(kUdpReplySlots);
    for (uint32_t i = kUdpReplySlots; i > 0; --i) {
      UdpReply& r = udp_replies_[i - 1];
      r.send_op = {send_handler, i - 1, 0};
      r.timer.owner = &r;
      r.timer.kind = timer_kind;
      r.buf = udp_arena_.data() + static_cast<size_t>(i - 1) * udp_reply_bytes_;
      free_udp_replies_.push_back(i - 1);
    }
    ArmUdpRecv();
  }
  if (options_.has_tcp || options_.has_dot) {
    ASSIGN_OR_RETURN(stream_buffers_,
                     reactor_->AddBufferRing(kStreamBufferCount, kStreamBufferSize));
    conn_recv_handler_ = reactor_->OnCompletion<&Responder::OnRecv>(this);
    conn_send_handler_ = reactor_->OnCompletion<&Responder::OnSendDone>(this);
    stream_answer_timer_ = reactor_->OnTimer<&Responder::OnStreamAnswerDue>(this);
  }
  if (options_.has_tcp) {
    ASSIGN_OR_RETURN(listen_fds_[kListenerTcp], net::CreateTcpListener(options_.tcp_addr, 4096));
  }
  if (options_.has_dot) {
    ASSIGN_OR_RETURN(tls_, tls::ServerContext::Create(
                                {options_.cert_file, options_.key_file, options_.tls_max_version}));
    ASSIGN_OR_RETURN(listen_fds_[kListenerDot], net::CreateTcpListener(options_.dot_addr, 4096));
  }
  const core::HandlerId accept_handler = reactor_->OnCompletion<&Responder::OnAccept>(this);
  for (uint32_t l : {kListenerTcp, kListenerDot}) {
    accept_ops_[l] = {accept_handler, l, 0};
    if (listen_fds_[l].is_valid()) {
      ArmAccept(l);
    }
  }
  LOG(kInfo, "responder thread %u: io_uring %s", thread_id_, reactor_->ring().setup_mode());
  return absl::OkStatus();
}

// ---- UDP ------------------------------------------------------------------------------------

void Responder::ArmUdpRecv() {
  io_uring_sqe* sqe = reactor_->GetSqe(&udp_recv_op_);
  io_uring_prep_recvmsg_multishot(sqe, udp_fd_.get(), &udp_recv_template_, 0);
  udp_buffers_->Select(sqe);
}

void Responder::OnUdpRecv(const core::Operation& /*op*/, const io_uring_cqe& cqe) {
  // The multishot ends on any CQE without F_MORE (ENOBUFS, CQ overflow); datagrams wait in the
  // socket queue meanwhile, so re-arming loses nothing.
  const bool must_rearm = (cqe.flags & IORING_CQE_F_MORE) == 0;
  uint16_t bid = 0;
  if (cqe.res >= 0 && core::BufferRing::BufferOf(cqe, &bid)) {
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
          reactor_->timers().Schedule(&r.timer, reactor_->now_ms() + options_.delay_ms);
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

void Responder::OnUdpReplyDue(core::Timer* timer) {
  SendUdp(static_cast<uint32_t>(static_cast<UdpReply*>(timer->owner) - udp_replies_.data()));
}

void Responder::SendUdp(uint32_t reply) {
  UdpReply& r = udp_replies_[reply];
  io_uring_sqe* sqe = reactor_->GetSqe(&r.send_op);
  io_uring_prep_sendmsg(sqe, udp_fd_.get(), &r.msg, MSG_NOSIGNAL);
}

void Responder::OnUdpSendDone(const core::Operation& op, const io_uring_cqe& cqe) {
  if (cqe.res < 0) {
    LOG_EVERY_N_SEC(kWarn, 1, "udp sendmsg: %s", strerror(-cqe.res));
  }
  free_udp_replies_.push_back(op.index);
}

// ---- TCP and DoT ----------------------------------------------------------------------------

void Responder::ArmAccept(uint32_t listener) {
  io_uring_sqe* sqe = reactor_->GetSqe(&accept_ops_[listener]);
  io_uring_prep_multishot_accept(sqe, listen_fds_[listener].get(), nullptr, nullptr,
                                 SOCK_CLOEXEC);
}

void Responder::OnAccept(const core::Operation& op, const io_uring_cqe& cqe) {
  const uint32_t listener = op.index;
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
    conns_[index]->recv_op = {conn_recv_handler_, index, 0};
    conns_[index]->send_op = {conn_send_handler_, index, 0};
  }
  Conn& c = *conns_[index];
  c.state = Conn::State::kOpen;
  c.is_dot = listener == kListenerDot;
  c.fd = std::move(fd);
  Bump(counters_.connections);
  if (c.is_dot) {
    c.tls = tls::TlsStream::CreateServer(*tls_, &c.output.pending());
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
  stream_buffers_->PrepareRecvMultishot(reactor_->GetSqe(&c.recv_op), c.fd.get());
  c.is_recv_pending = true;
}

void Responder::OnRecv(const core::Operation& op, const io_uring_cqe& cqe) {
  const uint32_t conn = op.index;
  Conn& c = *conns_[conn];
  const bool has_more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  if (!has_more) {
    c.is_recv_pending = false;
  }
  uint16_t bid = 0;
  if (cqe.res > 0 && core::BufferRing::BufferOf(cqe, &bid)) {
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
    stream_answers_[ai]->timer.kind = stream_answer_timer_;
    stream_answers_[ai]->index = ai;
  }
  StreamAnswer& a = *stream_answers_[ai];
  a.conn = conn;
  a.generation = c.generation;
  a.frame.assign(scratch_.data(), scratch_.data() + n + 2);
  reactor_->timers().Schedule(&a.timer, reactor_->now_ms() + options_.delay_ms);
  return true;
}

void Responder::OnStreamAnswerDue(core::Timer* timer) {
  auto* answer = static_cast<StreamAnswer*>(timer->owner);
  const Conn& c = *conns_[answer->conn];
  if (c.state == Conn::State::kOpen && c.generation == answer->generation) {
    QueueFrame(answer->conn, answer->frame.data(), answer->frame.size());
  }
  answer->frame.clear();
  free_stream_answers_.push_back(answer->index);
}

void Responder::QueueFrame(uint32_t conn, const uint8_t* frame, size_t len) {
  Conn& c = *conns_[conn];
  std::vector<uint8_t>& dest = c.is_dot ? c.plain_out : c.output.pending();
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

bool Responder::FlushDirty() {
  if (dirty_conns_.empty()) {
    return false;
  }
  for (size_t i = 0; i < dirty_conns_.size(); ++i) {
    const uint32_t conn = dirty_conns_[i];
    Conn& c = *conns_[conn];
    c.is_dirty = false;
    if (c.is_dot && c.state == Conn::State::kOpen && !c.plain_out.empty()) {
      MaybeRequestKeyUpdate(conn);
      // One SSL_write for everything answered on this connection in this iteration.
      if (!c.tls->Write(c.plain_out.data(), c.plain_out.size())) {
        CloseConn(conn);
      }
      c.plain_out.clear();
    }
    StartSend(conn);
  }
  dirty_conns_.clear();
  return true;
}

void Responder::MaybeRequestKeyUpdate(uint32_t conn) {
  Conn& c = *conns_[conn];
  const uint32_t every = options_.key_update_every;
  if (every == 0) {
    return;
  }
  // Each framed answer starts with its 2-byte length: count the answers in plain_out.
  uint32_t answers = 0;
  for (size_t pos = 0; pos + 2 <= c.plain_out.size();
       pos += 2 + (size_t{c.plain_out[pos]} << 8 | c.plain_out[pos + 1])) {
    ++answers;
  }
  if ((c.answers % every) + answers >= every) {
    if (c.tls->RequestKeyUpdate()) {
      Bump(counters_.key_updates);
    }
  }
  c.answers += answers;
}

void Responder::StartSend(uint32_t conn) {
  Conn& c = *conns_[conn];
  // RFC 7766 §6.2.1.1 allows answers in any order, but the bytes of two sends in flight at once
  // could interleave: SendQueue keeps one in flight and the rest waits.
  if (c.fd.is_valid()) {
    c.output.Start(reactor_->ring(), &c.send_op, c.fd.get());
  }
}

void Responder::OnSendDone(const core::Operation& op, const io_uring_cqe& cqe) {
  const uint32_t conn = op.index;
  Conn& c = *conns_[conn];
  const bool is_open = c.state == Conn::State::kOpen;
  // A closing connection does not resume a short write.
  const net::SendQueue::Result result = c.output.OnComplete(
      reactor_->ring(), &c.send_op, c.fd.get(), is_open ? cqe.res : -ECANCELED);
  if (!is_open) {
    MaybeFreeConn(conn);
    return;
  }
  if (result == net::SendQueue::Result::kFailed) {
    CloseConn(conn);
    MaybeFreeConn(conn);
    return;
  }
  if (result == net::SendQueue::Result::kDone) {
    StartSend(conn);
  }
}

void Responder::CloseConn(uint32_t conn) {
  Conn& c = *conns_[conn];
  if (c.state != Conn::State::kOpen) {
    return;
  }
  c.state = Conn::State::kClosing;
  if (c.is_recv_pending || c.output.is_sending()) {
    // close() would not end the multishot recv: cancel everything on the fd, then wait for the
    // final CQEs before the entry is reused.
    io_uring_sqe* sqe = reactor_->GetSqe(nullptr);
    io_uring_prep_cancel_fd(sqe, c.fd.get(), IORING_ASYNC_CANCEL_ALL);
  }
}

void Responder::MaybeFreeConn(uint32_t conn) {
  Conn& c = *conns_[conn];
  if (c.state != Conn::State::kClosing || c.is_recv_pending || c.output.is_sending()) {
    return;
  }
  c.fd.reset();
  c.tls.reset();
  c.reader.Clear();
  c.plain_out.clear();
  net::ReleaseIfLarge(c.plain_out);
  c.output.Clear();
  c.state = Conn::State::kFree;
  ++c.generation;
  free_conns_.push_back(conn);
}

}  // namespace dotproxy::bench
