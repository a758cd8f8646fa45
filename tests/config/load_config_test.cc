#include "config/load_config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

namespace dotproxy::config {
namespace {

using ::dotproxy::testutil::IsOk;
using ::dotproxy::testutil::StatusIs;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::IsSupersetOf;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kMinimal[] = R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:8853
      server_name: dot.test
)";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// True when `key:` appears in `text` at the start of a line or after a space, '#' or '-'
// (std::regex is avoided: GCC 12 warns inside <regex> under -fsanitize=address).
bool IsDocumented(const std::string& text, const std::string& key) {
  const std::string needle = key + ":";
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    if (at == 0 || text[at - 1] == '\n' || text[at - 1] == ' ' || text[at - 1] == '#' ||
        text[at - 1] == '-') {
      return true;
    }
  }
  return false;
}

// Every ServerConfig field except addr, addr_text and server_name equals the default.
void ExpectServerDefaults(const ServerConfig& server) {
  const ServerConfig defaults;
  EXPECT_EQ(server.connection_pool_size, defaults.connection_pool_size);
  EXPECT_EQ(server.connect_timeout, defaults.connect_timeout);
  EXPECT_EQ(server.handshake_timeout, defaults.handshake_timeout);
  EXPECT_EQ(server.read_timeout, defaults.read_timeout);
  EXPECT_EQ(server.write_timeout, defaults.write_timeout);
  EXPECT_EQ(server.stale_timeout, defaults.stale_timeout);
  EXPECT_EQ(server.ca_file, defaults.ca_file);
  EXPECT_EQ(server.max_inflight, defaults.max_inflight);
  EXPECT_EQ(server.weight, defaults.weight);
  EXPECT_EQ(server.edns_padding, defaults.edns_padding);
  EXPECT_EQ(server.spki_pins, defaults.spki_pins);
}

class LoadConfigTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& path : files_) {
      std::remove(path.c_str());
    }
  }

  // Writes `text` to a fresh file under TempDir() and returns its path.
  std::string WriteFile(std::string_view text) {
    const std::string path =
        absl::StrCat(::testing::TempDir(), "load_config_test_", getpid(), "_",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
                     files_.size(), ".yaml");
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    files_.push_back(path);
    return path;
  }

  // Writes `text` to a temp file and loads it; path_ and warnings_ describe the last load.
  absl::StatusOr<Config> Load(std::string_view text) {
    path_ = WriteFile(text);
    warnings_.clear();
    return LoadConfig(path_, &warnings_);
  }

  // The "PATH:LINE:COL: " prefix of the last loaded file.
  std::string At(int line, int column) const {
    return absl::StrCat(path_, ":", line, ":", column, ": ");
  }

  // Loads `text` and expects InvalidArgument whose message is the single line
  // "PATH:LINE:COLUMN: " followed by `rest` (or just starts so, when `is_prefix`).
  void ExpectError(std::string_view text, int line, int column, const std::string& rest,
                   bool is_prefix = false) {
    const absl::Status status = Load(text).status();
    const std::string expected = At(line, column) + rest;
    if (is_prefix) {
      EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, StartsWith(expected)));
    } else {
      EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, expected));
    }
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("\n")));
  }
  void ExpectErrorPrefix(std::string_view text, int line, int column, const std::string& rest) {
    ExpectError(text, line, column, rest, /*is_prefix=*/true);
  }

  std::string path_;
  std::vector<std::string> warnings_;
  std::vector<std::string> files_;  // removed in TearDown
};

// --- The example file and the defaults ---------------------------------------------------------

TEST_F(LoadConfigTest, ExampleMatchesDefaults) {
  const std::string path = std::string(DOTPROXY_SOURCE_ROOT) + "/config.example.yaml";
  std::vector<std::string> warnings;
  ASSERT_OK_AND_ASSIGN(const Config config, LoadConfig(path, &warnings));
  EXPECT_THAT(warnings, IsEmpty());
  const Config defaults;

  EXPECT_EQ(config.application.sentry_dsn, defaults.application.sentry_dsn);

  // metrics.statsd is commented out in the example: metrics stay disabled.
  EXPECT_EQ(config.metrics.statsd.enabled, defaults.metrics.statsd.enabled);
  EXPECT_TRUE(config.metrics.statsd.targets.empty());
  EXPECT_EQ(config.metrics.statsd.sample_rate, defaults.metrics.statsd.sample_rate);
  EXPECT_EQ(config.metrics.statsd.tag_format, defaults.metrics.statsd.tag_format);
  EXPECT_EQ(config.metrics.flush_interval, defaults.metrics.flush_interval);
  EXPECT_EQ(config.metrics.prometheus.enabled, defaults.metrics.prometheus.enabled);

  EXPECT_TRUE(config.listener.tcp.enabled);
  EXPECT_EQ(config.listener.tcp.addr.ToString(), "127.0.0.1:5353");
  EXPECT_EQ(config.listener.tcp.read_timeout, defaults.listener.tcp.read_timeout);
  EXPECT_EQ(config.listener.tcp.write_timeout, defaults.listener.tcp.write_timeout);
  EXPECT_EQ(config.listener.tcp.max_connections, defaults.listener.tcp.max_connections);
  EXPECT_EQ(config.listener.tcp.max_inflight_per_connection,
            defaults.listener.tcp.max_inflight_per_connection);

  EXPECT_EQ(config.listener.udp.addr.ToString(), "127.0.0.1:5353");
  EXPECT_EQ(config.listener.udp.read_timeout, defaults.listener.udp.read_timeout);
  EXPECT_EQ(config.listener.udp.write_timeout, defaults.listener.udp.write_timeout);
  EXPECT_EQ(config.listener.udp.max_concurrent_connections,
            defaults.listener.udp.max_concurrent_connections);
  EXPECT_EQ(config.listener.udp.max_answer_size, defaults.listener.udp.max_answer_size);
  EXPECT_EQ(config.listener.allow, defaults.listener.allow);
  EXPECT_FALSE(config.listener.rate_limit.enabled);  // commented out in the example
  EXPECT_EQ(config.listener.max_queries_per_client, defaults.listener.max_queries_per_client);

  EXPECT_EQ(config.upstream.load_balancing_policy, defaults.upstream.load_balancing_policy);
  EXPECT_EQ(config.upstream.max_connection_retries, defaults.upstream.max_connection_retries);
  EXPECT_EQ(config.upstream.query_timeout, defaults.upstream.query_timeout);
  EXPECT_EQ(config.upstream.backoff_initial, defaults.upstream.backoff_initial);
  EXPECT_EQ(config.upstream.backoff_max, defaults.upstream.backoff_max);
  ASSERT_EQ(config.upstream.servers.size(), 1u);
  const ServerConfig& server = config.upstream.servers[0];
  EXPECT_EQ(server.addr_text, "127.0.0.1:8853");
  EXPECT_EQ(server.addr.ToString(), "127.0.0.1:8853");
  EXPECT_EQ(server.server_name, "dot.test");
  ExpectServerDefaults(server);

  EXPECT_EQ(config.server.workers, defaults.server.workers);
}

