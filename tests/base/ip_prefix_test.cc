#include "base/ip_prefix.h"

#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include <arpa/inet.h>
#include <netinet/in.h>

namespace dotproxy::base {
namespace {

using ::dotproxy::testutil::StatusIs;

// The listener.allow default (config.h), repeated here so a change to it shows in this test.
const std::vector<std::string> kDefaultAllow = {"127.0.0.0/8",    "::1/128",        "10.0.0.0/8",
                                                "172.16.0.0/12",  "192.168.0.0/16", "100.64.0.0/10",
                                                "169.254.0.0/16", "fc00::/7",       "fe80::/10"};

IpAddress Addr(const std::string& text) {
  sockaddr_in6 storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    return IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(v4), sizeof(sockaddr_in));
  }
  EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), &storage.sin6_addr), 1) << text;
  storage.sin6_family = AF_INET6;
  return IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&storage), sizeof(storage));
}

TEST(IpPrefixTest, ParsesIpv4AndIpv6Prefixes) {
  ASSERT_OK_AND_ASSIGN(const IpPrefix v4, IpPrefix::Parse("10.0.0.0/8"));
  EXPECT_TRUE(v4.network.is_v4);
  EXPECT_EQ(v4.bits, 8);
  EXPECT_EQ(v4.network.lo, 0x0a000000u);
  ASSERT_OK_AND_ASSIGN(const IpPrefix v6, IpPrefix::Parse("fe80::/10"));
  EXPECT_FALSE(v6.network.is_v4);
  EXPECT_EQ(v6.bits, 10);
  EXPECT_EQ(v6.network.hi, 0xfe80000000000000u);
  ASSERT_OK_AND_ASSIGN(const IpPrefix host, IpPrefix::Parse("192.0.2.1"));
  EXPECT_EQ(host.bits, 32);
  ASSERT_OK_AND_ASSIGN(const IpPrefix all, IpPrefix::Parse("::/0"));
  EXPECT_EQ(all.bits, 0);
}

TEST(IpPrefixTest, RejectsBadPrefixes) {
  for (const char* bad :
       {"", "10.0.0.0/33", "::/129", "10.0.0.1/8", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/-1",
        "10.0.0.0/+8", "example.com/8", "::ffff:10.0.0.0", "10.0.0.0/8 "}) {
    EXPECT_THAT(IpPrefix::Parse(bad).status(), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(IpPrefixTest, RawTextInErrorsIsEscaped) {
  // A quoted YAML entry may hold newlines; the error quoting it stays one line.
  for (const char* bad : {"10.0.0.1\n/8", "10.0.0.0/8\n", "10.0.0.1/8\n", "::ffff:10.0.0.0\n"}) {
    const auto parsed = IpPrefix::Parse(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(std::string(parsed.status().message()).find('\n'), std::string::npos)
        << parsed.status().message();
  }
}

TEST(PrefixSetTest, DefaultAllowListMatchesPrivateSourcesOnly) {
  ASSERT_OK_AND_ASSIGN(const PrefixSet set, PrefixSet::Create(kDefaultAllow));
  for (const char* allowed :
       {"127.0.0.1", "127.255.255.254", "10.1.2.3", "172.31.255.255", "192.168.1.1", "100.64.0.1",
        "100.127.255.255", "169.254.9.9", "::1", "fd00::1", "fc12:3456::", "fe80::1", "febf::1",
        "::ffff:127.0.0.2", "::ffff:10.9.9.9"}) {
    EXPECT_TRUE(set.Contains(Addr(allowed))) << allowed;
  }
  for (const char* denied :
       {"8.8.8.8", "172.32.0.1", "192.169.0.1", "100.128.0.1", "11.0.0.1", "128.0.0.1", "::2",
        "2001:db8::1", "fec0::1", "::ffff:8.8.8.8", "::127.0.0.1"}) {
    EXPECT_FALSE(set.Contains(Addr(denied))) << denied;
  }
}

TEST(PrefixSetTest, MappedAddressesMatchIpv4Prefixes) {
  ASSERT_OK_AND_ASSIGN(const PrefixSet set, PrefixSet::Create({"192.0.2.0/24"}));
  EXPECT_TRUE(set.Contains(Addr("::ffff:192.0.2.77")));
  EXPECT_FALSE(set.Contains(Addr("::ffff:192.0.3.77")));
}

TEST(PrefixSetTest, HostPrefixesAndManyNetworksOfOneLength) {
  std::vector<std::string> prefixes = {"127.0.0.2/32"};
  for (int i = 0; i < 200; i += 2) {
    prefixes.push_back("10." + std::to_string(i) + ".0.0/16");
  }
  ASSERT_OK_AND_ASSIGN(const PrefixSet set, PrefixSet::Create(prefixes));
  EXPECT_TRUE(set.Contains(Addr("127.0.0.2")));
  EXPECT_FALSE(set.Contains(Addr("127.0.0.1")));
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(set.Contains(Addr("10." + std::to_string(i) + ".7.7")), i % 2 == 0) << i;
  }
}

TEST(PrefixSetTest, EmptySetAndCatchAll) {
  const PrefixSet none;
  EXPECT_FALSE(none.Contains(Addr("127.0.0.1")));
  ASSERT_OK_AND_ASSIGN(const PrefixSet all, PrefixSet::Create({"0.0.0.0/0", "::/0"}));
  EXPECT_TRUE(all.Contains(Addr("203.0.113.1")));
  EXPECT_TRUE(all.Contains(Addr("2001:db8::1")));
}

TEST(PrefixSetTest, CreateReportsTheBadEntry) {
  EXPECT_THAT(PrefixSet::Create({"10.0.0.0/8", "nonsense"}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(IpAddressTest, MaskedKeepsTheTopBits) {
  EXPECT_EQ(Addr("192.0.2.255").Masked(24), Addr("192.0.2.0"));
  EXPECT_EQ(Addr("2001:db8:aaaa:bbcc::1").Masked(56), Addr("2001:db8:aaaa:bb00::"));
  EXPECT_EQ(Addr("2001:db8::ffff:1").Masked(128), Addr("2001:db8::ffff:1"));
  EXPECT_EQ(Addr("2001:db8::1").Masked(0), Addr("::"));
}

}  // namespace
}  // namespace dotproxy::base
