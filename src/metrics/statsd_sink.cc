#include "metrics/statsd_sink.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "config/statsd_addr.h"
#include <sys/socket.h>
#include <sys/un.h>

namespace dotproxy::metrics {
namespace {

constexpr int64_t kReconnectInitialMs = 100;
constexpr int64_t kReconnectMaxMs = 30'000;
constexpr size_t kMaxPendingBytes = 256 * 1024;  // TCP: what waits for a slow server, at most

// A connected datagram socket (UDP, or AF_UNIX SOCK_DGRAM). Connected so that ICMP port
// unreachable shows up as ECONNREFUSED instead of silently; either way the payload is dropped.
class DatagramSink final : public StatsdSink {
 public:
  DatagramSink(std::string name, const config::StatsdTarget& target)
      : StatsdSink(std::move(name)), target_(target) {}

  void Send(absl::string_view payload, int64_t now_ms) override {
    if (!fd_.is_valid() && !Open(now_ms)) {
      ++dropped_;
      return;
    }
    const ssize_t n = send(fd_.get(), payload.data(), payload.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(payload.size())) {
      ++sent_;
      return;
    }
    ++dropped_;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED) {
      // The unix socket went away (statsd restarted): reconnect on a later send.
      LOG_EVERY_N_SEC(kWarn, 10, "statsd %s: %s", this->name(), strerror(errno));
      if (target_.kind == config::StatsdTarget::Kind::kUnix) {
        fd_.reset();
      }
    }
  }

  bool Open(int64_t now_ms) {
    if (now_ms < retry_at_ms_) {
      return false;
    }
    retry_at_ms_ = now_ms + kReconnectInitialMs * 10;
    if (target_.kind == config::StatsdTarget::Kind::kUnix) {
      base::UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      sockaddr_un sun{};
      sun.sun_family = AF_UNIX;
      memcpy(sun.sun_path, target_.path.data(),
             std::min(target_.path.size(), sizeof(sun.sun_path) - 1));
      if (!fd.is_valid() ||
          connect(fd.get(), reinterpret_cast<const sockaddr*>(&sun), sizeof(sun)) != 0) {
        LOG_EVERY_N_SEC(kWarn, 10, "statsd %s: %s", name(), strerror(errno));
        return false;
      }
      fd_ = std::move(fd);
      return true;
    }
    base::UniqueFd fd(socket(target_.addr.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.is_valid() || connect(fd.get(), target_.addr.raw(), target_.addr.length()) != 0) {
      LOG_EVERY_N_SEC(kWarn, 10, "statsd %s: %s", name(), strerror(errno));
      return false;
    }
    fd_ = std::move(fd);
    return true;
  }

 private:
  config::StatsdTarget target_;
  base::UniqueFd fd_;
  int64_t retry_at_ms_ = 0;
};

// Newline-delimited lines over TCP. Connects without blocking; while it is down, or while the
// server reads slower than we write beyond kMaxPendingBytes, payloads are dropped.
class TcpSink final : public StatsdSink {
 public:
  TcpSink(std::string name, const config::StatsdTarget& target)
      : StatsdSink(std::move(name)), target_(target) {}

  void Send(absl::string_view payload, int64_t now_ms) override {
    if (!IsConnected(now_ms)) {
      ++dropped_;
      return;
    }
    if (pending_.size() + payload.size() > kMaxPendingBytes) {
      ++dropped_;
    } else {
      pending_.append(payload.data(), payload.size());
      ++sent_;
    }
    while (!pending_.empty()) {
      const ssize_t n =
          send(fd_.get(), pending_.data(), pending_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        pending_.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      }
      Fail(now_ms, n == 0 ? "send made no progress" : strerror(errno));
      return;
    }
  }

  void StartConnect() { IsConnected(absl::GetCurrentTimeNanos() / 1'000'000); }

