// The Reporter end to end on the calling thread: shard blocks in, statsd datagrams out.
#include "metrics/reporter.h"

#include <string>

#include "base/unique_fd.h"
#include "config/statsd_addr.h"
#include "dotproxy_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <netinet/in.h>
#include <sys/socket.h>

namespace dotproxy::metrics {
namespace {

using ::testing::HasSubstr;

class ReporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    statsd_ = base::UniqueFd(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    ASSERT_EQ(bind(statsd_.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
    ASSERT_EQ(getsockname(statsd_.get(), reinterpret_cast<sockaddr*>(&sin), &len), 0);
    config::ServerConfig server;
    server.addr = *base::SocketAddress::Parse("127.0.0.1:853");
    server.addr_text = "127.0.0.1:853";
    server.server_name = "dot.test";
    config_.upstream.servers.push_back(server);
    config_.metrics.statsd.enabled = true;
    config_.metrics.statsd.targets =
        *config::ParseStatsdAddr("127.0.0.1:" + std::to_string(ntohs(sin.sin_port)));
    block_.upstream.Reserve(0);
  }
  // Everything received so far, datagrams concatenated.
  std::string Received() {
    std::string all;
    char buffer[2048];
    for (ssize_t n; (n = recv(statsd_.get(), buffer, sizeof(buffer), 0)) > 0;) {
      all.append(buffer, static_cast<size_t>(n));
    }
    return all;
  }

  base::UniqueFd statsd_;
  config::Config config_;
  ShardCounters block_;
};

// Queries that arrived before the reporter was created (the listeners are up first) are sent
// with the first flush, and counted once.
TEST_F(ReporterTest, FirstFlushIncludesCountsFromBeforeItsCreation) {
  block_.udp_queries += 7;
  auto reporter = Reporter::Create(config_, {&block_});
  ASSERT_TRUE(reporter.ok()) << reporter.status();
  ++block_.udp_queries;
  ++block_.upstream.Block(0).answers;
  (*reporter)->Flush();
  const std::string first = Received();
  EXPECT_THAT(first, HasSubstr("dotproxy.event.client.cx_read,transport=udp,version="));
  EXPECT_THAT(first, HasSubstr(":8|c\n"));
  EXPECT_THAT(first, HasSubstr("dotproxy.event.upstream.cx_read,addr=127.0.0.1,transport=tcp"));
  block_.udp_queries += 2;
  (*reporter)->Flush();
  const std::string second = Received();
  EXPECT_THAT(second, HasSubstr("transport=udp,version=" DOTPROXY_VERSION ":2|c\n"));
  EXPECT_THAT(second, ::testing::Not(HasSubstr("event.upstream.cx_read")));  // did not move
}

}  // namespace
}  // namespace dotproxy::metrics
