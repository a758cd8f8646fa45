#include "config/load_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/ip_prefix.h"
#include "base/status_macros.h"
#include "base/unique_fd.h"
#include "config/schema.h"
#include "config/statsd_addr.h"
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
constexpr absl::Duration kMaxFlushInterval = absl::Hours(1);
constexpr int64_t kMaxTcpConnections = 1000000;
constexpr int64_t kMaxInflightPerClientConnection = 65535;
constexpr absl::Duration kMaxShutdownGrace = absl::Minutes(10);
constexpr absl::Duration kMaxBusyPoll = absl::Milliseconds(10);
constexpr int64_t kMaxRateLimitQps = 10000000;
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

constexpr schema::EnumName<StatsdTagFormat> kTagFormats[] = {
    {"influx", StatsdTagFormat::kInflux},
    {"dogstatsd", StatsdTagFormat::kDogStatsd},
};

constexpr schema::EnumName<RateLimitAction> kRateLimitActions[] = {
    {"drop", RateLimitAction::kDrop},
    {"refuse", RateLimitAction::kRefuse},
};

constexpr schema::EnumName<Ktls> kKtlsModes[] = {
    {"off", Ktls::kOff},
    {"auto", Ktls::kAuto},
    {"on", Ktls::kOn},
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

// Every form the Go original took: udp:// tcp:// unix:// file://, a comma list, or a bare h:p.
absl::Status ParseStatsdTargets(Walker& walker, const YamlNode& node, const std::string& path,
                                StatsdConfig& statsd) {
  if (!node.is_scalar() || node.is_null()) {
    return walker.Error(node.mark(), path, "expected an address like \"udp://a.b.c.d:port\"");
  }
  absl::StatusOr<std::vector<StatsdTarget>> targets = ParseStatsdAddr(node.scalar());
  if (!targets.ok()) {
    return walker.Error(node.mark(), path, targets.status().message());
  }
  statsd.addr = node.scalar();
  statsd.targets = *std::move(targets);
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

absl::Status ParseAllow(Walker& walker, const YamlNode& node, const std::string& path,
                        ListenerConfig& listener) {
  if (!node.is_sequence()) {
    return walker.Error(node.mark(), path,
                        absl::StrCat("expected a list of CIDRs, got ", node.KindName()));
  }
  listener.allow.clear();
  for (size_t i = 0; i < node.items().size(); ++i) {
    const YamlNode& item = *node.items()[i];
    const std::string item_path = IndexPath(path, i);
    if (!item.is_scalar() || item.is_null()) {
      return walker.Error(item.mark(), item_path, "expected a CIDR such as 10.0.0.0/8");
    }
    if (absl::Status status = base::IpPrefix::Parse(item.scalar()).status(); !status.ok()) {
      return walker.Error(item.mark(), item_path, status.message());
    }
    listener.allow.push_back(item.scalar());
  }
  if (listener.allow.empty()) {
    walker.Warn(node.mark(), path, "is empty: every client is refused");
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

// A user name for getpwnam(3) at start-up; the account itself is looked up then, not here.
absl::Status CheckUserName(Walker& walker, const YamlNode& node, const std::string& path,
                           std::string& user) {
  if (user.empty()) {
    return absl::OkStatus();
  }
  if (user == "root") {
    return walker.Error(node.mark(), path, "must name an unprivileged user, got \"root\"");
  }
  for (const char c : user) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) ||
        absl::ascii_iscntrl(static_cast<unsigned char>(c)) || c == ':' || c == '/') {
      return walker.Error(node.mark(), path,
                          absl::StrCat("expected a user name, got ", schema::Quote(user)));
    }
  }
  return absl::OkStatus();
}

// listener.{udp,tcp}.addr: one address or a list; `addr` keeps the first for single-address code.
template <typename Listener>
absl::Status ParseListenAddrs(Walker& walker, const YamlNode& node, const std::string& path,
                              Listener& listener) {
  ASSIGN_OR_RETURN(listener.addrs, schema::ReadListenerAddresses(walker, node, path));
  listener.addr = listener.addrs.front();
  return absl::OkStatus();
}

absl::Status ParseServerAddr(Walker& walker, const YamlNode& node, const std::string& path,
                             ServerConfig& server) {
  ASSIGN_OR_RETURN(server.addr, schema::ResolveHostPort(walker, node, path, &server.addr_text));
  return absl::OkStatus();
}

// upstream.servers[].spki_pins: a sequence of base64 SHA-256 digests of a SubjectPublicKeyInfo
// (RFC 7858 §4.2, the RFC 7469 pin-sha256 form), stored decoded (32 bytes each).
absl::Status ParseSpkiPins(Walker& walker, const YamlNode& node, const std::string& path,
                           ServerConfig& server) {
  if (!node.is_sequence()) {
    return walker.Error(node.mark(), path,
                        absl::StrCat("expected a sequence of base64 SHA-256 pins, got ",
                                     node.KindName()));
  }
  server.spki_pins.clear();
  for (size_t i = 0; i < node.items().size(); ++i) {
    const YamlNode& item = *node.items()[i];
    const std::string item_path = absl::StrCat(path, "[", i, "]");
    std::string digest;
    if (!item.is_scalar() || !absl::Base64Unescape(item.scalar(), &digest) ||
        digest.size() != kSpkiPinBytes) {
      return walker.Error(item.mark(), item_path,
                          absl::StrCat("expected the base64 of a 32-byte SHA-256 digest, got ",
                                       schema::Quote(item.scalar())));
    }
    server.spki_pins.push_back(std::move(digest));
  }
  return absl::OkStatus();
}

// --- The tables: one Key per accepted key, in the order "unknown key" lists them -----------------
// Defaults are the member initialisers in config.h; a key that is absent leaves its field alone.

using schema::Address;
using schema::Bool;
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
    Custom<&ParseStatsdTargets>("addr").Required(),
    Number<&StatsdConfig::sample_rate, &ZeroRateMeansAll>("sample_rate", 0.0, 1.0),
    Enum<&StatsdConfig::tag_format, kTagFormats>("tag_format", "tag format"),
};
constexpr Section kStatsd = SectionOf<StatsdConfig, &StatsdConfig::enabled>(kStatsdKeys);

