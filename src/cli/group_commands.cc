// vmgroup group create | list | show | add | remove | rename | delete
#include <iostream>

#include "base/ids.h"
#include "base/validate.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "schema/classes.h"

namespace vmgroup::cli {
namespace {

int List(Context& ctx) {
  auto groups = ctx.api->ListGroups();
  if (!groups.ok()) return ReportError(groups.status());
  if (ctx.json) {
    PrintJsonList(*groups);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "TYPE", "MEMBERS"}};
  for (const auto& g : *groups) {
    std::string members;
    for (const auto& m : g.members) members += (members.empty() ? "" : ",") + m;
    rows.push_back({g.name, g.id, g.of_groups ? "groups" : "vms", members});
  }
  PrintTable(std::cout, rows);
  return kExitOk;
}

int Show(Context& ctx, const GroupInfo& g) {
  auto snaps = ctx.api->ListSnapshots(g.id);
  if (!snaps.ok()) return ReportError(snaps.status());
  if (ctx.json) {
    nlohmann::json out = ToJson(g);
    out["snapshots"] = nlohmann::json::array();
    for (const auto& s : *snaps) out["snapshots"].push_back(s.id);
    PrintJson(out);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"Name:", g.name},
      {"Id:", g.id},
      {"Type:", g.of_groups ? "group of groups" : "group of VMs"},
      {"Snapshots:", std::to_string(snaps->size())}};
  for (const auto& m : g.members) rows.push_back({"Member:", m});
  PrintTable(std::cout, rows);
  return kExitOk;
}

}  // namespace

int RunGroup(Context& ctx, const std::vector<std::string>& words) {
  if (words.empty()) return UsageError("group");
  const std::string verb = words[0];
  auto c = CommandLine::Parse({words.begin() + 1, words.end()}, {"id", "host"}, {"of-groups"});
  if (!c.ok()) return ReportError(c.status());
  const auto& pos = c->positional();
  if (verb == "list") return pos.empty() ? List(ctx) : UsageError("group", verb);
  if (verb == "create") {
    if (pos.size() != 1) return UsageError("group", verb);
    auto r = ctx.api->CreateGroup(pos[0], c->Has("of-groups"), c->Get("id"));
    if (int rc = Settle(ctx, r, "creating group " + pos[0], true); rc != kExitOk) return rc;
    const cim::Param* p =
        r->response.Out(schema::CollectionManagementService::DefineCollection::kDefinedCollection);
    const cim::KeyBinding* k = p && !p->value.refs.empty()
                                   ? p->value.refs[0].Key(schema::CollectionOfMSEs::kCollectionID)
                                   : nullptr;
    const std::string id = k ? k->value : "";
    if (ctx.json) {
      PrintJson({{"id", id}, {"name", pos[0]}});  // as vm create prints
    } else {
      std::cout << Printable(id) << "\n";
    }
    return kExitOk;
  }
  if (pos.empty()) return UsageError("group", verb);
  auto g = ctx.api->FindGroup(pos[0]);
  if (!g.ok()) return ReportError(g.status());
  if (verb == "show" && pos.size() == 1) return Show(ctx, *g);
  if (verb == "delete" && pos.size() == 1) {
    return Settle(ctx, ctx.api->DeleteGroup(*g), "deleting group " + g->name, true);
  }
  if (verb == "rename" && pos.size() == 2) {
    return Settle(ctx, ctx.api->RenameGroup(*g, pos[1]), "renaming group " + g->name, true);
  }
  if ((verb == "add" || verb == "remove") && pos.size() >= 2) {
    // With --host, the members are VMs of that host, by UUID.
    const std::string host = c->Get("host");
    for (size_t i = 1; i < pos.size(); ++i) {
      if (!host.empty() && !IsGuid(pos[i])) {
        return ReportError(Status::InvalidArgument("'" + pos[i] + "' is not a UUID: a VM of host " +
                                                   host + " is named by its UUID there"));
      }
      Result<CallResult> r = !host.empty()
                                 ? (verb == "add" ? ctx.api->AddRemoteMember(*g, host, pos[i])
                                                  : ctx.api->RemoveRemoteMember(*g, host, pos[i]))
                             : verb == "add" ? ctx.api->AddMember(*g, pos[i])
                                             : ctx.api->RemoveMember(*g, pos[i]);
      const std::string member = host.empty() ? pos[i] : host + ":" + pos[i];
      const std::string what = (verb == "add" ? "adding " : "removing ") + member +
                               (verb == "add" ? " to " : " from ") + g->name;
      if (int rc = Settle(ctx, r, what, true); rc != kExitOk) return rc;
    }
    return kExitOk;
  }
  return UsageError("group", verb);
}

}  // namespace vmgroup::cli
