// SnapshotEngine::Destroy: a group snapshot merged away as a unit.
#include "engine/fault_points.h"
#include "engine/image_merge.h"
#include "engine/snapshot_engine.h"
#include "engine/tracking_sweep.h"

namespace vmgroup::engine {

Result<std::pair<catalog::SnapshotRecord, std::vector<catalog::VmRecord>>>
SnapshotEngine::CheckDestroy(const DestroyRequest& request) {
  VMG_ASSIGN_OR_RETURN(catalog::SnapshotRecord s, catalog_->GetSnapshot(request.snapshot_id));
  if (s.state == catalog::SnapshotState::kIncomplete) {
    return Status::InvalidState("snapshot " + s.name + " is still being taken");
  }
  VMG_ASSIGN_OR_RETURN(auto vms, MembersOf(s));
  // A libvirt domain's images are merged by libvirt (a block commit) while
  // it runs; shut off, with qemu-img, and then it is redefined on the image
  // that remains (MergeAndFinish): either needs its connection.
  VMG_RETURN_IF_ERROR(RequireConnected(vms, "destroying a snapshot"));
  return std::make_pair(std::move(s), std::move(vms));
}

Status SnapshotEngine::ValidateDestroy(const DestroyRequest& request) {
  VMG_ASSIGN_OR_RETURN(auto checked, CheckDestroy(request));
  std::lock_guard lock(mu_);
  return CheckNotBusyLocked(checked.second);
}

Status SnapshotEngine::Destroy(const DestroyRequest& request) {
  VMG_ASSIGN_OR_RETURN(auto checked, CheckDestroy(request));
  auto& [s, vms] = checked;
  VMG_RETURN_IF_ERROR(Claim(vms));
  const Releaser releaser{this, vms};
  return DestroyClaimed(s, vms);
}

Status SnapshotEngine::DestroyClaimed(const catalog::SnapshotRecord& s,
                                      const std::vector<catalog::VmRecord>& vms) {
  // A destroy already under way goes on with the merges it stored.
  const bool resumed = s.state == catalog::SnapshotState::kDestroying;
  std::vector<catalog::DiskMerge> merges;
  if (resumed) {
    VMG_ASSIGN_OR_RETURN(merges, catalog_->DiskMerges(s.id));
  } else {
    VMG_ASSIGN_OR_RETURN(merges, PlanMerges(*catalog_, img_, s));
    VMG_RETURN_IF_ERROR(catalog_->BeginDestroy(s.id, merges));
  }

  for (const auto& vm : vms) {
    std::vector<catalog::DiskMerge> own;
    for (const auto& m : merges) {
      if (m.vm_id == vm.id) own.push_back(m);
    }
    Status st = DetachOthers(img_, own).Annotate("VM " + vm.name);
    if (st.ok()) st = env_->Hit(fault::kDestroyMemberDetached, vm.name).Annotate("VM " + vm.name);
    if (st.ok()) continue;
    // Nothing merged yet: every image reads as before, the snapshot stays.
    if (resumed) return st;
    Status cancel = catalog_->CancelDestroy(s.id);
    if (cancel.ok()) return st;
    // Still marked for destruction (on a full disk, say): say what finishes it.
    return Status(st.code(), st.message() + "; snapshot " + s.name +
                                 " stays marked for destruction (" + cancel.message() +
                                 "); destroy it again, or restart the service, to finish");
  }

  Status done = MergeAndFinish(env_, *vms_, *catalog_, img_, s.id, merges);
  if (!done.ok()) {
    return Status(done.code(), "snapshot " + s.name + " is partly merged and can no longer be " +
                                   "applied; destroy it again, or restart the service, to " +
                                   "finish: " + done.message());
  }
  // Its tracking, unless a reference point keeps it, and that of reference
  // points the merges ended.
  std::vector<std::string> ids;
  for (const auto& vm : vms) ids.push_back(vm.id);
  (void)SweepTrackings(*vms_, *catalog_, ids);  // else recovery's sweep
  return Status::Ok();
}

}  // namespace vmgroup::engine
