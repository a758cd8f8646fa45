#include "proxy/udp_frontend.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "base/status_macros.h"
#include "dns/header.h"
#include "dns/message.h"
#include "dns/query_checks.h"
#include "net/send_queue.h"
#include "net/sockets.h"

namespace dotproxy::proxy {
namespace {

constexpr uint32_t kBufferCount = 256;
// Room for io_uring_recvmsg_out, the name, the control data and a 65535-byte datagram: a query
// is never cut. Pages a buffer never uses are never touched, so this costs address space only.
constexpr uint32_t kBufferSize = 65536 + 1024;
constexpr socklen_t kControlSize = CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo));
constexpr socklen_t kNameSpace = (sizeof(sockaddr_in6) + 7) & ~7u;
static_assert((sizeof(io_uring_recvmsg_out) + kNameSpace) % alignof(cmsghdr) == 0);
static_assert(kBufferSize >= sizeof(io_uring_recvmsg_out) + kNameSpace + kControlSize +
                                 dns::kMaxMessageSize);

}  // namespace

UdpFrontend::UdpFrontend(core::Reactor& reactor, const config::Config& config, ClientGate& gate,
                         QueryTable& table, metrics::ShardCounters& counters)
    : reactor_(reactor), config_(config), gate_(gate), table_(table), counters_(counters) {}

absl::Status UdpFrontend::Init() {
  ASSIGN_OR_RETURN(buffers_, reactor_.AddBufferRing(kBufferCount, kBufferSize));
  replies_ = std::vector<Reply>(table_.capacity());
  const core::HandlerId send_handler = reactor_.OnCompletion<&UdpFrontend::OnSendDone>(this);
  for (uint32_t i = 0; i < replies_.size(); ++i) {
    replies_[i].send_op = {send_handler, i, 0};
  }
  // The kernel lays out [io_uring_recvmsg_out][name: namelen][control][payload]; rounding the
  // name area up to 8 bytes keeps the cmsghdrs that follow it aligned.
  recv_template_.msg_namelen = kNameSpace;
  recv_template_.msg_controllen = kControlSize;
  recv_handler_ = reactor_.OnCompletion<&UdpFrontend::OnRecv>(this);
  recv_retry_kind_ = reactor_.OnTimer<&UdpFrontend::OnRecvRetry>(this);
  for (const base::SocketAddress& addr : config::ListenAddresses(config_.listener.udp)) {
    RETURN_IF_ERROR(OpenSocket(addr));
  }
  return absl::OkStatus();
}

absl::Status UdpFrontend::OpenSocket(const base::SocketAddress& addr) {
  ASSIGN_OR_RETURN(base::UniqueFd fd,
                   net::CreateUdpSocket(addr, {.freebind = config_.listener.freebind}));
  auto socket = std::make_unique<Socket>();
  socket->addr = addr;
  socket->fd = std::move(fd);
  socket->is_wildcard = addr.is_wildcard();
  socket->recv_op = {recv_handler_, static_cast<uint32_t>(sockets_.size()), 0};
  socket->retry_timer.owner = socket.get();
  socket->retry_timer.kind = recv_retry_kind_;
  sockets_.push_back(std::move(socket));
  ArmRecv(*sockets_.back());
  return absl::OkStatus();
}

absl::Status UdpFrontend::Reconfigure() {
  const std::vector<base::SocketAddress> wanted = config::ListenAddresses(config_.listener.udp);
  auto is_wanted = [&](const base::SocketAddress& addr) {
    return std::find(wanted.begin(), wanted.end(), addr) != wanted.end();
  };
  const size_t first_new = sockets_.size();
  for (const base::SocketAddress& addr : wanted) {
    const bool is_open = std::any_of(sockets_.begin(), sockets_.end(), [&](const auto& s) {
      return !s->is_closing && s->addr == addr;
    });
    if (is_open) {
      continue;
    }
    if (absl::Status opened = OpenSocket(addr); !opened.ok()) {
      // Keep serving what was served: undo the sockets this reload opened.
      for (size_t i = first_new; i < sockets_.size(); ++i) {
        CloseSocket(*sockets_[i]);
      }
      return opened;
    }
  }
  for (size_t i = 0; i < first_new; ++i) {
    if (!is_wanted(sockets_[i]->addr)) {
      CloseSocket(*sockets_[i]);
    }
  }
  return absl::OkStatus();
}

void UdpFrontend::CloseSocket(Socket& socket) {
  if (socket.is_closing) {
    return;
  }
  socket.is_closing = true;
  if (socket.is_recv_pending) {
    io_uring_prep_cancel(reactor_.GetSqe(nullptr), &socket.recv_op, 0);  // fd closes at its end
  } else {
    socket.fd.reset();
  }
}

uint16_t UdpFrontend::port() const {
  return sockets_.empty() ? 0 : net::LocalPort(sockets_.front()->fd.get());
}

