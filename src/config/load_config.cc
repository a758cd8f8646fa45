#include "config/load_config.h"

#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/socket_address.h"
#include "base/status_macros.h"
#include "base/unique_fd.h"
#include "config/yaml_document.h"
#include <arpa/inet.h>
#include <sys/stat.h>

namespace dotproxy::config {
namespace {

// Limits that only the loader needs; the ones other modules rely on live in config.h.
constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr absl::Duration kMaxTimeout = absl::Hours(24);  // sanity cap on every timeout
constexpr absl::Duration kMaxQueryTimeout = absl::Hours(1);
constexpr int64_t kMaxTcpConnections = 1000000;
constexpr int64_t kMaxInflightPerClientConnection = 65535;

struct PolicyEntry {
  absl::string_view name;
  Policy policy;
};

// Names as in the seed's README (plus LeastOutstanding); matched case-insensitively.
constexpr PolicyEntry kPolicies[] = {
    {"RoundRobin", Policy::kRoundRobin},
    {"Random", Policy::kRandom},
    {"HistoricalConnections", Policy::kHistoricalConnections},
    {"Availability", Policy::kAvailability},
    {"Failover", Policy::kFailover},
    {"LeastOutstanding", Policy::kLeastOutstanding},
};

// The seed README's spelling of upstream.load_balancing_policy; accepted with a warning.
constexpr char kMisspeltPolicyKey[] = "load_balacing_policy";

using KeyList = std::initializer_list<absl::string_view>;
constexpr KeyList kTopKeys = {"application", "metrics", "listener", "upstream", "server"};
constexpr KeyList kApplicationKeys = {"sentry_dsn"};
constexpr KeyList kMetricsKeys = {"statsd"};
constexpr KeyList kStatsdKeys = {"addr", "sample_rate"};
constexpr KeyList kListenerKeys = {"tcp", "udp"};
constexpr KeyList kTcpKeys = {"addr", "read_timeout", "write_timeout", "max_connections",
                              "max_inflight_per_connection"};
constexpr KeyList kUdpKeys = {"addr", "read_timeout", "write_timeout",
                              "max_concurrent_connections"};
constexpr KeyList kUpstreamKeys = {"load_balancing_policy", "max_connection_retries",
                                   "query_timeout", "backoff_initial", "backoff_max", "servers"};
constexpr KeyList kServerKeys = {
    "addr",         "server_name",   "connection_pool_size", "connect_timeout", "handshake_timeout",
    "read_timeout", "write_timeout", "stale_timeout",        "ca_file",         "max_inflight",
    "weight"};
constexpr KeyList kServerSectionKeys = {"workers"};

// Key path -> position of its value, so Validate() can point at the offending node.
using Locations = std::map<std::string, YamlMark>;

std::string ChildPath(absl::string_view parent, absl::string_view key) {
  return parent.empty() ? std::string(key) : absl::StrCat(parent, ".", key);
}

std::string IndexPath(absl::string_view parent, size_t index) {
  return absl::StrCat(parent, "[", index, "]");
}

std::string Quote(absl::string_view text) {
  constexpr size_t kMaxQuoted = 64;
  if (text.size() > kMaxQuoted) {
    return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMaxQuoted)), "...\"");
  }
  return absl::StrCat("\"", absl::CHexEscape(text), "\"");
}

// What a node is, for "expected X, got Y" messages.
std::string Describe(const YamlNode& node) {
  if (node.is_null()) {
    return "an empty value";
  }
  if (node.is_scalar()) {
    return Quote(node.scalar());
  }
  return std::string(node.KindName());
}

std::string ErrnoText(int error) {
  char buffer[256];
  // GNU strerror_r: returns a pointer to the message, which may or may not be `buffer`.
  return strerror_r(error, buffer, sizeof(buffer));
}

bool IsDecimalInteger(absl::string_view text) {
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    text.remove_prefix(1);
  }
  return !text.empty() && text.find_first_not_of("0123456789") == absl::string_view::npos;
}

// RFC 1123 host name: dot-separated labels of letters, digits and hyphens (underscores are
// tolerated because some resolvers serve them), at most 253 characters.
bool IsValidHostName(absl::string_view host) {
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  if (host.empty() || host.size() > 253) {
    return false;
  }
  size_t label_length = 0;
  for (const char c : host) {
    if (c == '.') {
      if (label_length == 0) {
        return false;
      }
      label_length = 0;
      continue;
    }
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return false;
    }
    if (++label_length > 63) {
      return false;
    }
  }
  return label_length > 0;
}

