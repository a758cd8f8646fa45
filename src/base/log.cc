#include "base/log.h"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/ascii.h"
#include "base/check.h"

namespace dotproxy::base {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kWarn};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "ERROR";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kDebug:
      return "DEBUG";
  }
  return "?";
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "error") {
    *level = LogLevel::kError;
  } else if (lower == "warn" || lower == "warning") {
    *level = LogLevel::kWarn;
  } else if (lower == "info") {
    *level = LogLevel::kInfo;
  } else if (lower == "debug") {
    *level = LogLevel::kDebug;
  } else {
    return false;
  }
  return true;
}

void LogLine(LogLevel level, absl::string_view message) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm parts;
  gmtime_r(&ts.tv_sec, &parts);
  char prefix[64];
  const int n = snprintf(prefix, sizeof(prefix), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                         parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour,
                         parts.tm_min, parts.tm_sec, ts.tv_nsec / 1000000, LevelName(level));
  std::string line(prefix, n > 0 ? static_cast<size_t>(n) : 0);
  line.append(message.data(), message.size());
  line.push_back('\n');
  // One write per line so lines from different threads never interleave.
  [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
}

bool RateLimitAllows(int64_t* last_ns, int seconds) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  const int64_t now = ts.tv_sec * 1000000000LL + ts.tv_nsec;
  if (*last_ns != 0 && now - *last_ns < static_cast<int64_t>(seconds) * 1000000000LL) {
    return false;
  }
  *last_ns = now;
  return true;
}

namespace internal {
void CheckFailed(const char* file, int line, const char* condition) {
  fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, condition);
  abort();
}
}  // namespace internal

}  // namespace dotproxy::base
