// File: net/sockets.h
//
// Socket set-up for the shards: SO_REUSEPORT UDP sockets and TCP listeners (one of each per
// shard on the same address), upstream TCP sockets, and the options every data-path socket
// gets. Set-up only: these make system calls and return Status.
#ifndef DOTPROXY_NET_SOCKETS_H_
#define DOTPROXY_NET_SOCKETS_H_

#include "absl/status/statusor.h"
#include "base/socket_address.h"
#include "base/unique_fd.h"

namespace dotproxy::net {

// How listening sockets are bound.
struct ListenOptions {
  bool freebind = false;  // IP_FREEBIND / IPV6_FREEBIND: the address need not be configured yet
};

// A UDP socket bound to `addr` with SO_REUSEPORT, and IP_PKTINFO / IPV6_RECVPKTINFO so replies
// can leave from the address each query was sent to. Large buffers for bursts. [::] is
// dual-stack (IPV6_V6ONLY off): IPv4 clients arrive as mapped addresses.
absl::StatusOr<base::UniqueFd> CreateUdpSocket(const base::SocketAddress& addr,
                                               const ListenOptions& options = {});

// A TCP listener bound to `addr` with SO_REUSEPORT and TCP_NODELAY inherited by accepted sockets;
// [::] is dual-stack.
absl::StatusOr<base::UniqueFd> CreateTcpListener(const base::SocketAddress& addr, int backlog,
                                                 const ListenOptions& options = {});

// A non-blocking TCP socket for connecting to `remote`, with TCP_NODELAY.
absl::StatusOr<base::UniqueFd> CreateTcpClientSocket(const base::SocketAddress& remote);

// TCP_NODELAY on an accepted socket: a response must never wait for Nagle and delayed ACKs.
void SetNoDelay(int fd);

// Fails with "bind ADDR: Address already in use" when something else holds `addr`. Shards bind
// with SO_REUSEPORT, which would otherwise silently share the port with another running proxy;
// this probe binds without it, so any earlier holder makes it fail.
absl::Status CheckAddressFree(const base::SocketAddress& addr, int type);

// The port a socket is bound to (for logs when the config asked for port 0).
uint16_t LocalPort(int fd);

}  // namespace dotproxy::net

#endif  // DOTPROXY_NET_SOCKETS_H_
