// How the command line shows things: aligned tables, JSON (--json),
// durations and sizes people read, job progress, and the exit codes.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "cli/api.h"

namespace vmgroup::cli {

// Exit codes (README "Exit codes"; `vmgroup --help`).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // the daemon refused, or the job failed
inline constexpr int kExitUsage = 2;        // the command line is wrong
inline constexpr int kExitUnreachable = 3;  // vmgroupd cannot be reached
inline constexpr int kExitNotFound = 4;     // no such VM, group, snapshot or job

// What vmgroupd sends is shown, not obeyed: every text the command line
// prints passes through base Printable() (no control character or escape
// sequence reaches the terminal) and JSON output replaces bytes that are
// not UTF-8 with U+FFFD.

// Prints "vmgroup: <message>" on stderr and returns the exit code for `s`.
int ReportError(const Status& s);

// Columns padded to their widest cell; the first row is the header.
// Cells are printed Printable().
void PrintTable(std::ostream& out, const std::vector<std::vector<std::string>>& rows);

// "12.3 ms", "4.0 s".
std::string Micros(int64_t us);
// A CIM datetime as "2026-11-24 21:19:18 UTC"; an interval as "1.5 s".
std::string CimTimeText(const std::string& cim);
// The time of day of a CIM datetime to the microsecond: "21:52:28.921619".
std::string CimClockText(const std::string& cim);
// Every time --json prints: a CIM datetime in RFC 3339
// ("2026-11-24T21:19:18.921619Z", "...+01:00" for an offset; no fraction
// when the source's is zero), an interval as an RFC 3339 (appendix A)
// duration with ISO 8601's fraction of a second ("P1DT2H0M4.5S"). Anything
// else, the empty string included, as sent.
std::string JsonTime(const std::string& cim);
// The name of a Hyper-V return code ("Invalid state").
std::string ReturnCodeName(uint32_t code);
std::string JobStateName(int state);
// ConsistencyLevel as people say it: "application" (1) or "crash".
std::string ConsistencyName(int level);

// Shows a job's progress on stderr: a bar on a terminal, a line per change
// otherwise.
class ProgressView {
 public:
  explicit ProgressView(bool terminal) : terminal_(terminal) {}
  void Show(const JobInfo& j);
  void Done();

 private:
  bool terminal_;
  int last_percent_ = -1, last_state_ = -1;
  bool drawn_ = false;
};

nlohmann::json ToJson(const VmInfo& v);
nlohmann::json ToJson(const GroupInfo& g);
nlohmann::json ToJson(const SnapshotInfo& s);
nlohmann::json ToJson(const JobInfo& j);

// Pretty JSON on stdout (--json).
void PrintJson(const nlohmann::json& j);
template <typename T>
void PrintJsonList(const std::vector<T>& items) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& item : items) out.push_back(ToJson(item));
  PrintJson(out);
}

}  // namespace vmgroup::cli
