#include "base/systemd.h"

#include <stdlib.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <systemd/sd-daemon.h>

#include "absl/strings/str_cat.h"

namespace dotproxy::base {

bool SystemdNotifier::enabled() const {
  const char* socket = getenv("NOTIFY_SOCKET");
  return socket != nullptr && socket[0] != '\0';
}

absl::Status SystemdNotifier::Send(absl::string_view message) {
  if (!enabled()) {
    return absl::OkStatus();
  }
  const std::string text(message);
  // unset_environment=0: NOTIFY_SOCKET stays, so later messages (reload, stop) still go out.
  const int result = sd_notify(0, text.c_str());
  if (result < 0) {
    return absl::ErrnoToStatus(-result, absl::StrCat("sd_notify ", message.substr(0, 12)));
  }
  return absl::OkStatus();
}

absl::Status SystemdNotifier::Ready(absl::string_view status) {
  if (status.empty()) {
    return Send("READY=1");
  }
  return Send(absl::StrCat("READY=1\nSTATUS=", status));
}

absl::Status SystemdNotifier::Reloading() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t usec = static_cast<uint64_t>(now.tv_sec) * 1000000u +
                        static_cast<uint64_t>(now.tv_nsec) / 1000u;
  return Send(absl::StrCat("RELOADING=1\nMONOTONIC_USEC=", usec));
}

absl::Status SystemdNotifier::Stopping() { return Send("STOPPING=1"); }

absl::Status SystemdNotifier::Status(absl::string_view text) {
  return Send(absl::StrCat("STATUS=", text));
}

absl::Duration SystemdNotifier::WatchdogInterval() const {
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process.
  if (sd_watchdog_enabled(0, &usec) <= 0) {
    return absl::ZeroDuration();
  }
  return absl::Microseconds(static_cast<int64_t>(usec));
}

absl::Status SystemdNotifier::PingWatchdog() { return Send("WATCHDOG=1"); }

bool WatchdogGate::ShouldPing(std::span<const uint64_t> iterations) {
  if (!has_baseline_ || baseline_.size() != iterations.size()) {
    baseline_.assign(iterations.begin(), iterations.end());
    has_baseline_ = true;
    stalled_shard_ = -1;
    return true;
  }
  for (size_t i = 0; i < iterations.size(); ++i) {
    if (iterations[i] == baseline_[i]) {
      stalled_shard_ = static_cast<int>(i);
      return false;
    }
  }
  baseline_.assign(iterations.begin(), iterations.end());
  stalled_shard_ = -1;
  return true;
}

}  // namespace dotproxy::base