TEST_F(LoadConfigTest, ExampleMentionsEveryKey) {
  const std::string text = ReadFile(std::string(DOTPROXY_SOURCE_ROOT) + "/config.example.yaml");
  ASSERT_FALSE(text.empty());
  const std::vector<std::string> paths = AcceptedKeyPaths();
  ASSERT_FALSE(paths.empty());
  for (const std::string& path : paths) {
    const std::string key = path.substr(path.rfind('.') + 1);  // npos + 1 == 0: a top-level key
    EXPECT_TRUE(IsDocumented(text, key))
        << key << " (" << path << ") is not documented in config.example.yaml";
  }
}

// The format another test (man-page coverage) relies on: dotted paths of lower-case keys, "[]"
// after a list, each path once, every parent listed before its children.
TEST_F(LoadConfigTest, AcceptedKeyPathsFormat) {
  const std::vector<std::string> paths = AcceptedKeyPaths();
  EXPECT_THAT(paths, IsSupersetOf({"application", "application.sentry_dsn", "metrics.statsd.addr",
                                   "metrics.flush_interval", "metrics.statsd.tag_format",
                                   "metrics.prometheus.addr",
                                   "listener.tcp.addr", "listener.udp.max_concurrent_connections",
                                   "upstream.load_balancing_policy", "upstream.servers",
                                   "upstream.servers[].addr", "upstream.servers[].server_name",
                                   "upstream.servers[].weight", "server.workers"}));
  EXPECT_THAT(paths, Not(Contains(HasSubstr("load_balacing_policy"))));
  std::set<std::string> seen;
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    EXPECT_TRUE(seen.insert(path).second) << "listed twice";
    for (absl::string_view part : absl::StrSplit(path, '.')) {
      absl::ConsumeSuffix(&part, "[]");
      EXPECT_FALSE(part.empty());
      EXPECT_EQ(part.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), absl::string_view::npos);
    }
    const size_t dot = path.rfind('.');
    if (dot != std::string::npos) {
      absl::string_view parent = absl::string_view(path).substr(0, dot);
      absl::ConsumeSuffix(&parent, "[]");
      EXPECT_EQ(seen.count(std::string(parent)), 1u) << "parent not listed before";
    }
  }
}

TEST_F(LoadConfigTest, MinimalConfigUsesDefaults) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(kMinimal));
  EXPECT_THAT(warnings_, IsEmpty());
  const Config defaults;
  EXPECT_FALSE(config.metrics.statsd.enabled);
  EXPECT_FALSE(config.listener.tcp.enabled);
  EXPECT_EQ(config.listener.tcp.read_timeout, defaults.listener.tcp.read_timeout);
  EXPECT_EQ(config.listener.tcp.max_connections, defaults.listener.tcp.max_connections);
  EXPECT_EQ(config.listener.udp.addr.ToString(), "127.0.0.1:5353");
  EXPECT_EQ(config.upstream.load_balancing_policy, Policy::kRoundRobin);
  EXPECT_EQ(config.upstream.max_connection_retries, defaults.upstream.max_connection_retries);
  EXPECT_EQ(config.upstream.query_timeout, defaults.upstream.query_timeout);
  ASSERT_EQ(config.upstream.servers.size(), 1u);
  ExpectServerDefaults(config.upstream.servers[0]);
  EXPECT_EQ(config.server.workers, 0u);
}

TEST_F(LoadConfigTest, KtlsUpstreamDefaultAndServerOverride) {
  ASSERT_OK_AND_ASSIGN(const Config defaults, Load(kMinimal));
  EXPECT_EQ(defaults.upstream.ktls, Ktls::kOff);
  EXPECT_EQ(defaults.upstream.servers[0].ktls, Ktls::kOff);  // resolved from upstream.ktls
  ASSERT_OK_AND_ASSIGN(
      const Config config,
      Load(absl::StrCat(kMinimal, "      ktls: \"off\"\n    - addr: 127.0.0.1:8854\n",
                        "      server_name: dot.test\n  ktls: auto\n")));
  EXPECT_EQ(config.upstream.ktls, Ktls::kAuto);
  EXPECT_EQ(config.upstream.servers[0].ktls, Ktls::kOff);
  EXPECT_EQ(config.upstream.servers[1].ktls, Ktls::kAuto);
  EXPECT_NE(ServerIdentity(config.upstream.servers[0]), ServerIdentity(config.upstream.servers[1]));
}

TEST_F(LoadConfigTest, KtlsBadValue) {
  ExpectErrorPrefix(absl::StrCat(kMinimal, "  ktls: sometimes\n"), 8, 9, "upstream.ktls: ");
}

TEST_F(LoadConfigTest, EdnsPaddingAndSpkiPins) {
  const std::string pin(32, 'p');
  const std::string pin_text = "cHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHA=";  // base64 of pin
  ASSERT_OK_AND_ASSIGN(const Config config,
                       Load(absl::StrCat(kMinimal, "      edns_padding: false\n      spki_pins: [\"",
                                         pin_text, "\", \"", pin_text, "\"]\n")));
  const ServerConfig& server = config.upstream.servers[0];
  EXPECT_FALSE(server.edns_padding);
  EXPECT_EQ(server.spki_pins, (std::vector<std::string>{pin, pin}));
  ASSERT_OK_AND_ASSIGN(const Config defaults, Load(kMinimal));
  EXPECT_TRUE(defaults.upstream.servers[0].edns_padding);
  EXPECT_TRUE(defaults.upstream.servers[0].spki_pins.empty());
}

