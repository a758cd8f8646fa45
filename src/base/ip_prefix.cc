#include "base/ip_prefix.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/byte_order.h"
#include <arpa/inet.h>
#include <netinet/in.h>

namespace dotproxy::base {
namespace {

// All-ones in the top `bits` of a 64-bit half (bits in 0..64).
uint64_t HighMask(int bits) {
  if (bits <= 0) {
    return 0;
  }
  return bits >= 64 ? ~uint64_t{0} : ~uint64_t{0} << (64 - bits);
}

IpAddress FromV6Bytes(const uint8_t* bytes) {
  // RFC 4291 §2.5.5.2: ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket.
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  IpAddress address;
  if (memcmp(bytes, kMappedPrefix, sizeof(kMappedPrefix)) == 0) {
    address.lo = LoadBigEndian32(bytes + 12);
    return address;
  }
  address.is_v4 = false;
  address.hi = LoadBigEndian64(bytes);
  address.lo = LoadBigEndian64(bytes + 8);
  return address;
}

}  // namespace

IpAddress IpAddress::FromSockaddr(const sockaddr* sa, socklen_t length) {
  IpAddress address;
  if (sa->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    address.lo = ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr);
  } else if (sa->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    address = FromV6Bytes(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr);
  }
  return address;
}

IpAddress IpAddress::Masked(uint8_t bits) const {
  IpAddress out = *this;
  if (is_v4) {
    out.lo &= HighMask(32 + bits) & 0xffffffffu;
  } else {
    out.hi &= HighMask(bits);
    out.lo &= HighMask(bits - 64);
  }
  return out;
}

absl::StatusOr<IpPrefix> IpPrefix::Parse(absl::string_view text) {
  const size_t slash = text.find('/');
  const std::string host(text.substr(0, slash));
  IpPrefix prefix;
  uint8_t bytes[16];
  int max_bits = 0;
  if (inet_pton(AF_INET, host.c_str(), bytes) == 1) {
    prefix.network.lo = LoadBigEndian32(bytes);
    max_bits = 32;
  } else if (inet_pton(AF_INET6, host.c_str(), bytes) == 1) {
    prefix.network = FromV6Bytes(bytes);
    max_bits = 128;
    if (prefix.network.is_v4) {
      // Matching sees mapped clients as IPv4, so a mapped prefix would be misread.
      return absl::InvalidArgumentError(
          absl::StrCat("write IPv4-mapped addresses as IPv4, got \"", absl::CEscape(text),
                       "\""));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("expected an IP address or CIDR, got \"", absl::CEscape(text), "\""));
  }
  int bits = max_bits;
  if (slash != absl::string_view::npos) {
    if (!absl::SimpleAtoi(text.substr(slash + 1), &bits) || bits < 0 || bits > max_bits ||
        text.substr(slash + 1).find_first_not_of("0123456789") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("prefix length must be 0..", max_bits, ", got \"", absl::CEscape(text),
                       "\""));
    }
  }
  prefix.bits = static_cast<uint8_t>(bits);
  if (prefix.network.Masked(prefix.bits) != prefix.network) {
    return absl::InvalidArgumentError(
        absl::StrCat("has bits set after the prefix length: \"", absl::CEscape(text), "\""));
  }
  return prefix;
}

absl::StatusOr<PrefixSet> PrefixSet::Create(const std::vector<std::string>& prefixes) {
  PrefixSet set;
  for (const std::string& text : prefixes) {
    absl::StatusOr<IpPrefix> prefix = IpPrefix::Parse(text);
    if (!prefix.ok()) {
      return prefix.status();
    }
    auto it = std::find_if(set.tables_.begin(), set.tables_.end(), [&](const Table& t) {
      return t.is_v4 == prefix->network.is_v4 && t.bits == prefix->bits;
    });
    if (it == set.tables_.end()) {
      set.tables_.push_back(Table{prefix->network.is_v4, prefix->bits, {}});
      it = set.tables_.end() - 1;
    }
    it->networks.push_back(prefix->network);
  }
  for (Table& table : set.tables_) {
    std::sort(table.networks.begin(), table.networks.end());
    table.networks.erase(std::unique(table.networks.begin(), table.networks.end()),
                         table.networks.end());
  }
  std::sort(set.tables_.begin(), set.tables_.end(),
            [](const Table& a, const Table& b) { return a.bits > b.bits; });
  return set;
}

bool PrefixSet::Contains(const IpAddress& address) const {
  for (const Table& table : tables_) {
    if (table.is_v4 != address.is_v4) {
      continue;
    }
    const IpAddress key = address.Masked(table.bits);
    if (std::binary_search(table.networks.begin(), table.networks.end(), key)) {
      return true;
    }
  }
  return false;
}

}  // namespace dotproxy::base
