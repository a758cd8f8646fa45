// dotproxy: plaintext DNS over UDP and TCP in, pooled and verified DNS over TLS out.
//
// The main thread is the control plane: flags, configuration, start-up checks, signals and
// shutdown. It never touches a query; each shard thread owns its whole data plane.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/flag_names.h"
#include "base/log.h"
#include "base/process.h"
#include "config/load_config.h"
#include "core/kernel_features.h"
#include "dotproxy_config.h"
#include "metrics/reporter.h"
#include "net/ktls.h"
#include "net/sockets.h"
#include "base/fd_limits.h"
#include "base/privileges.h"
#include "base/status_macros.h"
#include "control_loop.h"
#include "proxy/shard.h"
#include "upstream/handoff_hub.h"
#include "upstream/server_ids.h"

ABSL_FLAG(std::string, config, "", "path to the YAML configuration (default: $DOTPROXY_CONFIG)");
ABSL_FLAG(bool, check_config, false, "validate the configuration and exit 0 (valid) or 1");
ABSL_FLAG(std::string, verbosity, "warn", "log level: error, warn, info or debug");
ABSL_FLAG(bool, version, false, "print the version and exit");

namespace dotproxy {
namespace {

constexpr char kUsage[] =
    "dotproxy: a DNS-over-TLS forwarding proxy.\n"
    "\n"
    "usage: dotproxy --config FILE [--verbosity error|warn|info|debug]\n"
    "       dotproxy --check-config --config FILE\n"
    "       dotproxy --version\n"
    "\n"
    "  --config FILE       YAML configuration (default: the DOTPROXY_CONFIG environment variable)\n"
    "  --check-config      validate the configuration, print the result, exit 0 or 1\n"
    "  --verbosity LEVEL   error, warn (default), info or debug\n"
    "  --version           print the version and exit\n"
    "  --help              print this text\n"
    "\n"
    "Flags take one or two dashes; --check-config and --check_config are the same flag.\n";

std::vector<int> AffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) {
        cpus.push_back(cpu);
      }
    }
  }
  if (cpus.empty()) {
    cpus.push_back(0);
  }
  return cpus;
}

// Start-up and shutdown hand-off between the main thread and the shard threads (not on the data
// path).
struct StartupState {
  std::mutex mu;
  std::condition_variable cv;
  uint32_t reported = 0;
  std::vector<std::string> errors;
  // Owned here, not by the shard threads: a shard is freed only after its thread was joined, so
  // RequestStop() never touches a shard that is being torn down.
  std::vector<std::unique_ptr<proxy::Shard>> shards;
  // Set once the main thread has made its last RequestStop call: a shard thread frees its Shard
  // (on its own thread, as its SINGLE_ISSUER ring wants) only after that.
  bool stop_requests_done = false;
};

void ShardMain(const config::Config* config, uint32_t id, uint32_t count, int cpu,
               upstream::HandoffHub* hub, StartupState* startup, std::atomic<uint32_t>* finished) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
    LOG(kWarn, "shard %u: cannot pin to cpu %d", id, cpu);
  }
  // The ring and all buffers are created here, on the pinned thread (first-touch, SINGLE_ISSUER).
  auto shard = proxy::Shard::Create(*config, id, count, hub);
  proxy::Shard* running = nullptr;
  {
    std::lock_guard<std::mutex> lock(startup->mu);
    ++startup->reported;
    if (!shard.ok()) {
      startup->errors.push_back(std::string(shard.status().message()));
    } else {
      running = shard->get();
      startup->shards[id] = std::move(shard).value();
    }
  }
  startup->cv.notify_all();
  if (running != nullptr) {
    running->Run();
  }
  finished->fetch_add(1, std::memory_order_release);
  std::unique_lock<std::mutex> lock(startup->mu);
  startup->cv.wait(lock, [&] { return startup->stop_requests_done; });
  if (running != nullptr) {
    startup->shards[id].reset();
  }
}