TEST_F(LoadConfigTest, BadSpkiPins) {
  const std::string head = kMinimal;
  ExpectErrorPrefix(head + "      spki_pins: abc\n", 8, 18,
                    "upstream.servers[0].spki_pins: expected a sequence");
  ExpectError(head + "      spki_pins: [\"bm90IDMyIGJ5dGVz\"]\n", 8, 19,
              "upstream.servers[0].spki_pins[0]: expected the base64 of a 32-byte SHA-256 digest, "
              "got \"bm90IDMyIGJ5dGVz\"");
  ExpectErrorPrefix(head + "      spki_pins: [\"%%%\"]\n", 8, 19,
                    "upstream.servers[0].spki_pins[0]: expected the base64");
}

TEST_F(LoadConfigTest, EdgeKeys) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(R"(
listener:
  udp:
    addr: 127.0.0.1:53
    max_answer_size: 4096
  allow: [127.0.0.2/32, "::1", 2001:db8::/32]
  rate_limit:
    qps: 50
    burst: 10
    action: Refuse
  max_queries_per_client: 100
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: one.test
)"));
  EXPECT_THAT(warnings_, IsEmpty());
  EXPECT_EQ(config.listener.udp.max_answer_size, 4096u);
  EXPECT_EQ(config.listener.allow,
            (std::vector<std::string>{"127.0.0.2/32", "::1", "2001:db8::/32"}));
  EXPECT_TRUE(config.listener.rate_limit.enabled);
  EXPECT_EQ(config.listener.rate_limit.qps, 50u);
  EXPECT_EQ(config.listener.rate_limit.burst, 10u);
  EXPECT_EQ(config.listener.rate_limit.action, RateLimitAction::kRefuse);
  EXPECT_EQ(config.listener.max_queries_per_client, 100u);
}

TEST_F(LoadConfigTest, EdgeKeyErrors) {
  const std::string tail =
      "upstream:\n  servers:\n    - addr: 127.0.0.1:853\n      server_name: a\n";
  ExpectError("listener:\n  udp:\n    addr: 127.0.0.1:53\n  allow: [10.0.0.1/8]\n" + tail, 4, 11,
              "listener.allow[0]: has bits set after the prefix length: \"10.0.0.1/8\"");
  ExpectError("listener:\n  udp:\n    addr: 127.0.0.1:53\n  allow: 10.0.0.0/8\n" + tail, 4, 10,
              "listener.allow: expected a list of CIDRs, got a scalar");
  ExpectError("listener:\n  udp:\n    addr: 127.0.0.1:53\n  rate_limit:\n    burst: 5\n" + tail, 5,
              5, "listener.rate_limit.qps: missing required key");
  ExpectError("listener:\n  udp:\n    addr: 127.0.0.1:53\n    max_answer_size: 511\n" + tail, 4, 22,
              "listener.udp.max_answer_size: must be in 512..65507, got 511");
  ExpectError(
      "listener:\n  udp:\n    addr: 127.0.0.1:53\n  rate_limit:\n    qps: 1\n    action: "
      "slow\n" +
          tail,
      6, 13, "listener.rate_limit.action: unknown action \"slow\" (valid: drop, refuse)");
}

TEST_F(LoadConfigTest, EmptyAllowListIsWarned) {
  ASSERT_OK_AND_ASSIGN(const Config config,
                       Load("listener:\n  udp:\n    addr: 127.0.0.1:53\n  allow: []\nupstream:\n"
                            "  servers:\n    - addr: 127.0.0.1:853\n      server_name: a\n"));
  EXPECT_TRUE(config.listener.allow.empty());
  EXPECT_THAT(warnings_, ElementsAre(HasSubstr("listener.allow: is empty")));
}

TEST_F(LoadConfigTest, EveryKeySet) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(R"(
metrics:
  flush_interval: 250ms
  statsd:
    addr: udp://127.0.0.1:8125,tcp://127.0.0.1:8126
    sample_rate: 0.25
    tag_format: DogStatsD
  prometheus:
    addr: 127.0.0.1:9153
listener:
  tcp:
    addr: 0.0.0.0:53
    read_timeout: 30s
    write_timeout: 1s
    max_connections: 5000
    max_inflight_per_connection: 16
  udp:
    addr: 0.0.0.0:53
upstream:
  load_balancing_policy: leastoutstanding
  max_connection_retries: 0
  query_timeout: 1h
  servers:
    - addr: 127.0.0.1:853
      server_name: one.test
      connection_pool_size: 1024
      connect_timeout: 0s
      handshake_timeout: 100ms
      read_timeout: 1m30s
      write_timeout: 250ms
      stale_timeout: 24h
      max_inflight: 4096
    - addr: 127.0.0.2:853
      server_name: two.test
server:
  workers: 256
)"));
  EXPECT_THAT(warnings_, IsEmpty());
  EXPECT_TRUE(config.metrics.statsd.enabled);
  ASSERT_EQ(config.metrics.statsd.targets.size(), 2u);
  EXPECT_EQ(config.metrics.statsd.targets[0].addr.ToString(), "127.0.0.1:8125");
  EXPECT_EQ(config.metrics.statsd.targets[1].kind, StatsdTarget::Kind::kTcp);
  EXPECT_DOUBLE_EQ(config.metrics.statsd.sample_rate, 0.25);
  EXPECT_EQ(config.metrics.statsd.tag_format, StatsdTagFormat::kDogStatsd);
  EXPECT_EQ(config.metrics.flush_interval, absl::Milliseconds(250));
  EXPECT_TRUE(config.metrics.prometheus.enabled);
  EXPECT_EQ(config.metrics.prometheus.addr.ToString(), "127.0.0.1:9153");
  EXPECT_TRUE(config.listener.tcp.enabled);
  EXPECT_TRUE(config.listener.tcp.addr.is_wildcard());
  EXPECT_EQ(config.listener.tcp.read_timeout, absl::Seconds(30));
  EXPECT_EQ(config.listener.tcp.write_timeout, absl::Seconds(1));
  EXPECT_EQ(config.listener.tcp.max_connections, 5000u);
  EXPECT_EQ(config.listener.tcp.max_inflight_per_connection, 16u);
  EXPECT_EQ(config.upstream.load_balancing_policy, Policy::kLeastOutstanding);
  EXPECT_EQ(config.upstream.max_connection_retries, 0u);
  EXPECT_EQ(config.upstream.query_timeout, absl::Hours(1));
  ASSERT_EQ(config.upstream.servers.size(), 2u);
  const ServerConfig& one = config.upstream.servers[0];
  EXPECT_EQ(one.connection_pool_size, 1024u);
  EXPECT_EQ(one.connect_timeout, absl::ZeroDuration());
  EXPECT_EQ(one.handshake_timeout, absl::Milliseconds(100));
  EXPECT_EQ(one.read_timeout, absl::Seconds(90));
  EXPECT_EQ(one.write_timeout, absl::Milliseconds(250));
  EXPECT_EQ(one.stale_timeout, absl::Hours(24));
  EXPECT_EQ(one.max_inflight, 4096u);
  EXPECT_EQ(config.upstream.servers[1].server_name, "two.test");
  ExpectServerDefaults(config.upstream.servers[1]);
  EXPECT_EQ(config.server.workers, 256u);
}