void UdpFrontend::StopReading() {
  if (is_stopped_) {
    return;
  }
  is_stopped_ = true;
  for (const auto& socket : sockets_) {
    if (socket->is_recv_pending) {
      io_uring_prep_cancel(reactor_.GetSqe(nullptr), &socket->recv_op, 0);
    }
  }
}

void UdpFrontend::ArmRecv(Socket& socket) {
  io_uring_sqe* sqe = reactor_.GetSqe(&socket.recv_op);
  io_uring_prep_recvmsg_multishot(sqe, socket.fd.get(), &recv_template_, 0);
  buffers_->Select(sqe);
  socket.is_recv_pending = true;
}

void UdpFrontend::OnRecvRetry(core::Timer* timer) {
  Socket& socket = *static_cast<Socket*>(timer->owner);
  if (!socket.is_closing && !is_stopped_) {
    ArmRecv(socket);
  }
}

void UdpFrontend::OnRecv(const core::Operation& op, const io_uring_cqe& cqe) {
  Socket& socket = *sockets_[op.index];
  // The multishot request ends on any CQE without F_MORE (ENOBUFS, CQ overflow, errors); the
  // datagrams wait in the socket queue, so re-arming loses nothing.
  const bool must_rearm = (cqe.flags & IORING_CQE_F_MORE) == 0;
  uint16_t bid = 0;
  if (cqe.res >= 0 && core::BufferRing::BufferOf(cqe, &bid)) {
    socket.recv_backoff.OnSuccess();
    uint8_t* buf = buffers_->buffer(bid);
    io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, cqe.res, &recv_template_);
    if (out == nullptr || (out->flags & MSG_TRUNC) != 0 || out->namelen > sizeof(sockaddr_in6)) {
      ++counters_.udp_malformed;
    } else {
      OnDatagram(op.index, out,
                 static_cast<const uint8_t*>(io_uring_recvmsg_payload(out, &recv_template_)),
                 io_uring_recvmsg_payload_length(out, cqe.res, &recv_template_));
    }
    buffers_->Recycle(bid);
  } else if (cqe.res < 0) {
    ++counters_.udp_recv_errors;
    if (cqe.res != -ENOBUFS) {
      LOG_EVERY_N_SEC(kWarn, 1, "udp recvmsg: %s", strerror(-cqe.res));
    }
    if (must_rearm && !socket.is_closing && !is_stopped_) {
      // A persistent error must not turn into a busy loop of failing re-arms.
      const int64_t delay_ms = socket.recv_backoff.OnFailure();
      if (delay_ms > 0) {
        socket.is_recv_pending = false;
        ++counters_.udp_recv_rearms;
        reactor_.timers().Schedule(&socket.retry_timer, reactor_.now_ms() + delay_ms);
        return;
      }
    }
  }
  if (!must_rearm) {
    return;
  }
  socket.is_recv_pending = false;
  if (socket.is_closing) {
    socket.fd.reset();
  } else if (!is_stopped_) {
    ++counters_.udp_recv_rearms;
    ArmRecv(socket);
  }
}

void UdpFrontend::OnDatagram(uint32_t socket, io_uring_recvmsg_out* out, const uint8_t* payload,
                             size_t len) {
  const auto* name = static_cast<const sockaddr*>(io_uring_recvmsg_name(out));
  const base::IpAddress source = base::IpAddress::FromSockaddr(name, out->namelen);
  if (!gate_.IsAllowed(source)) {
    ++counters_.udp_acl_dropped;  // silently: an answer would make us a reflector
    return;
  }
  dns::QueryInfo info;
  const dns::QueryError err = dns::ParseQuery(payload, len, &info);
  if (err != dns::QueryError::kOk && !dns::ParseUnsupportedOpcode(payload, len, &info)) {
    ++counters_.udp_malformed;
    LOG_EVERY_N_SEC(kDebug, 1, "udp: dropped malformed query (%s, %zu bytes)",
                    dns::QueryErrorName(err), len);
    return;
  }
  dns::LocalAnswer answer = dns::CheckQuery(payload, info);
  switch (gate_.CheckRate(source, reactor_.now_ms())) {
    case ClientGate::Rate::kPass:
      break;
    case ClientGate::Rate::kDrop:
      ++counters_.rate_limited_dropped;
      return;
    case ClientGate::Rate::kRefuse:
      answer = dns::LocalAnswer::kRefused;
      break;
  }
  const int32_t si = table_.Acquire(this, source);
  if (si < 0) {
    ++(si == QueryTable::kOverShare ? counters_.client_share_dropped
                                    : counters_.udp_dropped_no_slot);
    return;
  }
  ++counters_.udp_queries;
  Reply& reply = replies_[si];
  reply.socket = socket;
  reply.client = base::SocketAddress::FromSockaddr(name, out->namelen);
  reply.pktinfo_family = 0;
  if (sockets_[socket]->is_wildcard) {
    for (cmsghdr* c = io_uring_recvmsg_cmsg_firsthdr(out, &recv_template_); c != nullptr;
         c = io_uring_recvmsg_cmsg_nexthdr(out, &recv_template_, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo received;
        memcpy(&received, CMSG_DATA(c), sizeof(received));
        reply.pktinfo.v4 = in_pktinfo{};
        reply.pktinfo.v4.ipi_spec_dst = received.ipi_addr;
        reply.pktinfo_family = AF_INET;
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo received;
        memcpy(&received, CMSG_DATA(c), sizeof(received));
        reply.pktinfo.v6 = in6_pktinfo{};
        reply.pktinfo.v6.ipi6_addr = received.ipi6_addr;
        reply.pktinfo_family = AF_INET6;
      }
    }
  }
  QueryTable::Slot& slot = table_.slot(si);
  slot.info = info;
  slot.query.assign(payload, payload + len);
  table_.Start(static_cast<uint32_t>(si), answer);
}

