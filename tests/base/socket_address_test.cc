#include "base/socket_address.h"

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include <arpa/inet.h>
#include <netinet/in.h>

namespace dotproxy::base {
namespace {

using ::dotproxy::testutil::IsOk;
using ::dotproxy::testutil::StatusIs;
using ::testing::HasSubstr;

TEST(SocketAddressTest, DefaultIsInvalid) {
  const SocketAddress addr;
  EXPECT_FALSE(addr.is_valid());
  EXPECT_EQ(addr.HostString(), "invalid");
}

TEST(SocketAddressTest, ParsesIPv4) {
  ASSERT_OK_AND_ASSIGN(const SocketAddress addr, SocketAddress::Parse("192.0.2.7:53"));
  EXPECT_TRUE(addr.is_valid());
  EXPECT_EQ(addr.family(), AF_INET);
  EXPECT_EQ(addr.port(), 53);
  EXPECT_EQ(addr.length(), sizeof(sockaddr_in));
  EXPECT_EQ(addr.HostString(), "192.0.2.7");
  EXPECT_FALSE(addr.is_wildcard());
  const auto* sin = reinterpret_cast<const sockaddr_in*>(addr.raw());
  EXPECT_EQ(sin->sin_family, AF_INET);
  EXPECT_EQ(ntohs(sin->sin_port), 53);
  EXPECT_EQ(ntohl(sin->sin_addr.s_addr), 0xC0000207u);
}

TEST(SocketAddressTest, ParsesIPv6) {
  ASSERT_OK_AND_ASSIGN(const SocketAddress addr, SocketAddress::Parse("[2001:db8::1]:853"));
  EXPECT_EQ(addr.family(), AF_INET6);
  EXPECT_EQ(addr.port(), 853);
  EXPECT_EQ(addr.length(), sizeof(sockaddr_in6));
  EXPECT_EQ(addr.HostString(), "2001:db8::1");
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(addr.raw());
  in6_addr expected;
  ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::1", &expected), 1);
  EXPECT_EQ(memcmp(&sin6->sin6_addr, &expected, sizeof(expected)), 0);
}

TEST(SocketAddressTest, Wildcards) {
  ASSERT_OK_AND_ASSIGN(const SocketAddress v4, SocketAddress::Parse("0.0.0.0:53"));
  ASSERT_OK_AND_ASSIGN(const SocketAddress v6, SocketAddress::Parse("[::]:53"));
  EXPECT_TRUE(v4.is_wildcard());
  EXPECT_TRUE(v6.is_wildcard());
}

TEST(SocketAddressTest, ParseAllowsPortZero) {
  ASSERT_OK_AND_ASSIGN(const SocketAddress addr, SocketAddress::Parse("127.0.0.1:0"));
  EXPECT_EQ(addr.port(), 0);
}

TEST(SocketAddressTest, RejectsBadInput) {
  const char* const bad[] = {
      "",                   // empty
      "127.0.0.1",          // no port
      "127.0.0.1:",         // empty port
      ":53",                // no host
      "127.0.0.1:65536",    // port too large
      "127.0.0.1:-1",       // negative port
      "127.0.0.1:+53",      // signs are not digits
      "127.0.0.1:5x",       // junk in the port
      "127.0.0.256:53",     // not an IPv4 address
      "1.2.3:53",           // inet_aton shorthand is not accepted
      "localhost:53",       // names are not resolved
      "::1:53",             // IPv6 must be bracketed
      "[::1]",              // no port
      "[::1]53",            // no colon after the bracket
      "[::1:53",            // no closing bracket
      "[]:53",              // empty host
      "[127.0.0.1]:53",     // brackets are for IPv6 only
      "[fe80::1%eth0]:53",  // zone ids are not supported
  };
  for (const char* text : bad) {
    EXPECT_THAT(SocketAddress::Parse(text), StatusIs(absl::StatusCode::kInvalidArgument))
        << "\"" << text << "\"";
  }
}

TEST(SocketAddressTest, ErrorMessagesNameTheProblem) {
  EXPECT_THAT(SocketAddress::Parse("::1:53"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be bracketed")));
  EXPECT_THAT(
      SocketAddress::Parse("10.0.0.1:99999"),
      StatusIs(absl::StatusCode::kInvalidArgument, "port must be in 1..65535, got \"99999\""));
  EXPECT_THAT(
      SocketAddress::Parse("example.com:53"),
      StatusIs(absl::StatusCode::kInvalidArgument, "\"example.com\" is not an IPv4 address"));
}

// Found by tests/fuzz/fuzz_config: a YAML value can hold newlines, and the loader's errors must
// stay one line (corpus/config/regression-newlines-in-listener-addr.yaml).
TEST(SocketAddressTest, ErrorMessagesEscapeTheText) {
  EXPECT_THAT(SocketAddress::Parse("[::1\n\n]:5353"),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"::1\\n\\n\" is not an IPv6 address"));
  EXPECT_THAT(
      SocketAddress::Parse("1.2.3.4:5\r"),
      StatusIs(absl::StatusCode::kInvalidArgument, "port must be in 1..65535, got \"5\\r\""));
  EXPECT_THAT(SocketAddress::Parse("a\"b"),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected host:port, got \"a\\\"b\""));
}

TEST(SocketAddressTest, ToStringRoundTrips) {
  for (const char* text : {"127.0.0.1:53", "0.0.0.0:5353", "255.255.255.255:65535", "[::1]:853",
                           "[::]:53", "[2001:db8::abcd]:8853", "[::ffff:192.0.2.1]:53"}) {
    ASSERT_OK_AND_ASSIGN(const SocketAddress addr, SocketAddress::Parse(text));
    EXPECT_EQ(addr.ToString(), text);
    ASSERT_OK_AND_ASSIGN(const SocketAddress again, SocketAddress::Parse(addr.ToString()));
    EXPECT_EQ(again, addr) << text;
  }
}

TEST(SocketAddressTest, ToStringCanonicalisesIPv6) {
  ASSERT_OK_AND_ASSIGN(const SocketAddress addr,
                       SocketAddress::Parse("[2001:0DB8:0000:0000:0000:0000:0000:0001]:53"));
  EXPECT_EQ(addr.ToString(), "[2001:db8::1]:53");
}

TEST(SocketAddressTest, Equality) {
  ASSERT_OK_AND_ASSIGN(const SocketAddress a, SocketAddress::Parse("127.0.0.1:53"));
  ASSERT_OK_AND_ASSIGN(const SocketAddress b, SocketAddress::Parse("127.0.0.1:53"));
  ASSERT_OK_AND_ASSIGN(const SocketAddress other_port, SocketAddress::Parse("127.0.0.1:54"));
  ASSERT_OK_AND_ASSIGN(const SocketAddress other_host, SocketAddress::Parse("127.0.0.2:53"));
  ASSERT_OK_AND_ASSIGN(const SocketAddress v6, SocketAddress::Parse("[::1]:53"));
  ASSERT_OK_AND_ASSIGN(const SocketAddress v6_other, SocketAddress::Parse("[::2]:53"));
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == other_port);
  EXPECT_FALSE(a == other_host);
  EXPECT_FALSE(a == v6);
  EXPECT_FALSE(v6 == v6_other);
  EXPECT_TRUE(v6 == v6);
}

TEST(SocketAddressTest, SetPort) {
  ASSERT_OK_AND_ASSIGN(SocketAddress v4, SocketAddress::Parse("127.0.0.1:53"));
  v4.set_port(8853);
  EXPECT_EQ(v4.ToString(), "127.0.0.1:8853");
  ASSERT_OK_AND_ASSIGN(SocketAddress v6, SocketAddress::Parse("[::1]:53"));
  v6.set_port(853);
  EXPECT_EQ(v6.ToString(), "[::1]:853");
}

TEST(SocketAddressTest, FromSockaddr) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(5353);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const SocketAddress v4 =
      SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof(sin));
  EXPECT_EQ(v4.ToString(), "127.0.0.1:5353");

  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(853);
  sin6.sin6_addr = in6addr_loopback;
  const SocketAddress v6 =
      SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof(sin6));
  EXPECT_EQ(v6.ToString(), "[::1]:853");
}