TEST_F(LoadConfigTest, LoadFromStringUsesFilenameInMessages) {
  std::vector<std::string> warnings;
  EXPECT_THAT(LoadConfigFromString(kMinimal, "inline.yaml", &warnings), IsOk());
  EXPECT_THAT(LoadConfigFromString("listener: 5\n", "inline.yaml", &warnings),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "inline.yaml:1:11: listener: expected a mapping, got \"5\""));
  // Warnings may be dropped.
  EXPECT_THAT(LoadConfigFromString(kMinimal, "inline.yaml", nullptr), IsOk());
}

// --- Files and documents -------------------------------------------------------------------------

TEST_F(LoadConfigTest, MissingFileIsNotFound) {
  const std::string path = ::testing::TempDir() + "load_config_test_no_such_file.yaml";
  EXPECT_THAT(
      LoadConfig(path, nullptr),
      StatusIs(absl::StatusCode::kNotFound, path + ": cannot read: No such file or directory"));
}

TEST_F(LoadConfigTest, DirectoryIsNotFound) {
  EXPECT_THAT(LoadConfig(::testing::TempDir(), nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(": cannot read: Is a directory")));
}

TEST_F(LoadConfigTest, EmptyFile) {
  ExpectError("", 1, 1, "empty configuration");
  ExpectError("# only a comment\n\n", 1, 1, "empty configuration");
  ExpectError("---\n", 2, 1, "empty configuration");
}

TEST_F(LoadConfigTest, NotYaml) {
  ExpectError("listener: [127.0.0.1\nupstream: x\n", 2, 9,
              "invalid YAML: did not find expected ',' or ']' "
              "(while parsing a flow sequence at 1:11)");
  ExpectError("listener:\n\tudp: x\n", 2, 1,
              "invalid YAML: found character that cannot start any token (while scanning for the "
              "next token at 2:1)");
  ExpectError("a: \"\xff\xfe\xfd\"\n", 1, 5,
              "invalid YAML: invalid leading UTF-8 octet (byte 0xff)");
}

TEST_F(LoadConfigTest, TopLevelNotAMapping) {
  ExpectError("- listener\n- upstream\n", 1, 1,
              "expected a mapping at the top level, got a sequence");
  ExpectError("hello\n", 1, 1, "expected a mapping at the top level, got \"hello\"");
}

TEST_F(LoadConfigTest, MoreThanOneDocument) {
  ExpectError(absl::StrCat(kMinimal, "---\nlistener: {}\n"), 8, 1,
              "more than one YAML document; expected exactly one");
}

TEST_F(LoadConfigTest, AliasesAndAnchorsAreRejected) {
  ExpectError(R"(listener:
  udp: &udp
    addr: 127.0.0.1:5353
  tcp: *udp
)",
              2, 8, "listener.udp: YAML anchors (&name) are not supported");
}

TEST_F(LoadConfigTest, DuplicateKey) {
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
    addr: 127.0.0.1:5354
)",
              4, 5, "listener.udp.addr: duplicate key (first defined at 3:5)");
}

// Found by tests/fuzz/fuzz_config: quoted YAML keys and values may hold newlines (here the YAML
// escape \n), and they must not split the message (corpus/config/regression-*).
TEST_F(LoadConfigTest, NewlinesInKeysAndValuesAreEscapedInMessages) {
  ExpectError(R"(listener:
  udp:
    "a\nb": 1
    "a\nb": 2
)",
              4, 5, "listener.udp.a\\nb: duplicate key (first defined at 3:5)");
  ExpectError(R"(listener:
  udp:
    addr: "[::1\n]:5353"
)",
              3, 11,
              "listener.udp.addr: \"::1\\n\" is not an IPv6 address; listener addresses are "
              "numeric: a.b.c.d:port or [ipv6]:port");
  // An unknown key and an out-of-range number whose raw text holds a newline (found by
  // tests/fuzz/fuzz_config): still one line.
  ExpectErrorPrefix("listener:\n  udp:\n    \"bo\\ngus\": 1\n", 3, 5,
                    "listener.udp.bo\\ngus: unknown key (allowed: ");
  const auto number = Load(std::string(kMinimal) +
                           "metrics:\n  statsd:\n    addr: 127.0.0.1:8125\n"
                           "    sample_rate: \"2\\n\"\n");
  ASSERT_FALSE(number.ok());
  EXPECT_THAT(std::string(number.status().message()), Not(HasSubstr("\n")));
  EXPECT_THAT(std::string(number.status().message()), HasSubstr("must be in 0..1, got 2\\n"));
}

TEST_F(LoadConfigTest, NonScalarKey) {
  ExpectError("? [a, b]\n: c\n", 1, 3, "mapping keys must be scalars");
}

TEST_F(LoadConfigTest, DeepNesting) {
  std::string text = "listener: ";
  for (int i = 0; i < 100; ++i) {
    text += "[";
  }
  ExpectErrorPrefix(text, 1, 74, "listener[0][0][0]");
  EXPECT_THAT(std::string(Load(text).status().message()),
              ::testing::EndsWith("]: nesting deeper than 64 levels"));
}

