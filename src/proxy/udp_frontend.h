// File: proxy/udp_frontend.h
//
// UdpFrontend is one shard's SO_REUSEPORT UDP socket: a multishot recvmsg over a provided-buffer
// ring brings queries in (with IP_PKTINFO/IPV6_PKTINFO on wildcard binds), and one sendmsg per
// answer sends them back from the address the client asked (RFC 1035 §4.2.1 size limits, TC=1
// when the answer is larger than the client takes or listener.udp.max_answer_size). Sources
// outside listener.allow and queries over the rate limit are dropped before they take a slot.
#ifndef DOTPROXY_PROXY_UDP_FRONTEND_H_
#define DOTPROXY_PROXY_UDP_FRONTEND_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "base/socket_address.h"
#include "base/unique_fd.h"
#include "config/config.h"
#include "core/buffer_ring.h"
#include "core/reactor.h"
#include "metrics/counters.h"
#include "proxy/client_limits.h"
#include "proxy/query_table.h"
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

namespace dotproxy::proxy {

class UdpFrontend final : public ClientSide {
 public:
  UdpFrontend(core::Reactor& reactor, const config::Config& config, ClientGate& gate,
              QueryTable& table, metrics::ShardCounters& counters);
  UdpFrontend(const UdpFrontend&) = delete;
  UdpFrontend& operator=(const UdpFrontend&) = delete;

  // Binds the socket and starts receiving.
  absl::Status Init();
  uint16_t port() const;

  // ClientSide: sends the answer for `slot` and releases the slot once it has left.
  void Deliver(uint32_t slot, const uint8_t* response, size_t len) override;

 private:
  // Where and how to answer the query in the query-table slot of the same index.
  struct Reply {
    base::SocketAddress client;  // the query's source address
    uint8_t pktinfo_family = 0;  // AF_INET / AF_INET6 when the query's destination is known
    union {
      in_pktinfo v4;
      in6_pktinfo v6;
    } pktinfo{};                 // the query's destination address, to reply from it
    std::vector<uint8_t> bytes;  // the reply being sent
    core::Operation send_op;
    msghdr msg{};
    iovec iov{};
    alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(in6_pktinfo))];
  };

  void ArmRecv();
  void OnRecvRetry(core::Timer* timer);
  void OnRecv(const core::Operation& op, const io_uring_cqe& cqe);
  // Takes one datagram: checks it, and starts a query or drops it (counted).
  void OnDatagram(io_uring_recvmsg_out* out, const uint8_t* payload, size_t len);
  void Send(uint32_t slot);
  void OnSendDone(const core::Operation& op, const io_uring_cqe& cqe);

  core::Reactor& reactor_;
  const config::Config& config_;
  ClientGate& gate_;
  QueryTable& table_;
  metrics::ShardCounters& counters_;
  base::UniqueFd fd_;
  bool is_wildcard_ = false;    // reply source must be set from IP_PKTINFO
  core::BufferRing* buffers_ = nullptr;
  msghdr recv_template_{};      // sizes for the multishot recvmsg
  core::Operation recv_op_;
  RearmBackoff recv_backoff_;  // failed recvmsg completions in a row
  core::Timer recv_retry_timer_;
  std::vector<Reply> replies_;  // one per query-table slot
};

}  // namespace dotproxy::proxy

#endif  // DOTPROXY_PROXY_UDP_FRONTEND_H_
