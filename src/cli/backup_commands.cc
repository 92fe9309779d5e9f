// vmgroup backup begin | list | show | changes | end
#include <iostream>

#include "base/validate.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "schema/classes.h"

namespace vmgroup::cli {
namespace {

nlohmann::json ToJson(const BackupInfo& b, const std::string& job_id) {
  nlohmann::json disks = nlohmann::json::array();
  for (const auto& d : b.disks) {
    nlohmann::json disk = {{"vm", d.vm_name},        {"vm_id", d.vm_id}, {"disk", d.index},
                           {"uri", d.uri},           {"size", d.size},   {"context", nullptr},
                           {"export", d.export_name}};
    // Over TCP the URI alone says where: there is no socket.
    if (!d.socket.empty()) disk["socket"] = d.socket;
    if (!d.context.empty()) disk["context"] = d.context;
    if (!d.full_read_reason.empty()) disk["full_read_reason"] = d.full_read_reason;
    // Across hosts: the peer to read it from (its URI names that host's socket or address).
    if (!d.host.empty()) disk["host"] = d.host;
    disks.push_back(std::move(disk));
  }
  nlohmann::json out = {{"session", b.id},
                        {"group_id", b.group_id},
                        {"snapshot_id", b.snapshot_id},
                        {"snapshot_taken", b.took_snapshot},
                        {"incremental_from", nullptr},
                        {"started", JsonTime(b.started)},
                        {"state", b.state},
                        {"disks", std::move(disks)}};
  if (!b.base_id.empty()) out["incremental_from"] = b.base_id;
  if (!job_id.empty()) out["job"] = job_id;
  return out;
}

void PrintSession(const Context& ctx, const BackupInfo& b, const std::string& job_id) {
  if (ctx.json) {
    PrintJson(ToJson(b, job_id));
    return;
  }
  std::cout << "session " << Printable(b.id) << (job_id.empty() ? "" : " (job " + job_id + ")")
            << ": " << Printable(b.state) << "\n";
  std::vector<std::vector<std::string>> rows = {{"HOST", "VM", "DISK", "SIZE", "URI", "CHANGES"}};
  for (const auto& d : b.disks) {
    rows.push_back({d.host.empty() ? "-" : d.host, d.vm_name, std::to_string(d.index),
                    std::to_string(d.size), d.uri, d.context.empty() ? "full read" : d.context});
  }
  PrintTable(std::cout, rows);
  for (const auto& d : b.disks) {
    if (!d.full_read_reason.empty()) std::cerr << Printable(d.full_read_reason) << "\n";
  }
}

// A byte count from the command line; InvalidArgument naming `flag`.
Result<uint64_t> Bytes(const CommandLine& c, const std::string& flag) {
  VMG_ASSIGN_OR_RETURN(
      int64_t n, ParseInt("--" + flag, c.Get(flag, "0"), 0, std::numeric_limits<int64_t>::max()));
  return static_cast<uint64_t>(n);
}

int Begin(Context& ctx, const CommandLine& c) {
  if (c.positional().size() != 1) return UsageError("backup", "begin");
  auto g = ctx.api->FindGroup(c.positional()[0]);
  if (!g.ok()) return ReportError(g.status());
  BackupBegin begin{.snapshot_id = c.Get("snapshot"), .tcp = c.Has("tcp")};
  if (c.Has("consistency") &&
      !ParseConsistency(c.Get("consistency"), &begin.consistency, &begin.fallback)) {
    return UsageError("backup", "begin");
  }
  if (c.Has("incremental-from")) {
    auto rp = ctx.api->GetRefPoint(c.Get("incremental-from"));
    if (!rp.ok()) return ReportError(rp.status());
    begin.base_id = rp->id;
  }
  if (c.Has("idle-timeout")) {
    auto idle = ParseInt("--idle-timeout", c.Get("idle-timeout"), 1, 7 * 24 * 3600);
    if (!idle.ok()) return ReportError(idle.status());
    begin.idle_seconds = *idle;
  }
  auto r = ctx.api->BeginBackup(*g, begin);
  if (!r.ok() || r->code != 4096) {
    return Settle(ctx, r, "beginning a backup session of group " + g->name, false);
  }
  auto b = ctx.api->AwaitBackup(*r);
  if (!b.ok()) {
    std::cerr << "vmgroup: the backup session of group " << Printable(g->name)
              << " did not begin: " << Printable(b.status().message()) << "\n";
    return kExitFailed;
  }
  PrintSession(ctx, *b, r->job_id);
  std::cerr << "serving until `vmgroup backup end " << Printable(b->id)
            << "` (add --to-refpoint to make it the base of the next incremental)\n";
  return kExitOk;
}

int Changes(Context& ctx, const CommandLine& c) {
  if (c.positional().size() != 3) return UsageError("backup", "changes");
  auto disk = ParseInt("DISK", c.positional()[2], 0, 255);
  if (!disk.ok()) return ReportError(disk.status());
  auto offset = Bytes(c, "offset");
  if (!offset.ok()) return ReportError(offset.status());
  auto length = Bytes(c, "length");
  if (!length.ok()) return ReportError(length.status());
  // Looked up first: an unknown session is "no such" (exit 4), as
  // everywhere, where the method's code would only say invalid parameter.
  if (auto b = ctx.api->GetBackup(c.positional()[0]); !b.ok()) return ReportError(b.status());
  auto changes = ctx.api->BackupChanges(c.positional()[0], c.positional()[1],
                                        static_cast<int>(*disk), *offset, *length);
  if (!changes.ok()) return ReportError(changes.status());
  if (ctx.json) {
    nlohmann::json ranges = nlohmann::json::array();
    for (const auto& [o, l] : changes->ranges) ranges.push_back({{"offset", o}, {"length", l}});
    PrintJson({{"ranges", std::move(ranges)}, {"processed", changes->processed}});
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"OFFSET", "LENGTH"}};
  for (const auto& [o, l] : changes->ranges) rows.push_back({std::to_string(o), std::to_string(l)});
  PrintTable(std::cout, rows);
  std::cerr << changes->processed << " bytes looked at\n";
  return kExitOk;
}

}  // namespace