// --- Keys and types ------------------------------------------------------------------------------

TEST_F(LoadConfigTest, UnknownTopLevelKey) {
  ExpectError(absl::StrCat(kMinimal, "logging: debug\n"), 8, 1,
              "logging: unknown key (allowed: application, metrics, listener, "
              "upstream, server)");
}

TEST_F(LoadConfigTest, UnknownNestedKey) {
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
    adr: 127.0.0.1:5353
)",
              4, 5,
              "listener.udp.adr: unknown key (allowed: addr, read_timeout, "
              "write_timeout, max_concurrent_connections, max_answer_size)");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
      pool_size: 4
)",
              8, 7,
              "upstream.servers[0].pool_size: unknown key (allowed: addr, server_name, "
              "connection_pool_size, connect_timeout, handshake_timeout, read_timeout, "
              "write_timeout, stale_timeout, ca_file, max_inflight, weight, edns_padding, "
              "spki_pins, ktls)");
}

TEST_F(LoadConfigTest, WrongType) {
  ExpectError("listener: 5\n", 1, 11, "listener: expected a mapping, got \"5\"");
  ExpectError("listener:\n  - udp\n", 2, 3, "listener: expected a mapping, got a sequence");
  ExpectError(R"(listener:
  udp:
    addr: {host: 127.0.0.1, port: 5353}
)",
              3, 11,
              "listener.udp.addr: expected an address like \"a.b.c.d:port\" or a list of "
              "addresses, got a mapping");
  ExpectError(
      R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers: 127.0.0.1:853
)",
      5, 12, "upstream.servers: expected a sequence of servers, got \"127.0.0.1:853\"");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - 127.0.0.1:853
)",
              6, 7, "upstream.servers[0]: expected a mapping, got \"127.0.0.1:853\"");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: {name: dot.test}
)",
              7, 20, "upstream.servers[0].server_name: expected a string, got a mapping");
}

TEST_F(LoadConfigTest, NotAnInteger) {
  ExpectError(absl::StrCat(kMinimal, "server:\n  workers: two\n"), 9, 12,
              "server.workers: expected an integer, got \"two\"");
  ExpectError(absl::StrCat(kMinimal, "server:\n  workers: 1.5\n"), 9, 12,
              "server.workers: expected an integer, got \"1.5\"");
  ExpectError(absl::StrCat(kMinimal, "server:\n  workers:\n"), 9, 11,
              "server.workers: expected an integer, got an empty value");
}

TEST_F(LoadConfigTest, NotANumber) {
  ExpectError(absl::StrCat(kMinimal,
                           "metrics:\n  statsd:\n    addr: 127.0.0.1:8125\n"
                           "    sample_rate: high\n"),
              11, 18, "metrics.statsd.sample_rate: expected a number, got \"high\"");
  ExpectError(absl::StrCat(kMinimal,
                           "metrics:\n  statsd:\n    addr: 127.0.0.1:8125\n"
                           "    sample_rate: .nan\n"),
              11, 18, "metrics.statsd.sample_rate: expected a number, got \".nan\"");
}

TEST_F(LoadConfigTest, OutOfRange) {
  ExpectError(absl::StrCat(kMinimal, "server:\n  workers: 257\n"), 9, 12,
              "server.workers: must be in 0..256, got 257");
  ExpectError(absl::StrCat(kMinimal, "server:\n  workers: -1\n"), 9, 12,
              "server.workers: must be in 0..256, got -1");
  ExpectError(absl::StrCat(kMinimal,
                           "metrics:\n  statsd:\n    addr: 127.0.0.1:8125\n"
                           "    sample_rate: 1.5\n"),
              11, 18, "metrics.statsd.sample_rate: must be in 0..1, got 1.5");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  max_connection_retries: 17
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
)",
              5, 27, "upstream.max_connection_retries: must be in 0..16, got 17");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
      connection_pool_size: 0
)",
              8, 29, "upstream.servers[0].connection_pool_size: must be in 1..1024, got 0");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
      max_inflight: 4097
)",
              8, 21, "upstream.servers[0].max_inflight: must be in 1..4096, got 4097");
  ExpectError(R"(listener:
  tcp:
    addr: 127.0.0.1:5353
    max_connections: 1000001
    max_inflight_per_connection: 1
)",
              4, 22, "listener.tcp.max_connections: must be in 1..1000000, got 1000001");
  ExpectError(
      R"(listener:
  tcp:
    addr: 127.0.0.1:5353
    max_inflight_per_connection: 65536
)",
      4, 34, "listener.tcp.max_inflight_per_connection: must be in 1..65535, got 65536");
}

// --- Durations -----------------------------------------------------------------------------------

std::string WithQueryTimeout(const std::string& value) {
  return absl::StrCat(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  query_timeout: )",
                      value, R"(
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
)");
}

TEST_F(LoadConfigTest, GoDurations) {
  const std::pair<const char*, absl::Duration> cases[] = {
      {"250ms", absl::Milliseconds(250)},
      {"5s", absl::Seconds(5)},
      {"1m30s", absl::Seconds(90)},
      {"1.5s", absl::Milliseconds(1500)},
      {"1h", absl::Hours(1)},
      {"2m", absl::Minutes(2)},
      {"100us", absl::Microseconds(100)},
      {"\"3s\"", absl::Seconds(3)},
      {"'1h0m0s'", absl::Hours(1)},
  };
  for (const auto& [text, expected] : cases) {
    SCOPED_TRACE(text);
    ASSERT_OK_AND_ASSIGN(const Config config, Load(WithQueryTimeout(text)));
    EXPECT_EQ(config.upstream.query_timeout, expected);
  }
}

