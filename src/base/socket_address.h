// File: base/socket_address.h
//
// SocketAddress is an IPv4 or IPv6 address plus port, stored as a sockaddr_in6-sized value so it
// can be copied into per-query records and passed to io_uring as-is.
//
//   auto addr = SocketAddress::Parse("[::1]:53");   // or "127.0.0.1:53"
//   bind(fd, addr->raw(), addr->length());
#ifndef DOTPROXY_BASE_SOCKET_ADDRESS_H_
#define DOTPROXY_BASE_SOCKET_ADDRESS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace dotproxy::base {

class SocketAddress {
 public:
  SocketAddress() = default;

  // Parses "a.b.c.d:port" or "[v6]:port" (numeric only; port 0..65535).
  static absl::StatusOr<SocketAddress> Parse(absl::string_view text);
  // Splits "host:port" / "[v6]:port" into host and port without resolving. Port must be 1..65535
  // unless allow_zero_port.
  static absl::Status SplitHostPort(absl::string_view text, std::string* host, uint16_t* port,
                                    bool allow_zero_port = false);
  // Copies from a kernel-provided sockaddr (AF_INET or AF_INET6); length is trusted to be enough.
  static SocketAddress FromSockaddr(const sockaddr* sa, socklen_t length);

  const struct sockaddr* raw() const { return reinterpret_cast<const struct sockaddr*>(&storage_); }
  struct sockaddr* mutable_raw() { return reinterpret_cast<struct sockaddr*>(&storage_); }
  socklen_t length() const {
    return family() == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  }
  int family() const { return storage_.sin6_family; }
  uint16_t port() const;
  void set_port(uint16_t port);
  bool is_wildcard() const;
  bool is_valid() const { return family() == AF_INET || family() == AF_INET6; }
  // "127.0.0.1:53" or "[::1]:53".
  std::string ToString() const;
  // Address without the port.
  std::string HostString() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b);

 private:
  sockaddr_in6 storage_{};  // holds a sockaddr_in when family() == AF_INET
};

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_SOCKET_ADDRESS_H_
