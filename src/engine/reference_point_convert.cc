#include "engine/reference_point_convert.h"

#include "base/ids.h"
#include "engine/fault_points.h"
#include "engine/member_checks.h"
#include "engine/snapshot_destroy.h"
#include "engine/snapshot_plan.h"

namespace vmgroup::engine {

Status ReferencePointConvert::Check() {
  VMG_ASSIGN_OR_RETURN(s_, parts_.catalog->GetSnapshot(snapshot_id_));
  const catalog::SnapshotRecord& s = s_;
  if (s.type != kSnapshotRecovery) {
    return Status::InvalidType("snapshot " + s.name +
                               " is not a recovery snapshot (type 2); only those become "
                               "reference points");
  }
  VMG_RETURN_IF_ERROR(RequireComplete(s));
  VMG_ASSIGN_OR_RETURN(members_, MembersOf(parts_, s));
  std::vector<std::string> frozen;
  for (const auto& m : s.members) {
    for (const auto& d : m.disks) frozen.push_back(d.frozen_image);
  }
  VMG_RETURN_IF_ERROR(
      parts_.served.CheckImages(frozen, "converting snapshot " + s.name + " to a reference point"));
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i].current_snapshot != s.members[i].id) {
      return Status::InvalidState("snapshot " + s.name + " is not the newest of VM " +
                                  members_[i].name +
                                  "; only a group's newest snapshot becomes a reference point");
    }
    auto live = parts_.vms->Live(members_[i].id);
    VMG_RETURN_IF_ERROR(RequireTrackable(members_[i], live.get()));
    live_.push_back(std::move(live));
  }
  return Status::Ok();
}

Status ReferencePointConvert::RecordIntent() {
  const catalog::SnapshotRecord& s = s_;
  rp_ = {.id = rp_id_.empty() ? NewGuid() : rp_id_,
         .collection_id = s.collection_id,
         .name = s.name,
         .snapshot_id = s.id,
         .bitmap = BitmapFor(s.type, s.tag),
         .cut_us = s.members.empty() ? 0 : s.members[0].cut_time_us,
         .created_us = parts_.env->NowMicros(),
         .consistency = AchievedConsistency(s)};
  // The tracking the snapshot's cut started is kept on the frozen images:
  // the merges that follow write the overlays' clusters (everything since
  // the cut) into them, and it marks those writes and every later one. A
  // member that is off gets it there through its driver, before its
  // offline merge: what that merge writes is what its overlay holds, all
  // written since the cut.
  // Nothing is taken back on failure: what a driver added is named by the
  // snapshot, which stays, and a retry keeps it (a QEMU bitmap on a frozen
  // image could not be removed anyway, the image being read-only).
  for (size_t i = 0; i < members_.size(); ++i) {
    catalog::ReferencePointMember member{.id = NewGuid(), .vm_id = members_[i].id, .images = {}};
    for (const auto& d : s.members[i].disks) {
      Status st = live_[i] ? live_[i]->KeepTracking(d.index, d.frozen_image, rp_.bitmap,
                                                    parts_.env->Now() + kTrackingTimeout)
                           : parts_.vms->KeepOffTracking(members_[i].id, d.index, d.frozen_image,
                                                         rp_.bitmap);
      if (!st.ok()) return st.Annotate("VM " + members_[i].name);
      member.images.push_back(d.frozen_image);
    }
    rp_.members.push_back(std::move(member));
  }
  // Recorded before the merges: if the service dies during them, recovery
  // finishes the destroy and the reference point stands; if it dies before
  // they begin, recovery takes the record back (the snapshot stays).
  return parts_.catalog->InsertReferencePoint(rp_);
}

Status ReferencePointConvert::Work() {
  VMG_RETURN_IF_ERROR(parts_.env->Hit(fault::kRefpointRecorded, s_.id));
  SnapshotDestroy destroy(parts_, s_, members_);
  return OperationRunner::RunClaimed(destroy);
}

Status ReferencePointConvert::Undo(const Status& cause) {
  auto now = parts_.catalog->GetSnapshot(s_.id);
  if (now.ok() && now->state == catalog::SnapshotState::kComplete) {
    (void)parts_.catalog->DeleteReferencePoint(rp_.id);  // nothing merged: as before
  }
  return cause;
}

}  // namespace vmgroup::engine
