#include "invariants.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "backup_listing.h"
#include "workload.h"

namespace vmgroup::campaign {

namespace {

bool Ended(catalog::JobState s) {
  return s == catalog::JobState::kCompleted || s == catalog::JobState::kTerminated ||
         s == catalog::JobState::kKilled || s == catalog::JobState::kException ||
         s == catalog::JobState::kCompletedWithWarnings;
}

void Append(Violations& to, Violations more) {
  to.insert(to.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
}

}  // namespace

Violations Invariants::JobsEnded(catalog::Catalog& catalog) {
  Violations v;
  auto jobs = catalog.ListJobs();
  if (!jobs.ok()) return {{"catalog-unreadable", jobs.status().ToString()}};
  for (const auto& j : *jobs) {
    if (!Ended(j.state)) {
      v.push_back({"job-not-ended", "job " + j.id + " (" + j.description +
                                        ") of the dead daemon is in state " +
                                        std::to_string(static_cast<int>(j.state))});
    }
  }
  return v;
}

void Invariants::AwaitSessionSnapshots(catalog::Catalog& catalog) {
  const auto deadline = Env::Default()->Now() + std::chrono::minutes(1);
  while (Env::Default()->Now() < deadline) {
    auto snapshots = catalog.ListSnapshots();
    if (!snapshots.ok()) return;
    const bool ending = std::any_of(snapshots->begin(), snapshots->end(), [](const auto& s) {
      return s.state != catalog::SnapshotState::kComplete &&
             s.name.rfind(SessionSnapshotName(""), 0) == 0;
    });
    if (!ending) return;
    Env::Default()->SleepFor(std::chrono::milliseconds(100));
  }
}

Violations Invariants::Settled(catalog::Catalog& catalog, const std::vector<std::string>& guests) {
  AwaitSessionSnapshots(catalog);
  Violations v = Processes(catalog);
  Append(v, PowerStates(catalog, guests));
  auto snapshots = catalog.ListSnapshots();
  if (!snapshots.ok()) return {{"catalog-unreadable", snapshots.status().ToString()}};
  for (const auto& s : *snapshots) {
    if (s.state != catalog::SnapshotState::kComplete) {
      v.push_back(
          {"snapshot-not-complete",
           "snapshot " + s.id + " is " +
               (s.state == catalog::SnapshotState::kIncomplete ? "Incomplete" : "Destroying") +
               " with no job running"});
    }
  }
  Append(v, Files(catalog));
  Append(v, Exports());
  Append(v, Sessions(catalog));
  return v;
}

Violations Invariants::Processes(catalog::Catalog& catalog) {
  Violations v;
  auto vms = catalog.ListVms();
  if (!vms.ok()) return {{"catalog-unreadable", vms.status().ToString()}};
  auto qemus = OurQemus();
  for (const auto& vm : *vms) {
    const auto found = qemus.find(vm.id);
    const std::vector<int> pids = found == qemus.end() ? std::vector<int>{} : found->second;
    if (found != qemus.end()) qemus.erase(found);
    std::string list;
    for (int p : pids) list += " " + std::to_string(p);
    if (pids.size() > 1) {
      for (int p : pids) {
        if (p == vm.pid) continue;
        v.push_back({"two-qemus",
                     "VM " + vm.name + " (" + vm.id + ") has QEMUs" + list + "; the catalog's is " +
                         std::to_string(vm.pid),
                     vm.id, p});
      }
    } else if (vm.power == catalog::Power::kOff && !pids.empty()) {
      v.push_back(
          {"qemu-of-off-vm",
           "VM " + vm.name + " (" + vm.id + ") is off in the catalog, QEMU" + list + " runs", vm.id,
           pids[0]});
    } else if (vm.power != catalog::Power::kOff && pids.empty()) {
      v.push_back({"qemu-missing", "VM " + vm.name + " is " + catalog::PowerName(vm.power) +
                                       " in the catalog, no QEMU runs"});
    } else if (!pids.empty() && pids[0] != vm.pid) {
      v.push_back({"qemu-pid-mismatch", "VM " + vm.name + ": QEMU" + list +
                                            " runs, the catalog says " + std::to_string(vm.pid)});
    }
  }
  for (const auto& [id, pids] : qemus) {
    for (int p : pids) {
      v.push_back(
          {"qemu-of-no-vm",
           "QEMU " + std::to_string(p) + " runs for " + id + ", which the catalog does not know",
           id, p});
    }
  }
  return v;
}

Violations Invariants::PowerStates(catalog::Catalog& catalog,
                                   const std::vector<std::string>& guests) {
  Violations v;
  auto listed = daemon_.Cli({"--json", "vm", "list"});
  if (!listed.ok() || listed->exit_code != 0) {
    return {{"daemon-unanswering",
             "vm list: " + (listed.ok() ? listed->err : listed.status().ToString())}};
  }
  std::map<std::string, std::string> shown;
  for (const auto& vm : nlohmann::json::parse(listed->out, nullptr, false)) {
    if (vm.is_object()) shown[vm.value("id", "")] = vm.value("state", "");
  }
  std::map<std::string, int64_t> writing;  // running guests -> "wrote" lines so far
  for (const auto& id : guests) {
    auto vm = catalog.GetVm(id);
    if (!vm.ok()) {
      v.push_back({"guest-gone", "guest " + id + ": " + vm.status().ToString()});
      continue;
    }
    const std::string want = vm->power == catalog::Power::kRunning  ? "running"
                             : vm->power == catalog::Power::kPaused ? "paused"
                                                                    : "off";
    if (shown[id] != want) {
      v.push_back(
          {"vm-state-unasked",
           "VM " + vm->name + " (" + id + ") is " + shown[id] + "; it was asked to be " + want,
           id});
    } else if (want == "running") {
      writing[id] = ReadSerialProgress(SerialLog(state_dir_, id)).lines;
    }
  }
  // A running guest acknowledges 50 records in well under a second; a
  // minute without one is a VM that stopped while it says it runs.
  const auto deadline = Env::Default()->Now() + std::chrono::minutes(1);
  while (!writing.empty() && Env::Default()->Now() < deadline) {
    std::erase_if(writing, [&](const auto& w) {
      return ReadSerialProgress(SerialLog(state_dir_, w.first)).lines > w.second;
    });
    Env::Default()->SleepFor(std::chrono::milliseconds(100));
  }
  for (const auto& [id, lines] : writing) {
    v.push_back(
        {"vm-stalled",
         "VM " + id +
             " is running for vmgroupd but its guest acknowledged nothing for a minute (a QEMU "
             "paused behind the daemon's back?)",
         id});
  }
  return v;
}

Violations Invariants::Files(catalog::Catalog& catalog) {
  namespace fs = std::filesystem;
  Violations v;
  std::error_code ec;
  std::set<std::string> known(ignored_.begin(), ignored_.end());
  std::set<std::string> required;
  for (const char* f : {"/catalog.db", "/catalog.db-wal", "/catalog.db-shm", "/vms"}) {
    known.insert(state_dir_ + f);
  }
  required.insert(state_dir_ + "/catalog.db");
  auto vms = catalog.ListVms();
  auto snapshots = catalog.ListSnapshots();
  auto refpoints = catalog.ListReferencePoints();
  if (!vms.ok() || !snapshots.ok() || !refpoints.ok()) {
    return {{"catalog-unreadable", "listing VMs, snapshots or reference points"}};
  }
  for (const auto& vm : *vms) {
    const std::string dir = state_dir_ + "/vms/" + vm.id;
    known.insert(dir);
    for (const char* f : {"/qmp.sock", "/guard.sock", "/agent.sock", "/qemu.log", "/serial.log",
                          "/kernel", "/initrd"}) {
      known.insert(dir + f);
    }
    if (!vm.config.kernel.empty()) required.insert(vm.config.kernel);
    if (!vm.config.initrd.empty()) required.insert(vm.config.initrd);
    required.insert(vm.disks.begin(), vm.disks.end());
  }
  for (const auto& s : *snapshots) {
    for (const auto& m : s.members) {
      for (const auto& d : m.disks) {
        required.insert(d.frozen_image);
        known.insert(d.overlay);  // an apply may have discarded it since
      }
      if (!m.memory_state.empty()) required.insert(m.memory_state);
    }
  }
  for (const auto& r : *refpoints) {
    for (const auto& m : r.members) required.insert(m.images.begin(), m.images.end());
  }
  // A serving session's directory and sockets (BackupSessions).
  known.insert(state_dir_ + "/backups");
  if (auto intents = catalog.ListBackupIntents(); intents.ok()) {
    for (const auto& i : *intents) {
      known.insert(i.directory);
      for (const auto& entry : fs::directory_iterator(i.directory, ec)) known.insert(entry.path());
    }
  }
  // Images outside the state directory (each guest's first disk, the
  // template under it) are the operator's: only their presence is checked.
  for (auto it = fs::recursive_directory_iterator(state_dir_, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const std::string path = it->path();
    // A deleted VM's run directory may stay, emptied (VmRegistry::Delete).
    if (it->is_directory(ec) && fs::is_empty(it->path(), ec)) continue;
    if (!known.count(path) && !required.count(path)) {
      v.push_back(
          {"unknown-file", path + " is under the state directory; the catalog names it nowhere"});
    }
  }
  for (const auto& path : required) {
    if (!fs::exists(path))
      v.push_back({"missing-file", "the catalog names " + path + "; it is gone"});
  }
  return v;
}

Violations Invariants::Exports() {
  Violations v;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(export_root_, ec)) {
    if (!entry.is_directory()) continue;
    if (!std::filesystem::exists(entry.path() / "manifest.json")) {
      v.push_back(
          {"export-leftover", entry.path().string() + " holds no manifest after its job ended"});
    }
  }
  return v;
}

}  // namespace vmgroup::campaign