// PrepareProcess raised RLIMIT_NOFILE to the hard limit; if the shards could still run out of
// descriptors at full load (which would then look like failing upstreams), say so with the
// numbers.
void WarnIfFdsRunShort(const config::Config& config, uint32_t workers) {
  uint32_t upstream = 0;  // per shard, counting a replacement for each connection still closing
  for (const config::ServerConfig& sc : config.upstream.servers) {
    upstream += 2 * std::max<uint32_t>(1, (sc.connection_pool_size + workers - 1) / workers);
  }
  const uint32_t clients = config.listener.tcp.enabled ? config.listener.tcp.max_connections : 0;
  const auto listeners = static_cast<uint32_t>(config::ListenAddresses(config.listener.udp).size() +
                                               config::ListenAddresses(config.listener.tcp).size());
  constexpr uint32_t kPerShardSpares = 16;  // ring, eventfd, closing client connections' slack
  if (absl::Status budget =
          base::CheckFdBudget(workers, clients, upstream, listeners + kPerShardSpares);
      !budget.ok()) {
    LOG(kWarn, "dotproxy: %s", budget.message());
  }
}

// After every shard has bound its sockets: started as root with server.user set, become that
// user; started as root without it, say so once.
// `ktls: on` promises offload: without kTLS in this kernel, refuse to start (auto falls back).
absl::Status CheckKtls(const config::Config& config) {
  for (const config::ServerConfig& server : config.upstream.servers) {
    if (server.ktls == config::Ktls::kOn && !net::KtlsAvailable()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "upstream ", server.addr_text, ": ktls is on, but this kernel has no kernel TLS (kTLS: "
          "setting TCP_ULP \"tls\" fails; modprobe tls, or set ktls: auto or off)"));
    }
  }
  return absl::OkStatus();
}

