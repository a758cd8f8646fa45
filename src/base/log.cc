#include "base/log.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/check.h"

namespace dotproxy::base {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kWarn};
std::atomic<LogSink> g_sink{LogSink::kPlain};

// Indexed by LogLevel: the name in the plain format, and the sd-daemon(3) priority prefix for
// the journal (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG).
struct LevelText {
  const char* name;
  const char* journal_prefix;
};
constexpr LevelText kLevelTexts[] = {
    {"ERROR", "<3>"},
    {"WARN", "<4>"},
    {"INFO", "<6>"},
    {"DEBUG", "<7>"},
};
static_assert(static_cast<size_t>(LogLevel::kDebug) + 1 == std::size(kLevelTexts));

const LevelText& TextOf(LogLevel level) {
  const size_t index = static_cast<size_t>(level);
  return kLevelTexts[index < std::size(kLevelTexts) ? index : std::size(kLevelTexts) - 1];
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

void SetLogSink(LogSink sink) { g_sink.store(sink, std::memory_order_relaxed); }
LogSink GetLogSink() { return g_sink.load(std::memory_order_relaxed); }

bool JournalStreamMatches(const char* journal_stream, dev_t dev, ino_t ino) {
  if (journal_stream == nullptr) {
    return false;
  }
  const absl::string_view text(journal_stream);
  const size_t colon = text.find(':');
  uint64_t want_dev = 0;
  uint64_t want_ino = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(text.substr(0, colon), &want_dev) ||
      !absl::SimpleAtoi(text.substr(colon + 1), &want_ino)) {
    return false;
  }
  return want_dev == static_cast<uint64_t>(dev) && want_ino == static_cast<uint64_t>(ino);
}

LogSink ConfigureLogSink() {
  LogSink sink = LogSink::kPlain;
  struct stat st;
  // systemd.exec(5): a process whose stderr was redirected elsewhere inherits JOURNAL_STREAM
  // anyway, so the variable alone proves nothing; fd 2 must still be that stream.
  if (fstat(STDERR_FILENO, &st) == 0 &&
      JournalStreamMatches(getenv("JOURNAL_STREAM"), st.st_dev, st.st_ino)) {
    sink = LogSink::kJournal;
  }
  SetLogSink(sink);
  return sink;
}

std::string FormatLogLine(LogSink sink, LogLevel level, absl::string_view message,
                          absl::Time now) {
  std::string line;
  if (sink == LogSink::kJournal) {
    const char* prefix = TextOf(level).journal_prefix;
    line.reserve(message.size() + 4);
    line.append(prefix);
    for (const char c : message) {
      line.push_back(c);
      if (c == '\n') {
        line.append(prefix);
      }
    }
  } else {
    const timespec ts = absl::ToTimespec(now);
    tm parts;
    gmtime_r(&ts.tv_sec, &parts);
    char prefix[64];
    const int n = snprintf(prefix, sizeof(prefix), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                           parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour,
                           parts.tm_min, parts.tm_sec, ts.tv_nsec / 1000000, TextOf(level).name);
    line.assign(prefix, n > 0 ? static_cast<size_t>(n) : 0);
    line.append(message.data(), message.size());
  }
  line.push_back('\n');
  return line;
}

void LogLine(LogLevel level, absl::string_view message) {
  const std::string line = FormatLogLine(GetLogSink(), level, message, absl::Now());
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
