#include "upstream/server_ids.h"

#include "config/load_config.h"

namespace dotproxy::upstream {

void ServerIds::Assign(config::UpstreamConfig* upstream) {
  for (config::ServerConfig& server : upstream->servers) {
    // A server seen before keeps its id; a new one gets the next.
    server.metrics_id = ids_.try_emplace(config::ServerIdentity(server), size()).first->second;
  }
}

}  // namespace dotproxy::upstream
