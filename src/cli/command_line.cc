#include <cstdio>

#include "cli/commands.h"
#include "cli/output.h"

namespace vmgroup::cli {

Result<CommandLine> CommandLine::Parse(const std::vector<std::string>& words,
                                       const std::set<std::string>& flags,
                                       const std::set<std::string>& switches) {
  CommandLine c;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
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
    } else if (!switches.count(name)) {
      return Status::InvalidArgument("unknown option --" + name);
    }
    c.values_.emplace(name, value);
  }
  return c;
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

int Settle(Context& ctx, const Result<CallResult>& r, const std::string& what, bool wait,
           JobInfo* job) {
  if (!r.ok()) return ReportError(r.status());
  if (r->code != 0 && r->code != 4096) {
    std::fprintf(stderr, "vmgroup: %s failed (%s, %u)%s%s\n", what.c_str(),
                 ReturnCodeName(r->code).c_str(), r->code, r->error.empty() ? "" : ": ",
                 r->error.c_str());
    return kExitFailed;
  }
  if (r->code == 0) return kExitOk;
  if (!wait) {
    std::printf("%s\n", r->job_id.c_str());
    return kExitOk;
  }
  ProgressView view(ctx.terminal);
  auto done = ctx.api->WaitJob(r->job_id, [&](const JobInfo& j) { view.Show(j); });
  view.Done();
  if (!done.ok()) return ReportError(done.status());
  if (job) *job = *done;
  if (!done->Succeeded()) {
    std::fprintf(stderr, "vmgroup: %s failed (job %s %s): %s\n", what.c_str(), done->id.c_str(),
                 JobStateName(done->state).c_str(), done->error.c_str());
    return kExitFailed;
  }
  if (!done->error.empty()) {  // completed with warnings
    std::fprintf(stderr, "vmgroup: warning: %s: %s\n", what.c_str(), done->error.c_str());
  }
  return kExitOk;
}

}  // namespace vmgroup::cli
