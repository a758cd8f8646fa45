// dotload: a DNS load generator over UDP, TCP (pipelined) and DNS-over-TLS, built on our own
// io_uring core and TLS stream. Closed loop (--inflight) or open loop (--qps); every run is bounded
// by --duration and --count. Prints a table (per thread and total) and, as its last line, one JSON
// object with QPS, answers by rcode, timeouts and latency percentiles.
//
//   dotload --server 127.0.0.1:5300 --mode udp --inflight 200 --duration 10s
//   dotload --mode tcp --connections 10 --qps 2000 --histogram cdf.txt
//   dotload --mode dot --server 127.0.0.1:8853 --ca ca.pem --server-name dot.test
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
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
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "base/flag_names.h"
#include "base/log.h"
#include "base/process.h"
#include "base/socket_address.h"
#include "bench/load/load_shard.h"
#include "bench/load/query_source.h"
#include "core/clock.h"

ABSL_FLAG(std::string, server, "127.0.0.1:5300", "server address ip:port (loopback by default)");
ABSL_FLAG(std::string, mode, "udp", "udp | tcp | dot");
ABSL_FLAG(uint32_t, threads, 1, "threads, each with its own io_uring and connections");
ABSL_FLAG(uint32_t, connections, 10,
          "UDP sockets (source ports) or TCP/DoT connections, in total over all threads");
ABSL_FLAG(uint32_t, inflight, 100, "closed loop: queries outstanding, in total (ignored with --qps)");
ABSL_FLAG(double, qps, 0, "open loop: queries per second, in total; 0 = closed loop");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "stop sending after this long");
ABSL_FLAG(uint64_t, count, 10'000'000, "stop sending after this many queries");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(2), "a query unanswered this long is a timeout");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(5),
          "TCP/DoT: time allowed to open the connections before the run");
ABSL_FLAG(std::string, names, "", "names file, one \"name type\" per line (dnsperf format)");
ABSL_FLAG(bool, unique, false,
          "generated unique names q<n>-<token>-t<thread>.<suffix> (the default without --names)");
ABSL_FLAG(std::string, suffix, "bench.test", "zone of the unique names");
ABSL_FLAG(std::string, qtype, "A", "query type of the unique names");
ABSL_FLAG(bool, edns, false, "add an EDNS0 OPT record (UDP payload 1232) to every query");
ABSL_FLAG(std::string, ca, "", "DoT: CA file (PEM); empty: system trust store / SSL_CERT_FILE");
ABSL_FLAG(std::string, server_name, "",
          "DoT: SNI and certificate name; empty: the server's IP (checked against IP SANs)");
ABSL_FLAG(std::string, histogram, "", "write the latency CDF here (\"us fraction\" per line)");
ABSL_FLAG(bool, progress, false, "print sent/answered once a second on stderr");
ABSL_FLAG(bool, quiet, false, "print only the JSON line");
ABSL_FLAG(std::string, verbosity, "warn", "log level: error|warn|info|debug");

