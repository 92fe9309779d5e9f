#include "cli/output.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>

#include "base/validate.h"

namespace vmgroup::cli {

int ReportError(const Status& s) {
  std::fprintf(stderr, "vmgroup: %s\n", Printable(s.message()).c_str());
  switch (s.code()) {
    case Code::kUnavailable:
      return kExitUnreachable;
    case Code::kNotFound:
      return kExitNotFound;
    case Code::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

void PrintTable(std::ostream& out, const std::vector<std::vector<std::string>>& raw) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : raw) {
    auto& row = rows.emplace_back();
    for (const auto& cell : r) row.push_back(Printable(cell));
  }
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size());
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

std::string Micros(int64_t us) {
  char buf[32];
  if (us < 1000) {
    std::snprintf(buf, sizeof buf, "%lld us", static_cast<long long>(us));
  } else if (us < 1'000'000) {
    std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(us) / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(us) / 1e6);
  }
  return buf;
}

namespace {

// A CIM datetime vmgroupd sent: 25 characters, digits where they belong
// (ddddddddhhmmss.mmmmmm:000 for an interval). Anything else is shown as sent.
bool IsCimDatetime(const std::string& c) {
  if (c.size() != 25 || c[14] != '.') return false;
  for (size_t i = 0; i < 21; ++i) {
    if (i != 14 && !std::isdigit(static_cast<unsigned char>(c[i]))) return false;
  }
  return true;
}

}  // namespace

std::string CimTimeText(const std::string& c) {
  if (!IsCimDatetime(c)) return c;
  if (c[21] == ':') {  // interval ddddddddhhmmss.mmmmmm:000
    const int64_t s = std::stoll(c.substr(0, 8)) * 86400 + std::stoll(c.substr(8, 2)) * 3600 +
                      std::stoll(c.substr(10, 2)) * 60 + std::stoll(c.substr(12, 2));
    return Micros(s * 1'000'000 + std::stoll(c.substr(15, 6)));
  }
  return c.substr(0, 4) + "-" + c.substr(4, 2) + "-" + c.substr(6, 2) + " " + c.substr(8, 2) + ":" +
         c.substr(10, 2) + ":" + c.substr(12, 2) + " UTC";
}

std::string CimClockText(const std::string& c) {
  if (!IsCimDatetime(c) || c[21] == ':') return c;
  return c.substr(8, 2) + ":" + c.substr(10, 2) + ":" + c.substr(12, 2) + "." + c.substr(15, 6);
}

std::string JsonTime(const std::string& c) {
  if (!IsCimDatetime(c)) return c;
  const std::string micros = c.substr(15, 6);
  if (c[21] == ':') {  // interval ddddddddhhmmss.mmmmmm:000
    std::string fraction = micros;
    while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
    return "P" + std::to_string(std::stoll(c.substr(0, 8))) + "DT" +
           std::to_string(std::stoi(c.substr(8, 2))) + "H" +
           std::to_string(std::stoi(c.substr(10, 2))) + "M" +
           std::to_string(std::stoi(c.substr(12, 2))) + (fraction.empty() ? "" : "." + fraction) +
           "S";
  }
  // yyyymmddhhmmss.mmmmmm+UUU: UUU minutes east of UTC (- west).
  if ((c[21] != '+' && c[21] != '-') ||
      !std::all_of(c.begin() + 22, c.end(), [](unsigned char d) { return std::isdigit(d) != 0; })) {
    return c;
  }
  const int offset = std::stoi(c.substr(22, 3));
  char zone[16] = "Z";
  if (offset != 0) {
    std::snprintf(zone, sizeof zone, "%c%02d:%02d", c[21], offset / 60 % 100, offset % 60);
  }
  return c.substr(0, 4) + "-" + c.substr(4, 2) + "-" + c.substr(6, 2) + "T" + c.substr(8, 2) + ":" +
         c.substr(10, 2) + ":" + c.substr(12, 2) + (micros == "000000" ? "" : "." + micros) + zone;
}

std::string ReturnCodeName(uint32_t code) {
  switch (code) {
    case 0:
      return "Completed";
    case 1:
    case 32770:
      return "Not supported";
    case 2:
    case 32768:
      return "Failed";
    case 3:
    case 32772:
      return "Timeout";
    case 4:
    case 32773:
      return "Invalid parameter";
    case 5:
    case 32775:
      return "Invalid state";
    case 6:
    case 32776:
      return "Invalid type";
    case 4096:
      return "Job started";
    case 32769:
      return "Access denied";
    case 32774:
      return "System is in use";
    case 32777:
      return "System is not available";
    case 32778:
      return "Out of memory";
    case 32779:
      return "File not found";
    default:
      return "code " + std::to_string(code);
  }
}

