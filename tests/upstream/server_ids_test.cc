// Metrics ids across reloads: stable per server identity, never reused, given back to a server
// that returns; and the per-shard blocks they address.
#include "upstream/server_ids.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "upstream/counters.h"

namespace dotproxy::upstream {
namespace {

config::ServerConfig Server(const std::string& addr, const std::string& name = "dot.test") {
  config::ServerConfig server;
  server.addr_text = addr;
  server.addr = *base::SocketAddress::Parse(addr);
  server.server_name = name;
  return server;
}

config::UpstreamConfig Upstream(std::vector<config::ServerConfig> servers) {
  config::UpstreamConfig upstream;
  upstream.servers = std::move(servers);
  return upstream;
}

std::vector<uint32_t> Ids(const config::UpstreamConfig& upstream) {
  std::vector<uint32_t> ids;
  for (const config::ServerConfig& server : upstream.servers) {
    ids.push_back(server.metrics_id);
  }
  return ids;
}

TEST(ServerIdsTest, FollowTheServerNotItsPosition) {
  ServerIds ids;
  const config::ServerConfig a = Server("10.0.0.1:853");
  const config::ServerConfig b = Server("10.0.0.2:853");
  const config::ServerConfig c = Server("10.0.0.3:853");
  config::UpstreamConfig start = Upstream({a, b});
  ids.Assign(&start);
  EXPECT_EQ(Ids(start), (std::vector<uint32_t>{0, 1}));  // what the loader numbers too
  config::UpstreamConfig reload = Upstream({b, c});       // A removed, C added, B moved to 0
  ids.Assign(&reload);
  EXPECT_EQ(Ids(reload), (std::vector<uint32_t>{1, 2}));
  config::UpstreamConfig back = Upstream({c, a, Server("10.0.0.4:853")});  // A returns
  ids.Assign(&back);
  EXPECT_EQ(Ids(back), (std::vector<uint32_t>{2, 0, 3}));
  EXPECT_EQ(ids.size(), 4u);
}

// The identity is the reload's: the same address under another name is another server.
TEST(ServerIdsTest, SameAddressOtherNameIsAnotherServer) {
  ServerIds ids;
  config::UpstreamConfig start = Upstream({Server("10.0.0.1:853", "one.test")});
  ids.Assign(&start);
  config::UpstreamConfig reload = Upstream({Server("10.0.0.1:853", "two.test")});
  ids.Assign(&reload);
  EXPECT_EQ(Ids(reload), (std::vector<uint32_t>{1}));
}

TEST(UpstreamCountersTest, BlocksExistOnlyOnceReservedAndNeverMove) {
  UpstreamCounters counters;
  EXPECT_EQ(counters.id_limit(), 0u);
  EXPECT_EQ(counters.Find(0), nullptr);
  EXPECT_EQ(&counters.Block(0), &counters.spare);  // nothing reserved: unpublished
  counters.Reserve(70);  // the second chunk
  EXPECT_EQ(counters.id_limit(), 71u);
  EXPECT_EQ(counters.Find(0), nullptr);
  ServerCounters& block = counters.Block(70);
  EXPECT_NE(&block, &counters.spare);
  EXPECT_EQ(block.is_up.value(), 1u);
  ++block.queries;
  counters.Reserve(70);  // again: the same block, counts kept
  counters.Reserve(3);
  EXPECT_EQ(counters.Find(70), &block);
  EXPECT_EQ(counters.Find(70)->queries.value(), 1u);
  EXPECT_EQ(counters.id_limit(), 71u);
  EXPECT_NE(counters.Find(3), nullptr);
  counters.Reserve(UpstreamCounters::kMaxServerIds);  // past the directory: the spare
  EXPECT_EQ(&counters.Block(UpstreamCounters::kMaxServerIds), &counters.spare);
}

}  // namespace
}  // namespace dotproxy::upstream
