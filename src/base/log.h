// Log: one line per event on stderr, "2026-11-24T21:30:05.123Z WARN message",
// below a threshold set once at start-up. The daemon's journal; libraries
// report through Status values and leave logging to their callers.
#pragma once

#include <string_view>

namespace vmgroup {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// "debug", "info", "warning"/"warn", "error"; false for anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);
void SetLogLevel(LogLevel level);
void Log(LogLevel level, std::string_view message);

}  // namespace vmgroup