std::string ConsistencyName(int level) {
  return level == schema::ConsistencyLevel::kApplication ? "application" : "crash";
}

std::string JobStateName(int state) {
  using S = schema::JobState;
  switch (state) {
    case S::kNew:
      return "New";
    case S::kStarting:
      return "Starting";
    case S::kRunning:
      return "Running";
    case S::kCompleted:
      return "Completed";
    case S::kTerminated:
      return "Terminated";
    case S::kKilled:
      return "Killed";
    case S::kException:
      return "Exception";
    case S::kCompletedWithWarnings:
      return "Completed with warnings";
    default:
      return std::to_string(state);
  }
}

void ProgressView::Show(const JobInfo& j) {
  if (j.percent == last_percent_ && j.state == last_state_) return;
  last_percent_ = j.percent;
  last_state_ = j.state;
  if (!terminal_) {
    std::fprintf(stderr, "job %s: %s %d%%\n", Printable(j.id).c_str(),
                 JobStateName(j.state).c_str(), j.percent);
    return;
  }
  constexpr int kWidth = 30;
  const int filled = std::clamp(j.percent, 0, 100) * kWidth / 100;  // as sent: not trusted
  std::fprintf(stderr, "\r[%s%s] %3d%%  %s", std::string(static_cast<size_t>(filled), '#').c_str(),
               std::string(static_cast<size_t>(kWidth - filled), '-').c_str(), j.percent,
               Printable(j.description).c_str());
  drawn_ = true;
}

void ProgressView::Done() {
  if (terminal_ && drawn_) std::fputc('\n', stderr);
}

void PrintJson(const nlohmann::json& j) {
  // Names stored before names were checked may not be UTF-8; JSON must be.
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

nlohmann::json ToJson(const VmInfo& v) {
  return {{"id", v.id},
          {"name", v.name},
          {"state", v.state},
          {"memory_mib", v.config.memory_mib},
          {"hugepages", v.config.hugepages},
          {"vcpus", v.config.vcpus},
          {"disks", v.disks},
          {"kernel", v.config.kernel},
          {"initrd", v.config.initrd},
          {"append", v.config.append},
          {"pid", v.pid},
          {"reason", v.reason},
          {"libvirt_uri", v.libvirt_uri}};
}

nlohmann::json ToJson(const GroupInfo& g) {
  return {{"id", g.id},
          {"name", g.name},
          {"type", g.of_groups ? "groups" : "vms"},
          {"members", g.members}};
}

nlohmann::json ToJson(const SnapshotInfo& s) {
  nlohmann::json members = nlohmann::json::array();
  for (const auto& m : s.members) {
    members.push_back({{"vm_id", m.vm_id},
                       {"vm", m.vm_name},
                       {"settings_id", m.settings_id},
                       {"cut_time", JsonTime(m.cut_time)},
                       {"pause_us", m.pause_us},
                       {"consistency", ConsistencyName(m.consistency)},
                       {"parent", m.parent},
                       {"images", m.images}});
  }
  return {{"id", s.id},
          {"name", s.name},
          {"group_id", s.group_id},
          {"parent", s.parent_id},
          {"current", s.current},
          {"type", s.type},
          {"created", JsonTime(s.created)},
          {"pause_window_us", s.pause_window_us},
          {"duration_us", s.duration_us},
          {"consistency", ConsistencyName(s.consistency)},
          {"freeze_window_us", s.freeze_window_us},
          {"hosts", s.hosts},
          {"cut_spread_us", s.cut_spread_us},
          {"members", members}};
}

nlohmann::json ToJson(const JobInfo& j) {
  return {{"id", j.id},
          {"description", j.description},
          {"state", JobStateName(j.state)},
          {"job_state", j.state},
          {"percent", j.percent},
          {"error_code", j.error_code},
          {"error", j.error},
          {"cancellable", j.cancellable},
          {"started", JsonTime(j.started)},
          {"elapsed", JsonTime(j.elapsed)},
          {"affected", j.affected}};
}

}  // namespace vmgroup::cli
