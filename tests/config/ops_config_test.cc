// The keys added for operations (issue 10): listener address lists and wildcards,
// listener.freebind, server.shutdown_grace and server.user.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "config/load_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include <netinet/in.h>

namespace dotproxy::config {
namespace {

using ::dotproxy::testutil::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kFile[] = "ops.yaml";

// A config whose listener section is `listener` (indented under "listener:").
std::string WithListener(const std::string& listener) {
  return absl::StrCat("listener:\n", listener, R"(upstream:
  servers:
    - addr: 127.0.0.1:8853
      server_name: dot.test
)");
}

std::string WithServer(const std::string& server) {
  return absl::StrCat(WithListener("  udp:\n    addr: 127.0.0.1:5353\n"), "server:\n", server);
}

absl::StatusOr<Config> Load(const std::string& text) {
  return LoadConfigFromString(text, kFile, nullptr);
}

std::vector<std::string> Strings(const std::vector<base::SocketAddress>& addrs) {
  std::vector<std::string> out;
  for (const base::SocketAddress& addr : addrs) {
    out.push_back(addr.ToString());
  }
  return out;
}

void ExpectError(const std::string& text, const std::string& message) {
  EXPECT_THAT(Load(text).status(), StatusIs(absl::StatusCode::kInvalidArgument, message));
}

TEST(ListenerAddrsTest, SingleAddressFillsAddrAndAddrs) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(WithListener(R"(  udp:
    addr: 127.0.0.1:5353
  tcp:
    addr: "[::1]:5353"
)")));
  EXPECT_EQ(config.listener.udp.addr.ToString(), "127.0.0.1:5353");
  EXPECT_THAT(Strings(config.listener.udp.addrs), ElementsAre("127.0.0.1:5353"));
  EXPECT_EQ(config.listener.tcp.addr.ToString(), "[::1]:5353");
  EXPECT_THAT(Strings(config.listener.tcp.addrs), ElementsAre("[::1]:5353"));
  EXPECT_FALSE(config.listener.freebind);
}

TEST(ListenerAddrsTest, ListsKeepFileOrderAndAddrIsTheFirst) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(WithListener(R"(  udp:
    addr: [127.0.0.1:5353, 127.0.0.2:5353, "[::1]:5353"]
  tcp:
    addr:
      - 127.0.0.3:5353
      - 127.0.0.1:5354
)")));
  EXPECT_THAT(Strings(config.listener.udp.addrs),
              ElementsAre("127.0.0.1:5353", "127.0.0.2:5353", "[::1]:5353"));
  EXPECT_EQ(config.listener.udp.addr.ToString(), "127.0.0.1:5353");
  EXPECT_THAT(Strings(config.listener.tcp.addrs), ElementsAre("127.0.0.3:5353", "127.0.0.1:5354"));
  EXPECT_EQ(config.listener.tcp.addr.ToString(), "127.0.0.3:5353");
  EXPECT_THAT(Strings(ListenAddresses(config.listener.udp)),
              ElementsAre("127.0.0.1:5353", "127.0.0.2:5353", "[::1]:5353"));
}

TEST(ListenerAddrsTest, ColonPortMeansEveryAddressDualStack) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(WithListener(R"(  udp:
    addr: ":5353"
  tcp:
    addr: "[::]:5353"
)")));
  EXPECT_EQ(config.listener.udp.addr.family(), AF_INET6);
  EXPECT_TRUE(config.listener.udp.addr.is_wildcard());
  EXPECT_EQ(config.listener.udp.addr.ToString(), "[::]:5353");
  EXPECT_EQ(config.listener.tcp.addr, config.listener.udp.addr);
}

TEST(ListenerAddrsTest, BadItemsAreReportedAtTheItem) {
  ExpectError(WithListener("  udp:\n    addr: [127.0.0.1:5353, localhost:53]\n"),
              "ops.yaml:3:28: listener.udp.addr[1]: \"localhost\" is not an IPv4 address; "
              "listener addresses are numeric: a.b.c.d:port or [ipv6]:port");
  ExpectError(WithListener("  udp:\n    addr:\n      - 127.0.0.1:5353\n      - 127.0.0.1:0\n"),
              "ops.yaml:5:9: listener.udp.addr[1]: port must be in 1..65535, got \"0\"");
  ExpectError(WithListener("  udp:\n    addr: \":0\"\n"),
              "ops.yaml:3:11: listener.udp.addr: port must be in 1..65535, got \"0\"");
  ExpectError(WithListener("  udp:\n    addr: []\n"),
              "ops.yaml:3:11: listener.udp.addr: must list at least one address");
  ExpectError(WithListener("  udp:\n    addr: [[127.0.0.1:53]]\n"),
              "ops.yaml:3:12: listener.udp.addr[0]: expected an address like \"a.b.c.d:port\", "
              "got a sequence");
  ExpectError(WithListener("  udp:\n    addr: {a: 1}\n"),
              "ops.yaml:3:11: listener.udp.addr: expected an address like \"a.b.c.d:port\" or a "
              "list of addresses, got a mapping");
}

TEST(ListenerAddrsTest, DuplicatesAndWildcardOverlapsAreErrors) {
  ExpectError(WithListener("  udp:\n    addr: [127.0.0.1:53, 127.0.0.1:53]\n"),
              "ops.yaml:3:26: listener.udp.addr[1]: 127.0.0.1:53 is listed twice");
  ExpectError(WithListener("  udp:\n    addr: [\":53\", 127.0.0.1:53]\n"),
              "ops.yaml:3:19: listener.udp.addr[1]: 127.0.0.1:53 overlaps [::]:53: a wildcard "
              "address covers every local address");
  // The same address on another port is fine.
  EXPECT_TRUE(Load(WithListener("  udp:\n    addr: [\":53\", 127.0.0.1:5353]\n")).ok());
}

TEST(ListenerAddrsTest, UpstreamEqualToAnyTcpAddressIsAnError) {
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:53
  tcp:
    addr: [127.0.0.1:53, 127.0.0.1:8853]
upstream:
  servers:
    - addr: 127.0.0.1:8853
      server_name: dot.test
)",
              "ops.yaml:8:13: upstream.servers[0].addr: equals listener.tcp.addr 127.0.0.1:8853; "
              "the proxy would forward to itself");
}

