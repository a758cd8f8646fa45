// The statsd wire formats (influx tags as the Go original sent them, DogStatsD), sampling of
// individual timings, datagram packing, and the sinks never blocking.
#include "metrics/statsd_format.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/time/clock.h"
#include "base/unique_fd.h"
#include "config/statsd_addr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/statsd_sink.h"
#include <netinet/in.h>
#include <sys/socket.h>

namespace dotproxy::metrics {
namespace {

std::vector<std::string> Names(std::vector<std::string> names) { return names; }

// A UDP socket bound to 127.0.0.1 on a port the kernel chose (*port).
base::UniqueFd BindLoopbackUdp(int* port) {
  base::UniqueFd fd(socket(AF_INET, SOCK_DGRAM, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sin);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
    return base::UniqueFd();
  }
  *port = ntohs(sin.sin_port);
  return fd;
}

using config::StatsdTagFormat;
using ::testing::HasSubstr;

TEST(StatsdFormatTest, InfluxTagsSortedAndEscapedAsTheOriginal) {
  EXPECT_EQ(FormatLine(StatsdTagFormat::kInflux, "latency.proxy.tx_rtt",
                       {{"upstream", "127.0.0.1"}, {"client", "127.0.0.1"}, {"transport", "tcp"}},
                       "0.530", "ms", 0.5),
            "dotproxy.latency.proxy.tx_rtt,client=127.0.0.1,transport=tcp,upstream=127.0.0.1:"
            "0.530|ms|@0.5");
  EXPECT_EQ(FormatLine(StatsdTagFormat::kInflux, "event.upstream.cx_open", {{"addr", "::1"}}, "1",
                       "c", 1.0),
            "dotproxy.event.upstream.cx_open,addr=%3A%3A1:1|c");
  EXPECT_EQ(FormatLine(StatsdTagFormat::kInflux, "gauge.x", {}, "3", "g", 1.0),
            "dotproxy.gauge.x:3|g");
}

TEST(StatsdFormatTest, DogStatsdTagsAfterTheValue) {
  EXPECT_EQ(FormatLine(StatsdTagFormat::kDogStatsd, "event.client.cx_read",
                       {{"version", "1"}, {"transport", "udp"}}, "12", "c", 1.0),
            "dotproxy.event.client.cx_read:12|c|#transport:udp,version:1");
  EXPECT_EQ(FormatLine(StatsdTagFormat::kDogStatsd, "latency.proxy.tx_rtt", {{"a", "b"}}, "1.000",
                       "ms", 0.25),
            "dotproxy.latency.proxy.tx_rtt:1.000|ms|@0.25|#a:b");
}

TEST(StatsdFormatTest, PacksWholeLinesIntoDatagramsOfAtMost1432Bytes) {
  std::vector<std::string> lines;
  size_t total = 0;
  for (int i = 0; i < 500; ++i) {
    lines.push_back(std::string(10 + (i * 37) % 90, 'a' + i % 26));
    total += lines.back().size() + 1;
  }
  const std::vector<std::string> payloads = PackLines(lines);
  size_t bytes = 0;
  size_t count = 0;
  for (size_t p = 0; p < payloads.size(); ++p) {
    EXPECT_LE(payloads[p].size(), kMaxDatagramBytes);
    EXPECT_EQ(payloads[p].back(), '\n');
    if (p + 1 < payloads.size()) {
      EXPECT_GT(payloads[p].size() + 101, kMaxDatagramBytes) << "a datagram left too empty";
    }
    bytes += payloads[p].size();
    count += std::count(payloads[p].begin(), payloads[p].end(), '\n');
  }
  EXPECT_EQ(bytes, total);
  EXPECT_EQ(count, lines.size());
  EXPECT_EQ(PackLines(Names({std::string(2000, 'x')})).size(), 1u);  // an oversized line goes alone
  EXPECT_TRUE(PackLines(Names({})).empty());
}

TEST(StatsdFormatTest, TimingsAreSampledAndCarryTheRate) {
  ShardCounters block;
  block.upstream.Reserve(0);
  const ShardCounters* blocks[] = {&block};
  const Snapshot prev = TakeSnapshot(blocks, 0);
  for (int i = 0; i < 1000; ++i) {
    block.rtt_us.Record(100);
  }
  const Snapshot cur = TakeSnapshot(blocks, 1);
  const PublishedServer kServer[] = {{0, "10.0.0.1:853", "10.0.0.1"}};
  StatsdOptions options;
  options.version = "v";
  options.sample_rate = 0.1;
  int timings = 0;
  for (const std::string& line : StatsdLines(prev, cur, kServer, options)) {
    if (line.find("latency.proxy.tx_rtt") != std::string::npos) {
      EXPECT_THAT(line, HasSubstr(":0.100|ms|@0.1")) << line;  // below 128 us, buckets are exact
      ++timings;
    }
  }
  EXPECT_EQ(timings, 100);
  options.sample_rate = 1.0;
  options.max_timings = 50;  // too many for one flush: the rate drops and says so
  timings = 0;
  for (const std::string& line : StatsdLines(prev, cur, kServer, options)) {
    if (line.find("latency.proxy.tx_rtt") != std::string::npos) {
      EXPECT_THAT(line, HasSubstr("|@0.05")) << line;
      ++timings;
    }
  }
  EXPECT_EQ(timings, 50);
}

// A sink to a closed port, a TCP server that is not there, and a file: Send() returns at once.
TEST(StatsdSinkTest, NeverBlocksOnAnAbsentConsumer) {
  int port = 0;
  BindLoopbackUdp(&port).reset();  // a port that was free a moment ago and is closed now
  auto targets = config::ParseStatsdAddr("udp://127.0.0.1:" + std::to_string(port) +
                                         ",tcp://127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(targets.ok());
  for (const config::StatsdTarget& target : *targets) {
    auto sink = StatsdSink::Create(target);
    ASSERT_TRUE(sink.ok()) << sink.status();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) {
      (*sink)->Send("dotproxy.x:1|c\n", i);
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    EXPECT_GT((*sink)->dropped(), 0u) << (*sink)->name();
  }
}

// TCP: while the server is away payloads are dropped; once it listens, the sink reconnects after
// its backoff and delivers newline-delimited lines.
TEST(StatsdSinkTest, TcpReconnectsWithBackoff) {
  int port = 0;
  BindLoopbackUdp(&port).reset();
  auto targets = config::ParseStatsdAddr("tcp://127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(targets.ok());
  auto sink = StatsdSink::Create((*targets)[0]);
  ASSERT_TRUE(sink.ok());
  int64_t now_ms = absl::GetCurrentTimeNanos() / 1000000;  // the clock the reporter uses
  (*sink)->Send("dotproxy.lost:1|c\n", now_ms);
  EXPECT_EQ((*sink)->sent(), 0u);

  base::UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) {
    GTEST_SKIP() << "port " << port << " was taken meanwhile";
  }
  ASSERT_EQ(listen(listener.get(), 4), 0);
  // Bounded: the backoff is at most 30 s of the sink's clock, stepped 1 s per send.
  for (int i = 0; i < 100 && (*sink)->sent() == 0; ++i) {
    now_ms += 1000;
    (*sink)->Send("dotproxy.back:1|c\n", now_ms);
    usleep(10'000);
  }
  ASSERT_GT((*sink)->sent(), 0u);
  base::UniqueFd conn(accept(listener.get(), nullptr, nullptr));
  ASSERT_TRUE(conn.is_valid());
  timeval timeout{2, 0};
  setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  char buffer[256];
  const ssize_t n = recv(conn.get(), buffer, sizeof(buffer), 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buffer, n).substr(0, 18), "dotproxy.back:1|c\n");
}

TEST(StatsdSinkTest, UdpDeliversAndFileAppends) {
  int port = 0;
  base::UniqueFd server = BindLoopbackUdp(&port);
  ASSERT_TRUE(server.is_valid());
  char path[] = "/tmp/dotproxy-statsd-XXXXXX";
  const int tmp = mkstemp(path);
  ASSERT_GE(tmp, 0);
  close(tmp);
  auto targets = config::ParseStatsdAddr("127.0.0.1:" + std::to_string(port) + ",file://" + path);
  ASSERT_TRUE(targets.ok());
  for (const config::StatsdTarget& target : *targets) {
    auto sink = StatsdSink::Create(target);
    ASSERT_TRUE(sink.ok()) << sink.status();
    (*sink)->Send("dotproxy.a:1|c\ndotproxy.b:2|c\n", 0);
    EXPECT_EQ((*sink)->sent(), 1u);
  }
  char buffer[2048];
  const ssize_t n = recv(server.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
  EXPECT_EQ(std::string(buffer, n > 0 ? n : 0), "dotproxy.a:1|c\ndotproxy.b:2|c\n");
  std::ifstream file(path);
  std::stringstream contents;
  contents << file.rdbuf();
  EXPECT_EQ(contents.str(), "dotproxy.a:1|c\ndotproxy.b:2|c\n");
  unlink(path);
}

}  // namespace
}  // namespace dotproxy::metrics
