// File: upstream/server_ids.h
//
// ServerIds: the metrics id of every distinct upstream server (config::ServerIdentity: address,
// name and TLS settings, what a reload matches to decide a server is kept) the process has been
// configured with. Ids are handed out 0, 1, 2, ... and never reused: a server removed by one
// reload and added back by a later one gets its old id, so its counters continue. Owned and used
// by the control thread only (start-up and SIGHUP), before the config reaches the shards.
#ifndef DOTPROXY_UPSTREAM_SERVER_IDS_H_
#define DOTPROXY_UPSTREAM_SERVER_IDS_H_

#include <cstdint>
#include <map>
#include <string>

#include "config/config.h"

namespace dotproxy::upstream {

class ServerIds {
 public:
  // Sets every server's metrics_id (ServerConfig::metrics_id), new ids for servers never seen.
  void Assign(config::UpstreamConfig* upstream);
  // Distinct servers seen so far (= the next id).
  uint32_t size() const { return static_cast<uint32_t>(ids_.size()); }

 private:
  std::map<std::string, uint32_t> ids_;  // ServerIdentity -> id
};

}  // namespace dotproxy::upstream

#endif  // DOTPROXY_UPSTREAM_SERVER_IDS_H_