std::string PolicyList() {
  std::string out;
  for (const PolicyEntry& entry : kPolicies) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", entry.name);
  }
  return out;
}

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};

// Maps the YAML tree onto Config. Every error names the key path and the node's position; the
// first error stops loading.
class Loader {
 public:
  Loader(absl::string_view filename, std::vector<std::string>* warnings)
      : filename_(filename), warnings_(warnings) {}

  absl::StatusOr<Config> Load(const YamlNode* root);

  const Locations& locations() const { return locations_; }

 private:
  absl::Status Error(YamlMark mark, absl::string_view path, absl::string_view problem) const;
  void Warn(YamlMark mark, absl::string_view path, absl::string_view problem);
  absl::Status Missing(const YamlNode& parent, absl::string_view path) const {
    return Error(parent.mark(), path, "missing required key");
  }
  absl::Status UnknownKey(const YamlMapEntry& entry, absl::string_view path, KeyList allowed) const;

  // A mapping or a null value (an empty section, treated as an empty mapping).
  absl::Status ExpectMapping(const YamlNode& node, absl::string_view path) const;
  // The text of a scalar node; `what` names the expected type in the error.
  absl::StatusOr<const std::string*> ScalarText(const YamlNode& node, absl::string_view path,
                                                absl::string_view what) const;
  absl::StatusOr<std::string> GetString(const YamlNode& node, absl::string_view path) const;
  absl::StatusOr<int64_t> GetInteger(const YamlNode& node, absl::string_view path, int64_t min,
                                     int64_t max) const;
  absl::StatusOr<double> GetNumber(const YamlNode& node, absl::string_view path, double min,
                                   double max) const;
  // A Go-style duration ("250ms", "1m30s") in [0, max], or (0, max] when !allow_zero.
  absl::StatusOr<absl::Duration> GetDuration(const YamlNode& node, absl::string_view path,
                                             bool allow_zero, absl::Duration max) const;
  // "a.b.c.d:port" or "[v6]:port" with port 1..65535; `kind` names the address in hints.
  absl::StatusOr<base::SocketAddress> ParseNumericAddress(const YamlNode& node,
                                                          absl::string_view path,
                                                          absl::string_view text,
                                                          absl::string_view kind) const;
  absl::StatusOr<base::SocketAddress> GetListenerAddress(const YamlNode& node,
                                                         absl::string_view path) const;
  absl::StatusOr<base::SocketAddress> GetStatsdAddress(const YamlNode& node,
                                                       absl::string_view path) const;
  absl::StatusOr<base::SocketAddress> GetUpstreamAddress(const YamlNode& node,
                                                         absl::string_view path,
                                                         std::string* text) const;
  absl::StatusOr<std::string> GetReadableFile(const YamlNode& node, absl::string_view path) const;

  absl::Status LoadApplication(const YamlNode& node, absl::string_view path,
                               ApplicationConfig* out);
  absl::Status LoadMetrics(const YamlNode& node, absl::string_view path, MetricsConfig* out);
  absl::Status LoadStatsd(const YamlNode& node, absl::string_view path, StatsdConfig* out);
  absl::Status LoadListener(const YamlNode& node, absl::string_view path, ListenerConfig* out);
  absl::Status LoadTcpListener(const YamlNode& node, absl::string_view path,
                               TcpListenerConfig* out);
  absl::Status LoadUdpListener(const YamlNode& node, absl::string_view path,
                               UdpListenerConfig* out);
  absl::Status LoadUpstream(const YamlNode& node, absl::string_view path, UpstreamConfig* out);
  absl::Status LoadServers(const YamlNode& node, absl::string_view path,
                           std::vector<ServerConfig>* out);
  absl::Status LoadServer(const YamlNode& node, absl::string_view path, ServerConfig* out);
  absl::Status LoadServerSection(const YamlNode& node, absl::string_view path, ServerSection* out);

  absl::string_view filename_;          // for messages only
  std::vector<std::string>* warnings_;  // may be null: warnings are dropped
  Locations locations_;                 // filled as keys are read
};

