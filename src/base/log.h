// File: base/log.h
//
// A small leveled logger writing one line per message to stderr. The level is process-wide and
// set once at start-up, before any shard thread runs. LOG_EVERY_N_SEC rate-limits a call site,
// for the hot path.
//
//   LOG(kWarn, "listener.udp.max_concurrent_connections has no effect");
//   LOG_EVERY_N_SEC(kWarn, 1, "upstream %s: dropped response with unknown id", name);
#ifndef DOTPROXY_BASE_LOG_H_
#define DOTPROXY_BASE_LOG_H_

#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/strings/str_format.h"

namespace dotproxy::base {

enum class LogLevel : uint8_t { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses error|warn|info|debug, case-insensitively. Returns false for anything else.
bool ParseLogLevel(absl::string_view text, LogLevel* level);
void LogLine(LogLevel level, absl::string_view message);
// Returns true at most once per `seconds` for the given call-site state.
bool RateLimitAllows(int64_t* last_ns, int seconds);

}  // namespace dotproxy::base

#define LOG(level, ...)                                                          \
  do {                                                                           \
    if (::dotproxy::base::LogLevel::level <= ::dotproxy::base::GetLogLevel()) { \
      ::dotproxy::base::LogLine(::dotproxy::base::LogLevel::level,              \
                                ::absl::StrFormat(__VA_ARGS__));                \
    }                                                                            \
  } while (false)

#define LOG_EVERY_N_SEC(level, seconds, ...)                                       \
  do {                                                                             \
    static thread_local int64_t log_last_ns_ = 0;                                  \
    if (::dotproxy::base::LogLevel::level <= ::dotproxy::base::GetLogLevel() &&   \
        ::dotproxy::base::RateLimitAllows(&log_last_ns_, seconds)) {               \
      ::dotproxy::base::LogLine(::dotproxy::base::LogLevel::level,                \
                                ::absl::StrFormat(__VA_ARGS__));                  \
    }                                                                              \
  } while (false)

#endif  // DOTPROXY_BASE_LOG_H_