TEST(SocketAddressTest, MutableRawWritesThrough) {
  SocketAddress addr;
  auto* sin = reinterpret_cast<sockaddr_in*>(addr.mutable_raw());
  sin->sin_family = AF_INET;
  sin->sin_port = htons(53);
  sin->sin_addr.s_addr = htonl(0x0A000001);
  EXPECT_EQ(addr.ToString(), "10.0.0.1:53");
}

TEST(SplitHostPortTest, SplitsWithoutResolving) {
  std::string host;
  uint16_t port = 0;
  EXPECT_THAT(SocketAddress::SplitHostPort("dns.google:853", &host, &port), IsOk());
  EXPECT_EQ(host, "dns.google");
  EXPECT_EQ(port, 853);
  EXPECT_THAT(SocketAddress::SplitHostPort("[2001:db8::1]:53", &host, &port), IsOk());
  EXPECT_EQ(host, "2001:db8::1");
  EXPECT_EQ(port, 53);
}

TEST(SplitHostPortTest, PortZeroOnlyWhenAllowed) {
  std::string host;
  uint16_t port = 7;
  EXPECT_THAT(SocketAddress::SplitHostPort("localhost:0", &host, &port),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SocketAddress::SplitHostPort("localhost:0", &host, &port, /*allow_zero_port=*/true),
              IsOk());
  EXPECT_EQ(port, 0);
}

TEST(SplitHostPortTest, RejectsMalformed) {
  std::string host;
  uint16_t port = 0;
  for (const char* text : {"dns.google", "dns.google:", ":853", "a:b:853", "[::1]", "[::1]x53"}) {
    EXPECT_THAT(SocketAddress::SplitHostPort(text, &host, &port),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << "\"" << text << "\"";
  }
}

}  // namespace
}  // namespace dotproxy::base
