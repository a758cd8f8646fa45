// File: config/statsd_addr.h
//
// metrics.statsd.addr as the Go original (aperture) took it: udp://h:p, tcp://h:p, unix:///path,
// file:///path, or several of them separated by commas (fan-out to all). A bare h:p is UDP.
// Hosts are numeric (a.b.c.d or [v6]); paths are absolute.
#ifndef DOTPROXY_CONFIG_STATSD_ADDR_H_
#define DOTPROXY_CONFIG_STATSD_ADDR_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config/config.h"

namespace dotproxy::config {

// The targets in `text`, in order; InvalidArgument naming the bad item otherwise (no location:
// the loader adds it).
absl::StatusOr<std::vector<StatsdTarget>> ParseStatsdAddr(absl::string_view text);

// "udp://127.0.0.1:8125", "unix:///run/statsd.sock"...: a target written back, for messages.
std::string StatsdTargetName(const StatsdTarget& target);

}  // namespace dotproxy::config

#endif  // DOTPROXY_CONFIG_STATSD_ADDR_H_
