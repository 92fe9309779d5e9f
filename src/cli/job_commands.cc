// vmgroup job list | show | wait | cancel
#include <iostream>

#include "base/validate.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace vmgroup::cli {
namespace {

void Print(Context& ctx, const JobInfo& j) {
  if (ctx.json) {
    PrintJson(ToJson(j));
    return;
  }
  std::vector<std::vector<std::string>> rows = {{"Id:", j.id},
                                                {"What:", j.description},
                                                {"State:", JobStateName(j.state)},
                                                {"Progress:", std::to_string(j.percent) + "%"},
                                                {"Started:", CimTimeText(j.started)},
                                                {"Elapsed:", CimTimeText(j.elapsed)}};
  if (!j.error.empty()) {
    rows.push_back({"Error:", j.error + " (code " + std::to_string(j.error_code) + ")"});
  }
  for (const auto& a : j.affected) rows.push_back({"Made:", a});
  PrintTable(std::cout, rows);
}

}  // namespace

int RunJob(Context& ctx, const std::vector<std::string>& words) {
  if (words.empty()) return UsageError("job");
  const std::string verb = words[0];
  auto c = CommandLine::Parse({words.begin() + 1, words.end()}, {}, {});
  if (!c.ok()) return ReportError(c.status());
  const auto& pos = c->positional();
  if (verb == "list" && pos.empty()) {
    auto jobs = ctx.api->ListJobs();
    if (!jobs.ok()) return ReportError(jobs.status());
    if (ctx.json) {
      PrintJsonList(*jobs);
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows = {{"ID", "STATE", "PROGRESS", "STARTED", "WHAT"}};
    for (const auto& j : *jobs) {
      rows.push_back({j.id, JobStateName(j.state), std::to_string(j.percent) + "%",
                      CimTimeText(j.started), j.description});
    }
    PrintTable(std::cout, rows);
    return kExitOk;
  }
  if (pos.size() != 1) return UsageError("job", verb);
  if (verb == "show") {
    auto j = ctx.api->GetJob(pos[0]);
    if (!j.ok()) return ReportError(j.status());
    Print(ctx, *j);
    return kExitOk;
  }
  if (verb == "wait") {
    ProgressView view(ctx.terminal);
    auto j = ctx.api->WaitJob(pos[0], [&](const JobInfo& info) { view.Show(info); });
    view.Done();
    if (!j.ok()) return ReportError(j.status());
    Print(ctx, *j);
    return j->Succeeded() ? kExitOk : kExitFailed;
  }
  if (verb == "cancel") {
    auto r = ctx.api->CancelJob(pos[0]);
    if (!r.ok()) return ReportError(r.status());
    if (r->code != 4096 && r->code != 0) {
      std::fprintf(stderr, "vmgroup: cannot cancel job %s: %s\n", Printable(pos[0]).c_str(),
                   Printable(r->error).c_str());
      return kExitFailed;
    }
    std::cerr << "cancel requested; the job stops at its next safe point\n";
    return kExitOk;
  }
  return UsageError("job", verb);
}

}  // namespace vmgroup::cli