int RunBackup(Context& ctx, const std::vector<std::string>& words) {
  if (words.empty()) return UsageError("backup");
  const std::string verb = words[0];
  auto c = CommandLine::Parse(
      {words.begin() + 1, words.end()},
      {"incremental-from", "snapshot", "consistency", "idle-timeout", "offset", "length"},
      {"to-refpoint", "no-wait", "tcp"});
  if (!c.ok()) return ReportError(c.status());
  if (verb == "begin") return Begin(ctx, *c);
  if (verb == "changes") return Changes(ctx, *c);
  if (verb == "list") {
    if (!c->positional().empty()) return UsageError("backup", verb);
    auto all = ctx.api->ListBackups();
    if (!all.ok()) return ReportError(all.status());
    if (ctx.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& b : *all) out.push_back(ToJson(b, ""));
      PrintJson(out);
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows = {{"SESSION", "GROUP", "STARTED", "DISKS"}};
    for (const auto& b : *all) {
      auto g = ctx.api->FindGroup(b.group_id);
      rows.push_back({b.id, g.ok() ? g->name : b.group_id, CimTimeText(b.started),
                      std::to_string(b.disks.size())});
    }
    PrintTable(std::cout, rows);
    return kExitOk;
  }
  if (c->positional().size() != 1) return UsageError("backup", verb);
  const std::string id = c->positional()[0];
  if (verb == "show") {
    auto b = ctx.api->GetBackup(id);
    if (!b.ok()) return ReportError(b.status());
    PrintSession(ctx, *b, "");
    return kExitOk;
  }
  if (verb == "end") {
    // An unknown session is not found (exit 4), as for every other object.
    if (auto b = ctx.api->GetBackup(id); !b.ok()) return ReportError(b.status());
    const bool to_refpoint = c->Has("to-refpoint");
    const bool wait = !c->Has("no-wait");
    JobInfo job;
    int rc =
        Settle(ctx, ctx.api->EndBackup(id, to_refpoint), "ending backup session " + id, wait, &job);
    if (rc != kExitOk || !wait) return rc;
    if (to_refpoint) {
      PrintRefPointMade(ctx, job,
                        "the session's cut is the base of the next incremental "
                        "(backup begin --incremental-from); reference point ");
    } else if (ctx.json) {
      PrintJson({{"session", id}, {"ended", true}});
    }
    std::cerr << "backup session " << Printable(id) << " ended\n";
    return kExitOk;
  }
  return UsageError("backup", verb);
}

}  // namespace vmgroup::cli