absl::Status MaybeDropPrivileges(const config::Config& config) {
  if (!base::IsRoot()) {
    return absl::OkStatus();
  }
  if (config.server.user.empty()) {
    LOG(kWarn, "dotproxy: running as root; set server.user to drop privileges after binding");
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(base::DropPrivileges(config.server.user));
  LOG(kInfo, "dotproxy: now running as %s", config.server.user);
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help" || arg == "-help" || arg == "--helpfull") {
      fputs(kUsage, stdout);
      return 0;
    }
  }
  base::NormalizeFlagNames(argc, argv);
  absl::SetProgramUsageMessage(kUsage);
  absl::ParseCommandLine(argc, argv);

  if (absl::GetFlag(FLAGS_version)) {
    printf("dotproxy %s\n", DOTPROXY_VERSION);
    return 0;
  }
  base::LogLevel level;
  if (!base::ParseLogLevel(absl::GetFlag(FLAGS_verbosity), &level)) {
    fprintf(stderr, "dotproxy: --verbosity: unknown level \"%s\" (use error, warn, info or debug)\n",
            absl::GetFlag(FLAGS_verbosity).c_str());
    return 1;
  }
  base::SetLogLevel(level);
  base::ConfigureLogSink();  // journald priorities when stderr is the journal

  std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) {
    if (const char* env = getenv("DOTPROXY_CONFIG"); env != nullptr) {
      path = env;
    }
  }
  if (path.empty()) {
    fprintf(stderr, "dotproxy: no configuration: pass --config FILE or set DOTPROXY_CONFIG\n");
    return 1;
  }
  std::vector<std::string> warnings;
  auto loaded = config::LoadConfig(path, &warnings);
  if (!loaded.ok()) {
    fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str());
    return 1;
  }
  for (const std::string& w : warnings) {
    LOG(kWarn, "%s", w);
  }
  // Metrics ids of every server configured in this process (the loader's 0, 1, ... at first).
  upstream::ServerIds server_ids;
  server_ids.Assign(&loaded->upstream);
  // `initial` outlives the shards (they copy it at start); `current` follows reloads.
  const std::shared_ptr<const config::Config> initial =
      std::make_shared<const config::Config>(std::move(loaded).value());
  std::shared_ptr<const config::Config> current = initial;
  const config::Config& config = *initial;
  if (absl::GetFlag(FLAGS_check_config)) {
    printf("%s: configuration OK\n", path.c_str());
    return 0;
  }

  absl::Status free = absl::OkStatus();
  for (const base::SocketAddress& addr : config::ListenAddresses(config.listener.udp)) {
    free.Update(net::CheckAddressFree(addr, SOCK_DGRAM));
  }
  if (config.listener.tcp.enabled) {
    for (const base::SocketAddress& addr : config::ListenAddresses(config.listener.tcp)) {
      free.Update(net::CheckAddressFree(addr, SOCK_STREAM));
    }
  }
  if (!free.ok()) {
    fprintf(stderr, "dotproxy: %s\n", std::string(free.message()).c_str());
    return 1;
  }

  // What the kernel offers, once, before any shard starts: below the minimum, one line naming
  // the missing feature instead of a shard failing later.
  const core::KernelFeatures kernel = core::ProbeKernelFeatures();
  if (const absl::Status usable = core::CheckKernelFeatures(kernel); !usable.ok()) {
    fprintf(stderr, "dotproxy: %s\n", std::string(usable.message()).c_str());
    return 1;
  }
  LOG(kDebug, "kernel: %s", core::DescribeKernelFeatures(kernel));
  if (const absl::Status ktls = CheckKtls(config); !ktls.ok()) {
    fprintf(stderr, "dotproxy: %s\n", std::string(ktls.message()).c_str());
    return 1;
  }

  // Signals go to sigtimedwait in this thread only; shard threads inherit the blocked mask.
  sigset_t signals;
  base::PrepareProcess(&signals);
  sigaddset(&signals, SIGHUP);  // reload: taken by sigtimedwait below, like the stop signals
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::vector<int> cpus = AffinityCpus();
  const uint32_t workers =
      config.server.workers > 0 ? config.server.workers : static_cast<uint32_t>(cpus.size());
  WarnIfFdsRunShort(config, workers);
  // Shared by the shards (directory, hand-off rings); declared first, so it outlives them.
  upstream::HandoffHub hub(workers);
  StartupState startup;
  startup.shards.resize(workers);
  std::vector<std::thread> threads;
  std::atomic<uint32_t> finished{0};
  for (uint32_t i = 0; i < workers; ++i) {
    threads.emplace_back(ShardMain, &config, i, workers, cpus[i % cpus.size()], &hub, &startup,
                         &finished);
  }
  {
    std::unique_lock<std::mutex> lock(startup.mu);
    startup.cv.wait(lock, [&] { return startup.reported == workers; });
  }
  auto stop_all = [&] {
    for (const std::unique_ptr<proxy::Shard>& shard : startup.shards) {
      if (shard != nullptr) {
        shard->RequestStop();
      }
    }
    {
      std::lock_guard<std::mutex> lock(startup.mu);
      startup.stop_requests_done = true;
    }
    startup.cv.notify_all();
    for (std::thread& t : threads) {
      t.join();
    }
    startup.shards.clear();
  };
  if (!startup.errors.empty()) {
    fprintf(stderr, "dotproxy: %s\n", startup.errors.front().c_str());
    stop_all();
    return 1;
  }
  std::vector<const metrics::ShardCounters*> blocks;
  for (const std::unique_ptr<proxy::Shard>& shard : startup.shards) {
    blocks.push_back(&shard->counters());
  }
  auto reporter = metrics::Reporter::Create(config, std::move(blocks));
  if (!reporter.ok()) {
    fprintf(stderr, "dotproxy: %s\n", std::string(reporter.status().message()).c_str());
    stop_all();
    return 1;
  }
  (*reporter)->Start();  // its own thread; stopped before the shards (and their blocks) are freed
  LOG(kInfo, "dotproxy %s ready: %u shards, udp %s, tcp %s, %zu upstream servers",
      DOTPROXY_VERSION, workers, config.listener.udp.addr.ToString(),
      config.listener.tcp.enabled ? config.listener.tcp.addr.ToString() : "off",
      config.upstream.servers.size());
  if (absl::Status dropped = MaybeDropPrivileges(config); !dropped.ok()) {
    fprintf(stderr, "dotproxy: %s\n", std::string(dropped.message()).c_str());
    (*reporter)->Stop();
    stop_all();
    return 1;
  }
  ControlLoopOptions control;
  control.config_path = path;
  control.config = initial;
  control.signals = signals;
  control.shards = &startup.shards;
  control.finished = &finished;
  control.server_ids = &server_ids;
  control.reporter = reporter->get();
  const int status = RunControlLoop(std::move(control));
  (*reporter)->Stop();
  stop_all();
  LOG(kInfo, "dotproxy: stopped");
  return status;
}

}  // namespace
}  // namespace dotproxy

int main(int argc, char** argv) { return dotproxy::Main(argc, argv); }
