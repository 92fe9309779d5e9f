// vmgroup refpoint list GROUP | show ID | delete ID
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"

namespace vmgroup::cli {
namespace {

int Usage() {
  std::cerr << "usage: vmgroup refpoint list GROUP | show ID | delete ID [--no-wait]\n";
  return kExitUsage;
}

nlohmann::json ToJson(const RefPointInfo& rp) {
  return {{"id", rp.id},     {"name", rp.name},       {"group_id", rp.group_id},
          {"cut", rp.cut},   {"created", rp.created}, {"snapshot_id", rp.snapshot_id},
          {"vms", rp.vm_ids}};
}

}  // namespace

int RunRefPoint(Context& ctx, const std::vector<std::string>& words) {
  if (words.empty()) return Usage();
  const std::string verb = words[0];
  auto c = CommandLine::Parse({words.begin() + 1, words.end()}, {}, {"no-wait"});
  if (!c.ok()) return ReportError(c.status());
  const auto& pos = c->positional();
  if (pos.size() != 1) return Usage();
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
    int rc = Settle(ctx, ctx.api->DestroyRefPoint(*rp), "deleting reference point " + rp->name,
                    !c->Has("no-wait"));
    if (rc == kExitOk && !c->Has("no-wait")) {
      std::cerr << "deleted reference point " << rp->name << "\n";
    }
    return rc;
  }
  return Usage();
}

}  // namespace vmgroup::cli
