// File: control_loop.h
//
// The main thread's life after the shards are up: it waits for signals and acts on them, tells
// systemd what is going on, and feeds the watchdog while every shard's loop makes progress.
//
//   SIGTERM, SIGINT  drain: stop reading, answer what is in flight within server.shutdown_grace
//                    (SERVFAIL after), close_notify upstream, exit 0; a second one exits at once
//   SIGHUP           reload: re-read and check the file here, then each shard switches at a loop
//                    boundary; on any error the running configuration stays
#ifndef DOTPROXY_CONTROL_LOOP_H_
#define DOTPROXY_CONTROL_LOOP_H_

#include <signal.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "metrics/reporter.h"
#include "proxy/shard.h"
#include "upstream/server_ids.h"

namespace dotproxy {

struct ControlLoopOptions {
  std::string config_path;                       // re-read on SIGHUP
  std::shared_ptr<const config::Config> config;  // what the shards started with
  sigset_t signals;                              // blocked; taken with sigtimedwait
  const std::vector<std::unique_ptr<proxy::Shard>>* shards = nullptr;
  const std::atomic<uint32_t>* finished = nullptr;  // shards whose Run() has returned
  upstream::ServerIds* server_ids = nullptr;  // metrics ids of every server configured so far
  metrics::Reporter* reporter = nullptr;      // told the new server list at each reload
};

// Runs until the shards have drained after SIGTERM/SIGINT; returns the exit status. Sends
// READY=1 first (systemd), after checking that every shard's loop runs.
int RunControlLoop(ControlLoopOptions options);

}  // namespace dotproxy

#endif  // DOTPROXY_CONTROL_LOOP_H_
