#include "net/sockets.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace dotproxy::net {
namespace {

absl::Status SetIntOption(int fd, int level, int name, int value, const char* what) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("setsockopt ", what));
  }
  return absl::OkStatus();
}

// Options every listening socket gets before bind.
absl::Status PrepareListener(int fd, const base::SocketAddress& addr,
                             const ListenOptions& options) {
  if (addr.family() == AF_INET6 && addr.is_wildcard()) {
    absl::Status status = SetIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY");
    if (!status.ok()) {
      return status;
    }
  }
  if (options.freebind) {
    return addr.family() == AF_INET6
               ? SetIntOption(fd, IPPROTO_IPV6, IPV6_FREEBIND, 1, "IPV6_FREEBIND")
               : SetIntOption(fd, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<base::UniqueFd> CreateUdpSocket(const base::SocketAddress& addr,
                                               const ListenOptions& options) {
  base::UniqueFd fd(socket(addr.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.is_valid()) {
    return absl::ErrnoToStatus(errno, "socket(udp)");
  }
  absl::Status status = SetIntOption(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
  if (!status.ok()) {
    return status;
  }
  // Larger buffers absorb bursts between loop iterations; failures only mean the default size.
  SetIntOption(fd.get(), SOL_SOCKET, SO_RCVBUF, 4 << 20, "SO_RCVBUF").IgnoreError();
  SetIntOption(fd.get(), SOL_SOCKET, SO_SNDBUF, 4 << 20, "SO_SNDBUF").IgnoreError();
  if (addr.family() == AF_INET6) {
    // A [::] socket also receives IPv4 (mapped); ask for both kinds of destination info.
    status = SetIntOption(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
    if (!status.ok()) {
      return status;
    }
    SetIntOption(fd.get(), IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO").IgnoreError();
  } else {
    status = SetIntOption(fd.get(), IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
    if (!status.ok()) {
      return status;
    }
  }
  status = PrepareListener(fd.get(), addr, options);
  if (!status.ok()) {
    return status;
  }
  if (bind(fd.get(), addr.raw(), addr.length()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("bind udp ", addr.ToString()));
  }
  return fd;
}

absl::StatusOr<base::UniqueFd> CreateTcpListener(const base::SocketAddress& addr, int backlog,
                                                 const ListenOptions& options) {
  base::UniqueFd fd(socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.is_valid()) {
    return absl::ErrnoToStatus(errno, "socket(tcp)");
  }
  absl::Status status = SetIntOption(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (status.ok()) {
    status = SetIntOption(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
  }
  if (status.ok()) {
    status = SetIntOption(fd.get(), IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
  }
  if (status.ok()) {
    status = PrepareListener(fd.get(), addr, options);
  }
  if (!status.ok()) {
    return status;
  }
  if (bind(fd.get(), addr.raw(), addr.length()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("bind tcp ", addr.ToString()));
  }
  if (listen(fd.get(), backlog) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("listen tcp ", addr.ToString()));
  }
  return fd;
}

absl::StatusOr<base::UniqueFd> CreateTcpClientSocket(const base::SocketAddress& remote) {
  base::UniqueFd fd(socket(remote.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.is_valid()) {
    return absl::ErrnoToStatus(errno, "socket(upstream)");
  }
  SetNoDelay(fd.get());
  return fd;
}

absl::Status CheckAddressFree(const base::SocketAddress& addr, int type) {
  base::UniqueFd fd(socket(addr.family(), type | SOCK_CLOEXEC, 0));
  if (!fd.is_valid()) {
    return absl::ErrnoToStatus(errno, "socket");
  }
  if (type == SOCK_STREAM) {
    // TIME_WAIT leftovers of an earlier run must not count as "in use".
    SetIntOption(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR").IgnoreError();
  }
  if (bind(fd.get(), addr.raw(), addr.length()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("bind ", type == SOCK_STREAM ? "tcp " : "udp ",
                                                   addr.ToString()));
  }
  return absl::OkStatus();
}

void SetNoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

uint16_t LocalPort(int fd) {
  sockaddr_in6 sa{};
  socklen_t len = sizeof(sa);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    return 0;
  }
  return base::SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&sa), len).port();
}

}  // namespace dotproxy::net
