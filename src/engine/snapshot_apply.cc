// A libvirt domain is reverted by hand (libvirt 9.0 cannot revert external
// snapshots): destroyed if it runs, redefined on a new overlay of each
// frozen image with no <backingStore> left (Driver::DefineDisks) before the
// catalog commit, and started again after it if it ran (paused, without
// running first, if it was paused). Until the commit the undo, or recovery
// after a crash, redefines it on the images its record names; after it, the
// intent stays until those domains run again, so that recovery starts them
// if the daemon dies first.
#include "engine/snapshot_apply.h"

#include "base/ids.h"
#include "engine/fault_points.h"
#include "engine/member_checks.h"
#include "engine/snapshot_plan.h"
#include "engine/tracking_sweep.h"

namespace vmgroup::engine {

Status SnapshotApply::Check() {
  VMG_ASSIGN_OR_RETURN(s_, parts_.catalog->GetSnapshot(request_.snapshot_id));
  const catalog::SnapshotRecord& s = s_;
  VMG_RETURN_IF_ERROR(RequireComplete(s));
  VMG_ASSIGN_OR_RETURN(auto now, parts_.collections->MemberVms(s.collection_id));
  std::set<std::string> members_now(now.begin(), now.end()), members_then;
  for (const auto& m : s.members) members_then.insert(m.vm_id);
  if (members_now != members_then) {
    return Status::InvalidState("the group's members changed since snapshot " + s.name +
                                "; it can only be applied to the VMs it was taken of");
  }
  VMG_ASSIGN_OR_RETURN(members_, MembersOf(parts_, s));
  const auto& vms = members_;
  VMG_RETURN_IF_ERROR(RequireConnected(parts_, vms, "applying a snapshot"));
  VMG_RETURN_IF_ERROR(parts_.served.CheckVms(vms, "applying snapshot " + s.name));
  for (size_t i = 0; i < vms.size(); ++i) {
    const auto& m = s.members[i];
    if (vms[i].disks.size() != m.disks.size()) {
      return Status::InvalidState("VM " + vms[i].name + " has other disks than at snapshot " +
                                  s.name);
    }
    if (!m.memory_state.empty() && !parts_.env->FileExists(m.memory_state)) {
      return Status::FileNotFound("snapshot " + s.name + ": the memory state of VM " + vms[i].name +
                                  " (" + m.memory_state + ") is missing");
    }
  }
  return Status::Ok();
}

Status SnapshotApply::RecordIntent() {
  // Until the catalog commit everything is undone on failure: the new
  // overlays go, the VMs that ran start again on their old images. The
  // intent lets recovery do the same if the daemon dies first.
  // Appended, not "a" + a temporary: GCC 12 at -O3 warns falsely (-Wrestrict, GCC bug 105651)
  tag_ = std::string("a").append(NewGuid(), 0, 8);
  catalog::ApplyIntent intent{.snapshot_id = s_.id};
  for (const auto& vm : members_) {
    if (vm.power != catalog::Power::kOff) intent.restart.push_back(vm.id);
    if (vm.power == catalog::Power::kPaused) intent.paused.push_back(vm.id);
  }
  VMG_RETURN_IF_ERROR(parts_.catalog->InsertApplyIntent(intent));
  paused_ = std::set<std::string>(intent.paused.begin(), intent.paused.end());
  return Status::Ok();
}

Status SnapshotApply::Undo(const Status& cause) {
  VmRegistry* vms = parts_.vms;
  for (auto& [id, live] : launched_) (void)vms->Discard(id, std::move(live));
  launched_.clear();
  std::string also;
  for (size_t i : redefined_) {
    Status st = vms->DefineDisks(members_[i].id, members_[i].disks);
    if (!st.ok()) also += "; redefining: " + st.message();
  }
  // A domain still defined on a new overlay keeps it until recovery.
  if (also.empty()) {
    for (const auto& path : created_) (void)parts_.env->RemoveFile(path);
    created_.clear();
  }
  // Those started are forgotten: an Undo again (HostApplies::Abort) starts
  // the others.
  std::erase_if(stopped_, [&](const std::string& id) {
    Status st = vms->Start(id, paused_.count(id) > 0);
    if (!st.ok()) also += "; restarting: " + st.message();
    return st.ok();
  });
  if (also.empty()) (void)parts_.catalog->DeleteApplyIntent(s_.id);  // else recovery retries
  return also.empty() ? cause : Status(cause.code(), cause.message() + also);
}

void SnapshotApply::TakeUp(const catalog::ApplyIntent& intent) {
  VmRegistry* vms = parts_.vms;
  tag_ = intent.tag;
  paused_ = std::set<std::string>(intent.paused.begin(), intent.paused.end());
  const std::set<std::string> ran(intent.restart.begin(), intent.restart.end());
  // What Prepare did, as it did it (a held intent is a prepared one); and
  // each member's power as Check saw it before Prepare stopped it: Finish
  // starts again a libvirt domain that ran.
  for (size_t i = 0; i < s_.members.size(); ++i) {
    catalog::VmRecord& vm = members_[i];
    if (ran.count(vm.id) > 0) {
      stopped_.push_back(vm.id);
      vm.power = paused_.count(vm.id) > 0 ? catalog::Power::kPaused : catalog::Power::kRunning;
    }
    catalog::AppliedMember a{vm.id, s_.members[i].id, {}, vm.disks};
    for (const auto& d : s_.members[i].disks) {
      a.disks.push_back(OverlayPath(vms->RunDir(vm.id), d.index, tag_));
      created_.push_back(a.disks.back());
    }
    if (!vm.libvirt_uri.empty()) redefined_.push_back(i);
    applied_.push_back(std::move(a));
  }
}

Status SnapshotApply::Work() {
  VMG_RETURN_IF_ERROR(Prepare());
  return Commit();
}

Status SnapshotApply::Prepare() {
  VmRegistry* vms = parts_.vms;
  const catalog::SnapshotRecord& s = s_;
  for (size_t i = 0; i < s.members.size(); ++i) {
    const catalog::MemberSnapshot& m = s.members[i];
    const catalog::VmRecord& vm = members_[i];
    if (vm.power != catalog::Power::kOff) {
      VMG_RETURN_IF_ERROR(vms->Stop(vm.id).Annotate("VM " + vm.name));
      stopped_.push_back(vm.id);
    }
    catalog::AppliedMember a{vm.id, m.id, {}, {}};
    for (const auto& d : m.disks) {
      const std::string path = OverlayPath(vms->RunDir(vm.id), d.index, tag_);
      VMG_RETURN_IF_ERROR(parts_.img.CreateOverlay(d.frozen_image, path).Annotate("VM " + vm.name));
      created_.push_back(path);
      a.disks.push_back(path);
    }
    a.discarded = vm.disks;
    if (!vm.libvirt_uri.empty()) {
      // Counted first: a redefinition whose answer was lost is undone too.
      redefined_.push_back(i);
      VMG_RETURN_IF_ERROR(vms->DefineDisks(vm.id, a.disks));
    }
    if (!m.memory_state.empty()) {
      // Its process is recorded before it runs: recovery ends it unless the
      // commit below makes it the VM's.
      auto live = vms->Launch(vm.id, a.disks, m.memory_state);
      if (!live.ok()) return live.status().Annotate("VM " + vm.name);
      a.pid = (*live)->pid();
      launched_.emplace_back(vm.id, std::move(live).value());
    }
    applied_.push_back(std::move(a));
  }
  return parts_.env->Hit(fault::kApplyPrepared, s.id);
}

Status SnapshotApply::Commit() {
  VmRegistry* vms = parts_.vms;
  // Images still needed: every frozen image (the tree) and the new overlays.
  VMG_ASSIGN_OR_RETURN(auto all, parts_.catalog->ListSnapshots());
  std::set<std::string> frozen;
  for (const auto& other : all) {
    for (const auto& om : other.members) {
      for (const auto& d : om.disks) frozen.insert(d.frozen_image);
    }
  }
  for (auto& a : applied_) {
    std::erase_if(a.discarded, [&](const std::string& image) {
      // Only overlays vmgroup made (in the VM's run directory) are ever deleted.
      return frozen.count(image) > 0 || !image.starts_with(vms->RunDir(a.vm_id) + "/disk");
    });
  }
  return parts_.catalog->ApplySnapshot(s_.id, applied_);
}

Status SnapshotApply::Finish() {
  VmRegistry* vms = parts_.vms;
  const catalog::SnapshotRecord& s = s_;
  (void)parts_.env->Hit(fault::kApplyCommitted, s.id);  // past the commit nothing is undone
  // The members with memory state go on from where they were at the cut.
  Status resumed;
  for (auto& [id, live] : launched_) {
    Status r = live->Resume(parts_.env->Now() + std::chrono::seconds(30));
    if (!r.ok() && resumed.ok()) resumed = r.Annotate("VM " + id + " did not resume");
    vms->Adopt(id, std::move(live));
  }
  // libvirt domains run again as before the apply: a domain is a service
  // its operator runs, not a VM vmgroupd launched (those stay off unless a
  // memory state brings them back).
  for (const auto& vm : members_) {
    if (vm.libvirt_uri.empty() || vm.power == catalog::Power::kOff) continue;
    Status st = vms->Start(vm.id, vm.power == catalog::Power::kPaused);
    if (!st.ok() && resumed.ok()) {
      resumed = st.Annotate("snapshot applied, but VM " + vm.name + " did not start again");
    }
  }
  // Each was started or its failure is the answer: nothing left to recover.
  if (Status d = parts_.catalog->DeleteApplyIntent(s.id); !d.ok() && resumed.ok()) resumed = d;
  // A file left here is removed by recovery: no record refers to it any more.
  for (const auto& a : applied_) {
    for (const auto& image : a.discarded) (void)parts_.env->RemoveFile(image);
  }
  // The tracking of reference points on the discarded images (the commit
  // forgot them): a domain that runs again drops its checkpoints.
  std::vector<std::string> ids;
  for (const auto& vm : members_) ids.push_back(vm.id);
  (void)SweepTrackings(*vms, *parts_.catalog, ids);  // else recovery's
  // Applied: recovery resumes a launched VM at the next start; a domain that
  // did not start is left off, its definition on the new overlays, and the
  // error says so.
  return resumed;
}

}  // namespace vmgroup::engine
