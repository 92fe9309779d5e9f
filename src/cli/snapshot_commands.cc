// vmgroup snapshot create | list | show | apply | release | delete | export
#include <functional>
#include <iostream>
#include <set>

#include "base/ids.h"
#include "base/validate.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "schema/classes.h"

namespace vmgroup::cli {
namespace {

std::string TypeName(int type) {
  switch (type) {
    case schema::SnapshotType::kStandard:
      return "standard";
    case schema::SnapshotType::kRecovery:
      return "recovery";
    case schema::SnapshotType::kDiskOnly:
      return "disk";
    default:
      return std::to_string(type);
  }
}

// Each snapshot under the one it was taken after; "<- now" marks where the
// group runs.
void PrintTree(const std::vector<SnapshotInfo>& snaps) {
  std::map<std::string, std::vector<const SnapshotInfo*>> children;
  std::set<std::string> ids;
  for (const auto& s : snaps) ids.insert(s.id);
  for (const auto& s : snaps) children[ids.count(s.parent_id) ? s.parent_id : ""].push_back(&s);
  std::function<void(const std::string&, const std::string&)> walk =
      [&](const std::string& parent, const std::string& indent) {
        const auto& kids = children[parent];
        for (size_t i = 0; i < kids.size(); ++i) {
          const SnapshotInfo& s = *kids[i];
          const bool last = i + 1 == kids.size();
          std::cout << indent
                    << (parent.empty() ? ""
                        : last         ? "`- "
                                       : "|- ")
                    << Printable(s.name) << "  [" << TypeName(s.type) << ", "
                    << Printable(CimTimeText(s.created)) << ", pause " << Micros(s.pause_window_us)
                    << "]  " << Printable(s.id) << (s.current ? "  <- now" : "") << "\n";
          walk(s.id, indent + (parent.empty() ? "" : last ? "   " : "|  "));
        }
      };
  walk("", "");
}

void PrintSnapshot(const SnapshotInfo& s, const std::string& group_name) {
  std::vector<std::vector<std::string>> about = {{"Id:", s.id},
                                                 {"Name:", s.name},
                                                 {"Group:", group_name},
                                                 {"Type:", TypeName(s.type)},
                                                 {"Created:", CimTimeText(s.created)},
                                                 {"Consistency:", ConsistencyName(s.consistency)},
                                                 {"Pause window:", Micros(s.pause_window_us)}};
  if (s.freeze_window_us > 0) about.push_back({"Freeze window:", Micros(s.freeze_window_us)});
  about.push_back({"Duration:", Micros(s.duration_us)});
  for (const auto& h : s.hosts) about.push_back({"Host:", h});
  if (!s.hosts.empty()) about.push_back({"Cut spread:", Micros(s.cut_spread_us)});
  PrintTable(std::cout, about);
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows = {{"VM", "CUT (UTC)", "PAUSED", "CONSISTENCY"}};
  for (const auto& m : s.members) {
    rows.push_back(
        {m.vm_name, CimClockText(m.cut_time), Micros(m.pause_us), ConsistencyName(m.consistency)});
  }
  PrintTable(std::cout, rows);
}

}  // namespace

int RunSnapshot(Context& ctx, const std::vector<std::string>& words) {
  if (words.empty()) return UsageError("snapshot");
  const std::string verb = words[0];
  auto c =
      CommandLine::Parse({words.begin() + 1, words.end()}, {"type", "consistency", "name", "base"},
                         {"no-wait", "tree", "no-storage"});
  if (!c.ok()) return ReportError(c.status());
  const auto& pos = c->positional();
  if (verb == "export") {
    if (pos.size() != 2) return UsageError("snapshot", verb);
    auto s = ctx.api->GetSnapshot(pos[0]);
    if (!s.ok()) return ReportError(s.status());
    // The daemon writes the export: a relative DIR means one here.
    auto absolute = AbsolutePath("DIR", pos[1]);
    if (!absolute.ok()) return ReportError(absolute.status());
    const std::string& dir = *absolute;
    const std::string base = c->Get("base");
    int rc = Settle(ctx, ctx.api->ExportSnapshot(s->id, dir, !c->Has("no-storage"), base),
                    "exporting snapshot " + s->name, !c->Has("no-wait"));
    if (rc == kExitOk && !c->Has("no-wait")) {
      std::cerr << "exported " << Printable(s->name) << " to " << Printable(dir)
                << (base.empty() ? "" : ", what changed since " + Printable(base))
                << " (manifest.json lists its files)\n";
    }
    return rc;
  }
  if (verb == "to-refpoint") {
    if (pos.size() != 1) return UsageError("snapshot", verb);
    auto s = ctx.api->GetSnapshot(pos[0]);
    if (!s.ok()) return ReportError(s.status());
    JobInfo job;
    const bool wait = !c->Has("no-wait");
    int rc = Settle(ctx, ctx.api->ConvertToReferencePoint(s->id), "converting snapshot " + s->name,
                    wait, &job);
    if (rc != kExitOk || !wait) return rc;
    PrintRefPointMade(
        ctx, job,
        "snapshot " + s->name + " is now a reference point: export later snapshots with --base ");
    return kExitOk;
  }
  if (pos.size() != 1) return UsageError("snapshot", verb);
  if (verb == "apply") {
    auto s = ctx.api->GetSnapshot(pos[0]);
    if (!s.ok()) return ReportError(s.status());
    int rc = Settle(ctx, ctx.api->ApplySnapshot(s->id), "applying snapshot " + s->name,
                    !c->Has("no-wait"));
    if (rc == kExitOk && !c->Has("no-wait")) {
      std::cerr << "applied " << Printable(s->name)
                << (s->type == schema::SnapshotType::kStandard
                        ? ": the VMs that ran at the snapshot run on from it\n"
                        : ": its VMs are off, on the snapshot's disks\n");
    }
    return rc;
  }
  if (verb == "release") {
    // This host's part of the snapshot, held for a coordinator that may
    // never come back: the group is split between two points in time after.
    int rc = Settle(ctx, ctx.api->ReleaseApplyPart(pos[0]),
                    "releasing this host's part of the apply of snapshot " + pos[0], false);
    if (rc == kExitOk) {
      std::cerr << "released: this host's members of snapshot " << Printable(pos[0])
                << " are on their images from before the apply (those that ran run again); "
                   "the group's other hosts may have applied theirs\n";
    }
    return rc;
  }
  if (verb == "delete") {
    // A snapshot whose destroy was cut short is no longer listed, but its
    // id still finishes the destroy; anything else unknown is not there.
    auto s = ctx.api->GetSnapshot(pos[0]);
    if (!s.ok() && !IsGuid(pos[0])) return ReportError(s.status());
    const std::string name = s.ok() ? s->name : pos[0];
    auto call = ctx.api->DestroySnapshot(s.ok() ? s->id : pos[0]);
    if (!s.ok() && (!call.ok() || (call->code != 0 && call->code != 4096))) {
      return ReportError(s.status());
    }
    int rc = Settle(ctx, call, "deleting snapshot " + name, !c->Has("no-wait"));
    if (rc == kExitOk && !c->Has("no-wait")) {
      std::cerr << "deleted " << Printable(name)
                << ": its images are merged into their neighbours\n";
    }
    return rc;
  }
  if (verb == "show") {
    auto s = ctx.api->GetSnapshot(pos[0]);
    if (!s.ok()) return ReportError(s.status());
    if (ctx.json) {
      PrintJson(ToJson(*s));
      return kExitOk;
    }
    auto g = ctx.api->FindGroup(s->group_id);
    PrintSnapshot(*s, g.ok() ? g->name : s->group_id);
    return kExitOk;
  }
  auto g = ctx.api->FindGroup(pos[0]);
  if (!g.ok()) return ReportError(g.status());
  if (verb == "list") {
    auto snaps = ctx.api->ListSnapshots(g->id);
    if (!snaps.ok()) return ReportError(snaps.status());
    if (ctx.json) {
      PrintJsonList(*snaps);
      return kExitOk;
    }
    if (c->Has("tree")) {
      PrintTree(*snaps);
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows = {
        {"ID", "NAME", "TYPE", "CREATED", "CONSISTENCY", "PAUSE WINDOW"}};
    for (const auto& s : *snaps) {
      rows.push_back({s.id, s.name, TypeName(s.type), CimTimeText(s.created),
                      ConsistencyName(s.consistency), Micros(s.pause_window_us)});
    }
    PrintTable(std::cout, rows);
    return kExitOk;
  }
  if (verb != "create") return UsageError("snapshot", verb);
  using Type = schema::SnapshotType;
  const std::map<std::string, int> types = {
      {"standard", Type::kStandard}, {"recovery", Type::kRecovery}, {"disk", Type::kDiskOnly}};
  auto type = types.find(c->Get("type", "disk"));
  int consistency = 0;
  bool fallback = false;
  if (type == types.end() ||
      !ParseConsistency(c->Get("consistency", "crash"), &consistency, &fallback)) {
    return UsageError("snapshot", verb);
  }
  const bool wait = !c->Has("no-wait");
  JobInfo job;
  int rc =
      Settle(ctx, ctx.api->CreateSnapshot(*g, type->second, consistency, fallback, c->Get("name")),
             "snapshot of " + g->name, wait, &job);
  if (rc != kExitOk || !wait) return rc;
  for (const auto& a : job.affected) {
    if (!IsInstanceOf(a, schema::SnapshotCollection::kClass)) continue;
    auto s = ctx.api->GetSnapshot(AffectedId(a));
    if (!s.ok()) return ReportError(s.status());
    if (ctx.json) {
      PrintJson(ToJson(*s));
    } else {
      PrintSnapshot(*s, g->name);
    }
  }
  return kExitOk;
}

}  // namespace vmgroup::cli
