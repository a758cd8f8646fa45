// dotproxy: plaintext DNS over UDP and TCP in, pooled and verified DNS over TLS out.
//
// The main thread is the control plane: flags, configuration, start-up checks, signals and
// shutdown. It never touches a query; each shard thread owns its whole data plane.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>

#include <condition_variable>
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
#include "base/flag_names.h"
#include "base/log.h"
#include "config/load_config.h"
#include "dotproxy_config.h"
#include "net/sockets.h"
#include "proxy/shard.h"

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
  std::vector<proxy::Shard*> shards;
  // Set once the main thread has made its last RequestStop call. A shard thread keeps its Shard
  // alive until then: Run returns as soon as it sees the stop flag, which RequestStop sets before
  // it writes the shard's wake-up eventfd.
  bool stop_requests_done = false;
};

void ShardMain(const config::Config* config, uint32_t id, uint32_t count, int cpu,
               StartupState* startup) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
    LOG(kWarn, "shard %u: cannot pin to cpu %d", id, cpu);
  }
  // The ring and all buffers are created here, on the pinned thread (first-touch, SINGLE_ISSUER).
  auto shard = proxy::Shard::Create(*config, id, count);
  {
    std::lock_guard<std::mutex> lock(startup->mu);
    ++startup->reported;
    if (!shard.ok()) {
      startup->errors.push_back(std::string(shard.status().message()));
    } else {
      startup->shards[id] = shard->get();
    }
  }
  startup->cv.notify_all();
  if (!shard.ok()) {
    return;
  }
  (*shard)->Run();
  std::unique_lock<std::mutex> lock(startup->mu);
  startup->cv.wait(lock, [&] { return startup->stop_requests_done; });
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
  const config::Config& config = *loaded;
  if (absl::GetFlag(FLAGS_check_config)) {
    printf("%s: configuration OK\n", path.c_str());
    return 0;
  }

  absl::Status free = net::CheckAddressFree(config.listener.udp.addr, SOCK_DGRAM);
  if (free.ok() && config.listener.tcp.enabled) {
    free = net::CheckAddressFree(config.listener.tcp.addr, SOCK_STREAM);
  }
  if (!free.ok()) {
    fprintf(stderr, "dotproxy: %s\n", std::string(free.message()).c_str());
    return 1;
  }

  // Signals go to sigwait in this thread only; shard threads inherit the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const std::vector<int> cpus = AffinityCpus();
  const uint32_t workers =
      config.server.workers > 0 ? config.server.workers : static_cast<uint32_t>(cpus.size());
  StartupState startup;
  startup.shards.resize(workers, nullptr);
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < workers; ++i) {
    threads.emplace_back(ShardMain, &config, i, workers, cpus[i % cpus.size()], &startup);
  }
  {
    std::unique_lock<std::mutex> lock(startup.mu);
    startup.cv.wait(lock, [&] { return startup.reported == workers; });
  }
  auto stop_all = [&] {
    for (proxy::Shard* shard : startup.shards) {
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
  };
  if (!startup.errors.empty()) {
    fprintf(stderr, "dotproxy: %s\n", startup.errors.front().c_str());
    stop_all();
    return 1;
  }
  LOG(kInfo, "dotproxy %s ready: %u shards, udp %s, tcp %s, %zu upstream servers",
      DOTPROXY_VERSION, workers, config.listener.udp.addr.ToString(),
      config.listener.tcp.enabled ? config.listener.tcp.addr.ToString() : "off",
      config.upstream.servers.size());
  int signo = 0;
  sigwait(&signals, &signo);
  LOG(kInfo, "dotproxy: signal %d, stopping", signo);
  stop_all();
  return 0;
}

}  // namespace
}  // namespace dotproxy

int main(int argc, char** argv) { return dotproxy::Main(argc, argv); }
