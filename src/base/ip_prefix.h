// File: base/ip_prefix.h
//
// IP addresses and prefixes in the form the per-packet checks compare, and PrefixSet, an ACL
// matcher: one sorted table of networks per prefix length, so a lookup is one masked binary
// search per distinct length, with no allocation. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are
// IPv4 everywhere here. Built at set-up, then read-only (one per shard).
//
//   auto set = PrefixSet::Create({"127.0.0.0/8", "::1/128"});
//   if (!set->Contains(IpAddress::FromSockaddr(sa, len))) { drop }
#ifndef DOTPROXY_BASE_IP_PREFIX_H_
#define DOTPROXY_BASE_IP_PREFIX_H_

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include <sys/socket.h>

namespace dotproxy::base {

// An IPv4 address is kept in the low 32 bits of `lo` (hi = 0); IPv6 as two big-endian halves.
struct IpAddress {
  bool is_v4 = true;
  uint64_t hi = 0;
  uint64_t lo = 0;

  // From a kernel sockaddr (AF_INET or AF_INET6; anything else reads as 0.0.0.0).
  static IpAddress FromSockaddr(const sockaddr* sa, socklen_t length);
  // The first `bits` bits kept, the rest zero (bits <= 32 for IPv4, <= 128 for IPv6).
  IpAddress Masked(uint8_t bits) const;

  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

// "a.b.c.d/len" or "v6/len"; a bare address is a host prefix (/32, /128).
struct IpPrefix {
  IpAddress network;  // already masked
  uint8_t bits = 0;

  // Rejects host bits set below the prefix ("10.0.0.1/8"): a likely typo.
  static absl::StatusOr<IpPrefix> Parse(absl::string_view text);
};

class PrefixSet {
 public:
  // An empty set matches nothing.
  PrefixSet() = default;
  static absl::StatusOr<PrefixSet> Create(const std::vector<std::string>& prefixes);

  bool Contains(const IpAddress& address) const;
  bool empty() const { return tables_.empty(); }

 private:
  // Every network of one family and one prefix length, sorted.
  struct Table {
    bool is_v4 = true;
    uint8_t bits = 0;
    std::vector<IpAddress> networks;
  };
  std::vector<Table> tables_;  // longest prefixes first; a match ends the search
};

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_IP_PREFIX_H_