TEST_F(LoadConfigTest, BadDuration) {
  ExpectError(WithQueryTimeout("5"), 5, 18,
              "upstream.query_timeout: expected a duration like \"5s\", got \"5\"");
  ExpectError(WithQueryTimeout("0"), 5, 18,
              "upstream.query_timeout: expected a duration like \"5s\", got \"0\"");
  ExpectError(WithQueryTimeout("2.5"), 5, 18,
              "upstream.query_timeout: expected a duration like \"5s\", got \"2.5\"");
  ExpectError(WithQueryTimeout("5parsecs"), 5, 18,
              "upstream.query_timeout: expected a duration like \"5s\", got \"5parsecs\"");
  ExpectError(WithQueryTimeout("inf"), 5, 18,
              "upstream.query_timeout: expected a duration like \"5s\", got \"inf\"");
  ExpectError(WithQueryTimeout("5 s"), 5, 18,
              "upstream.query_timeout: expected a duration like \"5s\", got \"5 s\"");
  ExpectError(WithQueryTimeout("-1s"), 5, 18,
              "upstream.query_timeout: must not be negative, got \"-1s\"");
  ExpectError(WithQueryTimeout("0s"), 5, 18,
              "upstream.query_timeout: must be greater than 0s, got \"0s\"");
  ExpectError(WithQueryTimeout("61m"), 5, 18,
              "upstream.query_timeout: must be at most 1h, got \"61m\"");
  ExpectError(WithQueryTimeout("{}"), 5, 18,
              "upstream.query_timeout: expected a duration like \"5s\", got a mapping");
  ExpectError(R"(listener:
  tcp:
    addr: 127.0.0.1:5353
    read_timeout: 25h
)",
              4, 19, "listener.tcp.read_timeout: must be at most 24h, got \"25h\"");
}

TEST_F(LoadConfigTest, ZeroTimeoutsMeanNone) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(R"(listener:
  tcp:
    addr: 127.0.0.1:5353
    read_timeout: 0s
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
      connect_timeout: 0s
      stale_timeout: 0s
)"));
  EXPECT_EQ(config.listener.tcp.read_timeout, absl::ZeroDuration());
  EXPECT_EQ(config.upstream.servers[0].connect_timeout, absl::ZeroDuration());
  EXPECT_EQ(config.upstream.servers[0].stale_timeout, absl::ZeroDuration());
}

// --- Required keys -------------------------------------------------------------------------------

TEST_F(LoadConfigTest, MissingListener) {
  ExpectError("upstream:\n  servers:\n    - addr: 127.0.0.1:853\n      server_name: dot.test\n", 1,
              1, "listener: missing required key");
}

TEST_F(LoadConfigTest, MissingUpstream) {
  ExpectError("listener:\n  udp:\n    addr: 127.0.0.1:5353\n", 1, 1,
              "upstream: missing required key");
}

TEST_F(LoadConfigTest, MissingUdpListener) {
  // Points at the listener mapping, the parent of the missing block.
  ExpectError(R"(upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
listener:
  tcp:
    addr: 127.0.0.1:5353
)",
              6, 3, "listener.udp.addr: missing required key");
  ExpectError("listener:\n", 1, 10, "listener.udp.addr: missing required key");
}

TEST_F(LoadConfigTest, MissingListenerAddr) {
  ExpectError(R"(listener:
  udp:
    read_timeout: 0s
)",
              3, 5, "listener.udp.addr: missing required key");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
  tcp:
    read_timeout: 5s
)",
              5, 5, "listener.tcp.addr: missing required key");
}

TEST_F(LoadConfigTest, MissingServerKeys) {
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
    - server_name: other.test
      connection_pool_size: 4
)",
              8, 7, "upstream.servers[1].addr: missing required key");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:853
)",
              6, 7, "upstream.servers[0].server_name: missing required key");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: ""
)",
              7, 20, "upstream.servers[0].server_name: must not be empty");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  load_balancing_policy: Random
)",
              5, 3, "upstream.servers: missing required key");
}

TEST_F(LoadConfigTest, EmptyServers) {
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers: []
)",
              5, 12, "upstream.servers: must list at least one server");
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
)",
              5, 11, "upstream.servers: must list at least one server");
}

TEST_F(LoadConfigTest, StatsdNeedsAddr) {
  ExpectError(absl::StrCat(kMinimal, "metrics:\n  statsd:\n    sample_rate: 0.5\n"), 10, 5,
              "metrics.statsd.addr: missing required key");
}

// --- Policies ------------------------------------------------------------------------------------

std::string WithPolicy(const std::string& key, const std::string& value) {
  return absl::StrCat(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  )",
                      key, ": ", value, R"(
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
)");
}

TEST_F(LoadConfigTest, PolicyNamesAreCaseInsensitive) {
  const std::pair<const char*, Policy> cases[] = {
      {"RoundRobin", Policy::kRoundRobin},
      {"random", Policy::kRandom},
      {"HISTORICALCONNECTIONS", Policy::kHistoricalConnections},
      {"availability", Policy::kAvailability},
      {"fAiLoVeR", Policy::kFailover},
      {"leastOutstanding", Policy::kLeastOutstanding},
  };
  for (const auto& [name, policy] : cases) {
    SCOPED_TRACE(name);
    ASSERT_OK_AND_ASSIGN(const Config config, Load(WithPolicy("load_balancing_policy", name)));
    EXPECT_EQ(config.upstream.load_balancing_policy, policy);
    EXPECT_THAT(warnings_, IsEmpty());
  }
}

TEST_F(LoadConfigTest, PolicyNamesRoundTrip) {
  for (const Policy policy :
       {Policy::kRoundRobin, Policy::kRandom, Policy::kHistoricalConnections, Policy::kAvailability,
        Policy::kFailover, Policy::kLeastOutstanding}) {
    Policy parsed = Policy::kRoundRobin;
    ASSERT_TRUE(ParsePolicyName(PolicyName(policy), &parsed)) << PolicyName(policy);
    EXPECT_EQ(parsed, policy);
  }
  Policy parsed = Policy::kRandom;
  EXPECT_FALSE(ParsePolicyName("Fastest", &parsed));
  EXPECT_FALSE(ParsePolicyName("", &parsed));
  EXPECT_EQ(parsed, Policy::kRandom);
}

TEST_F(LoadConfigTest, UnknownPolicy) {
  ExpectError(WithPolicy("load_balancing_policy", "Fastest"), 5, 26,
              "upstream.load_balancing_policy: unknown policy \"Fastest\" (valid: "
              "RoundRobin, Random, HistoricalConnections, Availability, Failover, "
              "LeastOutstanding)");
}

