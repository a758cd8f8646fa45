#include "config/statsd_addr.h"

#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace dotproxy::config {
namespace {

using Kind = StatsdTarget::Kind;

TEST(StatsdAddrTest, EveryFormOfTheGoOriginal) {
  struct Case {
    const char* text;
    Kind kind;
    const char* name;
  } cases[] = {
      {"udp://127.0.0.1:8125", Kind::kUdp, "udp://127.0.0.1:8125"},
      {"127.0.0.1:8125", Kind::kUdp, "udp://127.0.0.1:8125"},
      {"UDP://[::1]:8125", Kind::kUdp, "udp://[::1]:8125"},
      {"tcp://10.0.0.1:8125", Kind::kTcp, "tcp://10.0.0.1:8125"},
      {"unix:///run/statsd.sock", Kind::kUnix, "unix:///run/statsd.sock"},
      {"file:///var/log/dotproxy.statsd", Kind::kFile, "file:///var/log/dotproxy.statsd"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<StatsdTarget>> targets = ParseStatsdAddr(c.text);
    ASSERT_TRUE(targets.ok()) << c.text << ": " << targets.status();
    ASSERT_EQ(targets->size(), 1u) << c.text;
    EXPECT_EQ((*targets)[0].kind, c.kind) << c.text;
    EXPECT_EQ(StatsdTargetName((*targets)[0]), c.name);
  }
}

TEST(StatsdAddrTest, CommaListFansOut) {
  absl::StatusOr<std::vector<StatsdTarget>> targets =
      ParseStatsdAddr("udp://127.0.0.1:8125, tcp://127.0.0.1:8126,file:///tmp/x,unix:///tmp/s");
  ASSERT_TRUE(targets.ok()) << targets.status();
  ASSERT_EQ(targets->size(), 4u);
  EXPECT_EQ((*targets)[0].kind, Kind::kUdp);
  EXPECT_EQ((*targets)[1].kind, Kind::kTcp);
  EXPECT_EQ((*targets)[1].addr.port(), 8126);
  EXPECT_EQ((*targets)[2].path, "/tmp/x");
  EXPECT_EQ((*targets)[3].path, "/tmp/s");
}

TEST(StatsdAddrTest, Rejects) {
  for (const char* bad :
       {"", "http://127.0.0.1:80", "udp://statsd.local:8125", "udp://1.2.3.4", "udp://1.2.3.4:0",
        "tcp://", "unix://relative", "file://", "a:1,,b:2", "127.0.0.1:8125,"}) {
    EXPECT_FALSE(ParseStatsdAddr(bad).ok()) << bad;
  }
  EXPECT_THAT(ParseStatsdAddr("gopher://1.2.3.4:70").status(),
              testutil::StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(StatsdAddrTest, RawTextInErrorsIsEscaped) {
  // Found by fuzz_config: a quoted YAML value may hold newlines; an error stays one line.
  const auto bad = ParseStatsdAddr("[::1\nx]:1");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(std::string(bad.status().message()).find('\n'), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace dotproxy::config