namespace dotproxy::bench {
namespace {

const char* RcodeName(size_t rcode) {
  static const char* const kNames[16] = {
      "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
      "NXRRSET", "NOTAUTH", "NOTZONE",  "RCODE11",  "RCODE12", "RCODE13", "RCODE14",  "RCODE15"};
  return kNames[rcode & 15];
}

double Us(int64_t ns) { return static_cast<double>(ns) / 1000.0; }

// Splits `total` over `parts` as evenly as possible; part i gets the i-th share.
uint64_t Share(uint64_t total, uint32_t parts, uint32_t i) {
  return total / parts + (i < total % parts ? 1 : 0);
}

struct Run {
  LoadOptions options;     // totals, before splitting
  std::string mode_name;
  bool is_open_loop = false;
};

std::string JsonLine(const Run& run, const LoadResult& t, double elapsed_s, double send_s,
                     uint32_t threads, uint32_t connections) {
  std::vector<std::string> rcodes;
  for (size_t i = 0; i < 16; ++i) {
    if (t.rcodes[i] != 0) {
      rcodes.push_back(absl::StrFormat("\"%s\":%u", RcodeName(i), t.rcodes[i]));
    }
  }
  const LatencyHistogram& h = t.latency;
  return absl::StrFormat(
      "{\"tool\":\"dotload\",\"mode\":\"%s\",\"server\":\"%s\",\"loop\":\"%s\",\"threads\":%u,"
      "\"connections\":%u,\"inflight\":%u,\"target_qps\":%.0f,\"duration_s\":%.3f,"
      "\"qps\":%.1f,\"send_qps\":%.1f,\"sent\":%u,\"answered\":%u,\"timeouts\":%u,"
      "\"mismatched\":%u,\"unexpected\":%u,\"malformed\":%u,\"truncated\":%u,"
      "\"send_errors\":%u,\"not_sent\":%u,\"connects\":%u,\"connect_failures\":%u,"
      "\"closed_by_server\":%u,\"resumed\":%u,\"rcodes\":{%s},"
      "\"latency_us\":{\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
      "\"max\":%.1f,\"mean\":%.1f},\"latency_from_send_us\":{\"p50\":%.1f,\"p99\":%.1f,"
      "\"p999\":%.1f}}",
      run.mode_name, run.options.server.ToString(), run.is_open_loop ? "open" : "closed",
      threads, connections, run.is_open_loop ? 0 : run.options.inflight, run.options.qps,
      elapsed_s, elapsed_s > 0 ? static_cast<double>(t.answered) / elapsed_s : 0.0,
      send_s > 0 ? static_cast<double>(t.sent) / send_s : 0.0, t.sent, t.answered, t.timeouts,
      t.mismatched, t.unexpected, t.malformed, t.truncated, t.send_errors, t.not_sent,
      t.connects, t.connect_failures, t.closed_by_server, t.resumed, absl::StrJoin(rcodes, ","),
      Us(h.min_ns()), Us(h.Percentile(0.5)), Us(h.Percentile(0.9)), Us(h.Percentile(0.99)),
      Us(h.Percentile(0.999)), Us(h.max_ns()), h.mean_ns() / 1000.0,
      Us(t.from_send.Percentile(0.5)), Us(t.from_send.Percentile(0.99)),
      Us(t.from_send.Percentile(0.999)));
}

void Accumulate(const LoadResult& r, LoadResult* t) {
  t->sent += r.sent;
  t->answered += r.answered;
  t->timeouts += r.timeouts;
  t->mismatched += r.mismatched;
  t->unexpected += r.unexpected;
  t->malformed += r.malformed;
  t->truncated += r.truncated;
  t->send_errors += r.send_errors;
  t->not_sent += r.not_sent;
  t->connects += r.connects;
  t->connect_failures += r.connect_failures;
  t->closed_by_server += r.closed_by_server;
  t->resumed += r.resumed;
  for (size_t i = 0; i < 16; ++i) {
    t->rcodes[i] += r.rcodes[i];
  }
  t->latency.Merge(r.latency);
  t->from_send.Merge(r.from_send);
  t->send_ns = std::max(t->send_ns, r.send_ns);
  t->answer_ns = std::max(t->answer_ns, r.answer_ns);
  if (t->first_error.empty()) {
    t->first_error = r.first_error;
  }
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "dotload: DNS load generator over UDP, TCP and DoT (closed or open loop)");
  base::NormalizeFlagNames(argc, argv);
  absl::ParseCommandLine(argc, argv);
  base::LogLevel level;
  if (base::ParseLogLevel(absl::GetFlag(FLAGS_verbosity), &level)) {
    base::SetLogLevel(level);
  }
  auto fail = [](const std::string& message) {
    fprintf(stderr, "dotload: %s\n", message.c_str());
    return 2;
  };
  Run run;
  LoadOptions& o = run.options;
  auto server = base::SocketAddress::Parse(absl::GetFlag(FLAGS_server));
  if (!server.ok()) {
    return fail(absl::StrCat("--server: ", server.status().message()));
  }
  o.server = *server;
  run.mode_name = absl::GetFlag(FLAGS_mode);
  if (run.mode_name == "udp") {
    o.mode = Mode::kUdp;
  } else if (run.mode_name == "tcp") {
    o.mode = Mode::kTcp;
  } else if (run.mode_name == "dot") {
    o.mode = Mode::kDot;
  } else {
    return fail("--mode must be udp, tcp or dot");
  }
  const uint32_t threads = absl::GetFlag(FLAGS_threads);
  const uint32_t connections = std::max(absl::GetFlag(FLAGS_connections), threads);
  if (threads == 0 || threads > 64) {
    return fail("--threads must be 1..64");
  }
  o.qps = absl::GetFlag(FLAGS_qps);
  run.is_open_loop = o.qps > 0;
  o.inflight = absl::GetFlag(FLAGS_inflight);
  if (!run.is_open_loop && (o.inflight < threads || o.inflight > 65536u * threads)) {
    return fail("--inflight must be at least --threads and at most 65536 per thread");
  }
  o.duration_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_duration));
  o.count = absl::GetFlag(FLAGS_count);
  o.timeout_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_timeout));
  o.connect_timeout_ns = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_connect_timeout));
  if (o.duration_ns <= 0 || o.count == 0 || o.timeout_ns <= 0) {
    return fail("--duration, --count and --timeout must be positive");
  }
  o.ca_file = absl::GetFlag(FLAGS_ca);
  o.server_name = absl::GetFlag(FLAGS_server_name);
  if (o.server_name.empty()) {
    o.server_name = o.server.HostString();
  }

  std::vector<Question> names;
  QueryWriter::Options writer;
  if (!absl::GetFlag(FLAGS_names).empty() && !absl::GetFlag(FLAGS_unique)) {
    auto loaded = LoadNamesFile(absl::GetFlag(FLAGS_names));
    if (!loaded.ok()) {
      return fail(std::string(loaded.status().message()));
    }
    names = std::move(loaded).value();
    writer.names = &names;
  } else {
    auto suffix = EncodeName(absl::GetFlag(FLAGS_suffix));
    auto qtype = ParseQtype(absl::GetFlag(FLAGS_qtype));
    if (!suffix.ok() || !qtype.ok() || suffix->size() > 200) {
      return fail("bad --suffix or --qtype");
    }
    writer.suffix = std::move(suffix).value();
    writer.unique_qtype = *qtype;
    // A fresh token per run: names never asked before, so no cache can answer them.
    writer.token = absl::StrFormat("%08x", static_cast<uint32_t>(core::MonotonicNanos() ^
                                                                 (getpid() * 2654435761u)));
  }
  writer.edns = absl::GetFlag(FLAGS_edns);
  writer.thread_count = threads;

  sigset_t signals;
  base::PrepareProcess(&signals);

  std::vector<std::unique_ptr<LoadShard>> shards(threads);
  std::vector<std::string> errors(threads);
  std::atomic<uint32_t> ready{0};
  std::atomic<uint32_t> done{0};
  std::atomic<int64_t> start_ns{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (uint32_t i = 0; i < threads; ++i) {
    LoadOptions per = o;
    per.channels = static_cast<uint32_t>(Share(connections, threads, i));
    per.inflight = static_cast<uint32_t>(Share(o.inflight, threads, i));
    per.qps = o.qps / threads;
    per.count = Share(o.count, threads, i);
    QueryWriter::Options w = writer;
    w.thread_id = i;
    workers.emplace_back([&, per, w, i] {
      auto shard = LoadShard::Create(per, w, i);
      if (!shard.ok()) {
        errors[i] = shard.status().ToString();
      } else if (std::string error; !(*shard)->Connect(&error)) {
        errors[i] = error;
      } else {
        shards[i] = std::move(shard).value();
      }
      ready.fetch_add(1);
      while (start_ns.load() == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      if (shards[i] != nullptr && start_ns.load() > 0) {
        shards[i]->Run(start_ns.load(), stop);
      }
      done.fetch_add(1);
    });
  }
  while (ready.load() < threads) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  bool is_ok = true;
  for (const std::string& e : errors) {
    if (!e.empty()) {
      fprintf(stderr, "dotload: %s\n", e.c_str());
      is_ok = false;
    }
  }
  start_ns.store(is_ok ? core::MonotonicNanos() + 2'000'000 : -1);
  const bool show_progress = absl::GetFlag(FLAGS_progress);
  uint64_t last_sent = 0, last_answered = 0;
  int64_t last_tick = core::MonotonicNanos();
  while (done.load() < threads) {
    const timespec wait = {0, 50'000'000};
    if (sigtimedwait(&signals, nullptr, &wait) > 0) {
      stop.store(true);  // stop sending; answers still outstanding are awaited
    }
    const int64_t now = core::MonotonicNanos();
    if (show_progress && is_ok && now - last_tick >= 1'000'000'000) {
      uint64_t sent = 0, answered = 0;
      for (const auto& s : shards) {
        if (s != nullptr) {
          sent += s->progress().sent.load(std::memory_order_relaxed);
          answered += s->progress().answered.load(std::memory_order_relaxed);
        }
      }
      const double secs = static_cast<double>(now - last_tick) / 1e9;
      fprintf(stderr, "dotload: %.0f s: sent %.0f/s answered %.0f/s\n",
              static_cast<double>(now - start_ns.load()) / 1e9,
              static_cast<double>(sent - last_sent) / secs,
              static_cast<double>(answered - last_answered) / secs);
      last_sent = sent;
      last_answered = answered;
      last_tick = now;
    }
  }
  for (std::thread& t : workers) {
    t.join();
  }
  if (!is_ok) {
    return 1;
  }

  LoadResult total;
  for (const auto& s : shards) {
    Accumulate(s->result(), &total);
  }
  const double elapsed_s =
      static_cast<double>(total.answer_ns > 0 ? total.answer_ns : total.send_ns) / 1e9;
  const double send_s = static_cast<double>(total.send_ns) / 1e9;
  if (!absl::GetFlag(FLAGS_quiet)) {
    printf("dotload: %s %s, %s loop (%s), %u thread(s), %u %s, %.1f s\n", run.mode_name.c_str(),
           o.server.ToString().c_str(), run.is_open_loop ? "open" : "closed",
           run.is_open_loop ? absl::StrFormat("%.0f qps", o.qps).c_str()
                            : absl::StrFormat("%u in flight", o.inflight).c_str(),
           threads, connections, o.mode == Mode::kUdp ? "socket(s)" : "connection(s)",
           elapsed_s);
    printf("%-7s %11s %11s %9s %11s %9s %9s %9s\n", "thread", "sent", "answered", "timeouts",
           "qps", "p50 us", "p99 us", "p99.9 us");
    auto row = [](const std::string& name, const LoadResult& r, double secs) {
      printf("%-7s %11lu %11lu %9lu %11.0f %9.1f %9.1f %9.1f\n", name.c_str(),
             static_cast<unsigned long>(r.sent), static_cast<unsigned long>(r.answered),  // NOLINT
             static_cast<unsigned long>(r.timeouts),                                     // NOLINT
             secs > 0 ? static_cast<double>(r.answered) / secs : 0.0,
             Us(r.latency.Percentile(0.5)), Us(r.latency.Percentile(0.99)),
             Us(r.latency.Percentile(0.999)));
    };
    if (threads > 1) {
      for (uint32_t i = 0; i < threads; ++i) {
        const LoadResult& r = shards[i]->result();
        row(absl::StrCat(i), r, static_cast<double>(r.answer_ns > 0 ? r.answer_ns : r.send_ns) /
                                    1e9);
      }
    }
    row("total", total, elapsed_s);
    std::vector<std::string> rcodes;
    for (size_t i = 0; i < 16; ++i) {
      if (total.rcodes[i] != 0) {
        rcodes.push_back(absl::StrFormat("%s %u", RcodeName(i), total.rcodes[i]));
      }
    }
    printf("answers: %s; truncated %lu, mismatched %lu, unexpected %lu, malformed %lu\n",
           rcodes.empty() ? "none" : absl::StrJoin(rcodes, ", ").c_str(),
           static_cast<unsigned long>(total.truncated),   // NOLINT
           static_cast<unsigned long>(total.mismatched),  // NOLINT
           static_cast<unsigned long>(total.unexpected),  // NOLINT
           static_cast<unsigned long>(total.malformed));  // NOLINT
    const LatencyHistogram& h = total.latency;
    printf("latency us: min %.1f  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
           Us(h.min_ns()), Us(h.Percentile(0.5)), Us(h.Percentile(0.9)), Us(h.Percentile(0.99)),
           Us(h.Percentile(0.999)), Us(h.max_ns()), h.mean_ns() / 1000.0);
    if (run.is_open_loop) {
      const LatencyHistogram& f = total.from_send;
      printf("from actual send (excludes our own pacing delays): p50 %.1f  p99 %.1f  p99.9 %.1f\n",
             Us(f.Percentile(0.5)), Us(f.Percentile(0.99)), Us(f.Percentile(0.999)));
    }
    if (o.mode != Mode::kUdp || total.send_errors + total.not_sent > 0) {
      printf("connects %lu (resumed %lu), connect failures %lu, closed by server %lu, send "
             "errors %lu, not sent (no free slot) %lu\n",
             static_cast<unsigned long>(total.connects),          // NOLINT
             static_cast<unsigned long>(total.resumed),           // NOLINT
             static_cast<unsigned long>(total.connect_failures),  // NOLINT
             static_cast<unsigned long>(total.closed_by_server),  // NOLINT
             static_cast<unsigned long>(total.send_errors),       // NOLINT
             static_cast<unsigned long>(total.not_sent));         // NOLINT
    }
    if (!total.first_error.empty()) {
      printf("first error: %s\n", total.first_error.c_str());
    }
  }
  if (const std::string path = absl::GetFlag(FLAGS_histogram); !path.empty()) {
    if (FILE* f = fopen(path.c_str(), "w"); f != nullptr) {
      fputs(total.latency.CdfText().c_str(), f);
      fclose(f);
    } else {
      fprintf(stderr, "dotload: cannot write %s\n", path.c_str());
    }
  }
  printf("%s\n", JsonLine(run, total, elapsed_s, send_s, threads, connections).c_str());
  fflush(stdout);
  return total.answered > 0 ? 0 : 1;
}

}  // namespace
}  // namespace dotproxy::bench

int main(int argc, char** argv) { return dotproxy::bench::Main(argc, argv); }