constexpr Key kPrometheusKeys[] = {
    Address<&PrometheusConfig::addr>("addr", AddressKind::kListener).Required(),
};
constexpr Section kPrometheus =
    SectionOf<PrometheusConfig, &PrometheusConfig::enabled>(kPrometheusKeys);

constexpr Key kMetricsKeys[] = {
    PositiveDuration<&MetricsConfig::flush_interval>("flush_interval", kMaxFlushInterval),
    Nested<&MetricsConfig::statsd>("statsd", kStatsd),
    Nested<&MetricsConfig::prometheus>("prometheus", kPrometheus),
};
constexpr Section kMetrics = SectionOf<MetricsConfig>(kMetricsKeys);

using Tcp = TcpListenerConfig;
constexpr Key kTcpKeys[] = {
    Custom<&ParseListenAddrs<Tcp>>("addr").Required(),
    Duration<&Tcp::read_timeout>("read_timeout", kMaxTimeout),
    Duration<&Tcp::write_timeout>("write_timeout", kMaxTimeout),
    Integer<&Tcp::max_connections>("max_connections", 1, kMaxTcpConnections),
    Integer<&Tcp::max_inflight_per_connection>("max_inflight_per_connection", 1,
                                               kMaxInflightPerClientConnection),
};
constexpr Section kTcp = SectionOf<Tcp, &Tcp::enabled>(kTcpKeys);

using Udp = UdpListenerConfig;
constexpr Key kUdpKeys[] = {
    Custom<&ParseListenAddrs<Udp>>("addr").Required(),
    Duration<&Udp::read_timeout, &WarnUdpTimeout>("read_timeout", kMaxTimeout),
    Duration<&Udp::write_timeout, &WarnUdpTimeout>("write_timeout", kMaxTimeout),
    Integer<&Udp::max_concurrent_connections, &WarnIgnoredCount>("max_concurrent_connections",
                                                                 kAnyInt64Min, kAnyInt64Max),
    Integer<&Udp::max_answer_size>("max_answer_size", 512, 65507),
};
constexpr Section kUdp = SectionOf<Udp>(kUdpKeys);

using RateLimit = RateLimitConfig;
constexpr Key kRateLimitKeys[] = {
    Integer<&RateLimit::qps>("qps", 1, kMaxRateLimitQps).Required(),
    Integer<&RateLimit::burst>("burst", 0, kMaxRateLimitQps),
    Enum<&RateLimit::action, kRateLimitActions>("action", "action"),
};
constexpr Section kRateLimit = SectionOf<RateLimit, &RateLimit::enabled>(kRateLimitKeys);

