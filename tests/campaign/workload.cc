#include "workload.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "backup_listing.h"
#include "testing/guest_kit.h"

namespace vmgroup::campaign {

namespace {

// Bounds that keep a long run within the tmpfs mounts and the checks of a
// step within seconds: past them, only operations that remove are drawn.
constexpr int kMaxSnapshots = 6;
constexpr int kMaxReferencePoints = 3;
constexpr int kMaxRestoredVms = 2;
constexpr size_t kKeptExports = 4;
// Each guest's disk: sector n holds record n, so 131072 records, about a
// quarter of an hour of writing under TCG.
constexpr uint64_t kDiskBytes = 64 << 20;

Status Succeeded(const Result<CommandOutput>& r, const std::string& what) {
  if (!r.ok()) return r.status().Annotate(what);
  if (r->exit_code != 0) return Status::Failed(what + ": " + r->err + r->out);
  return Status::Ok();
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

template <typename T>
const T& Any(std::mt19937_64& rng, const std::vector<T>& from) {
  return from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(rng)];
}

}  // namespace

SerialProgress ReadSerialProgress(const std::string& serial_log) {
  std::ifstream f(serial_log);
  static const std::regex kWrote("wrote ([0-9]+)");
  SerialProgress p;
  std::string line;
  std::smatch m;
  while (std::getline(f, line)) {
    if (std::regex_search(line, m, kWrote)) {
      p.last = std::stoll(m[1]);
      ++p.lines;
    }
  }
  return p;
}

std::string SerialLog(const std::string& state_dir, const std::string& vm_id) {
  return state_dir + "/vms/" + vm_id + "/serial.log";
}

Status Workload::CreateGuests() {
  template_ = image_dir_ + "/template.qcow2";
  VMG_RETURN_IF_ERROR(Succeeded(Env::Default()->Run({"qemu-img", "create", "-q", "-f", "qcow2",
                                                     template_, std::to_string(kDiskBytes)}),
                                "creating the template"));
  std::filesystem::permissions(template_, std::filesystem::perms(0644));
  for (int i = 0; i < options_.guests; ++i) {
    const std::string name = "g" + std::to_string(i);
    const std::string disk = image_dir_ + "/" + name + ".qcow2";
    VMG_RETURN_IF_ERROR(Succeeded(Env::Default()->Run({"qemu-img", "create", "-q", "-f", "qcow2",
                                                       "-b", template_, "-F", "qcow2", disk}),
                                  "creating " + disk));
    auto made = daemon_.Cli({"vm", "create", name, "--memory", std::to_string(options_.memory_mib),
                             "--disk", disk, "--kernel", options_.guest_kit + "/vmlinuz",
                             "--initrd", options_.guest_kit + "/initrd.gz", "--append",
                             testing::GuestKernelArgs("agent=1 writer=raw"), "--start"});
    VMG_RETURN_IF_ERROR(Succeeded(made, "vm create " + name));
    guests_.push_back(Trimmed(made->out.substr(0, made->out.find('\n'))));
  }
  auto group = daemon_.Cli({"group", "create", "shop"});
  VMG_RETURN_IF_ERROR(Succeeded(group, "group create"));
  group_ = Trimmed(group->out);
  std::vector<std::string> add = {"group", "add", "shop"};
  add.insert(add.end(), guests_.begin(), guests_.end());
  VMG_RETURN_IF_ERROR(Succeeded(daemon_.Cli(add), "group add"));
  for (const auto& id : guests_) {
    const auto deadline = Env::Default()->Now() + std::chrono::minutes(3);
    while (ReadSerialProgress(SerialLog(state_dir_, id)).lines < 2) {
      if (Env::Default()->Now() > deadline) {
        return Status::Failed("guest " + id + " wrote nothing in 3 minutes");
      }
      Env::Default()->SleepFor(std::chrono::milliseconds(200));
    }
  }
  return Status::Ok();
}

bool Workload::IsGuest(const std::string& vm_id) const {
  return std::find(guests_.begin(), guests_.end(), vm_id) != guests_.end();
}

Operation Workload::Pick(std::mt19937_64& rng, catalog::Catalog& catalog) {
  while (exports_.size() > kKeptExports) {
    std::error_code ec;
    std::filesystem::remove_all(exports_.front().export_dir, ec);
    exports_.erase(exports_.begin());
  }
  std::vector<std::string> running, paused, off, restored;
  std::map<std::string, std::vector<std::string>> disks;  // VM -> its active images
  std::map<std::string, std::string> current;             // VM -> its newest member snapshot
  if (auto vms = catalog.ListVms(); vms.ok()) {
    for (const auto& vm : *vms) {
      disks[vm.id] = vm.disks;
      current[vm.id] = vm.current_snapshot;
      if (!IsGuest(vm.id)) {
        if (vm.power == catalog::Power::kOff) restored.push_back(vm.id);
        continue;
      }
      (vm.power == catalog::Power::kRunning  ? running
       : vm.power == catalog::Power::kPaused ? paused
                                             : off)
          .push_back(vm.id);
    }
  }
  // Reference points track changes through each member's running QEMU:
  // they are drawn only when every guest runs or is paused, and only in the
  // forms the engine can carry out, so that each one drawn tests the work
  // and not the checks that refuse it.
  const bool all_live = off.empty();
  auto newest = [&](const catalog::SnapshotRecord& s) {
    if (s.members.empty()) return false;
    for (const auto& m : s.members) {
      if (current[m.vm_id] != m.id) return false;
    }
    return true;
  };
  auto exported = [&](const std::string& snapshot_id) {
    auto dirs = catalog.ExportsOf(snapshot_id);
    if (!dirs.ok()) return false;
    return std::any_of(dirs->begin(), dirs->end(), [](const std::string& d) {
      return Env::Default()->FileExists(d + "/manifest.json");
    });
  };
  std::vector<std::string> snapshots;
  std::string newest_recovery;
  bool newest_recovery_exported = false;
  if (auto all = catalog.ListSnapshots(group_); all.ok()) {
    for (const auto& s : *all) {
      if (s.state != catalog::SnapshotState::kComplete) continue;
      snapshots.push_back(s.id);
      if (s.type == 2 && newest(s)) {  // engine::kSnapshotRecovery
        newest_recovery = s.id;
        newest_recovery_exported = exported(s.id);
      }
    }
  }
  // Reference points whose bitmaps are on the images the members write now:
  // the bases a backup session's incremental can build on.
  std::vector<std::string> refpoints, exportable_refpoints, leading_refpoints;
  if (auto all = catalog.ListReferencePoints(group_); all.ok()) {
    for (const auto& r : *all) {
      refpoints.push_back(r.id);
      // An incremental export builds on the full export of the reference
      // point's snapshot, and needs the reference point's bitmaps on the
      // images the members write now (no snapshot came after it).
      bool leads_up = exported(r.snapshot_id);
      for (const auto& m : r.members) {
        if (disks[m.vm_id] != m.images) leads_up = false;
      }
      if (leads_up) exportable_refpoints.push_back(r.id);
      if (std::all_of(r.members.begin(), r.members.end(),
                      [&](const auto& m) { return disks[m.vm_id] == m.images; })) {
        leading_refpoints.push_back(r.id);
      }
    }
  }
  std::vector<std::string> groups;
  if (auto all = catalog.ListCollections(); all.ok()) {
    for (const auto& c : *all) {
      if (c.id != group_ && c.members.empty()) groups.push_back(c.id);
    }
  }
  std::vector<std::string> restorable;
  for (const auto& e : exports_) {
    if (e.full_export && Env::Default()->FileExists(e.export_dir + "/manifest.json")) {
      restorable.push_back(e.export_dir);
    }
  }
  const std::string export_dir = export_root_ + "/e" + std::to_string(exports_made_);

  auto export_of = [&](const std::string& snapshot_id) -> Operation {
    return {
        "export", {"snapshot", "export", snapshot_id, export_dir, "--no-wait"}, export_dir, true};
  };
  std::vector<Operation> ops;
  // Backup sessions: one at a time serves the group (a second of the same
  // VMs is refused), and only while every guest's QEMU runs (a member that
  // is off is not served). A session lives until the next kill at most, so
  // while one is listed, it is read in three steps of five and ended in one
  // (seeds 24 and 25, drawing either every other step, read none).
  auto sessions = ListSessions(daemon_);
  if (sessions.ok() && !sessions->empty()) {
    const ListedSession& s = Any(rng, *sessions);
    const ServedDisk& disk = Any(rng, s.disks);
    const Operation read{
        "backup-read",
        {},
        "",
        false,
        std::bernoulli_distribution(0.5)(rng)
            ? std::vector<std::string>{"nbdcopy", disk.uri, "null:"}
            : std::vector<std::string>{
                  "nbdinfo", "--map=" + (disk.context.empty() ? "base:allocation" : disk.context),
                  disk.uri}};
    std::vector<std::string> end = {"backup", "end", s.id, "--no-wait"};
    if (refpoints.size() < kMaxReferencePoints && std::bernoulli_distribution(0.5)(rng)) {
      end.push_back("--to-refpoint");
    }
    const double draw = std::uniform_real_distribution<double>(0, 1)(rng);
    if (draw < 0.6) return read;
    if (draw < 0.8) return {"backup-end", end};
    ops.push_back(read);
    ops.push_back({"backup-end", end});
  } else if (sessions.ok() && off.empty() && snapshots.size() < kMaxSnapshots) {
    std::vector<std::string> begin = {"--json", "backup", "begin", "shop"};
    if (!leading_refpoints.empty() && std::bernoulli_distribution(0.5)(rng)) {
      begin.insert(begin.end(), {"--incremental-from", Any(rng, leading_refpoints)});
    }
    if (std::bernoulli_distribution(0.25)(rng)) {  // ends by itself, unread, seconds later
      begin.insert(begin.end(),
                   {"--idle-timeout", std::to_string(std::uniform_int_distribution(1, 5)(rng))});
    }
    // Often: only a begin the step does not kill leaves a session to read
    // (a smoke run drew 1 begin in 17 steps, seed 24 5 in 84).
    if (std::bernoulli_distribution(0.35)(rng)) return {"backup-begin", begin};
    for (int i = 0; i < 2; ++i) ops.push_back({"backup-begin", begin});
  }
  if (snapshots.size() < kMaxSnapshots) {
    ops.push_back({"snapshot-disk", {"snapshot", "create", "shop", "--type", "disk", "--no-wait"}});
    ops.push_back(
        {"snapshot-standard", {"snapshot", "create", "shop", "--type", "standard", "--no-wait"}});
    // Twice: reference points, and the exports of them, build on recovery
    // snapshots (seed 19 drew too few of them to reach those).
    for (int i = 0; i < 2; ++i) {
      ops.push_back(
          {"snapshot-recovery", {"snapshot", "create", "shop", "--type", "recovery", "--no-wait"}});
    }
    ops.push_back(
        {"snapshot-application",
         {"snapshot", "create", "shop", "--consistency", "application-or-crash", "--no-wait"}});
  }
  if (!snapshots.empty()) {
    ops.push_back({"apply", {"snapshot", "apply", Any(rng, snapshots), "--no-wait"}});
    ops.push_back({"destroy", {"snapshot", "delete", Any(rng, snapshots), "--no-wait"}});
    // Half the exports take the newest recovery snapshot, so that
    // converting it later gives a reference point with a base to build on.
    const std::string& exported_one =
        !newest_recovery.empty() && std::bernoulli_distribution(0.5)(rng) ? newest_recovery
                                                                          : Any(rng, snapshots);
    ops.push_back(export_of(exported_one));
  }
  const bool can_convert =
      !newest_recovery.empty() && all_live && refpoints.size() < kMaxReferencePoints;
  const Operation convert{"to-refpoint", {"snapshot", "to-refpoint", newest_recovery, "--no-wait"}};
  // The rarest chain (a recovery snapshot exported, then converted, then no
  // snapshot since): while its next link can be drawn it is drawn every
  // other step (its first, the export, every fourth), else runs of 200
  // kills never reach a reference point's export (seeds 17 and 21 did not).
  if (all_live && !exportable_refpoints.empty() && std::bernoulli_distribution(0.5)(rng)) {
    return {"refpoint-export",
            {"refpoint", "export", Any(rng, exportable_refpoints), export_dir, "--no-wait"},
            export_dir};
  }
  if (can_convert && newest_recovery_exported && std::bernoulli_distribution(0.5)(rng)) {
    return convert;
  }
  if (can_convert && !newest_recovery_exported && std::bernoulli_distribution(0.25)(rng)) {
    return export_of(newest_recovery);
  }
  if (can_convert) {
    // Three times the chance while it can be drawn (the next snapshot ends
    // that).
    for (int i = 0; i < 3; ++i) ops.push_back(convert);
  }
  if (all_live && refpoints.size() < kMaxReferencePoints) {
    ops.push_back({"refpoint-create", {"refpoint", "create", "shop", "--no-wait"}});
  }
  if (!refpoints.empty()) {
    ops.push_back({"refpoint-delete", {"refpoint", "delete", Any(rng, refpoints), "--no-wait"}});
  }
  if (!restorable.empty() && restored.size() < kMaxRestoredVms) {
    ops.push_back({"restore", {"import", Any(rng, restorable), "--as-new", "--no-wait"}});
  }
  if (!restored.empty()) ops.push_back({"vm-delete", {"vm", "delete", Any(rng, restored)}});
  if (!groups.empty()) ops.push_back({"group-delete", {"group", "delete", Any(rng, groups)}});
  if (!running.empty()) {
    ops.push_back({"vm-turn-off", {"vm", "turn-off", Any(rng, running)}});
    // A clean shutdown, turned off all the same when the guest is too busy
    // to act on its power button in time: the VM ends off either way.
    ops.push_back({"vm-stop", {"vm", "stop", Any(rng, running), "--timeout", "30", "--force"}});
    ops.push_back({"vm-pause", {"vm", "pause", Any(rng, running)}});
  }
  // Three times as often as the rest: every apply leaves the guests off, and
  // reference points are made only while every guest runs (seeds 19 and 20
  // drew no conversion to one in 80 steps and more).
  for (int i = 0; i < 3; ++i) {
    if (!paused.empty()) ops.push_back({"vm-resume", {"vm", "resume", Any(rng, paused)}});
    if (!off.empty()) ops.push_back({"vm-start", {"vm", "start", Any(rng, off)}});
  }
  return Any(rng, ops);
}

void Workload::Sent(const Operation& op) {
  if (op.export_dir.empty()) return;
  ++exports_made_;
  exports_.push_back(op);
}

}  // namespace vmgroup::campaign
