// vmgroup refpoint create | list | show | export | delete
#include <iostream>
#include <optional>

#include "base/validate.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "schema/classes.h"

namespace vmgroup::cli {
namespace {

nlohmann::json ToJson(const RefPointInfo& rp) {
  return {{"id", rp.id},
          {"name", rp.name},
          {"group_id", rp.group_id},
          {"cut", JsonTime(rp.cut)},
          {"created", JsonTime(rp.created)},
          {"snapshot_id", rp.snapshot_id},
          {"vms", rp.vm_ids}};
}

}  // namespace

void PrintRefPointMade(const Context& ctx, const JobInfo& job, const std::string& note) {
  for (const auto& a : job.affected) {
    if (!IsInstanceOf(a, schema::ReferencePointCollection::kClass)) continue;
    if (ctx.json) {
      PrintJson({{"id", AffectedId(a)}});
    } else {
      std::cout << Printable(AffectedId(a)) << "\n";
    }
    std::cerr << Printable(note + AffectedId(a)) << "\n";
  }
}

int RunRefPoint(Context& ctx, const std::vector<std::string>& words) {
  if (words.empty()) return UsageError("refpoint");
  const std::string verb = words[0];
  auto c = CommandLine::Parse({words.begin() + 1, words.end()}, {"name", "base"}, {"no-wait"});
  if (!c.ok()) return ReportError(c.status());
  const auto& pos = c->positional();
  const bool wait = !c->Has("no-wait");
  if (verb == "export") {
    if (pos.size() != 2) return UsageError("refpoint", verb);
    auto rp = ctx.api->GetRefPoint(pos[0]);
    if (!rp.ok()) return ReportError(rp.status());
    // The daemon writes the export: a relative DIR means one here.
    auto absolute = AbsolutePath("DIR", pos[1]);
    if (!absolute.ok()) return ReportError(absolute.status());
    const std::string& dir = *absolute;
    std::optional<RefPointInfo> base;
    if (!c->Get("base").empty()) {
      auto b = ctx.api->GetRefPoint(c->Get("base"));
      if (!b.ok()) return ReportError(b.status());
      base = *b;
    }
    int rc = Settle(ctx, ctx.api->ExportRefPoint(*rp, dir, base ? base->id : ""),
                    "exporting reference point " + rp->name, wait);
    if (rc == kExitOk && wait) {
      std::cerr << "exported what changed since reference point "
                << Printable(base ? base->name : rp->name) << " to " << Printable(dir)
                << " (manifest.json lists its files)\n";
    }
    return rc;
  }
  if (pos.size() != 1) return UsageError("refpoint", verb);
  if (verb == "create") {
    auto g = ctx.api->FindGroup(pos[0]);
    if (!g.ok()) return ReportError(g.status());
    JobInfo job;
    int rc = Settle(ctx, ctx.api->CreateRefPoint(*g, c->Get("name")),
                    "creating a reference point of group " + g->name, wait, &job);
    if (rc != kExitOk || !wait) return rc;
    // Its cut is gone again: the data an incremental export builds on is
    // an export of a snapshot, which a created point does not have.
    PrintRefPointMade(ctx, job,
                      "group " + g->name +
                          " tracks its changes from now on (for incremental backups, export "
                          "a recovery snapshot and convert that instead); reference point ");
    return kExitOk;
  }
  if (verb == "list") {
    auto g = ctx.api->FindGroup(pos[0]);
    if (!g.ok()) return ReportError(g.status());
    auto rps = ctx.api->ListRefPoints(g->id);
    if (!rps.ok()) return ReportError(rps.status());
    if (ctx.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& rp : *rps) out.push_back(ToJson(rp));
      PrintJson(out);
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "CUT", "VMS"}};
    for (const auto& rp : *rps) {
      rows.push_back({rp.id, rp.name, CimTimeText(rp.cut), std::to_string(rp.vm_ids.size())});
    }
    PrintTable(std::cout, rows);
    return kExitOk;
  }
  auto rp = ctx.api->GetRefPoint(pos[0]);
  if (!rp.ok()) return ReportError(rp.status());
  if (verb == "show") {
    if (ctx.json) {
      PrintJson(ToJson(*rp));
      return kExitOk;
    }
    auto g = ctx.api->FindGroup(rp->group_id);
    std::string vms;
    for (const auto& v : rp->vm_ids) vms += (vms.empty() ? "" : ", ") + v;
    PrintTable(std::cout, {{"Id:", rp->id},
                           {"Name:", rp->name},
                           {"Group:", g.ok() ? g->name : rp->group_id},
                           {"Cut:", CimTimeText(rp->cut)},
                           {"Tracking:", "changes since the cut (dirty bitmaps)"},
                           {"VMs:", vms}});
    return kExitOk;
  }
  if (verb == "delete") {
    int rc =
        Settle(ctx, ctx.api->DestroyRefPoint(*rp), "deleting reference point " + rp->name, wait);
    if (rc == kExitOk && wait) {
      std::cerr << "deleted reference point " << Printable(rp->name) << "\n";
    }
    return rc;
  }
  return UsageError("refpoint", verb);
}

}  // namespace vmgroup::cli
