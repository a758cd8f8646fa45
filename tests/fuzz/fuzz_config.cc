// Fuzz target: config::LoadConfigFromString on any text. An error is one InvalidArgument line
// naming the file (load_config.h); a Config that loads passes Validate and keeps every value in
// the range the README documents; warnings are single lines naming the file.
//
// The loader resolves upstream host names with getaddrinfo. So that fuzzing never touches the
// network or NSS, this binary defines its own getaddrinfo/freeaddrinfo (the executable's symbols
// win over libc's and the sanitizer runtime's weak interceptors): "localhost" is 127.0.0.1 and
// every other name is unknown.
#include <netdb.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/check.h"
#include "config/config.h"
#include "config/load_config.h"
#include <netinet/in.h>
#include <sys/socket.h>

namespace {

sockaddr_in loopback_addr;  // 127.0.0.1, set up with loopback_info
addrinfo loopback_info = [] {
  loopback_addr.sin_family = AF_INET;
  loopback_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addrinfo info{};
  info.ai_family = AF_INET;
  info.ai_socktype = SOCK_STREAM;
  info.ai_protocol = IPPROTO_TCP;
  info.ai_addrlen = sizeof(loopback_addr);
  info.ai_addr = reinterpret_cast<sockaddr*>(&loopback_addr);
  return info;
}();

}  // namespace

extern "C" int getaddrinfo(const char* node, const char* /*service*/, const addrinfo* /*hints*/,
                           addrinfo** result) {
  if (node != nullptr && std::strcmp(node, "localhost") == 0) {
    *result = &loopback_info;
    return 0;
  }
  return EAI_NONAME;
}

extern "C" void freeaddrinfo(addrinfo* info) noexcept {
  CHECK(info == &loopback_info);  // nothing else in this binary may call getaddrinfo
}

namespace dotproxy::fuzz {
namespace {

constexpr std::string_view kFilename = "fuzz.yaml";

// "fuzz.yaml..." on one line of printable text.
void CheckMessageLine(std::string_view line) {
  CHECK(line.substr(0, kFilename.size() + 1) == "fuzz.yaml:");
  for (const char c : line) {
    CHECK(c != '\n' && c != '\r' && c != '\0');
  }
}

void CheckDuration(absl::Duration d) { CHECK(d >= absl::ZeroDuration() && d <= absl::Hours(24)); }

void CheckConfig(const config::Config& config) {
  CHECK(config::Validate(config, kFilename).ok());
  CHECK(config.server.workers <= config::kMaxWorkers);
  const config::TcpListenerConfig& tcp = config.listener.tcp;
  CheckDuration(tcp.read_timeout);
  CheckDuration(tcp.write_timeout);
  CHECK(tcp.max_connections >= 1 && tcp.max_connections <= 1000000);
  CHECK(tcp.max_inflight_per_connection >= 1 && tcp.max_inflight_per_connection <= 65535);
  CheckDuration(config.listener.udp.read_timeout);
  CheckDuration(config.listener.udp.write_timeout);
  const config::UpstreamConfig& upstream = config.upstream;
  CHECK(upstream.max_connection_retries <= config::kMaxConnectionRetries);
  CHECK(upstream.query_timeout > absl::ZeroDuration() && upstream.query_timeout <= absl::Hours(1));
  CHECK(upstream.backoff_initial > absl::ZeroDuration());
  CHECK(upstream.backoff_max >= upstream.backoff_initial);
  CheckDuration(upstream.backoff_max);
  CHECK(!upstream.servers.empty());
  for (const config::ServerConfig& server : upstream.servers) {
    CHECK(!server.server_name.empty() && !server.addr_text.empty());
    CHECK(server.connection_pool_size >= 1 && server.connection_pool_size <= config::kMaxPoolSize);
    CHECK(server.max_inflight >= 1 && server.max_inflight <= config::kMaxInflightPerConnection);
    CHECK(server.weight >= 1 && server.weight <= config::kMaxWeight);
    for (const absl::Duration d :
         {server.connect_timeout, server.handshake_timeout, server.read_timeout,
          server.write_timeout, server.stale_timeout}) {
      CheckDuration(d);
    }
  }
  const config::StatsdConfig& statsd = config.metrics.statsd;
  CHECK(statsd.sample_rate > 0.0 && statsd.sample_rate <= 1.0);
}

}  // namespace
}  // namespace dotproxy::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dotproxy;  // NOLINT(google-build-using-namespace): one entry point
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> warnings;
  const absl::StatusOr<config::Config> config =
      config::LoadConfigFromString(text, fuzz::kFilename, &warnings);
  if (config.ok()) {
    fuzz::CheckConfig(*config);
  } else {
    // ResourceExhausted only when libyaml runs out of memory.
    CHECK(config.status().code() == absl::StatusCode::kInvalidArgument ||
          config.status().code() == absl::StatusCode::kResourceExhausted);
    const absl::string_view message = config.status().message();
    fuzz::CheckMessageLine(std::string_view(message.data(), message.size()));
  }
  for (const std::string& warning : warnings) {
    fuzz::CheckMessageLine(warning);
  }
  return 0;
}
