// File: config/config.h
//
// The whole configuration as plain structs. Defaults are the member initialisers;
// config.example.yaml documents the same values and tests/config/load_config_test.cc checks that
// they agree. Immutable after start-up, passed by const&. Keys and spellings follow the seed
// dotproxy (BEHAVIOUR.md §3).
#ifndef DOTPROXY_CONFIG_CONFIG_H_
#define DOTPROXY_CONFIG_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/socket_address.h"

namespace dotproxy::config {

// Compile-time limits that the loader enforces.
inline constexpr uint32_t kMaxInflightPerConnection = 4096;  // upstream ID slot bits: <= 12
inline constexpr uint32_t kMaxPoolSize = 1024;
inline constexpr uint32_t kMaxWorkers = 256;
inline constexpr uint32_t kMaxWeight = 1000;
inline constexpr uint32_t kMaxConnectionRetries = 16;
// Per shard: the most client queries in flight at once (the query table). Beyond it UDP queries
// are dropped (counted) and TCP queries get SERVFAIL.
inline constexpr uint32_t kQuerySlotsPerShard = 8192;
static_assert(kMaxInflightPerConnection <= (1u << 12),
              "upstream IDs keep at least 4 generation bits above the slot index");

enum class Policy : uint8_t {
  kRoundRobin,
  kRandom,
  kHistoricalConnections,
  kAvailability,
  kFailover,
  kLeastOutstanding,
};

// Kernel TLS offload on upstream connections (upstream.ktls, overridable per server).
enum class Ktls : uint8_t {
  kOff,      // TLS records are encrypted and decrypted by OpenSSL in user space
  kAuto,     // offload where the kernel and OpenSSL can, per connection; user space otherwise
  kOn,       // like auto, but start-up fails when the kernel has no kTLS
  kInherit,  // (servers only) take upstream.ktls
};

enum class StatsdTagFormat : uint8_t { kInflux, kDogStatsd };

// One statsd destination; metrics.statsd.addr lists one or more, comma-separated
// (config/statsd_addr.h parses them).
struct StatsdTarget {
  enum class Kind : uint8_t { kUdp, kTcp, kUnix, kFile };
  Kind kind = Kind::kUdp;
  base::SocketAddress addr;  // kUdp, kTcp
  std::string path;          // kUnix (a datagram socket), kFile (lines appended)
};

struct StatsdConfig {
  bool enabled = false;               // true when metrics.statsd is present
  std::string addr;                   // as written: udp:// tcp:// unix:// file:// h:p, comma list
  std::vector<StatsdTarget> targets;  // parsed from addr
  double sample_rate = 1.0;           // 0..1; individual timings are sampled at this rate
  StatsdTagFormat tag_format = StatsdTagFormat::kInflux;  // influx: name,k=v:1|c; dogstatsd: |#k:v
};

struct PrometheusConfig {
  bool enabled = false;      // true when metrics.prometheus is present
  base::SocketAddress addr;  // where GET /metrics is served
};

struct MetricsConfig {
  absl::Duration flush_interval = absl::Seconds(1);  // shard snapshots -> statsd, Prometheus, log
  StatsdConfig statsd;
  PrometheusConfig prometheus;
};

struct ApplicationConfig {
  std::string sentry_dsn;  // accepted for compatibility, unused (warned)
};

struct TcpListenerConfig {
  bool enabled = false;  // true when listener.tcp is present
  base::SocketAddress addr;                // addrs.front(), for code that serves one address
  std::vector<base::SocketAddress> addrs;  // every address, in file order; see ListenAddresses()
  absl::Duration read_timeout = absl::Seconds(10);  // idle timeout between client queries
  absl::Duration write_timeout = absl::Seconds(10);
  uint32_t max_connections = 1024;             // per shard; idle connections are shed first
  uint32_t max_inflight_per_connection = 128;  // back-pressure: stop reading above this
};

struct UdpListenerConfig {
  base::SocketAddress addr;                             // required; addrs.front()
  std::vector<base::SocketAddress> addrs;               // every address; see ListenAddresses()
  absl::Duration read_timeout = absl::ZeroDuration();   // accepted; no effect (seed B11)
  absl::Duration write_timeout = absl::ZeroDuration();  // accepted; no effect on UDP sends
  int64_t max_concurrent_connections = 0;               // accepted, warned: no effect
  uint32_t max_answer_size = 1232;  // larger UDP answers get TC=1 (DNS Flag Day 2020)
};

enum class RateLimitAction : uint8_t { kDrop, kRefuse };

// A token bucket per client address (/32 IPv4, /56 IPv6), per shard.
struct RateLimitConfig {
  bool enabled = false;  // true when listener.rate_limit is present
  uint32_t qps = 0;      // required under rate_limit: tokens added per second
  uint32_t burst = 0;    // bucket size; 0 = qps
  RateLimitAction action = RateLimitAction::kDrop;  // drop silently, or answer REFUSED
};

// Query slots one client address (/32, /56) may hold per shard: a quarter of the table, so at
// least four clients must collude to starve the rest.
inline constexpr uint32_t kDefaultMaxQueriesPerClient = kQuerySlotsPerShard / 4;

struct ListenerConfig {
  TcpListenerConfig tcp;
  UdpListenerConfig udp;
  bool freebind = false;  // IP_FREEBIND / IPV6_FREEBIND: bind addresses not (yet) configured
  // Client sources served, as CIDRs; others are dropped (UDP) or closed at accept (TCP). The
  // default is dnsdist's: loopback, RFC 1918, RFC 6598, link-local, ULA.
  std::vector<std::string> allow = {"127.0.0.0/8",    "::1/128",        "10.0.0.0/8",
                                    "172.16.0.0/12",  "192.168.0.0/16", "100.64.0.0/10",
                                    "169.254.0.0/16", "fc00::/7",       "fe80::/10"};
  RateLimitConfig rate_limit;
  uint32_t max_queries_per_client = kDefaultMaxQueriesPerClient;
};

// The addresses a listener serves: the loader fills `addrs` (a scalar `addr` gives one item) and
// sets `addr` to the first; a hand-built Config that set only `addr` gets {addr}. A wildcard
// IPv6 address ("[::]:53", or ":53" in the file) is meant to be opened dual-stack.
template <typename Listener>
std::vector<base::SocketAddress> ListenAddresses(const Listener& listener) {
  if (listener.addrs.empty()) {
    return {listener.addr};
  }
  return listener.addrs;
}

inline constexpr size_t kSpkiPinBytes = 32;  // SHA-256

struct ServerConfig {
  std::string addr_text;              // as written, for messages and metric tags
  base::SocketAddress addr;           // resolved at start-up
  std::string server_name;            // SNI and certificate name (a DNS name or an IP literal)
  uint32_t connection_pool_size = 2;  // total over all shards (issue 15: hand-off)
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration handshake_timeout = absl::Seconds(2);
  absl::Duration read_timeout = absl::Milliseconds(1500);  // per attempt; then retry elsewhere
  absl::Duration write_timeout = absl::Seconds(2);
  absl::Duration stale_timeout = absl::Seconds(8);  // close idle connections before the server does
  std::string ca_file;          // empty: default verify paths (SSL_CERT_FILE / SSL_CERT_DIR)
  uint32_t max_inflight = 128;  // pipelined queries per connection
  uint32_t weight = 1;          // share for RoundRobin, Random and Availability
  bool edns_padding = true;     // pad queries to 128-byte blocks (RFC 7830, RFC 8467)
  std::vector<std::string> spki_pins;  // SHA-256 SPKI digests (32 bytes each); empty: no pinning
  Ktls ktls = Ktls::kInherit;          // this server's override of upstream.ktls
  // Not a key: which per-server metric blocks count this server (upstream/counters.h). The
  // loader numbers the servers 0, 1, ... in file order; the control thread then gives each
  // distinct server (config::ServerIdentity) an id of its own for the process lifetime
  // (upstream/server_ids.h), so a reload that reorders, removes or adds servers keeps each
  // server's counts with it.
  uint32_t metrics_id = 0;
};

struct UpstreamConfig {
  Policy load_balancing_policy = Policy::kRoundRobin;
  uint32_t max_connection_retries = 2;              // 0 = no retries
  absl::Duration query_timeout = absl::Seconds(3);  // overall deadline per client query
  absl::Duration backoff_initial = absl::Milliseconds(250);  // first wait before probing a down server
  absl::Duration backoff_max = absl::Seconds(30);            // cap of the doubling backoff
  Ktls ktls = Ktls::kOff;                           // kernel TLS offload (see README)
  std::vector<ServerConfig> servers;                // at least one
};

// The kTLS mode of one server: its own, or the upstream section's.
inline Ktls EffectiveKtls(const UpstreamConfig& upstream, const ServerConfig& server) {
  return server.ktls == Ktls::kInherit ? upstream.ktls : server.ktls;
}

struct ServerSection {
  uint32_t workers = 0;  // shard threads; 0 = one per CPU of the affinity mask
  // On SIGTERM/SIGINT, time allowed to answer the queries in flight; 0s = stop at once.
  absl::Duration shutdown_grace = absl::Seconds(2);
  // Spin for up to this long after the last event before sleeping; 0 = off (sleep at once).
  absl::Duration busy_poll = absl::ZeroDuration();
  std::string user;  // when started as root: switch to this user after binding; empty = stay
};

struct Config {
  ApplicationConfig application;
  MetricsConfig metrics;
  ListenerConfig listener;
  UpstreamConfig upstream;
  ServerSection server;
};

}  // namespace dotproxy::config

#endif  // DOTPROXY_CONFIG_CONFIG_H_