 private:
  bool IsConnected(int64_t now_ms) {
    if (is_connected_) {
      return true;
    }
    if (fd_.is_valid()) {
      // A connect in progress: done when the socket is writable.
      pollfd p{fd_.get(), POLLOUT, 0};
      if (poll(&p, 1, 0) == 0) {
        if (now_ms - connect_started_ms_ > kReconnectMaxMs) {
          Fail(now_ms, "connect timeout");
        }
        return false;
      }
      int error = 0;
      socklen_t len = sizeof(error);
      getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &error, &len);
      if (error != 0) {
        Fail(now_ms, strerror(error));
        return false;
      }
      is_connected_ = true;
      backoff_ms_ = kReconnectInitialMs;
      LOG(kInfo, "statsd %s: connected", name());
      return true;
    }
    if (now_ms < retry_at_ms_) {
      return false;
    }
    fd_ = base::UniqueFd(
        socket(target_.addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_.is_valid()) {
      Fail(now_ms, strerror(errno));
      return false;
    }
    connect_started_ms_ = now_ms;
    if (connect(fd_.get(), target_.addr.raw(), target_.addr.length()) == 0) {
      is_connected_ = true;
      return true;
    }
    if (errno != EINPROGRESS) {
      Fail(now_ms, strerror(errno));
    }
    return false;
  }

  void Fail(int64_t now_ms, const char* reason) {
    LOG_EVERY_N_SEC(kWarn, 10, "statsd %s: %s; reconnecting in %ld ms", name(), reason,
                    backoff_ms_);
    fd_.reset();
    is_connected_ = false;
    pending_.clear();
    retry_at_ms_ = now_ms + backoff_ms_;
    backoff_ms_ = std::min(backoff_ms_ * 2, kReconnectMaxMs);
  }

  config::StatsdTarget target_;
  base::UniqueFd fd_;
  bool is_connected_ = false;
  int64_t connect_started_ms_ = 0;
  int64_t retry_at_ms_ = 0;
  int64_t backoff_ms_ = kReconnectInitialMs;
  std::string pending_;  // bytes accepted but not yet written
};

// Appends lines to a file (O_APPEND, so a Telegraf tail or logrotate copytruncate cope).
class FileSink final : public StatsdSink {
 public:
  FileSink(std::string name, base::UniqueFd fd) : StatsdSink(std::move(name)), fd_(std::move(fd)) {}

  void Send(absl::string_view payload, int64_t /*now_ms*/) override {
    const ssize_t n = write(fd_.get(), payload.data(), payload.size());
    if (n == static_cast<ssize_t>(payload.size())) {
      ++sent_;
    } else {
      ++dropped_;
      LOG_EVERY_N_SEC(kWarn, 10, "statsd %s: %s", name(), n < 0 ? strerror(errno) : "short write");
    }
  }

 private:
  base::UniqueFd fd_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StatsdSink>> StatsdSink::Create(const config::StatsdTarget& target) {
  std::string name = config::StatsdTargetName(target);
  switch (target.kind) {
    case config::StatsdTarget::Kind::kUdp:
    case config::StatsdTarget::Kind::kUnix: {
      auto sink = std::make_unique<DatagramSink>(std::move(name), target);
      sink->Open(0);  // a unix socket that does not exist yet is retried on later sends
      return sink;
    }
    case config::StatsdTarget::Kind::kTcp: {
      auto sink = std::make_unique<TcpSink>(std::move(name), target);
      sink->StartConnect();  // so that it is likely up by the first flush
      return sink;
    }
    case config::StatsdTarget::Kind::kFile: {
      base::UniqueFd fd(
          open(target.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644));
      if (!fd.is_valid()) {
        return absl::InvalidArgumentError(
            absl::StrCat("metrics.statsd.addr: cannot open ", name, ": ", strerror(errno)));
      }
      return std::make_unique<FileSink>(std::move(name), std::move(fd));
    }
  }
  return absl::InternalError("unknown statsd target kind");
}

}  // namespace dotproxy::metrics
