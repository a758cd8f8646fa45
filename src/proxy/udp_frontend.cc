// UDP clients: multishot recvmsg over a provided-buffer ring in, one sendmsg per reply out.
#include <netinet/in.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "base/status_macros.h"
#include "dns/header.h"
#include "net/sockets.h"
#include "proxy/shard.h"

namespace dotproxy::proxy {
namespace {

constexpr uint16_t kUdpBufferGroup = 1;
constexpr uint32_t kUdpBufferCount = 256;
// Room for io_uring_recvmsg_out, the name, the control data and a 65535-byte datagram: a query
// is never cut. Pages a buffer never uses are never touched, so this costs address space only.
constexpr uint32_t kUdpBufferSize = 65536 + 1024;
constexpr socklen_t kControlSize = CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo));
constexpr socklen_t kNameSpace = (sizeof(sockaddr_in6) + 7) & ~7u;
static_assert((sizeof(io_uring_recvmsg_out) + kNameSpace) % alignof(cmsghdr) == 0);
static_assert(kUdpBufferSize >= sizeof(io_uring_recvmsg_out) + kNameSpace +
                                    kControlSize + dns::kMaxMessageSize);

}  // namespace

absl::Status Shard::InitUdp() {
  ASSIGN_OR_RETURN(udp_fd_, net::CreateUdpSocket(config_.listener.udp.addr));
  is_udp_wildcard_ = config_.listener.udp.addr.is_wildcard();
  ASSIGN_OR_RETURN(udp_buffers_, core::BufferRing::Create(ring_->raw(), kUdpBufferGroup,
                                                          kUdpBufferCount, kUdpBufferSize));
  // The kernel lays out [io_uring_recvmsg_out][name: namelen][control][payload]; rounding the
  // name area up to 8 bytes keeps the cmsghdrs that follow it aligned.
  udp_recv_template_.msg_namelen = kNameSpace;
  udp_recv_template_.msg_controllen = kControlSize;
  udp_recv_op_.kind = core::OpKind::kUdpRecv;
  ArmUdpRecv();
  return absl::OkStatus();
}

uint16_t Shard::udp_port() const { return net::LocalPort(udp_fd_.get()); }

void Shard::ArmUdpRecv() {
  io_uring_sqe* sqe = ring_->GetSqe(&udp_recv_op_);
  io_uring_prep_recvmsg_multishot(sqe, udp_fd_.get(), &udp_recv_template_, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kUdpBufferGroup;
}

void Shard::OnUdpRecv(const io_uring_cqe& cqe) {
  // The multishot request ends on any CQE without F_MORE (ENOBUFS, CQ overflow, errors); the
  // datagrams wait in the socket queue, so re-arming loses nothing.
  const bool must_rearm = (cqe.flags & IORING_CQE_F_MORE) == 0;
  if (cqe.res >= 0 && (cqe.flags & IORING_CQE_F_BUFFER) != 0) {
    const uint16_t bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    uint8_t* buf = udp_buffers_->buffer(bid);
    io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, cqe.res, &udp_recv_template_);
    if (out == nullptr || (out->flags & MSG_TRUNC) != 0 ||
        out->namelen > sizeof(sockaddr_in6)) {
      ++counters_.udp_malformed;
    } else {
      const auto* payload = static_cast<const uint8_t*>(io_uring_recvmsg_payload(out,
                                                                  &udp_recv_template_));
      const size_t len = io_uring_recvmsg_payload_length(out, cqe.res, &udp_recv_template_);
      dns::QueryInfo info;
      const dns::QueryError err = dns::ParseQuery(payload, len, &info);
      if (err != dns::QueryError::kOk) {
        ++counters_.udp_malformed;
        LOG_EVERY_N_SEC(kDebug, 1, "udp: dropped malformed query (%s, %zu bytes)",
                        dns::QueryErrorName(err), len);
      } else {
        const int32_t si = AcquireQuerySlot();
        if (si < 0) {
          ++counters_.udp_dropped_no_slot;
        } else {
          ++counters_.udp_queries;
          QuerySlot& slot = slots_[si];
          slot.client_kind = ClientKind::kUdp;
          slot.info = info;
          slot.client = base::SocketAddress::FromSockaddr(
              static_cast<const sockaddr*>(io_uring_recvmsg_name(out)), out->namelen);
          slot.pktinfo_family = 0;
          if (is_udp_wildcard_) {
            for (cmsghdr* c = io_uring_recvmsg_cmsg_firsthdr(out, &udp_recv_template_);
                 c != nullptr; c = io_uring_recvmsg_cmsg_nexthdr(out, &udp_recv_template_, c)) {
              if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                in_pktinfo received;
                memcpy(&received, CMSG_DATA(c), sizeof(received));
                slot.pktinfo.v4 = in_pktinfo{};
                slot.pktinfo.v4.ipi_spec_dst = received.ipi_addr;
                slot.pktinfo_family = AF_INET;
              } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
                in6_pktinfo received;
                memcpy(&received, CMSG_DATA(c), sizeof(received));
                slot.pktinfo.v6 = in6_pktinfo{};
                slot.pktinfo.v6.ipi6_addr = received.ipi6_addr;
                slot.pktinfo_family = AF_INET6;
              }
            }
          }
          slot.query.assign(payload, payload + len);
          Forward(static_cast<uint32_t>(si), -1);
        }
      }
    }
    udp_buffers_->Recycle(bid);
  } else if (cqe.res < 0 && cqe.res != -ENOBUFS) {
    LOG_EVERY_N_SEC(kWarn, 1, "udp recvmsg: %s", strerror(-cqe.res));
  }
  if (must_rearm) {
    ++counters_.udp_recv_rearms;
    ArmUdpRecv();
  }
}

void Shard::SendUdpReply(uint32_t slot_index) {
  QuerySlot& slot = slots_[slot_index];
  slot.state = QuerySlot::State::kReplying;
  slot.iov.iov_base = slot.reply.data();
  slot.iov.iov_len = slot.reply.size();
  slot.msg = msghdr{};
  slot.msg.msg_name = slot.client.mutable_raw();
  slot.msg.msg_namelen = slot.client.length();
  slot.msg.msg_iov = &slot.iov;
  slot.msg.msg_iovlen = 1;
  if (slot.pktinfo_family != 0) {
    // Reply from the address the query was sent to (wildcard bind, anycast, multi-homing).
    slot.msg.msg_control = slot.control;
    cmsghdr* c = reinterpret_cast<cmsghdr*>(slot.control);
    if (slot.pktinfo_family == AF_INET) {
      slot.msg.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      memcpy(CMSG_DATA(c), &slot.pktinfo.v4, sizeof(in_pktinfo));
    } else {
      slot.msg.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
      memcpy(CMSG_DATA(c), &slot.pktinfo.v6, sizeof(in6_pktinfo));
    }
  }
  slot.send_op.generation = slot.generation;
  io_uring_sqe* sqe = ring_->GetSqe(&slot.send_op);
  io_uring_prep_sendmsg(sqe, udp_fd_.get(), &slot.msg, MSG_NOSIGNAL);
}

void Shard::OnUdpSendDone(uint32_t slot_index, int res) {
  if (res < 0) {
    LOG_EVERY_N_SEC(kWarn, 1, "udp sendmsg to %s: %s", slots_[slot_index].client.ToString(),
                    strerror(-res));
  }
  ReleaseQuerySlot(slot_index);
}

}  // namespace dotproxy::proxy
