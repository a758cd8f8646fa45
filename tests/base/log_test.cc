#include "base/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace dotproxy::base {
namespace {

// 2026-11-30T15:13:41.123456Z
absl::Time FixedTime() {
  return absl::FromUnixSeconds(1796051621) + absl::Microseconds(123456);
}

TEST(LogFormatTest, PlainKeepsTimestampAndLevelName) {
  EXPECT_EQ(FormatLogLine(LogSink::kPlain, LogLevel::kWarn, "upstream down", FixedTime()),
            "2026-11-30T15:13:41.123Z WARN upstream down\n");
  EXPECT_EQ(FormatLogLine(LogSink::kPlain, LogLevel::kError, "x", FixedTime()),
            "2026-11-30T15:13:41.123Z ERROR x\n");
  EXPECT_EQ(FormatLogLine(LogSink::kPlain, LogLevel::kDebug, "", FixedTime()),
            "2026-11-30T15:13:41.123Z DEBUG \n");
}

TEST(LogFormatTest, JournalUsesSdDaemonPriorityAndNoTimestamp) {
  EXPECT_EQ(FormatLogLine(LogSink::kJournal, LogLevel::kError, "bind failed", FixedTime()),
            "<3>bind failed\n");
  EXPECT_EQ(FormatLogLine(LogSink::kJournal, LogLevel::kWarn, "w", FixedTime()), "<4>w\n");
  EXPECT_EQ(FormatLogLine(LogSink::kJournal, LogLevel::kInfo, "i", FixedTime()), "<6>i\n");
  EXPECT_EQ(FormatLogLine(LogSink::kJournal, LogLevel::kDebug, "d", FixedTime()), "<7>d\n");
}

TEST(LogFormatTest, JournalPrefixesEveryLineOfAMultiLineMessage) {
  EXPECT_EQ(FormatLogLine(LogSink::kJournal, LogLevel::kWarn, "first\nsecond", FixedTime()),
            "<4>first\n<4>second\n");
}

TEST(LogFormatTest, JournalStreamMatchesOnlyTheSameDeviceAndInode) {
  EXPECT_TRUE(JournalStreamMatches("8:12345", 8, 12345));
  EXPECT_FALSE(JournalStreamMatches("8:12345", 8, 12346));
  EXPECT_FALSE(JournalStreamMatches("9:12345", 8, 12345));
  EXPECT_FALSE(JournalStreamMatches(nullptr, 8, 12345));
  EXPECT_FALSE(JournalStreamMatches("", 8, 12345));
  EXPECT_FALSE(JournalStreamMatches("8", 8, 12345));
  EXPECT_FALSE(JournalStreamMatches("8:", 8, 12345));
  EXPECT_FALSE(JournalStreamMatches("a:b", 8, 12345));
}

// ConfigureLogSink() looks at the real fd 2: kJournal only when JOURNAL_STREAM names it.
TEST(LogFormatTest, ConfigureLogSinkComparesJournalStreamWithStderr) {
  struct stat st;
  ASSERT_EQ(fstat(STDERR_FILENO, &st), 0);
  const char* saved = getenv("JOURNAL_STREAM");
  const std::string saved_value = saved != nullptr ? saved : "";

  setenv("JOURNAL_STREAM", absl::StrCat(st.st_dev, ":", st.st_ino).c_str(), 1);
  EXPECT_EQ(ConfigureLogSink(), LogSink::kJournal);
  EXPECT_EQ(GetLogSink(), LogSink::kJournal);

  setenv("JOURNAL_STREAM", absl::StrCat(st.st_dev, ":", st.st_ino + 1).c_str(), 1);
  EXPECT_EQ(ConfigureLogSink(), LogSink::kPlain);

  unsetenv("JOURNAL_STREAM");
  EXPECT_EQ(ConfigureLogSink(), LogSink::kPlain);
  EXPECT_EQ(GetLogSink(), LogSink::kPlain);

  if (saved != nullptr) {
    setenv("JOURNAL_STREAM", saved_value.c_str(), 1);
  }
  SetLogSink(LogSink::kPlain);
}

}  // namespace
}  // namespace dotproxy::base
