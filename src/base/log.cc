#include "base/log.h"

#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

namespace vmgroup {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<LogSink> g_sink{LogSink::kPlain};
std::mutex g_mu;  // keeps lines whole when threads log at once

const char* Tag(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

// syslog(3)'s priorities, as sd-daemon(3)'s SD_DEBUG..SD_ERR spell them.
int Priority(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return 7;
    case LogLevel::kInfo:
      return 6;
    case LogLevel::kWarning:
      return 4;
    case LogLevel::kError:
      return 3;
  }
  return 6;
}

}  // namespace

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "debug")
    *level = LogLevel::kDebug;
  else if (text == "info")
    *level = LogLevel::kInfo;
  else if (text == "warning" || text == "warn")
    *level = LogLevel::kWarning;
  else if (text == "error")
    *level = LogLevel::kError;
  else
    return false;
  return true;
}

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }

LogSink DetectLogSink() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  if (stream == nullptr || ::fstat(2, &st) != 0) return LogSink::kPlain;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return LogSink::kPlain;
  // A child whose stderr was redirected inherits the variable: only the
  // very stream systemd connected counts.
  return dev == st.st_dev && ino == st.st_ino ? LogSink::kJournal : LogSink::kPlain;
}

void SetLogSink(LogSink sink) { g_sink = sink; }

std::string FormatLogLine(LogSink sink, LogLevel level, std::string_view message,
                          std::chrono::system_clock::time_point now) {
  if (sink == LogSink::kJournal) {
    return "<" + std::to_string(Priority(level)) + ">" + Tag(level) + " " + std::string(message) +
           "\n";
  }
  // Wall time straight from the system, not Env: a log line's stamp is for
  // a person lining it up with other logs, and Log is process-wide (no Env
  // reaches it); a test clock would only make the journal lie.
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[40];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03dZ ", static_cast<int>(ms % 1000));
  return std::string(stamp) + millis + Tag(level) + " " + std::string(message) + "\n";
}

void Log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) < g_level) return;
  const std::string line = FormatLogLine(g_sink, level, message, std::chrono::system_clock::now());
  std::lock_guard lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace vmgroup
