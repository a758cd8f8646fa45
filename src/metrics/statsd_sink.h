// File: metrics/statsd_sink.h
//
// Where statsd payloads go: one StatsdSink per metrics.statsd.addr target (UDP, TCP, a unix
// datagram socket, a file). Used only by the reporter thread, so a slow, absent or unreachable
// consumer can delay nothing but that thread, and even it never blocks: sockets are
// non-blocking, a payload that does not fit right now is dropped (and counted), TCP reconnects
// with a doubling backoff. Sinks are built at start-up (Create fails only on what cannot work
// later either, such as a file that cannot be opened).
#ifndef DOTPROXY_METRICS_STATSD_SINK_H_
#define DOTPROXY_METRICS_STATSD_SINK_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config/config.h"

namespace dotproxy::metrics {

class StatsdSink {
 public:
  virtual ~StatsdSink() = default;
  // Sends one payload of whole lines (each ending in '\n'). Never blocks.
  virtual void Send(absl::string_view payload, int64_t now_ms) = 0;

  uint64_t sent() const { return sent_; }        // payloads handed to the kernel
  uint64_t dropped() const { return dropped_; }  // payloads dropped (EAGAIN, refused, down)
  const std::string& name() const { return name_; }

  static absl::StatusOr<std::unique_ptr<StatsdSink>> Create(const config::StatsdTarget& target);

 protected:
  explicit StatsdSink(std::string name) : name_(std::move(name)) {}
  uint64_t sent_ = 0;
  uint64_t dropped_ = 0;

 private:
  std::string name_;
};

}  // namespace dotproxy::metrics

#endif  // DOTPROXY_METRICS_STATSD_SINK_H_
