// Log: one line per event on stderr, below a threshold set once at
// start-up. The daemon's journal; libraries report through Status values and
// leave logging to their callers.
//
// On a terminal or in a file a line reads "2026-11-24T21:30:05.123Z WARN
// message". Under systemd, whose journal takes stderr, it reads
// "<4>WARN message": journald turns the syslog prefix into the entry's
// priority (so `journalctl -p warning` finds warnings) and stamps each
// entry itself.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace vmgroup {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Where Log's lines go.
enum class LogSink { kPlain, kJournal };

// "debug", "info", "warning"/"warn", "error"; false for anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);
void SetLogLevel(LogLevel level);
// kJournal when stderr is the stream that systemd's JOURNAL_STREAM
// ("DEVICE:INODE") names, kPlain otherwise (systemd.exec(5)).
LogSink DetectLogSink();
void SetLogSink(LogSink sink);
void Log(LogLevel level, std::string_view message);

// The line Log writes for `sink`, newline included.
std::string FormatLogLine(LogSink sink, LogLevel level, std::string_view message,
                          std::chrono::system_clock::time_point now);

}  // namespace vmgroup