absl::Status Loader::Error(YamlMark mark, absl::string_view path, absl::string_view problem) const {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(filename_, ":", mark.line, ":", mark.column, ": ", problem));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(filename_, ":", mark.line, ":", mark.column, ": ", path, ": ", problem));
}

void Loader::Warn(YamlMark mark, absl::string_view path, absl::string_view problem) {
  if (warnings_ != nullptr) {
    warnings_->push_back(
        absl::StrCat(filename_, ":", mark.line, ":", mark.column, ": ", path, ": ", problem));
  }
}

absl::Status Loader::UnknownKey(const YamlMapEntry& entry, absl::string_view path,
                                KeyList allowed) const {
  return Error(entry.key_mark, path,
               absl::StrCat("unknown key (allowed: ", absl::StrJoin(allowed, ", "), ")"));
}

absl::Status Loader::ExpectMapping(const YamlNode& node, absl::string_view path) const {
  if (node.is_mapping() || node.is_null()) {
    return absl::OkStatus();
  }
  return Error(node.mark(), path, absl::StrCat("expected a mapping, got ", Describe(node)));
}

absl::StatusOr<const std::string*> Loader::ScalarText(const YamlNode& node, absl::string_view path,
                                                      absl::string_view what) const {
  if (!node.is_scalar() || node.is_null()) {
    return Error(node.mark(), path, absl::StrCat("expected ", what, ", got ", Describe(node)));
  }
  return &node.scalar();
}

absl::StatusOr<std::string> Loader::GetString(const YamlNode& node, absl::string_view path) const {
  if (node.is_null()) {
    return std::string();
  }
  ASSIGN_OR_RETURN(const std::string* text, ScalarText(node, path, "a string"));
  if (text->find('\0') != std::string::npos) {
    return Error(node.mark(), path, "must not contain NUL characters");
  }
  return *text;
}

absl::StatusOr<int64_t> Loader::GetInteger(const YamlNode& node, absl::string_view path,
                                           int64_t min, int64_t max) const {
  ASSIGN_OR_RETURN(const std::string* text, ScalarText(node, path, "an integer"));
  int64_t value = 0;
  if (!IsDecimalInteger(*text) || !absl::SimpleAtoi(*text, &value)) {
    return Error(node.mark(), path, absl::StrCat("expected an integer, got ", Quote(*text)));
  }
  if (value < min || value > max) {
    return Error(node.mark(), path, absl::StrCat("must be in ", min, "..", max, ", got ", value));
  }
  return value;
}

absl::StatusOr<double> Loader::GetNumber(const YamlNode& node, absl::string_view path, double min,
                                         double max) const {
  ASSIGN_OR_RETURN(const std::string* text, ScalarText(node, path, "a number"));
  double value = 0;
  if (!absl::SimpleAtod(*text, &value) || !std::isfinite(value)) {
    return Error(node.mark(), path, absl::StrCat("expected a number, got ", Quote(*text)));
  }
  if (value < min || value > max) {
    return Error(node.mark(), path, absl::StrCat("must be in ", min, "..", max, ", got ", *text));
  }
  return value;
}

absl::StatusOr<absl::Duration> Loader::GetDuration(const YamlNode& node, absl::string_view path,
                                                   bool allow_zero, absl::Duration max) const {
  constexpr absl::string_view kExpected = "a duration like \"5s\"";
  ASSIGN_OR_RETURN(const std::string* text, ScalarText(node, path, kExpected));
  absl::Duration value;
  // absl::ParseDuration also takes a bare "0" and "inf"; Go's time.ParseDuration, which the seed
  // used, takes "0" too, but a YAML integer never reached it. Require a unit and a finite value.
  const bool has_unit = text->find_first_of("nsumh") != std::string::npos;
  if (!has_unit || !absl::ParseDuration(*text, &value) || value == absl::InfiniteDuration() ||
      value == -absl::InfiniteDuration()) {
    return Error(node.mark(), path, absl::StrCat("expected ", kExpected, ", got ", Quote(*text)));
  }
  if (value < absl::ZeroDuration()) {
    return Error(node.mark(), path, absl::StrCat("must not be negative, got ", Quote(*text)));
  }
  if (!allow_zero && value == absl::ZeroDuration()) {
    return Error(node.mark(), path, absl::StrCat("must be greater than 0s, got ", Quote(*text)));
  }
  if (value > max) {
    return Error(
        node.mark(), path,
        absl::StrCat("must be at most ", absl::FormatDuration(max), ", got ", Quote(*text)));
  }
  return value;
}

