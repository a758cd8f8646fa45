// File: reload.h
//
// The control thread's side of SIGHUP: re-read and validate the configuration, check what the
// shards cannot check for themselves, and say in one line what changed.
#ifndef DOTPROXY_RELOAD_H_
#define DOTPROXY_RELOAD_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/config.h"
#include "upstream/server_ids.h"

namespace dotproxy {

// Loads `path` again and checks it can replace `current`: it parses and validates, every server's
// TLS settings load, and every listen address it adds is free. Settings that need a restart
// (server.workers) are kept as they are, with a warning. Errors name the file and line. Each
// server gets its metrics id from `ids` (a new one for a server never configured before).
absl::StatusOr<std::shared_ptr<const config::Config>> LoadReloadedConfig(
    const std::string& path, const config::Config& current, upstream::ServerIds* ids);

// One line for the log: servers added, removed and kept, listener changes, other settings.
std::string DescribeChanges(const config::Config& before, const config::Config& after);

}  // namespace dotproxy

#endif  // DOTPROXY_RELOAD_H_