void UdpFrontend::Deliver(uint32_t slot_index, const uint8_t* response, size_t len) {
  const QueryTable::Slot& slot = table_.slot(slot_index);
  Reply& reply = replies_[slot_index];
  // RFC 1035 §4.2.1 / RFC 6891 §7: never more than the client can take over UDP, nor more than
  // max_answer_size (a spoofed query must not buy a large reply); send TC=1 so it retries over
  // TCP (RFC 7766 §5).
  const size_t limit =
      std::min<size_t>(dns::ClientUdpLimit(slot.info), config_.listener.udp.max_answer_size);
  if (len > limit) {
    ++counters_.truncated;
    reply.bytes.resize(dns::kMinUdpPayload);
    const size_t n = dns::BuildTruncatedResponse(response, len, slot.query.data(), slot.info,
                                                 reply.bytes.data(), reply.bytes.size());
    reply.bytes.resize(n);
  } else {
    reply.bytes.assign(response, response + len);
  }
  if (reply.bytes.size() < dns::kHeaderSize) {
    table_.Release(slot_index);
    return;
  }
  dns::SetId(reply.bytes.data(), slot.info.id);
  Send(slot_index);
}

void UdpFrontend::Send(uint32_t slot_index) {
  Reply& reply = replies_[slot_index];
  reply.iov.iov_base = reply.bytes.data();
  reply.iov.iov_len = reply.bytes.size();
  reply.msg = msghdr{};
  reply.msg.msg_name = reply.client.mutable_raw();
  reply.msg.msg_namelen = reply.client.length();
  reply.msg.msg_iov = &reply.iov;
  reply.msg.msg_iovlen = 1;
  if (reply.pktinfo_family != 0) {
    // Reply from the address the query was sent to (wildcard bind, anycast, multi-homing).
    reply.msg.msg_control = reply.control;
    cmsghdr* c = reinterpret_cast<cmsghdr*>(reply.control);
    if (reply.pktinfo_family == AF_INET) {
      reply.msg.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      memcpy(CMSG_DATA(c), &reply.pktinfo.v4, sizeof(in_pktinfo));
    } else {
      reply.msg.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
      memcpy(CMSG_DATA(c), &reply.pktinfo.v6, sizeof(in6_pktinfo));
    }
  }
  const Socket& socket = *sockets_[reply.socket];
  if (!socket.fd.is_valid()) {
    table_.Release(slot_index);  // its address was removed by a reload meanwhile
    return;
  }
  reply.send_op.generation = table_.slot(slot_index).generation;
  reply.is_retry = false;
  SubmitSend(slot_index, /*wait_for_room=*/false);
}

void UdpFrontend::SubmitSend(uint32_t slot_index, bool wait_for_room) {
  Reply& reply = replies_[slot_index];
  io_uring_sqe* sqe = reactor_.GetSqe(&reply.send_op);
  // MSG_DONTWAIT: the send completes inside the enter that submits it, which then goes on to
  // sleep (Ring::CountInlineCompletion) instead of returning for this CQE alone.
  io_uring_prep_sendmsg(sqe, sockets_[reply.socket]->fd.get(), &reply.msg,
                        wait_for_room ? MSG_NOSIGNAL : MSG_NOSIGNAL | MSG_DONTWAIT);
  if (!wait_for_room) {
    reactor_.ring().CountInlineCompletion();
  }
}

void UdpFrontend::OnSendDone(const core::Operation& op, const io_uring_cqe& cqe) {
  Reply& reply = replies_[op.index];
  if (cqe.res == -EAGAIN && !reply.is_retry && sockets_[reply.socket]->fd.is_valid()) {
    // The socket's send buffer is full: send again, waiting in the kernel for room.
    reply.is_retry = true;
    SubmitSend(op.index, /*wait_for_room=*/true);
    return;
  }
  if (cqe.res < 0) {
    LOG_EVERY_N_SEC(kWarn, 1, "udp sendmsg to %s: %s", replies_[op.index].client.ToString(),
                    strerror(-cqe.res));
  }
  net::ReleaseIfLarge(replies_[op.index].bytes);
  table_.Release(op.index);
}

}  // namespace dotproxy::proxy
