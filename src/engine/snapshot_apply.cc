// SnapshotEngine::Apply: a group back to one of its snapshots.
//
// A libvirt domain is reverted by hand (libvirt 9.0 cannot revert external
// snapshots): destroyed if it runs, redefined on a new overlay of each
// frozen image with no <backingStore> left (Driver::DefineDisks) before the
// catalog commit, and started again after it if it ran (paused, without
// running first, if it was paused). Until the commit the undo, or recovery
// after a crash, redefines it on the images its record names; after it, the
// intent stays until those domains run again, so that recovery starts them
// if the daemon dies first.
#include <set>

#include "base/ids.h"
#include "engine/fault_points.h"
#include "engine/snapshot_engine.h"
#include "engine/snapshot_plan.h"
#include "engine/tracking_sweep.h"

namespace vmgroup::engine {
Result<std::pair<catalog::SnapshotRecord, std::vector<catalog::VmRecord>>>
SnapshotEngine::CheckApply(const ApplyRequest& request) {
  VMG_ASSIGN_OR_RETURN(catalog::SnapshotRecord s, catalog_->GetSnapshot(request.snapshot_id));
  VMG_RETURN_IF_ERROR(RequireComplete(s));
  VMG_ASSIGN_OR_RETURN(auto now, collections_->MemberVms(s.collection_id));
  std::set<std::string> members_now(now.begin(), now.end()), members_then;
  for (const auto& m : s.members) members_then.insert(m.vm_id);
  if (members_now != members_then) {
    return Status::InvalidState("the group's members changed since snapshot " + s.name +
                                "; it can only be applied to the VMs it was taken of");
  }
  VMG_ASSIGN_OR_RETURN(auto vms, MembersOf(s));
  VMG_RETURN_IF_ERROR(RequireConnected(vms, "applying a snapshot"));
  for (size_t i = 0; i < vms.size(); ++i) {
    const auto& m = s.members[i];
    if (vms[i].disks.size() != m.disks.size()) {
      return Status::InvalidState("VM " + vms[i].name + " has other disks than at snapshot " +
                                  s.name);
    }
    if (!m.memory_state.empty() && !env_->FileExists(m.memory_state)) {
      return Status::FileNotFound("snapshot " + s.name + ": the memory state of VM " + vms[i].name +
                                  " (" + m.memory_state + ") is missing");
    }
  }
  return std::make_pair(std::move(s), std::move(vms));
}

Status SnapshotEngine::ValidateApply(const ApplyRequest& request) {
  VMG_ASSIGN_OR_RETURN(auto checked, CheckApply(request));
  std::lock_guard lock(mu_);
  return CheckNotBusyLocked(checked.second);
}

Result<catalog::SnapshotRecord> SnapshotEngine::Apply(const ApplyRequest& request) {
  VMG_ASSIGN_OR_RETURN(auto checked, CheckApply(request));
  auto& [s, vms] = checked;
  VMG_RETURN_IF_ERROR(Claim(vms));
  const Releaser releaser{this, vms};

  // Until the catalog commit everything is undone on failure: the new
  // overlays go, the VMs that ran start again on their old images. The
  // intent lets recovery do the same if the daemon dies first.
  catalog::ApplyIntent intent{.snapshot_id = s.id};
  for (const auto& vm : vms) {
    if (vm.power != catalog::Power::kOff) intent.restart.push_back(vm.id);
    if (vm.power == catalog::Power::kPaused) intent.paused.push_back(vm.id);
  }
  VMG_RETURN_IF_ERROR(catalog_->InsertApplyIntent(intent));
  const std::set<std::string> paused(intent.paused.begin(), intent.paused.end());
  std::vector<std::string> stopped, created;
  std::vector<size_t> redefined;  // members (libvirt domains) defined on the new overlays
  // Members started from their memory state, paused, until the commit.
  std::vector<std::pair<std::string, std::unique_ptr<hypervisor::Vm>>> launched;
  auto undo = [&, &s = s, &vms = vms](const Status& cause) -> Status {  // clang 14: no bindings
    for (auto& [id, live] : launched) (void)vms_->Discard(id, std::move(live));
    std::string also;
    for (size_t i : redefined) {
      Status st = vms_->DefineDisks(vms[i].id, vms[i].disks);
      if (!st.ok()) also += "; redefining: " + st.message();
    }
    // A domain still defined on a new overlay keeps it until recovery.
    if (also.empty()) {
      for (const auto& path : created) (void)env_->RemoveFile(path);
    }
    for (const auto& id : stopped) {
      Status st = vms_->Start(id, paused.count(id) > 0);
      if (!st.ok()) also += "; restarting: " + st.message();
    }
    if (also.empty()) (void)catalog_->DeleteApplyIntent(s.id);  // else recovery retries
    return also.empty() ? cause : Status(cause.code(), cause.message() + also);
  };

  const std::string tag = "a" + NewGuid().substr(0, 8);
  std::vector<catalog::AppliedMember> applied;
  for (size_t i = 0; i < s.members.size(); ++i) {
    const catalog::MemberSnapshot& m = s.members[i];
    const catalog::VmRecord& vm = vms[i];
    if (vm.power != catalog::Power::kOff) {
      if (Status st = vms_->Stop(vm.id); !st.ok()) return undo(st.Annotate("VM " + vm.name));
      stopped.push_back(vm.id);
    }
    catalog::AppliedMember a{vm.id, m.id, {}, {}};
    for (const auto& d : m.disks) {
      const std::string path = OverlayPath(vms_->RunDir(vm.id), d.index, tag);
      if (Status st = img_.CreateOverlay(d.frozen_image, path); !st.ok()) {
        return undo(st.Annotate("VM " + vm.name));
      }
      created.push_back(path);
      a.disks.push_back(path);
    }
    a.discarded = vm.disks;
    if (!vm.libvirt_uri.empty()) {
      // Counted first: a redefinition whose answer was lost is undone too.
      redefined.push_back(i);
      if (Status st = vms_->DefineDisks(vm.id, a.disks); !st.ok()) return undo(st);
    }
    if (!m.memory_state.empty()) {
      // Its process is recorded before it runs: recovery ends it unless the
      // commit below makes it the VM's.
      auto live = vms_->Launch(vm.id, a.disks, m.memory_state);
      if (!live.ok()) return undo(live.status().Annotate("VM " + vm.name));
      a.pid = (*live)->pid();
      launched.emplace_back(vm.id, std::move(live).value());
    }
    applied.push_back(std::move(a));
  }
  if (Status f = env_->Hit(fault::kApplyPrepared, s.id); !f.ok()) return undo(f);

  // Images still needed: every frozen image (the tree) and the new overlays.
  VMG_ASSIGN_OR_RETURN(auto all, catalog_->ListSnapshots());
  std::set<std::string> frozen;
  for (const auto& other : all) {
    for (const auto& om : other.members) {
      for (const auto& d : om.disks) frozen.insert(d.frozen_image);
    }
  }
  for (auto& a : applied) {
    std::erase_if(a.discarded, [&](const std::string& image) {
      // Only overlays vmgroup made (in the VM's run directory) are ever deleted.
      return frozen.count(image) > 0 || !image.starts_with(vms_->RunDir(a.vm_id) + "/disk");
    });
  }
  if (Status c = catalog_->ApplySnapshot(s.id, applied); !c.ok()) return undo(c);
  (void)env_->Hit(fault::kApplyCommitted, s.id);  // past the commit nothing is undone
  // The members with memory state go on from where they were at the cut.
  Status resumed;
  for (auto& [id, live] : launched) {
    Status r = live->Resume(env_->Now() + std::chrono::seconds(30));
    if (!r.ok() && resumed.ok()) resumed = r.Annotate("VM " + id + " did not resume");
    vms_->Adopt(id, std::move(live));
  }
  // libvirt domains run again as before the apply: a domain is a service
  // its operator runs, not a VM vmgroupd launched (those stay off unless a
  // memory state brings them back).
  for (const auto& vm : vms) {
    if (vm.libvirt_uri.empty() || vm.power == catalog::Power::kOff) continue;
    Status st = vms_->Start(vm.id, vm.power == catalog::Power::kPaused);
    if (!st.ok() && resumed.ok()) {
      resumed = st.Annotate("snapshot applied, but VM " + vm.name + " did not start again");
    }
  }
  // Each was started or its failure is the answer: nothing left to recover.
  if (Status d = catalog_->DeleteApplyIntent(s.id); !d.ok() && resumed.ok()) resumed = d;
  // A file left here is removed by recovery: no record refers to it any more.
  for (const auto& a : applied) {
    for (const auto& image : a.discarded) (void)env_->RemoveFile(image);
  }
  // The tracking of reference points on the discarded images (the commit
  // forgot them): a domain that runs again drops its checkpoints.
  std::vector<std::string> ids;
  for (const auto& vm : vms) ids.push_back(vm.id);
  (void)SweepTrackings(*vms_, *catalog_, ids);  // else recovery's
  // Applied: recovery resumes a launched VM at the next start; a domain that
  // did not start is left off, its definition on the new overlays, and the
  // error says so.
  if (!resumed.ok()) return resumed;
  return s;
}

}  // namespace vmgroup::engine
