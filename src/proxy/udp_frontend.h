// File: proxy/udp_frontend.h
//
// UdpFrontend is one shard's SO_REUSEPORT UDP sockets, one per listen address: a multishot recvmsg
// over a shared provided-buffer ring brings queries in (with IP_PKTINFO/IPV6_PKTINFO on wildcard binds), and one sendmsg per
// answer sends them back from the address the client asked (RFC 1035 §4.2.1 size limits, TC=1
// when the answer is larger than the client takes or listener.udp.max_answer_size). Sources
// outside listener.allow and queries over the rate limit are dropped before they take a slot.
#ifndef DOTPROXY_PROXY_UDP_FRONTEND_H_
#define DOTPROXY_PROXY_UDP_FRONTEND_H_

#include <cstdint>
#include <memory>
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

  // Binds a socket per listen address and starts receiving.
  absl::Status Init();
  // The port of the first address (for the start-up log when the config asked for port 0).
  uint16_t port() const;
  // Reload: binds the addresses that are new and closes the removed ones. When a new address
  // cannot be bound (a privileged port after the privilege drop, say), nothing changes and the
  // error says why.
  absl::Status Reconfigure();

  // Stops taking new queries (shutdown): the receive is cancelled and not re-armed.
  void StopReading();

  // ClientSide: sends the answer for `slot` and releases the slot once it has left.
  void Deliver(uint32_t slot, const uint8_t* response, size_t len) override;

 private:
  // One listen address.
  struct Socket {
    base::SocketAddress addr;
    base::UniqueFd fd;
    bool is_wildcard = false;   // reply source must be set from IP_PKTINFO
    bool is_closing = false;    // removed by a reload or stopped: not re-armed, closed at its end
    bool is_recv_pending = false;
    core::Operation recv_op;    // index: this socket's place in sockets_
    RearmBackoff recv_backoff;  // failed recvmsg completions in a row
    core::Timer retry_timer;    // re-arms the receive after errors (backoff)
  };
  // Where and how to answer the query in the query-table slot of the same index.
  struct Reply {
    uint32_t socket = 0;         // the socket the query came in on
    base::SocketAddress client;  // the query's source address
    uint8_t pktinfo_family = 0;  // AF_INET / AF_INET6 when the query's destination is known
    union {
      in_pktinfo v4;
      in6_pktinfo v6;
    } pktinfo{};                 // the query's destination address, to reply from it
    std::vector<uint8_t> bytes;  // the reply being sent
    core::Operation send_op;
    bool is_retry = false;       // sent again, waiting for room, after a MSG_DONTWAIT EAGAIN
    msghdr msg{};
    iovec iov{};
    alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(in6_pktinfo))];
  };

  absl::Status OpenSocket(const base::SocketAddress& addr);
  void CloseSocket(Socket& socket);
  void ArmRecv(Socket& socket);
  void OnRecvRetry(core::Timer* timer);
  void OnRecv(const core::Operation& op, const io_uring_cqe& cqe);
  // Takes one datagram: checks it, and starts a query or drops it (counted).
  void OnDatagram(uint32_t socket, io_uring_recvmsg_out* out, const uint8_t* payload, size_t len);
  void Send(uint32_t slot);
  void SubmitSend(uint32_t slot, bool wait_for_room);
  void OnSendDone(const core::Operation& op, const io_uring_cqe& cqe);

  core::Reactor& reactor_;
  const config::Config& config_;
  ClientGate& gate_;
  QueryTable& table_;
  metrics::ShardCounters& counters_;
  std::vector<std::unique_ptr<Socket>> sockets_;  // stable addresses: SQEs point at recv_op
  core::HandlerId recv_handler_ = core::kIgnoreHandler;
  uint32_t recv_retry_kind_ = 0;
  core::BufferRing* buffers_ = nullptr;
  msghdr recv_template_{};      // sizes for the multishot recvmsg
  bool is_stopped_ = false;
  std::vector<Reply> replies_;  // one per query-table slot
};

}  // namespace dotproxy::proxy

#endif  // DOTPROXY_PROXY_UDP_FRONTEND_H_
