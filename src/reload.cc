#include "reload.h"

#include <sys/socket.h>

#include <algorithm>
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

absl::Status CheckNewAddressesFree(const std::vector<base::SocketAddress>& next,
                                   const std::vector<base::SocketAddress>& current, int type) {
  for (const base::SocketAddress& addr : next) {
    if (std::find(current.begin(), current.end(), addr) == current.end()) {
      RETURN_IF_ERROR(net::CheckAddressFree(addr, type));
    }
  }
  return absl::OkStatus();
}

std::string Addresses(const std::vector<base::SocketAddress>& addrs) {
  std::vector<std::string> text;
  for (const base::SocketAddress& a : addrs) {
    text.push_back(a.ToString());
  }
  return absl::StrJoin(text, " ");
}

}  // namespace

absl::StatusOr<std::shared_ptr<const config::Config>> LoadReloadedConfig(
    const std::string& path, const config::Config& current, upstream::ServerIds* ids) {
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
  // An address this process does not serve yet must be free: SO_REUSEPORT would otherwise share
  // it silently with whatever holds it.
  RETURN_IF_ERROR(CheckNewAddressesFree(config::ListenAddresses(next.listener.udp),
                                        config::ListenAddresses(current.listener.udp), SOCK_DGRAM));
  if (next.listener.tcp.enabled) {
    RETURN_IF_ERROR(CheckNewAddressesFree(
        config::ListenAddresses(next.listener.tcp),
        current.listener.tcp.enabled ? config::ListenAddresses(current.listener.tcp)
                                     : std::vector<base::SocketAddress>{},
        SOCK_STREAM));
  }
  if (next.server.workers != current.server.workers) {
    LOG(kWarn, "%s: server.workers changes only with a restart; keeping %u", path,
        current.server.workers);
    next.server.workers = current.server.workers;
  }
  ids->Assign(&next.upstream);
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
  const std::string udp_before = Addresses(config::ListenAddresses(before.listener.udp));
  const std::string udp_after = Addresses(config::ListenAddresses(after.listener.udp));
  const std::string tcp_before =
      before.listener.tcp.enabled ? Addresses(config::ListenAddresses(before.listener.tcp)) : "off";
  const std::string tcp_after =
      after.listener.tcp.enabled ? Addresses(config::ListenAddresses(after.listener.tcp)) : "off";
  if (udp_before == udp_after && tcp_before == tcp_after) {
    absl::StrAppend(&line, "; listeners: unchanged");
  } else {
    absl::StrAppend(&line, "; listeners: udp ", udp_after, ", tcp ", tcp_after);
  }
  return line;
}

}  // namespace dotproxy
