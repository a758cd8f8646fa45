// File: base/systemd.h
//
// sd_notify(3) messages to the service manager, and the watchdog rule. SystemdNotifier is used by
// the main thread only; outside systemd (NOTIFY_SOCKET unset) every call does nothing and
// returns OK. WatchdogGate is pure bookkeeping: it decides whether a WATCHDOG=1 ping is deserved.
//
//   SystemdNotifier notifier;
//   notifier.Ready("4 shards, 2/2 upstreams up");     // after every shard reported set-up
//   if (gate.ShouldPing(iteration_snapshot)) notifier.PingWatchdog();
#ifndef DOTPROXY_BASE_SYSTEMD_H_
#define DOTPROXY_BASE_SYSTEMD_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dotproxy::base {

// Each call sends one datagram to $NOTIFY_SOCKET through libsystemd. An error names the errno;
// the caller logs it and carries on (the service manager, not the proxy, is then at fault).
class SystemdNotifier {
 public:
  SystemdNotifier() = default;

  // True when NOTIFY_SOCKET is set, i.e. systemd (Type=notify) waits for our messages.
  bool enabled() const;

  // READY=1 plus STATUS=`status` (omitted when empty): start-up or a reload is complete.
  absl::Status Ready(absl::string_view status);
  // RELOADING=1 plus MONOTONIC_USEC=<CLOCK_MONOTONIC now>, which systemd 253+ requires with
  // RELOADING=1 (Type=notify-reload); systemd 252 ignores the extra field. Follow with Ready().
  absl::Status Reloading();
  // STOPPING=1: the drain has begun.
  absl::Status Stopping();
  // STATUS=`text`: a one-line status shown by `systemctl status`.
  absl::Status Status(absl::string_view text);

  // The unit's WatchdogSec= for this process (sd_watchdog_enabled(3)), or zero when the watchdog
  // is off. Ping at half this interval, as sd_watchdog_enabled(3) recommends.
  absl::Duration WatchdogInterval() const;
  // WATCHDOG=1. Send only when WatchdogGate::ShouldPing() says every shard made progress.
  absl::Status PingWatchdog();

 private:
  absl::Status Send(absl::string_view message);
};

// The watchdog rule: ping only when every shard's loop-iteration counter moved since the last
// ping, so one wedged shard stops the pings and systemd restarts the service. Shard loops wake
// at least once a second even when idle, so an idle shard still counts as progressing.
class WatchdogGate {
 public:
  WatchdogGate() = default;

  // `iterations[i]` is shard i's loop counter now. Returns true (and takes `iterations` as the
  // new baseline) when every counter differs from the baseline of the last ping. The first call,
  // or a call with a different shard count (after a reconfiguration), only sets the baseline and
  // returns true.
  bool ShouldPing(std::span<const uint64_t> iterations);

  // The first shard that had not moved at the last ShouldPing() that returned false, for the
  // log line; -1 when the last call returned true.
  int stalled_shard() const { return stalled_shard_; }

 private:
  std::vector<uint64_t> baseline_;  // counters at the last ping
  bool has_baseline_ = false;
  int stalled_shard_ = -1;
};

}  // namespace dotproxy::base

#endif  // DOTPROXY_BASE_SYSTEMD_H_
