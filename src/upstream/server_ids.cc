#include "upstream/server_ids.h"

#include "config/load_config.h"

namespace dotproxy::upstream {

void ServerIds::Assign(config::UpstreamConfig* upstream) {
  for (config::ServerConfig& server : upstream->servers) {
    const auto [it, is_new] = ids_.try_emplace(config::ServerIdentity(server), size());
    server.metrics_id = it->second;
  }
}

}  // namespace dotproxy::upstream