TEST_F(LoadConfigTest, MisspeltPolicyKeyIsAcceptedWithWarning) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(WithPolicy("load_balacing_policy", "Failover")));
  EXPECT_EQ(config.upstream.load_balancing_policy, Policy::kFailover);
  EXPECT_THAT(warnings_,
              ElementsAre(At(5, 3) + "upstream.load_balacing_policy: misspelt key accepted; "
                                     "rename it to load_balancing_policy"));
}

TEST_F(LoadConfigTest, BothPolicyKeysIsAnError) {
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  load_balancing_policy: Random
  load_balacing_policy: Random
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
)",
              6, 3,
              "upstream.load_balacing_policy: conflicts with "
              "upstream.load_balancing_policy; keep only the correctly spelt key");
}

// --- Addresses -----------------------------------------------------------------------------------

std::string WithUdpAddr(const std::string& addr) {
  return absl::StrCat("listener:\n  udp:\n    addr: ", addr, R"(
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
)");
}

std::string WithServerAddr(const std::string& addr) {
  return absl::StrCat(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: )",
                      addr, "\n      server_name: dot.test\n");
}

TEST_F(LoadConfigTest, BadListenerAddress) {
  ExpectError(WithUdpAddr("localhost:53"), 3, 11,
              "listener.udp.addr: \"localhost\" is not an IPv4 address; listener "
              "addresses are numeric: a.b.c.d:port or [ipv6]:port");
  ExpectError(WithUdpAddr("127.0.0.1"), 3, 11,
              "listener.udp.addr: expected host:port, got \"127.0.0.1\"");
  ExpectError(WithUdpAddr("127.0.0.1:0"), 3, 11,
              "listener.udp.addr: port must be in 1..65535, got \"0\"");
  ExpectError(WithUdpAddr("127.0.0.1:65536"), 3, 11,
              "listener.udp.addr: port must be in 1..65535, got \"65536\"");
  ExpectError(WithUdpAddr("\"::1:53\""), 3, 11,
              "listener.udp.addr: IPv6 address must be bracketed as [addr]:port, got \"::1:53\"");
  ExpectError(WithUdpAddr("\"\""), 3, 11, "listener.udp.addr: expected host:port, got \"\"");
}

TEST_F(LoadConfigTest, IPv6BracketAddresses) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(R"(listener:
  udp:
    addr: "[::1]:5353"
  tcp:
    addr: '[::]:5353'
upstream:
  servers:
    - addr: "[2001:db8::1]:853"
      server_name: dot.test
)"));
  EXPECT_EQ(config.listener.udp.addr.family(), AF_INET6);
  EXPECT_EQ(config.listener.udp.addr.ToString(), "[::1]:5353");
  EXPECT_TRUE(config.listener.tcp.addr.is_wildcard());
  EXPECT_EQ(config.upstream.servers[0].addr.family(), AF_INET6);
  EXPECT_EQ(config.upstream.servers[0].addr.ToString(), "[2001:db8::1]:853");
  EXPECT_EQ(config.upstream.servers[0].addr_text, "[2001:db8::1]:853");
}

TEST_F(LoadConfigTest, ResolvesUpstreamHostName) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(WithServerAddr("localhost:853")));
  const ServerConfig& server = config.upstream.servers[0];
  EXPECT_EQ(server.addr_text, "localhost:853");
  EXPECT_EQ(server.addr.port(), 853);
  EXPECT_TRUE(server.addr.ToString() == "127.0.0.1:853" || server.addr.ToString() == "[::1]:853")
      << server.addr.ToString();
}

TEST_F(LoadConfigTest, BadUpstreamAddress) {
  ExpectError(WithServerAddr("dot.test"), 6, 13,
              "upstream.servers[0].addr: expected host:port, got \"dot.test\"");
  ExpectError(WithServerAddr("1.2.3:853"), 6, 13,
              "upstream.servers[0].addr: \"1.2.3\" is not an IPv4 address");
  ExpectError(WithServerAddr("\"bad host:853\""), 6, 13,
              "upstream.servers[0].addr: \"bad host\" is not an IPv4 address, "
              "[IPv6] address or host name");
  ExpectError(WithServerAddr("\"[::1:853\""), 6, 13,
              "upstream.servers[0].addr: expected [ipv6]:port, got \"[::1:853\"");
  ExpectError(WithServerAddr("127.0.0.1:0"), 6, 13,
              "upstream.servers[0].addr: port must be in 1..65535, got \"0\"");
  // RFC 6761 §6.4: .invalid never resolves.
  ExpectErrorPrefix(WithServerAddr("dotproxy-test.invalid:853"), 6, 13,
                    "upstream.servers[0].addr: cannot resolve \"dotproxy-test.invalid\": ");
}

TEST_F(LoadConfigTest, StatsdAddress) {
  for (const char* addr : {"udp://127.0.0.1:8125", "127.0.0.1:8125", "UDP://127.0.0.1:8125"}) {
    SCOPED_TRACE(addr);
    ASSERT_OK_AND_ASSIGN(const Config config,
                         Load(absl::StrCat(kMinimal, "metrics:\n  statsd:\n    addr: ", addr,
                                           "\n    sample_rate: 0\n")));
    EXPECT_TRUE(config.metrics.statsd.enabled);
    ASSERT_EQ(config.metrics.statsd.targets.size(), 1u);
    EXPECT_EQ(config.metrics.statsd.targets[0].kind, StatsdTarget::Kind::kUdp);
    EXPECT_EQ(config.metrics.statsd.targets[0].addr.ToString(), "127.0.0.1:8125");
    EXPECT_EQ(config.metrics.statsd.sample_rate, 1.0);  // 0 means "send everything"
  }
  // Every other form of the Go original loads too (config/statsd_addr_test.cc has the details).
  for (const char* addr : {"tcp://127.0.0.1:8125", "unix:///run/statsd.sock", "file:///tmp/s",
                           "udp://127.0.0.1:1,udp://127.0.0.1:2"}) {
    SCOPED_TRACE(addr);
    ASSERT_OK_AND_ASSIGN(const Config config,
                         Load(absl::StrCat(kMinimal, "metrics:\n  statsd:\n    addr: ", addr,
                                           "\n")));
    EXPECT_EQ(config.metrics.statsd.addr, addr);
    EXPECT_FALSE(config.metrics.statsd.targets.empty());
  }
  ExpectError(absl::StrCat(kMinimal, "metrics:\n  statsd:\n    addr: gopher://127.0.0.1:70\n"), 10,
              11,
              "metrics.statsd.addr: \"gopher://127.0.0.1:70\": unknown scheme \"gopher\"; use "
              "udp://host:port, tcp://host:port, unix:///path, file:///path or host:port");
  ExpectError(absl::StrCat(kMinimal, "metrics:\n  statsd:\n    addr: statsd.local:8125\n"), 10, 11,
              "metrics.statsd.addr: \"statsd.local:8125\": \"statsd.local\" is not an IPv4 "
              "address; use udp://host:port, tcp://host:port, unix:///path, file:///path or "
              "host:port (hosts are numeric: a.b.c.d or [ipv6])");
  ExpectError(absl::StrCat(kMinimal, "metrics:\n  tag_format: influx\n"), 9, 3,
              "metrics.tag_format: unknown key (allowed: flush_interval, statsd, prometheus)");
  ExpectError(
      absl::StrCat(kMinimal, "metrics:\n  statsd:\n    addr: 127.0.0.1:1\n    tag_format: x\n"), 11,
      17, "metrics.statsd.tag_format: unknown tag format \"x\" (valid: influx, dogstatsd)");
}