constexpr Key kListenerKeys[] = {
    Nested<&ListenerConfig::tcp>("tcp", kTcp),
    // The UDP listener is mandatory; report the innermost missing key.
    Nested<&ListenerConfig::udp>("udp", kUdp).Required("udp.addr"),
    Bool<&ListenerConfig::freebind>("freebind"),
    Custom<&ParseAllow>("allow"),
    Nested<&ListenerConfig::rate_limit>("rate_limit", kRateLimit),
    Integer<&ListenerConfig::max_queries_per_client>("max_queries_per_client", 1,
                                                     kQuerySlotsPerShard),
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
    Bool<&Server::edns_padding>("edns_padding"),
    Custom<&ParseSpkiPins>("spki_pins"),
    Enum<&Server::ktls, kKtlsModes>("ktls", "ktls mode"),
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
    Enum<&Upstream::ktls, kKtlsModes>("ktls", "ktls mode"),
    List<&Upstream::servers>("servers", "server", kServer).Required(),
};
constexpr Section kUpstream = SectionOf<Upstream>(kUpstreamKeys);

constexpr Key kServerSectionKeys[] = {
    Integer<&ServerSection::workers>("workers", 0, kMaxWorkers),
    Duration<&ServerSection::shutdown_grace>("shutdown_grace", kMaxShutdownGrace),
    Duration<&ServerSection::busy_poll>("busy_poll", kMaxBusyPoll),
    String<&ServerSection::user, &CheckUserName>("user"),
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
  const std::vector<base::SocketAddress> udp_addrs = ListenAddresses(config.listener.udp);
  const std::vector<base::SocketAddress> tcp_addrs = ListenAddresses(config.listener.tcp);
  for (const base::SocketAddress& addr : udp_addrs) {
    if (!addr.is_valid() || addr.port() == 0) {
      return error("listener.udp.addr", "must be set to a.b.c.d:port or [ipv6]:port");
    }
  }
  for (const base::SocketAddress& addr : tcp_addrs) {
    if (config.listener.tcp.enabled && (!addr.is_valid() || addr.port() == 0)) {
      return error("listener.tcp.addr", "must be set to a.b.c.d:port or [ipv6]:port");
    }
  }
  if (config.metrics.statsd.enabled && config.metrics.statsd.targets.empty()) {
    return error("metrics.statsd.addr", "must be set when metrics.statsd is present");
  }
  if (config.metrics.prometheus.enabled &&
      (!config.metrics.prometheus.addr.is_valid() || config.metrics.prometheus.addr.port() == 0)) {
    return error("metrics.prometheus.addr", "must be set when metrics.prometheus is present");
  }
  if (config.metrics.flush_interval <= absl::ZeroDuration()) {
    return error("metrics.flush_interval", "must be greater than 0s");
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
  if (config.listener.rate_limit.enabled && config.listener.rate_limit.qps == 0) {
    return error("listener.rate_limit.qps", "must be set when listener.rate_limit is present");
  }
  if (config.listener.max_queries_per_client < 1 ||
      config.listener.max_queries_per_client > kQuerySlotsPerShard) {
    return error("listener.max_queries_per_client",
                 absl::StrCat("must be in 1..", kQuerySlotsPerShard));
  }
  for (size_t i = 0; i < config.listener.allow.size(); ++i) {
    if (absl::Status status = base::IpPrefix::Parse(config.listener.allow[i]).status();
        !status.ok()) {
      return error(IndexPath("listener.allow", i), status.message());
    }
  }
  if (config.server.workers > kMaxWorkers) {
    return error("server.workers", absl::StrCat("must be in 0..", kMaxWorkers));
  }
  if (config.server.shutdown_grace < absl::ZeroDuration() ||
      config.server.shutdown_grace > kMaxShutdownGrace) {
    return error("server.shutdown_grace",
                 absl::StrCat("must be in 0s..", absl::FormatDuration(kMaxShutdownGrace)));
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
    for (const base::SocketAddress& listen : tcp_addrs) {
      if (config.listener.tcp.enabled && server.addr == listen) {
        return error(ChildPath(path, "addr"),
                     absl::StrCat("equals listener.tcp.addr ", listen.ToString(),
                                  "; the proxy would forward to itself"));
      }
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
  for (size_t i = 0; i < config.upstream.servers.size(); ++i) {
    ServerConfig& server = config.upstream.servers[i];
    server.ktls = EffectiveKtls(config.upstream, server);
    server.metrics_id = static_cast<uint32_t>(i);
  }
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

std::string ServerIdentity(const ServerConfig& server) {
  return absl::StrCat(server.addr.ToString(), "|", server.server_name, "|", server.ca_file, "|",
                      absl::StrJoin(server.spki_pins, ","), "|ktls=",
                      static_cast<int>(server.ktls));
}

}  // namespace dotproxy::config
