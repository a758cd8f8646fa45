#include "base/socket_address.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dotproxy::base {
namespace {

// The text in double quotes with C escapes, so that a message stays one line whatever it quotes
// (a YAML value may hold newlines).
std::string Quoted(absl::string_view text) {
  return absl::StrCat("\"", absl::CHexEscape(text), "\"");
}

}  // namespace

absl::Status SocketAddress::SplitHostPort(absl::string_view text, std::string* host,
                                          uint16_t* port, bool allow_zero_port) {
  absl::string_view host_part;
  absl::string_view port_part;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("expected [ipv6]:port, got ", Quoted(text)));
    }
    host_part = text.substr(1, close - 1);
    port_part = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("expected host:port, got ", Quoted(text)));
    }
    host_part = text.substr(0, colon);
    port_part = text.substr(colon + 1);
    if (host_part.find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("IPv6 address must be bracketed as [addr]:port, got ", Quoted(text)));
    }
  }
  if (host_part.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("missing host in ", Quoted(text)));
  }
  uint32_t port_value = 0;
  if (port_part.empty() || !absl::SimpleAtoi(port_part, &port_value) || port_value > 65535 ||
      (port_value == 0 && !allow_zero_port) || port_part.find_first_not_of("0123456789") !=
      absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("port must be in 1..65535, got ", Quoted(port_part)));
  }
  *host = std::string(host_part);
  *port = static_cast<uint16_t>(port_value);
  return absl::OkStatus();
}

absl::StatusOr<SocketAddress> SocketAddress::Parse(absl::string_view text) {
  std::string host;
  uint16_t port = 0;
  absl::Status status = SplitHostPort(text, &host, &port, /*allow_zero_port=*/true);
  if (!status.ok()) {
    return status;
  }
  SocketAddress out;
  if (text.front() == '[') {
    auto* sin6 = &out.storage_;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(Quoted(host), " is not an IPv6 address"));
    }
    return out;
  }
  auto* sin = reinterpret_cast<sockaddr_in*>(&out.storage_);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(Quoted(host), " is not an IPv4 address"));
  }
  return out;
}

SocketAddress SocketAddress::FromSockaddr(const struct sockaddr* sa, socklen_t length) {
  SocketAddress out;
  const size_t n = sa->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  memcpy(&out.storage_, sa, std::min<size_t>(n, length));
  return out;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  }
  return ntohs(storage_.sin6_port);
}

void SocketAddress::set_port(uint16_t port) {
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  } else {
    storage_.sin6_port = htons(port);
  }
}

bool SocketAddress::is_wildcard() const {
  if (family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr.s_addr == INADDR_ANY;
  }
  return IN6_IS_ADDR_UNSPECIFIED(&storage_.sin6_addr);
}

std::string SocketAddress::HostString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
              sizeof(buf));
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &storage_.sin6_addr, buf, sizeof(buf));
  } else {
    return "invalid";
  }
  return buf;
}

std::string SocketAddress::ToString() const {
  if (family() == AF_INET6) {
    return absl::StrCat("[", HostString(), "]:", port());
  }
  return absl::StrCat(HostString(), ":", port());
}

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  if (a.family() != b.family() || a.port() != b.port()) {
    return false;
  }
  if (a.family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&a.storage_)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(&b.storage_)->sin_addr.s_addr;
  }
  return memcmp(&a.storage_.sin6_addr, &b.storage_.sin6_addr, sizeof(in6_addr)) == 0;
}

}  // namespace dotproxy::base