TEST_F(LoadConfigTest, CaFile) {
  const std::string ca = WriteFile("-----BEGIN CERTIFICATE-----\n");
  ASSERT_OK_AND_ASSIGN(const Config config, Load(absl::StrCat(WithServerAddr("127.0.0.1:853"),
                                                              "      ca_file: ", ca, "\n")));
  EXPECT_EQ(config.upstream.servers[0].ca_file, ca);

  const std::string missing = ::testing::TempDir() + "load_config_test_no_such_ca.pem";
  ExpectError(
      absl::StrCat(WithServerAddr("127.0.0.1:853"), "      ca_file: ", missing, "\n"), 8, 16,
      "upstream.servers[0].ca_file: cannot read \"" + missing + "\": No such file or directory");
  ExpectError(
      absl::StrCat(WithServerAddr("127.0.0.1:853"), "      ca_file: ", ::testing::TempDir(), "\n"),
      8, 16, "upstream.servers[0].ca_file: \"" + ::testing::TempDir() + "\" is not a regular file");
}

// --- Warnings ------------------------------------------------------------------------------------

TEST_F(LoadConfigTest, AcceptedButUnusedKeysWarn) {
  ASSERT_OK_AND_ASSIGN(const Config config, Load(R"(application:
  sentry_dsn: https://key@sentry.example/1
listener:
  udp:
    addr: 127.0.0.1:5353
    max_concurrent_connections: 64
    read_timeout: 1s
    write_timeout: 0s
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
)"));
  EXPECT_EQ(config.application.sentry_dsn, "https://key@sentry.example/1");
  EXPECT_EQ(config.listener.udp.max_concurrent_connections, 64);
  EXPECT_EQ(config.listener.udp.read_timeout, absl::Seconds(1));
  EXPECT_THAT(
      warnings_,
      ElementsAre(
          At(2, 15) + "application.sentry_dsn: accepted but unused: dotproxy does not report to "
                      "Sentry",
          At(6, 33) + "listener.udp.max_concurrent_connections: has no effect (accepted for "
                      "compatibility)",
          At(7, 19) + "listener.udp.read_timeout: has no effect on UDP (accepted for "
                      "compatibility)"));
}

TEST_F(LoadConfigTest, EmptySectionsAreEmptyMappings) {
  ASSERT_OK_AND_ASSIGN(const Config config,
                       Load(absl::StrCat(kMinimal, "application:\nmetrics:\nserver: ~\n")));
  EXPECT_FALSE(config.metrics.statsd.enabled);
  // But an empty block that enables something still needs its required keys.
  ExpectError("listener:\n  tcp:\n  udp:\n    addr: 127.0.0.1:5353\n", 2, 7,
              "listener.tcp.addr: missing required key");
}

// --- Validate ------------------------------------------------------------------------------------

TEST_F(LoadConfigTest, DuplicateServersAreAnError) {
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
    - addr: 127.0.0.2:853
      server_name: dot.test
    - addr: 127.0.0.1:853
      server_name: dot.test
)",
              10, 7,
              "upstream.servers[2]: same addr and server_name as upstream.servers[0]; "
              "list each server once");
}

TEST_F(LoadConfigTest, SameAddrDifferentNamesIsFine) {
  EXPECT_THAT(Load(R"(listener:
  udp:
    addr: 127.0.0.1:5353
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: a.test
    - addr: 127.0.0.1:853
      server_name: b.test
)"),
              IsOk());
}

TEST_F(LoadConfigTest, ForwardingToOwnListenerIsAnError) {
  ExpectError(R"(listener:
  udp:
    addr: 127.0.0.1:853
  tcp:
    addr: 127.0.0.1:853
upstream:
  servers:
    - addr: 127.0.0.1:853
      server_name: dot.test
)",
              8, 13,
              "upstream.servers[0].addr: equals listener.tcp.addr 127.0.0.1:853; the "
              "proxy would forward to itself");
}

TEST(ValidateTest, HandBuiltConfig) {
  Config config;
  EXPECT_THAT(Validate(config, "api"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "api: listener.udp.addr: must be set to a.b.c.d:port or [ipv6]:port"));
  config.listener.udp.addr = *base::SocketAddress::Parse("127.0.0.1:5353");
  EXPECT_THAT(Validate(config, "api"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "api: upstream.servers: must list at least one server"));
  ServerConfig server;
  server.addr = *base::SocketAddress::Parse("127.0.0.1:853");
  config.upstream.servers.push_back(server);
  EXPECT_THAT(Validate(config, "api"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "api: upstream.servers[0].server_name: must not be empty"));
  config.upstream.servers[0].server_name = "dot.test";
  EXPECT_THAT(Validate(config, "api"), IsOk());
  config.upstream.servers[0].max_inflight = kMaxInflightPerConnection + 1;
  EXPECT_THAT(Validate(config, "api"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "api: upstream.servers[0].max_inflight: must be in 1..4096"));
}

}  // namespace
}  // namespace dotproxy::config
