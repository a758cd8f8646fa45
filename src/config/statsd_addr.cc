#include "config/statsd_addr.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dotproxy::config {
namespace {

constexpr char kForms[] =
    "use udp://host:port, tcp://host:port, unix:///path, file:///path or host:port";

// The file's raw text is escaped: a quoted YAML value may hold newlines, and an error is one line.
absl::Status Bad(absl::string_view item, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("\"", absl::CEscape(item), "\": ", problem));
}

absl::StatusOr<StatsdTarget> ParseOne(absl::string_view item) {
  StatsdTarget target;
  absl::string_view rest = item;
  const size_t scheme_end = rest.find("://");
  if (scheme_end != absl::string_view::npos) {
    const std::string scheme = absl::AsciiStrToLower(rest.substr(0, scheme_end));
    rest.remove_prefix(scheme_end + 3);
    if (scheme == "udp") {
      target.kind = StatsdTarget::Kind::kUdp;
    } else if (scheme == "tcp") {
      target.kind = StatsdTarget::Kind::kTcp;
    } else if (scheme == "unix" || scheme == "file") {
      target.kind = scheme == "unix" ? StatsdTarget::Kind::kUnix : StatsdTarget::Kind::kFile;
      if (!absl::StartsWith(rest, "/") || rest.size() < 2) {
        return Bad(item, absl::StrCat("expected an absolute path after ", scheme, "://, as in ",
                                      scheme, ":///run/statsd"));
      }
      // sockaddr_un::sun_path holds 107 characters and a NUL.
      if (target.kind == StatsdTarget::Kind::kUnix && rest.size() > 107) {
        return Bad(item, "a unix socket path is at most 107 characters");
      }
      target.path = std::string(rest);
      return target;
    } else {
      return Bad(item, absl::StrCat("unknown scheme \"", absl::CEscape(scheme), "\"; ", kForms));
    }
  }
  absl::StatusOr<base::SocketAddress> addr = base::SocketAddress::Parse(std::string(rest));
  if (!addr.ok()) {
    return Bad(item, absl::StrCat(addr.status().message(), "; ", kForms,
                                  " (hosts are numeric: a.b.c.d or [ipv6])"));
  }
  if (addr->port() == 0) {
    return Bad(item, "port must be in 1..65535");
  }
  target.addr = *addr;
  return target;
}

}  // namespace

absl::StatusOr<std::vector<StatsdTarget>> ParseStatsdAddr(absl::string_view text) {
  std::vector<StatsdTarget> targets;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) {
      return absl::InvalidArgumentError(
          text.empty() ? absl::StrCat("must not be empty; ", kForms)
                       : absl::StrCat("empty item in the comma-separated list \"",
                                      absl::CEscape(text), "\""));
    }
    absl::StatusOr<StatsdTarget> target = ParseOne(item);
    if (!target.ok()) {
      return target.status();
    }
    targets.push_back(*std::move(target));
  }
  return targets;
}

std::string StatsdTargetName(const StatsdTarget& target) {
  switch (target.kind) {
    case StatsdTarget::Kind::kUdp:
      return absl::StrCat("udp://", target.addr.ToString());
    case StatsdTarget::Kind::kTcp:
      return absl::StrCat("tcp://", target.addr.ToString());
    case StatsdTarget::Kind::kUnix:
      return absl::StrCat("unix://", target.path);
    case StatsdTarget::Kind::kFile:
      return absl::StrCat("file://", target.path);
  }
  return "?";
}

}  // namespace dotproxy::config