absl::StatusOr<base::SocketAddress> Loader::ParseNumericAddress(const YamlNode& node,
                                                                absl::string_view path,
                                                                absl::string_view text,
                                                                absl::string_view kind) const {
  std::string host;
  uint16_t port = 0;
  // Port 0 is refused for listeners too: under SO_REUSEPORT every shard would get its own port.
  const absl::Status split = base::SocketAddress::SplitHostPort(std::string(text), &host, &port);
  if (!split.ok()) {
    return Error(node.mark(), path, split.message());
  }
  absl::StatusOr<base::SocketAddress> addr = base::SocketAddress::Parse(std::string(text));
  if (!addr.ok()) {
    return Error(node.mark(), path,
                 absl::StrCat(addr.status().message(), "; ", kind,
                              " addresses are numeric: a.b.c.d:port or [ipv6]:port"));
  }
  return addr;
}

absl::StatusOr<base::SocketAddress> Loader::GetListenerAddress(const YamlNode& node,
                                                               absl::string_view path) const {
  ASSIGN_OR_RETURN(const std::string* text,
                   ScalarText(node, path, "an address like \"a.b.c.d:port\""));
  return ParseNumericAddress(node, path, *text, "listener");
}

absl::StatusOr<base::SocketAddress> Loader::GetStatsdAddress(const YamlNode& node,
                                                             absl::string_view path) const {
  ASSIGN_OR_RETURN(const std::string* text,
                   ScalarText(node, path, "an address like \"udp://a.b.c.d:port\""));
  absl::string_view rest = *text;
  const size_t scheme_end = rest.find("://");
  if (scheme_end != absl::string_view::npos) {
    const absl::string_view scheme = rest.substr(0, scheme_end);
    if (!absl::EqualsIgnoreCase(scheme, "udp")) {
      return Error(node.mark(), path,
                   absl::StrCat("scheme ", Quote(scheme),
                                " is not supported; use udp://host:port or host:port"));
    }
    rest.remove_prefix(scheme_end + 3);
  }
  if (rest.find(',') != absl::string_view::npos) {
    return Error(node.mark(), path, "only one statsd address is supported");
  }
  return ParseNumericAddress(node, path, rest, "statsd");
}

