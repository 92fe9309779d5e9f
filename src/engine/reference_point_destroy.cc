#include "engine/reference_point_destroy.h"

#include "engine/member_checks.h"
#include "engine/tracking_sweep.h"

namespace vmgroup::engine {

Status ReferencePointDestroy::Check() {
  VMG_ASSIGN_OR_RETURN(rp_, parts_.catalog->GetReferencePoint(rp_id_));
  return parts_.served.CheckReferencePoint(rp_.id, "deleting reference point " + rp_.name);
}

Status ReferencePointDestroy::Work() {
  for (const auto& m : rp_.members) {
    auto live = parts_.vms->Live(m.vm_id);
    if (!live) continue;
    for (size_t d = 0; d < m.images.size(); ++d) {
      (void)live->DropTracking(static_cast<int>(d), m.images[d], rp_.bitmap,
                               parts_.env->Now() + kTrackingTimeout);
    }
  }
  return parts_.catalog->DeleteReferencePoint(rp_.id);
}

Status ReferencePointDestroy::Finish() {
  std::vector<std::string> ids;
  for (const auto& m : rp_.members) ids.push_back(m.vm_id);
  // What the drops in Work missed; else recovery's.
  (void)SweepTrackings(*parts_.vms, *parts_.catalog, ids);
  return Status::Ok();
}

}  // namespace vmgroup::engine
