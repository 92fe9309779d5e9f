#include "engine/recovery.h"

#include <set>

#include "engine/export_layout.h"
#include "engine/export_restore.h"
#include "engine/image_merge.h"
#include "engine/parallel.h"
#include "engine/snapshot_plan.h"
#include "engine/snapshot_undo.h"
#include "engine/tracking_sweep.h"

namespace vmgroup::engine {
namespace {

constexpr auto kQueryTimeout = std::chrono::seconds(10);

// True when the cut is known to have happened on every member that ran:
// each is alive and every disk's active image is its overlay.
Result<bool> CutHappenedEverywhere(Env* env, VmRegistry& vms, const catalog::SnapshotRecord& s) {
  bool any_live = false;
  for (const auto& m : s.members) {
    for (const auto& d : m.disks) {
      if (!env->FileExists(d.overlay)) return false;
    }
    if (m.power_at_cut == catalog::Power::kOff) continue;
    auto live = vms.Live(m.vm_id);
    if (!live) return false;
    VMG_ASSIGN_OR_RETURN(auto active, live->ActiveImages(env->Now() + kQueryTimeout));
    for (const auto& d : m.disks) {
      if (static_cast<size_t>(d.index) >= active.size() || active[d.index] != d.overlay) {
        return false;
      }
    }
    // A memory state counts once QEMU finished writing it (it goes on
    // streaming when the daemon dies) and it is on disk.
    if (!m.memory_state.empty() && (!live->AwaitStateSaved(env->Now() + kStateSaveTimeout).ok() ||
                                    !env->SyncFile(m.memory_state).ok())) {
      return false;
    }
    // And once the trackings the switch held out of its pause are stored.
    if (!live->FinishSwitch(env->Now() + kQueryTimeout).ok()) return false;
    any_live = true;
  }
  return any_live;
}

// A daemon that died inside a cut left the members' QEMU threads at real-time
// priority (cut_executor.cc): back to normal time sharing.
void ResetScheduling(Env* env, int pid) {
  auto threads = env->Threads(pid);
  if (!threads.ok()) return;
  for (const auto& t : *threads) {
    auto s = env->GetScheduling(t.tid);
    if (s.ok() && s->realtime) (void)env->SetScheduling(t.tid, {false, 0});
  }
}

// The service died while an application-consistent snapshot had its guests
// frozen. Its thaw guard thawed them, unless something killed the guard too:
// thaw each again (a guest not frozen is left as it is). Returns the VMs
// that were still frozen.
std::vector<std::string> ThawGuests(Env* env, VmRegistry& vms, const catalog::SnapshotRecord& s) {
  std::vector<int> thawed(s.members.size(), 0);
  (void)EachInParallel(s.members.size(), [&](size_t i) -> Status {
    auto live = vms.Live(s.members[i].vm_id);
    if (!live) return Status::Ok();
    VMG_ASSIGN_OR_RETURN(thawed[i], live->ThawFilesystems(env->Now() + kQueryTimeout));
    return Status::Ok();
  });
  std::vector<std::string> out;
  for (size_t i = 0; i < thawed.size(); ++i) {
    if (thawed[i] > 0) out.push_back(s.members[i].vm_id);
  }
  return out;
}

// Before the undo of snapshot `s`: a libvirt domain shut off since its cut
// began (its operator destroyed it while the cut held it suspended) may
// still be defined on the overlay the cut switched it to, which the undo
// merges and deletes. Its definition is made to name the images the
// catalog does, those the undo leaves, so that it starts again on them.
// Unavailable (nothing done) when a member's libvirt connection is not open.
Status RedefineStoppedDomains(VmRegistry& vms, catalog::Catalog& catalog,
                              const catalog::SnapshotRecord& s) {
  for (const auto& m : s.members) {
    auto vm = catalog.GetVm(m.vm_id);
    if (vm.status().code() == Code::kNotFound) continue;  // the undo has nothing to redefine
    VMG_RETURN_IF_ERROR(vm.status());
    if (vm->libvirt_uri.empty() || vms.Live(vm->id)) continue;
    // Unavailable when its connection is not open: undone offline now, a
    // domain that may still run would be merged under its QEMU, so the undo
    // waits for a start that can ask libvirt.
    Status defined = vms.DefineDisks(vm->id, vm->disks);
    // Started again since, or undefined: not ours to redefine.
    if (defined.code() == Code::kInvalidState || defined.code() == Code::kNotFound) continue;
    VMG_RETURN_IF_ERROR(defined);
  }
  return Status::Ok();
}

// Step 6: every export a crash cut short.
void TakeBackExports(Env* env, catalog::Catalog& catalog, RecoveryReport& report) {
  auto intents = catalog.ListExportIntents();
  if (!intents.ok()) {
    if (report.problems.ok()) report.problems = intents.status().Annotate("exports in progress");
    return;
  }
  for (const auto& intent : *intents) {
    // Its parts are on the hosts: SpanningSnapshots::Recover asks them.
    if (intent.across_hosts) continue;
    auto removed = TakeBackExport(env, catalog, intent);
    if (!removed.ok()) {
      if (report.problems.ok()) report.problems = removed.status().Annotate("export");
      continue;
    }
    (*removed ? report.exports_taken_back : report.exports_kept).push_back(intent);
  }
}

// Restores a crash cut short: what they made is taken back, so that they
// can run again.
void TakeBackRestores(Env* env, VmRegistry& vms, catalog::Catalog& catalog,
                      RecoveryReport& report) {
  auto intents = catalog.ListRestoreIntents();
  if (!intents.ok()) {
    if (report.problems.ok()) report.problems = intents.status().Annotate("restores in progress");
    return;
  }
  for (const auto& intent : *intents) {
    Status s = TakeBackRestore(env, vms, catalog, intent);
    if (s.ok()) {
      report.restores_taken_back.push_back(intent.collection_id);
    } else if (report.problems.ok()) {
      report.problems = s.Annotate("restore of group " + intent.collection_id);
    }
  }
}

// Step 8: a reference point is recorded just before its snapshot's destroy
// begins; one whose snapshot is still whole was never made.
void TakeBackConversions(catalog::Catalog& catalog, RecoveryReport& report) {
  auto rps = catalog.ListReferencePoints();
  if (!rps.ok()) {
    if (report.problems.ok()) report.problems = rps.status().Annotate("reference points");
    return;
  }
  for (const auto& rp : *rps) {
    auto s = catalog.GetSnapshot(rp.snapshot_id);
    if (!s.ok() || s->state != catalog::SnapshotState::kComplete) continue;
    Status st = catalog.DeleteReferencePoint(rp.id);
    if (st.ok()) {
      report.conversions_taken_back.push_back(rp.id);
    } else if (report.problems.ok()) {
      report.problems = st.Annotate("conversion of snapshot " + rp.snapshot_id);
    }
  }
}

}  // namespace

Result<RecoveryReport> Recover(Env* env, VmRegistry& vms, catalog::Catalog& catalog) {
  RecoveryReport report;
  storage::QemuImg img(env);
  VMG_ASSIGN_OR_RETURN(report.gone_vms, vms.AttachAll());
  VMG_ASSIGN_OR_RETURN(auto listed, catalog.ListVms());
  for (const auto& vm : listed) {
    if (auto live = vms.Live(vm.id)) ResetScheduling(env, live->pid());
  }

  VMG_ASSIGN_OR_RETURN(auto snapshots, catalog.ListSnapshots());
  for (auto& s : snapshots) {
    if (s.state != catalog::SnapshotState::kIncomplete) continue;
    if (s.consistency == catalog::Consistency::kApplication) {
      for (auto& id : ThawGuests(env, vms, s)) report.thawed.push_back(std::move(id));
    }
    // A part of a snapshot across hosts is its coordinator's to complete:
    // the other hosts may have undone theirs.
    auto done = s.coordinated ? Result<bool>(false) : CutHappenedEverywhere(env, vms, s);
    Status st;
    if (done.ok() && *done) {
      st = catalog.CompleteSnapshot(s);
      if (st.ok()) report.completed.push_back(s.id);
    } else {
      st = RedefineStoppedDomains(vms, catalog, s);
      if (st.ok()) {
        st = UndoSnapshot(env, vms, catalog, img, s,
                          s.coordinated
                              ? "it was this host's part of a snapshot across hosts, and the "
                                "service stopped before its coordinator committed it"
                              : "it was under way when the service stopped, and its cut did not "
                                "take effect on every member");
      }
      if (st.ok()) report.rolled_back.push_back(s.id);
    }
    if (!st.ok() && report.problems.ok()) report.problems = st.Annotate("snapshot " + s.id);
  }

  // An apply that never committed: the VMs still name their old images;
  // those that ran are started again (the new overlays go below, as orphans;
  // the QEMUs it started from memory states were ended by AttachAll). A
  // libvirt domain may already be defined on a new overlay: it is defined
  // on its old images again first (Start does that for those that ran).
  // While an apply stays unsettled, its members' files are all kept.
  std::set<std::string> unsettled;
  VMG_ASSIGN_OR_RETURN(auto applies, catalog.ListApplyIntents());
  for (const auto& intent : applies) {
    const std::string& snapshot_id = intent.snapshot_id;
    const std::set<std::string> paused(intent.paused.begin(), intent.paused.end());
    if (intent.committed) {
      // Applied, and the daemon died before it started again the libvirt
      // domains that ran: start them now (not vmgroupd's own VMs, which an
      // apply leaves off). A connection not open this time keeps the
      // intent for a start that has it.
      Status st;
      for (const auto& id : intent.restart) {
        auto vm = catalog.GetVm(id);
        if (!vm.ok() || vm->libvirt_uri.empty() || vm->power != catalog::Power::kOff) continue;
        Status again = vms.Start(id, paused.count(id) > 0);
        if (again.code() == Code::kUnavailable && !vms.Connection(vm->libvirt_uri)) {
          st = again;
        } else if (!again.ok() && report.problems.ok()) {
          report.problems = again.Annotate("apply of snapshot " + snapshot_id + ": VM " + vm->name +
                                           " did not start again");
        }
      }
      if (st.ok()) st = catalog.DeleteApplyIntent(snapshot_id);
      if (st.ok()) {
        report.applies_finished.push_back(snapshot_id);
      } else if (report.problems.ok()) {
        report.problems = st.Annotate("apply of snapshot " + snapshot_id);
      }
      continue;
    }
    auto applied = catalog.GetSnapshot(snapshot_id);
    Status st = applied.status().code() == Code::kNotFound ? Status::Ok() : applied.status();
    std::vector<std::string> members;
    if (applied.ok()) {
      for (const auto& m : applied->members) members.push_back(m.vm_id);
    }
    if (intent.held) {
      // This host's part of an apply across hosts, prepared: its
      // coordinator may have decided to commit it, so it stays as it is,
      // its members stopped and their files kept, until the coordinator (or
      // this host's operator) says (host_applies.h takes it up). One cut
      // short before it was held is undone below: no host said yes for it.
      unsettled.insert(members.begin(), members.end());
      report.applies_held.push_back(snapshot_id);
      continue;
    }
    for (const auto& id : members) {
      unsettled.insert(id);
      auto vm = catalog.GetVm(id);
      if (st.ok() && vm.ok() && vm->power == catalog::Power::kOff)
        st = vms.DefineDisks(id, vm->disks);
    }
    for (const auto& id : intent.restart) {
      auto vm = catalog.GetVm(id);
      if (vm.ok() && vm->power == catalog::Power::kOff) {
        if (Status again = vms.Start(id, paused.count(id) > 0); !again.ok() && st.ok()) st = again;
      }
    }
    if (st.ok()) st = catalog.DeleteApplyIntent(snapshot_id);
    if (st.ok()) {
      for (const auto& id : members) unsettled.erase(id);
      report.applies_undone.push_back(snapshot_id);
    } else if (report.problems.ok()) {
      report.problems = st.Annotate("apply of snapshot " + snapshot_id);
    }
  }

  // A destroy cut short goes on from where it was: its first merges may
  // already have changed the snapshot's images.
  for (const auto& s : snapshots) {
    if (s.state != catalog::SnapshotState::kDestroying) continue;
    auto merges = catalog.DiskMerges(s.id);
    Status st = merges.status();
    if (st.ok()) st = DetachOthers(img, *merges);
    if (st.ok()) st = MergeAndFinish(env, vms, catalog, img, s.id, *merges);
    if (st.ok()) {
      report.destroyed.push_back(s.id);
    } else if (report.problems.ok()) {
      report.problems = st.Annotate("destroy of snapshot " + s.id);
    }
  }

  TakeBackConversions(catalog, report);

  VMG_ASSIGN_OR_RETURN(auto all_vms, catalog.ListVms());
  for (const auto& vm : all_vms) {
    auto live = vms.Live(vm.id);
    if (vm.power != catalog::Power::kRunning || !live) continue;
    auto state = live->State(env->Now() + kQueryTimeout);
    if (state.ok() && *state == hypervisor::RunState::kPaused) {
      VMG_RETURN_IF_ERROR(live->Resume(env->Now() + kQueryTimeout).Annotate("VM " + vm.name));
      report.resumed.push_back(vm.id);
    } else if (state.ok() && *state == hypervisor::RunState::kIoError) {
      // Resumed now it would retry into the same error: the operator makes
      // room first, then resumes it.
      auto why = vms.IoError(vm.id, env->Now() + kQueryTimeout);
      report.io_errors.push_back("VM " + vm.name + ": " +
                                 (why.ok() ? *why : why.status().message()));
    }
  }

  // Files any record still refers to (re-read: recovery changed the records).
  std::set<std::string> known;
  VMG_ASSIGN_OR_RETURN(snapshots, catalog.ListSnapshots());
  for (const auto& s : snapshots) {
    for (const auto& m : s.members) {
      for (const auto& d : m.disks) known.insert({d.frozen_image, d.overlay});
      known.insert(m.memory_state);
    }
  }
  for (const auto& vm : all_vms) {
    VMG_ASSIGN_OR_RETURN(catalog::VmRecord now, catalog.GetVm(vm.id));
    known.insert(now.disks.begin(), now.disks.end());
    const std::string dir = vms.RunDir(vm.id);
    if (unsettled.count(vm.id) || !env->FileExists(dir)) continue;
    VMG_ASSIGN_OR_RETURN(auto names, env->ListDir(dir));
    for (const auto& name : names) {
      const std::string path = dir + "/" + name;
      if (!IsSnapshotFileName(name) || known.count(path)) continue;
      VMG_RETURN_IF_ERROR(env->RemoveFile(path));
      report.removed_files.push_back(path);
    }
  }
  // Change tracking no record names (a libvirt checkpoint of a cut that
  // died before its record went, or after its undo deleted it): dropped on
  // every domain that runs; one a record names is kept.
  std::vector<std::string> ids;
  for (const auto& vm : all_vms) ids.push_back(vm.id);
  if (Status st = SweepTrackings(vms, catalog, ids); !st.ok() && report.problems.ok()) {
    report.problems = st.Annotate("dropping change tracking no record names");
  }
  TakeBackExports(env, catalog, report);
  TakeBackRestores(env, vms, catalog, report);
  return report;
}

std::string RecoveryReport::Summary() const {
  std::string out;
  auto add = [&](size_t n, const char* what) {
    if (n == 0) return;
    out += (out.empty() ? "recovered: " : ", ") + std::to_string(n) + " " + what;
  };
  add(gone_vms.size(), "VMs found gone (now off)");
  add(completed.size(), "snapshots completed");
  add(rolled_back.size(), "snapshots rolled back");
  add(resumed.size(), "VMs resumed");
  add(thawed.size(), "guests thawed");
  add(applies_undone.size(), "interrupted applies undone");
  add(applies_finished.size(), "interrupted applies finished");
  add(applies_held.size(), "applies across hosts held for their coordinator");
  add(destroyed.size(), "interrupted destroys finished");
  add(removed_files.size(), "orphaned snapshot files removed");
  add(exports_taken_back.size(), "interrupted exports removed");
  add(exports_kept.size(), "interrupted exports found finished");
  add(restores_taken_back.size(), "interrupted restores taken back");
  add(conversions_taken_back.size(), "interrupted conversions to reference points taken back");
  add(backup_sessions.size(), "backup sessions ended");
  if (out.empty()) out = "nothing to recover";
  for (const auto& e : io_errors) out += "; paused by QEMU on an I/O error: " + e;
  if (!problems.ok()) out += "; left for the next start: " + problems.message();
  return out;
}

}  // namespace vmgroup::engine
