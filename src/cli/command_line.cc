#include <cstdio>
#include <filesystem>
#include <map>
#include <tuple>

#include "base/validate.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "schema/values.h"

namespace vmgroup::cli {

Result<CommandLine> CommandLine::Parse(const std::vector<std::string>& words,
                                       const std::set<std::string>& flags,
                                       const std::set<std::string>& switches) {
  CommandLine c;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w.empty()) {
      return Status::InvalidArgument("argument " + std::to_string(i + 1) +
                                     " is empty (\"\"); every argument needs a value");
    }
    // CIM-XML cannot carry control characters or bytes that are not UTF-8:
    // refused here, rather than sent changed.
    VMG_RETURN_IF_ERROR(CheckText("argument " + std::to_string(i + 1), w, w.size()));
    if (!w.starts_with("--")) {
      c.positional_.push_back(w);
      continue;
    }
    std::string name = w.substr(2), value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      if (!flags.count(name)) return Status::InvalidArgument("unknown option --" + name);
    } else if (flags.count(name)) {
      if (i + 1 >= words.size()) return Status::InvalidArgument("--" + name + " needs a value");
      value = words[++i];
      VMG_RETURN_IF_ERROR(CheckText("--" + name, value, value.size()));
    } else if (!switches.count(name)) {
      return Status::InvalidArgument("unknown option --" + name);
    }
    if (value.empty() && flags.count(name)) {
      return Status::InvalidArgument("--" + name + " needs a value that is not empty");
    }
    c.values_.emplace(name, value);
  }
  return c;
}

Result<std::string> AbsolutePath(const std::string& what, const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  if (path.empty() || ec) {
    return Status::InvalidArgument(what + " '" + Printable(path) + "' is not a usable path" +
                                   (ec ? ": " + ec.message() : ""));
  }
  return p.lexically_normal().string();
}

std::string CommandLine::Get(const std::string& flag, const std::string& fallback) const {
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second;
}

std::vector<std::string> CommandLine::All(const std::string& flag) const {
  std::vector<std::string> out;
  auto [b, e] = values_.equal_range(flag);
  for (auto it = b; it != e; ++it) out.push_back(it->second);
  return out;
}

bool ParseConsistency(const std::string& word, int* level, bool* fallback) {
  using L = schema::ConsistencyLevel;
  const std::map<std::string, std::pair<int, bool>> levels = {
      {"application", {L::kApplication, false}},
      {"application-or-crash", {L::kApplication, true}},
      {"crash", {L::kCrash, false}}};
  auto it = levels.find(word);
  if (it == levels.end()) return false;
  std::tie(*level, *fallback) = it->second;
  return true;
}

int Settle(Context& ctx, const Result<CallResult>& r, const std::string& what, bool wait,
           JobInfo* job) {
  if (!r.ok()) return ReportError(r.status());
  if (r->code != 0 && r->code != 4096) {
    std::fprintf(stderr, "vmgroup: %s failed (%s, %u)%s%s\n", Printable(what).c_str(),
                 ReturnCodeName(r->code).c_str(), r->code, r->error.empty() ? "" : ": ",
                 Printable(r->error).c_str());
    return kExitFailed;
  }
  if (r->code == 0) return kExitOk;
  if (!wait) {
    std::printf("%s\n", Printable(r->job_id).c_str());
    return kExitOk;
  }
  ProgressView view(ctx.terminal);
  auto done = ctx.api->WaitJob(r->job_id, [&](const JobInfo& j) { view.Show(j); });
  view.Done();
  if (!done.ok()) return ReportError(done.status());
  if (job) *job = *done;
  if (!done->Succeeded()) {
    std::fprintf(stderr, "vmgroup: %s failed (job %s %s): %s\n", Printable(what).c_str(),
                 Printable(done->id).c_str(), JobStateName(done->state).c_str(),
                 Printable(done->error).c_str());
    return kExitFailed;
  }
  if (!done->error.empty()) {  // completed with warnings
    std::fprintf(stderr, "vmgroup: warning: %s: %s\n", Printable(what).c_str(),
                 Printable(done->error).c_str());
  }
  return kExitOk;
}

}  // namespace vmgroup::cli
