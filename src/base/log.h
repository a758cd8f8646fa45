// File: base/log.h
//
// A small leveled logger writing one line per message to stderr. The level is process-wide and
// set once at start-up, before any shard thread runs. LOG_EVERY_N_SEC rate-limits a call site,
// for the hot path. The sink (plain stderr or the systemd journal's stderr stream) is also chosen
// once at start-up, by ConfigureLogSink().
//
//   LOG(kWarn, "listener.udp.max_concurrent_connections has no effect");
//   LOG_EVERY_N_SEC(kWarn, 1, "upstream %s: dropped response with unknown id", name);
#ifndef DOTPROXY_BASE_LOG_H_
#define DOTPROXY_BASE_LOG_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dotproxy::base {

enum class LogLevel : uint8_t { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses error|warn|info|debug, case-insensitively. Returns false for anything else.
bool ParseLogLevel(absl::string_view text, LogLevel* level);
void LogLine(LogLevel level, absl::string_view message);

// How a line is written. kPlain: "2026-11-30T15:13:41.123Z WARN message". kJournal (stderr is
// connected to journald): "<4>message", the sd-daemon priority prefix (sd-daemon(3)) on every
// line and no timestamp, since journald adds its own and maps the prefix to PRIORITY=.
enum class LogSink : uint8_t { kPlain, kJournal };

// Decides the sink once from the environment and sets it: kJournal when JOURNAL_STREAM names the
// device and inode of fd 2 (systemd.exec(5)), kPlain otherwise. Call once from main, before any
// shard thread starts; returns what it chose.
LogSink ConfigureLogSink();
void SetLogSink(LogSink sink);
LogSink GetLogSink();
// True when `journal_stream` (JOURNAL_STREAM's value, "DEV:INO" in decimal; may be null) names
// the file with device `dev` and inode `ino`.
bool JournalStreamMatches(const char* journal_stream, dev_t dev, ino_t ino);
// The whole line LogLine writes for `sink`, newline included. `now` is used by kPlain only.
// Under kJournal an embedded newline starts a new journal entry, so it gets the prefix too.
std::string FormatLogLine(LogSink sink, LogLevel level, absl::string_view message, absl::Time now);
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
