// vmgroup import DIR [--as-new]: a group back from an export ("restore",
// its old name, still runs it: main.cc).
#include <iostream>

#include "base/validate.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "schema/classes.h"

namespace vmgroup::cli {

int RunImport(Context& ctx, const std::vector<std::string>& words) {
  auto c = CommandLine::Parse(words, {}, {"as-new", "no-wait"});
  if (!c.ok()) return ReportError(c.status());
  if (c->positional().size() != 1) return UsageError("import");
  // The daemon reads the export: a relative DIR means one here.
  auto absolute = AbsolutePath("DIR", c->positional()[0]);
  if (!absolute.ok()) return ReportError(absolute.status());
  const std::string& dir = *absolute;
  const bool wait = !c->Has("no-wait");
  JobInfo job;
  int rc =
      Settle(ctx, ctx.api->ImportGroup(dir, c->Has("as-new")), "importing from " + dir, wait, &job);
  if (rc != kExitOk || !wait) return rc;
  for (const auto& a : job.affected) {
    if (!IsInstanceOf(a, schema::VirtualSystemCollection::kClass)) continue;
    auto g = ctx.api->FindGroup(AffectedId(a));
    if (!g.ok()) return ReportError(g.status());
    if (ctx.json) {
      PrintJson({{"id", g->id}, {"name", g->name}, {"members", g->members}});
      continue;
    }
    std::string members;
    for (const auto& m : g->members) members += (members.empty() ? "" : ", ") + m;
    std::cerr << "imported group " << Printable(g->name) << " (" << Printable(g->id) << ") with "
              << Printable(members) << "; the VMs are off\n";
  }
  return kExitOk;
}

}  // namespace vmgroup::cli
