#include "engine/snapshot_destroy.h"

#include "engine/fault_points.h"
#include "engine/image_merge.h"
#include "engine/member_checks.h"
#include "engine/tracking_sweep.h"

namespace vmgroup::engine {

Status SnapshotDestroy::Check() {
  VMG_ASSIGN_OR_RETURN(s_, parts_.catalog->GetSnapshot(snapshot_id_));
  if (s_.state == catalog::SnapshotState::kIncomplete) {
    return Status::InvalidState("snapshot " + s_.name + " is still being taken");
  }
  VMG_ASSIGN_OR_RETURN(members_, MembersOf(parts_, s_));
  // A libvirt domain's images are merged by libvirt (a block commit) while
  // it runs; shut off, with qemu-img, and then it is redefined on the image
  // that remains (MergeAndFinish): either needs its connection.
  return RequireConnected(parts_, members_, "destroying a snapshot");
}

Status SnapshotDestroy::RecordIntent() {
  // A destroy already under way goes on with the merges it stored.
  resumed_ = s_.state == catalog::SnapshotState::kDestroying;
  if (resumed_) {
    VMG_ASSIGN_OR_RETURN(merges_, parts_.catalog->DiskMerges(s_.id));
    return Status::Ok();
  }
  VMG_ASSIGN_OR_RETURN(merges_, PlanMerges(*parts_.catalog, parts_.img, s_));
  // Only here, with the merges planned, is it known which images they
  // write or take away; nothing is changed yet.
  std::vector<std::string> touched;
  for (const auto& m : merges_) {
    touched.push_back(m.frozen_image);
    touched.push_back(m.child);
    touched.insert(touched.end(), m.others.begin(), m.others.end());
  }
  VMG_RETURN_IF_ERROR(parts_.served.CheckImages(touched, "destroying snapshot " + s_.name));
  return parts_.catalog->BeginDestroy(s_.id, merges_);
}

Status SnapshotDestroy::Work() {
  for (const auto& vm : members_) {
    std::vector<catalog::DiskMerge> own;
    for (const auto& m : merges_) {
      if (m.vm_id == vm.id) own.push_back(m);
    }
    Status st = DetachOthers(parts_.img, own).Annotate("VM " + vm.name);
    if (st.ok()) {
      st = parts_.env->Hit(fault::kDestroyMemberDetached, vm.name).Annotate("VM " + vm.name);
    }
    VMG_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status SnapshotDestroy::Undo(const Status& cause) {
  // Nothing merged yet: every image reads as before, the snapshot stays.
  if (resumed_) return cause;
  Status cancel = parts_.catalog->CancelDestroy(s_.id);
  if (cancel.ok()) return cause;
  // Still marked for destruction (on a full disk, say): say what finishes it.
  return Status(cause.code(), cause.message() + "; snapshot " + s_.name +
                                  " stays marked for destruction (" + cancel.message() +
                                  "); destroy it again, or restart the service, to finish");
}

Status SnapshotDestroy::Finish() {
  Status done =
      MergeAndFinish(parts_.env, *parts_.vms, *parts_.catalog, parts_.img, s_.id, merges_);
  if (!done.ok()) {
    return Status(done.code(), "snapshot " + s_.name + " is partly merged and can no longer be " +
                                   "applied; destroy it again, or restart the service, to " +
                                   "finish: " + done.message());
  }
  // Its tracking, unless a reference point keeps it, and that of reference
  // points the merges ended.
  std::vector<std::string> ids;
  for (const auto& vm : members_) ids.push_back(vm.id);
  (void)SweepTrackings(*parts_.vms, *parts_.catalog, ids);  // else recovery's sweep
  return Status::Ok();
}

}  // namespace vmgroup::engine
