#include "config/load_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/status_macros.h"
#include "base/unique_fd.h"
#include "config/schema.h"
#include "config/yaml_document.h"

namespace dotproxy::config {
namespace {

using schema::AddressKind;
using schema::ChildPath;
using schema::ErrnoText;
using schema::IndexPath;
using schema::Key;
using schema::Locations;
using schema::Section;
using schema::SectionOf;
using schema::Walker;

// Limits that only the loader needs; the ones other modules rely on live in config.h.
constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr absl::Duration kMaxTimeout = absl::Hours(24);  // sanity cap on every timeout
constexpr absl::Duration kMaxQueryTimeout = absl::Hours(1);
constexpr int64_t kMaxTcpConnections = 1000000;
constexpr int64_t kMaxInflightPerClientConnection = 65535;
constexpr int64_t kAnyInt64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kAnyInt64Max = std::numeric_limits<int64_t>::max();

// Names as in the seed's README (plus LeastOutstanding); matched case-insensitively.
constexpr schema::EnumName<Policy> kPolicies[] = {
    {"RoundRobin", Policy::kRoundRobin},
    {"Random", Policy::kRandom},
    {"HistoricalConnections", Policy::kHistoricalConnections},
    {"Availability", Policy::kAvailability},
    {"Failover", Policy::kFailover},
    {"LeastOutstanding", Policy::kLeastOutstanding},
};

// The seed README's spelling of upstream.load_balancing_policy; accepted with a warning.
constexpr char kMisspeltPolicyKey[] = "load_balacing_policy";

// --- Checks run after a value is stored --------------------------------------------------------

absl::Status WarnSentryDsn(Walker& walker, const YamlNode& node, const std::string& path,
                           std::string& dsn) {
  if (!dsn.empty()) {
    walker.Warn(node.mark(), path, "accepted but unused: dotproxy does not report to Sentry");
  }
  return absl::OkStatus();
}

// As in the seed (aperture): 0 means "not set", i.e. send everything.
absl::Status ZeroRateMeansAll(Walker& /*walker*/, const YamlNode& /*node*/,
                              const std::string& /*path*/, double& rate) {
  if (rate == 0.0) {
    rate = 1.0;
  }
  return absl::OkStatus();
}

absl::Status WarnUdpTimeout(Walker& walker, const YamlNode& node, const std::string& path,
                            absl::Duration& timeout) {
  if (timeout != absl::ZeroDuration()) {
    walker.Warn(node.mark(), path, "has no effect on UDP (accepted for compatibility)");
  }
  return absl::OkStatus();
}

absl::Status WarnIgnoredCount(Walker& walker, const YamlNode& node, const std::string& path,
                              int64_t& count) {
  if (count != 0) {
    walker.Warn(node.mark(), path, "has no effect (accepted for compatibility)");
  }
  return absl::OkStatus();
}

absl::Status CheckServerName(Walker& walker, const YamlNode& node, const std::string& path,
                             std::string& name) {
  if (name.empty()) {
    return walker.Error(node.mark(), path, "must not be empty");
  }
  for (const char c : name) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) ||
        absl::ascii_iscntrl(static_cast<unsigned char>(c))) {
      return walker.Error(
          node.mark(), path,
          absl::StrCat("must not contain spaces or control characters, got ", schema::Quote(name)));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseServerAddr(Walker& walker, const YamlNode& node, const std::string& path,
                             ServerConfig& server) {
  ASSIGN_OR_RETURN(server.addr, schema::ResolveHostPort(walker, node, path, &server.addr_text));
  return absl::OkStatus();
}

// --- The tables: one Key per accepted key, in the order "unknown key" lists them -----------------
// Defaults are the member initialisers in config.h; a key that is absent leaves its field alone.

using schema::Address;
using schema::Custom;
using schema::Duration;
using schema::Enum;
using schema::Integer;
using schema::List;
using schema::Nested;
using schema::Number;
using schema::PositiveDuration;
using schema::String;

constexpr Key kApplicationKeys[] = {
    String<&ApplicationConfig::sentry_dsn, &WarnSentryDsn>("sentry_dsn"),
};
constexpr Section kApplication = SectionOf<ApplicationConfig>(kApplicationKeys);

constexpr Key kStatsdKeys[] = {
    Address<&StatsdConfig::addr>("addr", AddressKind::kStatsd).Required(),
    Number<&StatsdConfig::sample_rate, &ZeroRateMeansAll>("sample_rate", 0.0, 1.0),
};
constexpr Section kStatsd = SectionOf<StatsdConfig, &StatsdConfig::enabled>(kStatsdKeys);

constexpr Key kMetricsKeys[] = {
    Nested<&MetricsConfig::statsd>("statsd", kStatsd),
};
constexpr Section kMetrics = SectionOf<MetricsConfig>(kMetricsKeys);

using Tcp = TcpListenerConfig;
constexpr Key kTcpKeys[] = {
    Address<&Tcp::addr>("addr", AddressKind::kListener).Required(),
    Duration<&Tcp::read_timeout>("read_timeout", kMaxTimeout),
    Duration<&Tcp::write_timeout>("write_timeout", kMaxTimeout),
    Integer<&Tcp::max_connections>("max_connections", 1, kMaxTcpConnections),
    Integer<&Tcp::max_inflight_per_connection>("max_inflight_per_connection", 1,
                                               kMaxInflightPerClientConnection),
};
constexpr Section kTcp = SectionOf<Tcp, &Tcp::enabled>(kTcpKeys);

using Udp = UdpListenerConfig;
constexpr Key kUdpKeys[] = {
    Address<&Udp::addr>("addr", AddressKind::kListener).Required(),
    Duration<&Udp::read_timeout, &WarnUdpTimeout>("read_timeout", kMaxTimeout),
    Duration<&Udp::write_timeout, &WarnUdpTimeout>("write_timeout", kMaxTimeout),
    Integer<&Udp::max_concurrent_connections, &WarnIgnoredCount>("max_concurrent_connections",
                                                                 kAnyInt64Min, kAnyInt64Max),
};
constexpr Section kUdp = SectionOf<Udp>(kUdpKeys);

constexpr Key kListenerKeys[] = {
    Nested<&ListenerConfig::tcp>("tcp", kTcp),
    // The UDP listener is mandatory; report the innermost missing key.
    Nested<&ListenerConfig::udp>("udp", kUdp).Required("udp.addr"),
};
constexpr Section kListener = SectionOf<ListenerConfig>(kListenerKeys);

using Server = ServerConfig;
constexpr Key kServerKeys[] = {
    Custom<&ParseServerAddr>("addr").Required(),
    String<&Server::server_name, &CheckServerName>("server_name").Required(),
    Integer<&Server::connection_pool_size>("connection_pool_size", 1, kMaxPoolSize),
    Duration<&Server::connect_timeout>("connect_timeout", kMaxTimeout),
    Duration<&Server::handshake_timeout>("handshake_timeout", kMaxTimeout),
    Duration<&Server::read_timeout>("read_timeout", kMaxTimeout),
    Duration<&Server::write_timeout>("write_timeout", kMaxTimeout),
    Duration<&Server::stale_timeout>("stale_timeout", kMaxTimeout),
    String<&Server::ca_file, &schema::CheckReadableFile>("ca_file"),
    Integer<&Server::max_inflight>("max_inflight", 1, kMaxInflightPerConnection),
    Integer<&Server::weight>("weight", 1, kMaxWeight),
};
constexpr Section kServer = SectionOf<Server>(kServerKeys);

using Upstream = UpstreamConfig;
constexpr Key kUpstreamKeys[] = {
    Enum<&Upstream::load_balancing_policy, kPolicies>("load_balancing_policy", "policy")
        .Alias(kMisspeltPolicyKey),
    Integer<&Upstream::max_connection_retries>("max_connection_retries", 0, kMaxConnectionRetries),
    PositiveDuration<&Upstream::query_timeout>("query_timeout", kMaxQueryTimeout),
    PositiveDuration<&Upstream::backoff_initial>("backoff_initial", kMaxTimeout),
    PositiveDuration<&Upstream::backoff_max>("backoff_max", kMaxTimeout),
    List<&Upstream::servers>("servers", "server", kServer).Required(),
};
constexpr Section kUpstream = SectionOf<Upstream>(kUpstreamKeys);

constexpr Key kServerSectionKeys[] = {
    Integer<&ServerSection::workers>("workers", 0, kMaxWorkers),
};
constexpr Section kServerSection = SectionOf<ServerSection>(kServerSectionKeys);

constexpr Key kConfigKeys[] = {
    Nested<&Config::application>("application", kApplication),
    Nested<&Config::metrics>("metrics", kMetrics),
    Nested<&Config::listener>("listener", kListener).Required(),
    Nested<&Config::upstream>("upstream", kUpstream).Required(),
    Nested<&Config::server>("server", kServerSection),
};
constexpr Section kConfig = SectionOf<Config>(kConfigKeys);

// Cross-field rules, and the invariants a hand-built Config must also meet. `locations` (may be
// null) adds LINE:COL to messages when the Config came from a file.
absl::Status ValidateImpl(const Config& config, absl::string_view filename,
                          const Locations* locations) {
  auto error = [&](absl::string_view path, absl::string_view problem) {
    if (locations != nullptr) {
      const auto it = locations->find(std::string(path));
      if (it != locations->end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            filename, ":", it->second.line, ":", it->second.column, ": ", path, ": ", problem));
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(filename, ": ", path, ": ", problem));
  };
  if (!config.listener.udp.addr.is_valid() || config.listener.udp.addr.port() == 0) {
    return error("listener.udp.addr", "must be set to a.b.c.d:port or [ipv6]:port");
  }
  if (config.listener.tcp.enabled &&
      (!config.listener.tcp.addr.is_valid() || config.listener.tcp.addr.port() == 0)) {
    return error("listener.tcp.addr", "must be set to a.b.c.d:port or [ipv6]:port");
  }
  if (config.metrics.statsd.enabled &&
      (!config.metrics.statsd.addr.is_valid() || config.metrics.statsd.addr.port() == 0)) {
    return error("metrics.statsd.addr", "must be set when metrics.statsd is present");
  }
  if (config.metrics.statsd.enabled &&
      !(config.metrics.statsd.sample_rate > 0.0 && config.metrics.statsd.sample_rate <= 1.0)) {
    return error("metrics.statsd.sample_rate", "must be in (0, 1]");
  }
  if (config.upstream.servers.empty()) {
    return error("upstream.servers", "must list at least one server");
  }
  if (config.upstream.max_connection_retries > kMaxConnectionRetries) {
    return error("upstream.max_connection_retries",
                 absl::StrCat("must be in 0..", kMaxConnectionRetries));
  }
  if (config.upstream.query_timeout <= absl::ZeroDuration()) {
    return error("upstream.query_timeout", "must be greater than 0s");
  }
  if (config.upstream.backoff_initial <= absl::ZeroDuration()) {
    return error("upstream.backoff_initial", "must be greater than 0s");
  }
  if (config.upstream.backoff_max < config.upstream.backoff_initial) {
    return error("upstream.backoff_max", "must not be less than upstream.backoff_initial");
  }
  if (config.server.workers > kMaxWorkers) {
    return error("server.workers", absl::StrCat("must be in 0..", kMaxWorkers));
  }
  const std::vector<ServerConfig>& servers = config.upstream.servers;
  for (size_t i = 0; i < servers.size(); ++i) {
    const ServerConfig& server = servers[i];
    const std::string path = IndexPath("upstream.servers", i);
    if (!server.addr.is_valid() || server.addr.port() == 0) {
      return error(ChildPath(path, "addr"), "must be set to host:port");
    }
    if (server.server_name.empty()) {
      return error(ChildPath(path, "server_name"), "must not be empty");
    }
    if (server.connection_pool_size < 1 || server.connection_pool_size > kMaxPoolSize) {
      return error(ChildPath(path, "connection_pool_size"),
                   absl::StrCat("must be in 1..", kMaxPoolSize));
    }
    if (server.max_inflight < 1 || server.max_inflight > kMaxInflightPerConnection) {
      return error(ChildPath(path, "max_inflight"),
                   absl::StrCat("must be in 1..", kMaxInflightPerConnection));
    }
    // TLS upstreams are reached over TCP, so only the TCP listener can loop back to us.
    if (config.listener.tcp.enabled && server.addr == config.listener.tcp.addr) {
      return error(ChildPath(path, "addr"),
                   absl::StrCat("equals listener.tcp.addr ", config.listener.tcp.addr.ToString(),
                                "; the proxy would forward to itself"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (servers[j].addr == server.addr && servers[j].server_name == server.server_name) {
        return error(path, absl::StrCat("same addr and server_name as upstream.servers[", j,
                                        "]; list each server once"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool ParsePolicyName(std::string_view name, Policy* policy) {
  return schema::LookupName(kPolicies, absl::string_view(name.data(), name.size()), policy);
}

const char* PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kRoundRobin:
      return "RoundRobin";
    case Policy::kRandom:
      return "Random";
    case Policy::kHistoricalConnections:
      return "HistoricalConnections";
    case Policy::kAvailability:
      return "Availability";
    case Policy::kFailover:
      return "Failover";
    case Policy::kLeastOutstanding:
      return "LeastOutstanding";
  }
  return "Unknown";
}

std::vector<std::string> AcceptedKeyPaths() {
  std::vector<std::string> paths;
  schema::AppendKeyPaths(kConfig, "", &paths);
  return paths;
}

absl::Status Validate(const Config& config, std::string_view filename) {
  return ValidateImpl(config, absl::string_view(filename.data(), filename.size()), nullptr);
}

absl::StatusOr<Config> LoadConfigFromString(std::string_view text, std::string_view filename_in,
                                            std::vector<std::string>* warnings) {
  const absl::string_view filename(filename_in.data(), filename_in.size());
  ASSIGN_OR_RETURN(const YamlDocument document, YamlDocument::Parse(text, filename_in));
  Walker walker(filename, warnings);
  Config config;
  RETURN_IF_ERROR(walker.WalkDocument(kConfig, document.root(), &config));
  RETURN_IF_ERROR(ValidateImpl(config, filename, &walker.locations()));
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path, std::vector<std::string>* warnings) {
  base::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.is_valid()) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot read: ", ErrnoText(errno)));
  }
  std::string text;
  char buffer[16384];
  for (;;) {
    const ssize_t n = read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return absl::NotFoundError(absl::StrCat(path, ": cannot read: ", ErrnoText(errno)));
    }
    if (n == 0) {
      break;
    }
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxConfigBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":1:1: configuration larger than ", kMaxConfigBytes, " bytes"));
    }
  }
  return LoadConfigFromString(text, path, warnings);
}

}  // namespace dotproxy::config