TEST(ListenerAddrsTest, HandBuiltConfigWithOnlyAddrStillValidates) {
  Config config;
  ASSERT_OK_AND_ASSIGN(config.listener.udp.addr, base::SocketAddress::Parse("127.0.0.1:53"));
  ServerConfig server;
  ASSERT_OK_AND_ASSIGN(server.addr, base::SocketAddress::Parse("127.0.0.1:853"));
  server.server_name = "dot.test";
  config.upstream.servers.push_back(server);
  EXPECT_TRUE(Validate(config, "hand-built").ok());
  EXPECT_THAT(Strings(ListenAddresses(config.listener.udp)), ElementsAre("127.0.0.1:53"));
}

TEST(ListenerFreebindTest, ParsesBool) {
  ASSERT_OK_AND_ASSIGN(const Config config,
                       Load(WithListener("  udp:\n    addr: 127.0.0.1:53\n  freebind: true\n")));
  EXPECT_TRUE(config.listener.freebind);
  ExpectError(WithListener("  udp:\n    addr: 127.0.0.1:53\n  freebind: 1\n"),
              "ops.yaml:4:13: listener.freebind: expected true or false, got \"1\"");
}

TEST(ServerSectionTest, DefaultsWhenAbsent) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(WithServer("  workers: 2\n")));
  EXPECT_EQ(config.server.shutdown_grace, absl::Seconds(2));
  EXPECT_EQ(config.server.busy_poll, absl::ZeroDuration());
  EXPECT_THAT(config.server.user, IsEmpty());
}

TEST(ServerSectionTest, BusyPoll) {
  ASSERT_OK_AND_ASSIGN(Config config, Load(WithServer("  busy_poll: 50us\n")));
  EXPECT_EQ(config.server.busy_poll, absl::Microseconds(50));
  ASSERT_OK_AND_ASSIGN(config, Load(WithServer("  busy_poll: 0s\n")));
  EXPECT_EQ(config.server.busy_poll, absl::ZeroDuration());
  ExpectError(WithServer("  busy_poll: 11ms\n"),
              "ops.yaml:9:14: server.busy_poll: must be at most 10ms, got \"11ms\"");
  ExpectError(WithServer("  busy_poll: -1us\n"),
              "ops.yaml:9:14: server.busy_poll: must not be negative, got \"-1us\"");
}

TEST(ServerSectionTest, ShutdownGrace) {
  ASSERT_OK_AND_ASSIGN(Config config, Load(WithServer("  shutdown_grace: 500ms\n")));
  EXPECT_EQ(config.server.shutdown_grace, absl::Milliseconds(500));
  ASSERT_OK_AND_ASSIGN(config, Load(WithServer("  shutdown_grace: 0s\n")));
  EXPECT_EQ(config.server.shutdown_grace, absl::ZeroDuration());
  ExpectError(WithServer("  shutdown_grace: 11m\n"),
              "ops.yaml:9:19: server.shutdown_grace: must be at most 10m, got \"11m\"");
  ExpectError(WithServer("  shutdown_grace: 2\n"),
              "ops.yaml:9:19: server.shutdown_grace: expected a duration like \"5s\", got \"2\"");
}

TEST(ServerSectionTest, User) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(WithServer("  user: dotproxy\n")));
  EXPECT_EQ(config.server.user, "dotproxy");
  ExpectError(WithServer("  user: root\n"),
              "ops.yaml:9:9: server.user: must name an unprivileged user, got \"root\"");
  ExpectError(WithServer("  user: \"a b\"\n"),
              "ops.yaml:9:9: server.user: expected a user name, got \"a b\"");
}

TEST(OpsKeysTest, ExampleHasTheDefaults) {
  ASSERT_OK_AND_ASSIGN(const Config config,
                       LoadConfig(std::string(DOTPROXY_SOURCE_ROOT) + "/config.example.yaml",
                                  nullptr));
  const Config defaults;
  EXPECT_EQ(config.listener.freebind, defaults.listener.freebind);
  EXPECT_EQ(config.server.shutdown_grace, defaults.server.shutdown_grace);
  EXPECT_EQ(config.server.user, defaults.server.user);
  EXPECT_EQ(config.server.busy_poll, defaults.server.busy_poll);
  EXPECT_EQ(config.listener.udp.addrs.size(), 1u);
  EXPECT_EQ(config.listener.tcp.addrs.size(), 1u);
}

TEST(OpsKeysTest, AcceptedKeyPathsListTheNewKeys) {
  const std::vector<std::string> paths = AcceptedKeyPaths();
  EXPECT_THAT(paths, ::testing::IsSupersetOf({"listener.freebind", "server.shutdown_grace",
                                              "server.user", "server.busy_poll"}));
}

}  // namespace
}  // namespace dotproxy::config
