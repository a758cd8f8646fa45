// dotresponder: an authoritative-style DNS responder for synthetic names over UDP, TCP and DoT,
// a stand-in upstream for benchmarks. It answers every query from the question alone (see
// answer.h), with optional delay and response size. Loopback by default; runs until SIGTERM or
// SIGINT, or for --duration.
//
//   dotresponder --cert server.pem --key server.key            # UDP+TCP :8053, DoT :8853
//   dotresponder --udp 127.0.0.1:8053 --tcp "" --dot "" --threads 2 --delay-ms 5 --size 600
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "base/flag_names.h"
#include "base/log.h"
#include "base/process.h"
#include "base/socket_address.h"
#include "bench/responder/responder.h"

ABSL_FLAG(std::string, udp, "127.0.0.1:8053", "UDP listen address; empty: no UDP");
ABSL_FLAG(std::string, tcp, "127.0.0.1:8053", "TCP listen address; empty: no TCP");
ABSL_FLAG(std::string, dot, "127.0.0.1:8853",
          "DNS-over-TLS listen address; used when --cert and --key are given");
ABSL_FLAG(std::string, cert, "", "DoT certificate chain (PEM); empty: no DoT");
ABSL_FLAG(std::string, key, "", "DoT private key (PEM)");
ABSL_FLAG(std::string, tls, "", "DoT version: 1.2 pins TLS 1.2; empty: TLS 1.3 when the client has it");
ABSL_FLAG(uint32_t, threads, 1, "worker threads, each with its own io_uring and sockets");
ABSL_FLAG(int64_t, delay_ms, 0, "hold every answer this many milliseconds");
ABSL_FLAG(uint32_t, key_update_every, 0,
          "DoT over TLS 1.3: send a KeyUpdate asking the client to re-key too before every N-th "
          "answer on a connection; 0: never");
ABSL_FLAG(uint32_t, size, 0, "pad answers with extra A records to at least this many bytes");
ABSL_FLAG(uint32_t, ttl, 0, "TTL of the records (0 defeats caches)");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "stop after this long (e.g. 60s); 0: run until SIGTERM/SIGINT");
ABSL_FLAG(std::string, stats_file, "",
          "rewrite this file with one JSON line of totals every 100 ms (atomic rename)");
ABSL_FLAG(std::string, verbosity, "warn", "log level: error|warn|info|debug");

namespace dotproxy::bench {
namespace {

struct Totals {
  uint64_t udp = 0, tcp = 0, dot = 0, dropped = 0, connections = 0, handshakes = 0,
           resumed = 0, handshake_failures = 0, key_updates = 0;
  uint64_t queries() const { return udp + tcp + dot; }
};

Totals Sum(const std::vector<std::unique_ptr<Responder>>& responders) {
  Totals t;
  for (const auto& r : responders) {
    if (r == nullptr) {
      continue;  // that thread failed to start
    }
    const ResponderCounters& c = r->counters();
    t.udp += c.udp_queries.load(std::memory_order_relaxed);
    t.tcp += c.tcp_queries.load(std::memory_order_relaxed);
    t.dot += c.dot_queries.load(std::memory_order_relaxed);
    t.dropped += c.dropped.load(std::memory_order_relaxed);
    t.connections += c.connections.load(std::memory_order_relaxed);
    t.handshakes += c.handshakes.load(std::memory_order_relaxed);
    t.resumed += c.handshakes_resumed.load(std::memory_order_relaxed);
    t.handshake_failures += c.handshake_failures.load(std::memory_order_relaxed);
    t.key_updates += c.key_updates.load(std::memory_order_relaxed);
  }
  return t;
}

std::string TotalsJson(const Totals& t) {
  return absl::StrFormat(
      "{\"queries\":%u,\"udp\":%u,\"tcp\":%u,\"dot\":%u,\"dropped\":%u,\"connections\":%u,"
      "\"handshakes\":%u,\"handshakes_resumed\":%u,\"handshake_failures\":%u,"
      "\"key_updates\":%u}",
      t.queries(), t.udp, t.tcp, t.dot, t.dropped, t.connections, t.handshakes, t.resumed,
      t.handshake_failures, t.key_updates);
}

void WriteStatsFile(const std::string& path, const Totals& t) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  FILE* f = fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    return;
  }
  fprintf(f, "%s\n", TotalsJson(t).c_str());
  fclose(f);
  rename(tmp.c_str(), path.c_str());
}

