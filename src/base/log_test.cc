#include "base/log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

namespace vmgroup {
namespace {

using std::chrono::system_clock;

TEST(LogTest, APlainLineIsStampedInUtcWithMilliseconds) {
  const system_clock::time_point t =
      system_clock::from_time_t(1764905091) + std::chrono::milliseconds(7);  // 2025-12-05
  EXPECT_EQ(FormatLogLine(LogSink::kPlain, LogLevel::kWarning, "pause 3 ms", t),
            "2025-12-05T03:24:51.007Z WARN pause 3 ms\n");
}

TEST(LogTest, AJournalLineCarriesTheSyslogPriorityAndNoStamp) {
  const auto now = system_clock::now();
  EXPECT_EQ(FormatLogLine(LogSink::kJournal, LogLevel::kError, "x", now), "<3>ERROR x\n");
  EXPECT_EQ(FormatLogLine(LogSink::kJournal, LogLevel::kWarning, "x", now), "<4>WARN x\n");
  EXPECT_EQ(FormatLogLine(LogSink::kJournal, LogLevel::kInfo, "x", now), "<6>INFO x\n");
  EXPECT_EQ(FormatLogLine(LogSink::kJournal, LogLevel::kDebug, "x", now), "<7>DEBUG x\n");
}

TEST(LogTest, TheJournalIsOnlyTheStreamJournalStreamNames) {
  struct stat st {};
  ASSERT_EQ(::fstat(2, &st), 0);
  const std::string self = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("JOURNAL_STREAM", self.c_str(), 1);
  EXPECT_EQ(DetectLogSink(), LogSink::kJournal);
  // Inherited by a process whose stderr goes elsewhere.
  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  ::setenv("JOURNAL_STREAM", other.c_str(), 1);
  EXPECT_EQ(DetectLogSink(), LogSink::kPlain);
  ::setenv("JOURNAL_STREAM", "garbage", 1);
  EXPECT_EQ(DetectLogSink(), LogSink::kPlain);
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_EQ(DetectLogSink(), LogSink::kPlain);
}

}  // namespace
}  // namespace vmgroup
