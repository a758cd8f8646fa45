#include "control_loop.h"

#include <unistd.h>

#include <cstring>
#include <latch>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/log.h"
#include "base/systemd.h"
#include "reload.h"

namespace dotproxy {
namespace {

// The loop wakes this often to follow the drain and the watchdog.
constexpr long kTickNs = 50'000'000;  // NOLINT(runtime/int): timespec's type
// How much longer than server.shutdown_grace the shards get (answers going out, close_notify).
constexpr absl::Duration kDrainSlack = absl::Seconds(2);

[[noreturn]] void ExitNow(int status) {
  fflush(stderr);
  _exit(status);
}

class ControlLoop {
 public:
  explicit ControlLoop(ControlLoopOptions options) : o_(std::move(options)) {}

  int Run() {
    WaitForShardLoops();
    Notify(notifier_.Ready(StatusLine()), "READY");
    const absl::Duration watchdog = notifier_.WatchdogInterval();
    absl::Time next_ping = absl::Now();
    for (;;) {
      const timespec tick = {0, kTickNs};
      const int signo = sigtimedwait(&o_.signals, nullptr, &tick);
      if (signo == SIGTERM || signo == SIGINT) {
        OnStopSignal(signo);
      } else if (signo == SIGHUP && !is_draining_) {
        Reload();
      }
      if (is_draining_ && o_.finished->load(std::memory_order_acquire) == o_.shards->size()) {
        return 0;
      }
      if (is_draining_ && absl::Now() > give_up_) {
        LOG(kError, "dotproxy: shards did not stop within the shutdown grace; exiting");
        ExitNow(1);
      }
      if (watchdog > absl::ZeroDuration() && absl::Now() >= next_ping) {
        FeedWatchdog();
        next_ping = absl::Now() + watchdog / 2;
      }
    }
  }

 private:
  // READY=1 means "every shard answers": each loop must have run a task posted to it.
  void WaitForShardLoops() {
    std::latch running(static_cast<std::ptrdiff_t>(o_.shards->size()));
    for (const auto& shard : *o_.shards) {
      shard->Post([&running] { running.count_down(); });
    }
    running.wait();
  }

  void OnStopSignal(int signo) {
    if (is_draining_) {
      LOG(kWarn, "dotproxy: second signal %d (%s): exiting at once", signo, strsignal(signo));
      ExitNow(1);
    }
    is_draining_ = true;
    Notify(notifier_.Stopping(), "STOPPING");
    const int64_t grace_ms = absl::ToInt64Milliseconds(o_.config->server.shutdown_grace);
    LOG(kInfo, "dotproxy: signal %d (%s): draining, up to %ld ms", signo, strsignal(signo),
        grace_ms);
    for (const auto& shard : *o_.shards) {
      shard->Drain(grace_ms);
    }
    give_up_ = absl::Now() + absl::Milliseconds(grace_ms) + kDrainSlack;
  }

  void Reload() {
    Notify(notifier_.Reloading(), "RELOADING");
    auto next = LoadReloadedConfig(o_.config_path, *o_.config, o_.server_ids);
    if (!next.ok()) {
      LOG(kError, "reload failed, keeping the running configuration: %s",
          next.status().message());
    } else {
      LOG(kWarn, "reload: %s", DescribeChanges(*o_.config, **next));
      // Each shard allocates the new servers' counter blocks before it is posted the config;
      // the reporter publishes each server under its own labels whichever list the shards run
      // (blocks are by metrics id, not by position).
      for (const auto& shard : *o_.shards) {
        shard->Reconfigure(*next);
      }
      o_.reporter->SetServers((*next)->upstream);
      o_.config = std::move(next).value();
      ++reloads_;
    }
    Notify(notifier_.Ready(StatusLine()), "READY");
  }

  // WATCHDOG=1 only while every shard's loop is making progress.
  void FeedWatchdog() {
    std::vector<uint64_t> iterations;
    iterations.reserve(o_.shards->size());
    for (const auto& shard : *o_.shards) {
      iterations.push_back(shard->iterations());
    }
    if (gate_.ShouldPing(iterations)) {
      Notify(notifier_.PingWatchdog(), "WATCHDOG");
    } else {
      LOG_EVERY_N_SEC(kError, 10, "dotproxy: shard %d is not making progress; no watchdog ping",
                      gate_.stalled_shard());
    }
  }

  std::string StatusLine() const {
    return absl::StrCat(o_.shards->size(), " shards, ", o_.config->upstream.servers.size(),
                        " upstream servers, ", reloads_, " reloads");
  }

  static void Notify(const absl::Status& status, const char* what) {
    if (!status.ok()) {
      LOG_EVERY_N_SEC(kWarn, 60, "sd_notify %s: %s", what, status.message());
    }
  }

  ControlLoopOptions o_;
  base::SystemdNotifier notifier_;
  base::WatchdogGate gate_;
  bool is_draining_ = false;
  absl::Time give_up_;
  uint64_t reloads_ = 0;
};

}  // namespace

int RunControlLoop(ControlLoopOptions options) { return ControlLoop(std::move(options)).Run(); }

}  // namespace dotproxy