absl::Status ParseListen(const std::string& flag_name, const std::string& text, bool* has,
                         base::SocketAddress* addr) {
  *has = !text.empty();
  if (!*has) {
    return absl::OkStatus();
  }
  auto parsed = base::SocketAddress::Parse(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag_name, "=", text, ": ", parsed.status().message()));
  }
  *addr = *parsed;
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "dotresponder: synthetic authoritative DNS responder over UDP, TCP and DoT (benchmarks)");
  base::NormalizeFlagNames(argc, argv);
  absl::ParseCommandLine(argc, argv);
  base::LogLevel level;
  if (base::ParseLogLevel(absl::GetFlag(FLAGS_verbosity), &level)) {
    base::SetLogLevel(level);
  }
  ResponderOptions options;
  absl::Status status =
      ParseListen("udp", absl::GetFlag(FLAGS_udp), &options.has_udp, &options.udp_addr);
  if (status.ok()) {
    status = ParseListen("tcp", absl::GetFlag(FLAGS_tcp), &options.has_tcp, &options.tcp_addr);
  }
  options.cert_file = absl::GetFlag(FLAGS_cert);
  if (absl::GetFlag(FLAGS_tls) == "1.2") {
    options.tls_max_version = TLS1_2_VERSION;
  } else if (!absl::GetFlag(FLAGS_tls).empty() && absl::GetFlag(FLAGS_tls) != "1.3") {
    status = absl::InvalidArgumentError("--tls: 1.2 or 1.3");
  }
  options.key_file = absl::GetFlag(FLAGS_key);
  if (status.ok() && !options.cert_file.empty()) {
    status = ParseListen("dot", absl::GetFlag(FLAGS_dot), &options.has_dot, &options.dot_addr);
    if (status.ok() && options.key_file.empty()) {
      status = absl::InvalidArgumentError("--cert needs --key");
    }
  }
  if (status.ok() && !options.has_udp && !options.has_tcp && !options.has_dot) {
    status = absl::InvalidArgumentError("nothing to serve: give --udp, --tcp or --cert/--dot");
  }
  const uint32_t threads = absl::GetFlag(FLAGS_threads);
  if (status.ok() && (threads == 0 || threads > 256)) {
    status = absl::InvalidArgumentError("--threads must be 1..256");
  }
  if (!status.ok()) {
    fprintf(stderr, "dotresponder: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  options.delay_ms = absl::GetFlag(FLAGS_delay_ms);
  options.key_update_every = absl::GetFlag(FLAGS_key_update_every);
  options.answer.target_size = absl::GetFlag(FLAGS_size);
  options.answer.ttl = absl::GetFlag(FLAGS_ttl);

  // Signals are taken by the main thread only (sigtimedwait); workers inherit the mask.
  sigset_t signals;
  base::PrepareProcess(&signals);

  // Each responder is created on its own thread (the ring belongs to its creator).
  std::vector<std::unique_ptr<Responder>> responders(threads);
  std::vector<absl::Status> errors(threads);
  std::vector<std::thread> workers;
  std::atomic<uint32_t> ready{0};
  for (uint32_t i = 0; i < threads; ++i) {
    workers.emplace_back([&, i] {
      auto r = Responder::Create(options, i);
      if (r.ok()) {
        responders[i] = std::move(r).value();
      } else {
        errors[i] = r.status();
      }
      ready.fetch_add(1);
      while (ready.load() < threads) {
        std::this_thread::yield();
      }
      if (responders[i] != nullptr) {
        responders[i]->Run();
      }
    });
  }
  while (ready.load() < threads) {
    std::this_thread::yield();
  }
  int rc = 0;
  for (const absl::Status& e : errors) {
    if (!e.ok()) {
      fprintf(stderr, "dotresponder: %s\n", e.ToString().c_str());
      rc = 1;
    }
  }
  if (rc == 0) {
    fprintf(stderr, "dotresponder: %u thread(s); udp %s, tcp %s, dot %s; delay %ld ms, size %zu\n",
            threads, options.has_udp ? options.udp_addr.ToString().c_str() : "off",
            options.has_tcp ? options.tcp_addr.ToString().c_str() : "off",
            options.has_dot ? options.dot_addr.ToString().c_str() : "off",
            static_cast<long>(options.delay_ms), options.answer.target_size);  // NOLINT
    const absl::Duration duration = absl::GetFlag(FLAGS_duration);
    const absl::Time end = duration > absl::ZeroDuration() ? absl::Now() + duration
                                                          : absl::InfiniteFuture();
    const std::string stats_file = absl::GetFlag(FLAGS_stats_file);
    uint64_t last_written = UINT64_MAX;
    for (;;) {
      const timespec wait = {0, 100'000'000};
      const int sig = sigtimedwait(&signals, nullptr, &wait);
      if (!stats_file.empty()) {
        const Totals t = Sum(responders);
        const uint64_t key = t.queries() + t.connections + t.dropped + t.key_updates;
        if (key != last_written) {
          WriteStatsFile(stats_file, t);
          last_written = key;
        }
      }
      if (sig > 0 || absl::Now() >= end) {
        break;
      }
    }
  }
  // Responders are freed only after every thread has been joined.
  for (const auto& r : responders) {
    if (r != nullptr) {
      r->RequestStop();
    }
  }
  for (std::thread& t : workers) {
    t.join();
  }
  const Totals t = Sum(responders);
  if (!absl::GetFlag(FLAGS_stats_file).empty()) {
    WriteStatsFile(absl::GetFlag(FLAGS_stats_file), t);
  }
  fprintf(stderr, "dotresponder: done %s\n", TotalsJson(t).c_str());
  responders.clear();
  return rc;
}

}  // namespace
}  // namespace dotproxy::bench

int main(int argc, char** argv) { return dotproxy::bench::Main(argc, argv); }
