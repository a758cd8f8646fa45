#include "reload.h"

#include <sys/socket.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "config/load_config.h"
#include "net/sockets.h"
#include "tls/tls_context.h"

namespace dotproxy {
namespace {

bool HasServer(const config::Config& config, const config::ServerConfig& sc) {
  for (const config::ServerConfig& other : config.upstream.servers) {
    if (config::ServerIdentity(other) == config::ServerIdentity(sc)) {
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const config::Config>> LoadReloadedConfig(
    const std::string& path, const config::Config& current) {
  std::vector<std::string> warnings;
  ASSIGN_OR_RETURN(config::Config next, config::LoadConfig(path, &warnings));
  for (const std::string& w : warnings) {
    LOG(kWarn, "%s", w);
  }
  for (const config::ServerConfig& sc : next.upstream.servers) {
    auto tls = tls::ClientContext::Create({sc.server_name, sc.ca_file});
    if (!tls.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": upstream ", sc.addr_text, ": ", tls.status().message()));
    }
  }
  if (!(next.listener.udp.addr == current.listener.udp.addr)) {
    RETURN_IF_ERROR(net::CheckAddressFree(next.listener.udp.addr, SOCK_DGRAM));
  }
  if (next.listener.tcp.enabled &&
      (!current.listener.tcp.enabled || !(next.listener.tcp.addr == current.listener.tcp.addr))) {
    RETURN_IF_ERROR(net::CheckAddressFree(next.listener.tcp.addr, SOCK_STREAM));
  }
  if (next.server.workers != current.server.workers) {
    LOG(kWarn, "%s: server.workers changes only with a restart; keeping %u", path,
        current.server.workers);
    next.server.workers = current.server.workers;
  }
  return std::make_shared<const config::Config>(std::move(next));
}

std::string DescribeChanges(const config::Config& before, const config::Config& after) {
  std::vector<std::string> added;
  std::vector<std::string> removed;
  size_t kept = 0;
  for (const config::ServerConfig& sc : after.upstream.servers) {
    if (HasServer(before, sc)) {
      ++kept;
    } else {
      added.push_back(sc.addr_text);
    }
  }
  for (const config::ServerConfig& sc : before.upstream.servers) {
    if (!HasServer(after, sc)) {
      removed.push_back(sc.addr_text);
    }
  }
  std::string line = absl::StrCat("servers: ", kept, " kept");
  if (!added.empty()) {
    absl::StrAppend(&line, ", added ", absl::StrJoin(added, " "));
  }
  if (!removed.empty()) {
    absl::StrAppend(&line, ", removed ", absl::StrJoin(removed, " "));
  }
  const bool udp_changed = !(before.listener.udp.addr == after.listener.udp.addr);
  const bool tcp_changed = before.listener.tcp.enabled != after.listener.tcp.enabled ||
                           !(before.listener.tcp.addr == after.listener.tcp.addr);
  absl::StrAppend(&line, "; listeners: ",
                  !udp_changed && !tcp_changed
                      ? "unchanged"
                      : absl::StrCat(udp_changed ? "udp " + after.listener.udp.addr.ToString() : "",
                                     udp_changed && tcp_changed ? ", " : "",
                                     tcp_changed ? "tcp " + after.listener.tcp.addr.ToString()
                                                 : ""));
  return line;
}

}  // namespace dotproxy