absl::StatusOr<base::SocketAddress> Loader::GetUpstreamAddress(const YamlNode& node,
                                                               absl::string_view path,
                                                               std::string* text_out) const {
  ASSIGN_OR_RETURN(const std::string* text, ScalarText(node, path, "an address like \"host:853\""));
  std::string host;
  uint16_t port = 0;
  const absl::Status split = base::SocketAddress::SplitHostPort(*text, &host, &port);
  if (!split.ok()) {
    return Error(node.mark(), path, split.message());
  }
  *text_out = *text;
  in_addr ipv4;
  if (text->front() == '[' || inet_pton(AF_INET, host.c_str(), &ipv4) == 1) {
    absl::StatusOr<base::SocketAddress> addr = base::SocketAddress::Parse(*text);
    if (!addr.ok()) {
      return Error(node.mark(), path, addr.status().message());
    }
    return addr;
  }
  // getaddrinfo would take "1.2.3" as inet_aton shorthand; insist on a dotted quad.
  if (host.find_first_not_of("0123456789.") == std::string::npos) {
    return Error(node.mark(), path, absl::StrCat(Quote(host), " is not an IPv4 address"));
  }
  if (!IsValidHostName(host)) {
    return Error(node.mark(), path,
                 absl::StrCat(Quote(host), " is not an IPv4 address, [IPv6] address or host name"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* raw_result = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &raw_result);
  std::unique_ptr<addrinfo, AddrInfoDeleter> result(raw_result);
  if (rc != 0 || result == nullptr) {
    const std::string reason = rc == EAI_SYSTEM ? ErrnoText(errno) : gai_strerror(rc);
    return Error(node.mark(), path, absl::StrCat("cannot resolve ", Quote(host), ": ", reason));
  }
  base::SocketAddress addr = base::SocketAddress::FromSockaddr(result->ai_addr, result->ai_addrlen);
  addr.set_port(port);
  return addr;
}

absl::StatusOr<std::string> Loader::GetReadableFile(const YamlNode& node,
                                                    absl::string_view path) const {
  ASSIGN_OR_RETURN(std::string file, GetString(node, path));
  if (file.empty()) {
    return file;
  }
  base::UniqueFd fd(open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.is_valid()) {
    const int error = errno;
    return Error(node.mark(), path,
                 absl::StrCat("cannot read ", Quote(file), ": ", ErrnoText(error)));
  }
  struct stat info;
  if (fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return Error(node.mark(), path, absl::StrCat(Quote(file), " is not a regular file"));
  }
  return file;
}

absl::StatusOr<Config> Loader::Load(const YamlNode* root) {
  if (root == nullptr) {
    return Error(YamlMark{}, "", "empty configuration");
  }
  if (root->is_null()) {
    return Error(root->mark(), "", "empty configuration");
  }
  if (!root->is_mapping()) {
    return Error(root->mark(), "",
                 absl::StrCat("expected a mapping at the top level, got ", Describe(*root)));
  }
  Config config;
  bool has_listener = false;
  bool has_upstream = false;
  for (const YamlMapEntry& entry : root->entries()) {
    const YamlNode& value = *entry.value;
    const std::string& path = entry.key;
    locations_[path] = value.mark();
    if (entry.key == "application") {
      RETURN_IF_ERROR(LoadApplication(value, path, &config.application));
    } else if (entry.key == "metrics") {
      RETURN_IF_ERROR(LoadMetrics(value, path, &config.metrics));
    } else if (entry.key == "listener") {
      has_listener = true;
      RETURN_IF_ERROR(LoadListener(value, path, &config.listener));
    } else if (entry.key == "upstream") {
      has_upstream = true;
      RETURN_IF_ERROR(LoadUpstream(value, path, &config.upstream));
    } else if (entry.key == "server") {
      RETURN_IF_ERROR(LoadServerSection(value, path, &config.server));
    } else {
      return UnknownKey(entry, path, kTopKeys);
    }
  }
  if (!has_listener) {
    return Missing(*root, "listener");
  }
  if (!has_upstream) {
    return Missing(*root, "upstream");
  }
  return config;
}

absl::Status Loader::LoadApplication(const YamlNode& node, absl::string_view path,
                                     ApplicationConfig* out) {
  RETURN_IF_ERROR(ExpectMapping(node, path));
  for (const YamlMapEntry& entry : node.entries()) {
    const YamlNode& value = *entry.value;
    const std::string key_path = ChildPath(path, entry.key);
    locations_[key_path] = value.mark();
    if (entry.key == "sentry_dsn") {
      ASSIGN_OR_RETURN(out->sentry_dsn, GetString(value, key_path));
      if (!out->sentry_dsn.empty()) {
        Warn(value.mark(), key_path, "accepted but unused: dotproxy does not report to Sentry");
      }
    } else {
      return UnknownKey(entry, key_path, kApplicationKeys);
    }
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadMetrics(const YamlNode& node, absl::string_view path, MetricsConfig* out) {
  RETURN_IF_ERROR(ExpectMapping(node, path));
  for (const YamlMapEntry& entry : node.entries()) {
    const YamlNode& value = *entry.value;
    const std::string key_path = ChildPath(path, entry.key);
    locations_[key_path] = value.mark();
    if (entry.key == "statsd") {
      RETURN_IF_ERROR(LoadStatsd(value, key_path, &out->statsd));
    } else {
      return UnknownKey(entry, key_path, kMetricsKeys);
    }
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadStatsd(const YamlNode& node, absl::string_view path, StatsdConfig* out) {
  RETURN_IF_ERROR(ExpectMapping(node, path));
  out->enabled = true;
  bool has_addr = false;
  for (const YamlMapEntry& entry : node.entries()) {
    const YamlNode& value = *entry.value;
    const std::string key_path = ChildPath(path, entry.key);
    locations_[key_path] = value.mark();
    if (entry.key == "addr") {
      has_addr = true;
      ASSIGN_OR_RETURN(out->addr, GetStatsdAddress(value, key_path));
    } else if (entry.key == "sample_rate") {
      ASSIGN_OR_RETURN(out->sample_rate, GetNumber(value, key_path, 0.0, 1.0));
      // As in the seed (aperture): 0 means "not set", i.e. send everything.
      if (out->sample_rate == 0.0) {
        out->sample_rate = 1.0;
      }
    } else {
      return UnknownKey(entry, key_path, kStatsdKeys);
    }
  }
  if (!has_addr) {
    return Missing(node, ChildPath(path, "addr"));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadListener(const YamlNode& node, absl::string_view path,
                                  ListenerConfig* out) {
  RETURN_IF_ERROR(ExpectMapping(node, path));
  bool has_udp = false;
  for (const YamlMapEntry& entry : node.entries()) {
    const YamlNode& value = *entry.value;
    const std::string key_path = ChildPath(path, entry.key);
    locations_[key_path] = value.mark();
    if (entry.key == "tcp") {
      RETURN_IF_ERROR(LoadTcpListener(value, key_path, &out->tcp));
    } else if (entry.key == "udp") {
      has_udp = true;
      RETURN_IF_ERROR(LoadUdpListener(value, key_path, &out->udp));
    } else {
      return UnknownKey(entry, key_path, kListenerKeys);
    }
  }
  // The UDP listener is mandatory; report the innermost missing key.
  if (!has_udp) {
    return Missing(node, ChildPath(path, "udp.addr"));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadTcpListener(const YamlNode& node, absl::string_view path,
                                     TcpListenerConfig* out) {
  RETURN_IF_ERROR(ExpectMapping(node, path));
  out->enabled = true;
  bool has_addr = false;
  for (const YamlMapEntry& entry : node.entries()) {
    const YamlNode& value = *entry.value;
    const std::string key_path = ChildPath(path, entry.key);
    locations_[key_path] = value.mark();
    if (entry.key == "addr") {
      has_addr = true;
      ASSIGN_OR_RETURN(out->addr, GetListenerAddress(value, key_path));
    } else if (entry.key == "read_timeout") {
      ASSIGN_OR_RETURN(out->read_timeout, GetDuration(value, key_path, true, kMaxTimeout));
    } else if (entry.key == "write_timeout") {
      ASSIGN_OR_RETURN(out->write_timeout, GetDuration(value, key_path, true, kMaxTimeout));
    } else if (entry.key == "max_connections") {
      ASSIGN_OR_RETURN(const int64_t value_int, GetInteger(value, key_path, 1, kMaxTcpConnections));
      out->max_connections = static_cast<uint32_t>(value_int);
    } else if (entry.key == "max_inflight_per_connection") {
      ASSIGN_OR_RETURN(const int64_t value_int,
                       GetInteger(value, key_path, 1, kMaxInflightPerClientConnection));
      out->max_inflight_per_connection = static_cast<uint32_t>(value_int);
    } else {
      return UnknownKey(entry, key_path, kTcpKeys);
    }
  }
  if (!has_addr) {
    return Missing(node, ChildPath(path, "addr"));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadUdpListener(const YamlNode& node, absl::string_view path,
                                     UdpListenerConfig* out) {
  RETURN_IF_ERROR(ExpectMapping(node, path));
  bool has_addr = false;
  for (const YamlMapEntry& entry : node.entries()) {
    const YamlNode& value = *entry.value;
    const std::string key_path = ChildPath(path, entry.key);
    locations_[key_path] = value.mark();
    if (entry.key == "addr") {
      has_addr = true;
      ASSIGN_OR_RETURN(out->addr, GetListenerAddress(value, key_path));
    } else if (entry.key == "read_timeout" || entry.key == "write_timeout") {
      ASSIGN_OR_RETURN(const absl::Duration timeout,
                       GetDuration(value, key_path, true, kMaxTimeout));
      (entry.key == "read_timeout" ? out->read_timeout : out->write_timeout) = timeout;
      if (timeout != absl::ZeroDuration()) {
        Warn(value.mark(), key_path, "has no effect on UDP (accepted for compatibility)");
      }
    } else if (entry.key == "max_concurrent_connections") {
      ASSIGN_OR_RETURN(out->max_concurrent_connections,
                       GetInteger(value, key_path, std::numeric_limits<int64_t>::min(),
                                  std::numeric_limits<int64_t>::max()));
      if (out->max_concurrent_connections != 0) {
        Warn(value.mark(), key_path, "has no effect (accepted for compatibility)");
      }
    } else {
      return UnknownKey(entry, key_path, kUdpKeys);
    }
  }
  if (!has_addr) {
    return Missing(node, ChildPath(path, "addr"));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadUpstream(const YamlNode& node, absl::string_view path,
                                  UpstreamConfig* out) {
  RETURN_IF_ERROR(ExpectMapping(node, path));
  const YamlMapEntry* misspelt = node.Find(kMisspeltPolicyKey);
  if (misspelt != nullptr && node.Find("load_balancing_policy") != nullptr) {
    return Error(misspelt->key_mark, ChildPath(path, kMisspeltPolicyKey),
                 absl::StrCat("conflicts with ", ChildPath(path, "load_balancing_policy"),
                              "; keep only the correctly spelt key"));
  }
  bool has_servers = false;
  for (const YamlMapEntry& entry : node.entries()) {
    const YamlNode& value = *entry.value;
    const std::string key_path = ChildPath(path, entry.key);
    locations_[key_path] = value.mark();
    if (entry.key == "load_balancing_policy" || entry.key == kMisspeltPolicyKey) {
      if (entry.key == kMisspeltPolicyKey) {
        Warn(entry.key_mark, key_path, "misspelt key accepted; rename it to load_balancing_policy");
      }
      ASSIGN_OR_RETURN(const std::string name, GetString(value, key_path));
      if (!ParsePolicyName(name, &out->load_balancing_policy)) {
        return Error(value.mark(), key_path,
                     absl::StrCat("unknown policy ", Quote(name), " (valid: ", PolicyList(), ")"));
      }
    } else if (entry.key == "max_connection_retries") {
      ASSIGN_OR_RETURN(const int64_t retries,
                       GetInteger(value, key_path, 0, kMaxConnectionRetries));
      out->max_connection_retries = static_cast<uint32_t>(retries);
    } else if (entry.key == "query_timeout") {
      ASSIGN_OR_RETURN(out->query_timeout, GetDuration(value, key_path, false, kMaxQueryTimeout));
    } else if (entry.key == "backoff_initial") {
      ASSIGN_OR_RETURN(out->backoff_initial, GetDuration(value, key_path, false, kMaxTimeout));
    } else if (entry.key == "backoff_max") {
      ASSIGN_OR_RETURN(out->backoff_max, GetDuration(value, key_path, false, kMaxTimeout));
    } else if (entry.key == "servers") {
      has_servers = true;
      RETURN_IF_ERROR(LoadServers(value, key_path, &out->servers));
    } else {
      return UnknownKey(entry, key_path, kUpstreamKeys);
    }
  }
  if (!has_servers) {
    return Missing(node, ChildPath(path, "servers"));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadServers(const YamlNode& node, absl::string_view path,
                                 std::vector<ServerConfig>* out) {
  if (!node.is_sequence() && !node.is_null()) {
    return Error(node.mark(), path,
                 absl::StrCat("expected a sequence of servers, got ", Describe(node)));
  }
  if (node.items().empty()) {
    return Error(node.mark(), path, "must list at least one server");
  }
  out->clear();
  for (size_t i = 0; i < node.items().size(); ++i) {
    const YamlNode& item = *node.items()[i];
    const std::string item_path = IndexPath(path, i);
    locations_[item_path] = item.mark();
    ServerConfig server;
    RETURN_IF_ERROR(LoadServer(item, item_path, &server));
    out->push_back(std::move(server));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadServer(const YamlNode& node, absl::string_view path, ServerConfig* out) {
  if (!node.is_mapping()) {
    return Error(node.mark(), path, absl::StrCat("expected a mapping, got ", Describe(node)));
  }
  bool has_addr = false;
  bool has_server_name = false;
  for (const YamlMapEntry& entry : node.entries()) {
    const YamlNode& value = *entry.value;
    const std::string key_path = ChildPath(path, entry.key);
    locations_[key_path] = value.mark();
    if (entry.key == "addr") {
      has_addr = true;
      ASSIGN_OR_RETURN(out->addr, GetUpstreamAddress(value, key_path, &out->addr_text));
    } else if (entry.key == "server_name") {
      has_server_name = true;
      ASSIGN_OR_RETURN(out->server_name, GetString(value, key_path));
      if (out->server_name.empty()) {
        return Error(value.mark(), key_path, "must not be empty");
      }
      for (const char c : out->server_name) {
        if (absl::ascii_isspace(static_cast<unsigned char>(c)) ||
            absl::ascii_iscntrl(static_cast<unsigned char>(c))) {
          return Error(value.mark(), key_path,
                       absl::StrCat("must not contain spaces or control characters, got ",
                                    Quote(out->server_name)));
        }
      }
    } else if (entry.key == "connection_pool_size") {
      ASSIGN_OR_RETURN(const int64_t size, GetInteger(value, key_path, 1, kMaxPoolSize));
      out->connection_pool_size = static_cast<uint32_t>(size);
    } else if (entry.key == "connect_timeout") {
      ASSIGN_OR_RETURN(out->connect_timeout, GetDuration(value, key_path, true, kMaxTimeout));
    } else if (entry.key == "handshake_timeout") {
      ASSIGN_OR_RETURN(out->handshake_timeout, GetDuration(value, key_path, true, kMaxTimeout));
    } else if (entry.key == "read_timeout") {
      ASSIGN_OR_RETURN(out->read_timeout, GetDuration(value, key_path, true, kMaxTimeout));
    } else if (entry.key == "write_timeout") {
      ASSIGN_OR_RETURN(out->write_timeout, GetDuration(value, key_path, true, kMaxTimeout));
    } else if (entry.key == "stale_timeout") {
      ASSIGN_OR_RETURN(out->stale_timeout, GetDuration(value, key_path, true, kMaxTimeout));
    } else if (entry.key == "ca_file") {
      ASSIGN_OR_RETURN(out->ca_file, GetReadableFile(value, key_path));
    } else if (entry.key == "max_inflight") {
      ASSIGN_OR_RETURN(const int64_t inflight,
                       GetInteger(value, key_path, 1, kMaxInflightPerConnection));
      out->max_inflight = static_cast<uint32_t>(inflight);
    } else if (entry.key == "weight") {
      ASSIGN_OR_RETURN(const int64_t weight, GetInteger(value, key_path, 1, kMaxWeight));
      out->weight = static_cast<uint32_t>(weight);
    } else {
      return UnknownKey(entry, key_path, kServerKeys);
    }
  }
  if (!has_addr) {
    return Missing(node, ChildPath(path, "addr"));
  }
  if (!has_server_name) {
    return Missing(node, ChildPath(path, "server_name"));
  }
  return absl::OkStatus();
}

absl::Status Loader::LoadServerSection(const YamlNode& node, absl::string_view path,
                                       ServerSection* out) {
  RETURN_IF_ERROR(ExpectMapping(node, path));
  for (const YamlMapEntry& entry : node.entries()) {
    const YamlNode& value = *entry.value;
    const std::string key_path = ChildPath(path, entry.key);
    locations_[key_path] = value.mark();
    if (entry.key == "workers") {
      ASSIGN_OR_RETURN(const int64_t workers, GetInteger(value, key_path, 0, kMaxWorkers));
      out->workers = static_cast<uint32_t>(workers);
    } else {
      return UnknownKey(entry, key_path, kServerSectionKeys);
    }
  }
  return absl::OkStatus();
}

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
  for (const PolicyEntry& entry : kPolicies) {
    if (absl::EqualsIgnoreCase(entry.name, absl::string_view(name.data(), name.size()))) {
      *policy = entry.policy;
      return true;
    }
  }
  return false;
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

absl::Status Validate(const Config& config, std::string_view filename) {
  return ValidateImpl(config, absl::string_view(filename.data(), filename.size()), nullptr);
}

absl::StatusOr<Config> LoadConfigFromString(std::string_view text, std::string_view filename_in,
                                            std::vector<std::string>* warnings) {
  const absl::string_view filename(filename_in.data(), filename_in.size());
  ASSIGN_OR_RETURN(const YamlDocument document, YamlDocument::Parse(text, filename_in));
  Loader loader(filename, warnings);
  ASSIGN_OR_RETURN(Config config, loader.Load(document.root()));
  RETURN_IF_ERROR(ValidateImpl(config, filename, &loader.locations()));
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
