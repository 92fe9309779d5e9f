#include "engine/reference_point_create.h"

#include "engine/member_checks.h"
#include "engine/reference_point_convert.h"
#include "engine/snapshot_create.h"
#include "engine/snapshot_destroy.h"
#include "engine/snapshot_plan.h"

namespace vmgroup::engine {

Result<std::vector<catalog::VmRecord>> CheckTracked(GroupParts& parts, OperationRunner& runner,
                                                    const std::string& collection_id,
                                                    TrackedBy by) {
  const SnapshotRequest request{.collection_id = collection_id, .type = kSnapshotRecovery};
  SnapshotCreate create(parts, request);
  VMG_RETURN_IF_ERROR(runner.Validate(create));
  for (size_t i = 0; i < create.members().size(); ++i) {
    const catalog::VmRecord& vm = create.members()[i];
    const hypervisor::Vm* live = create.live()[i].get();
    VMG_RETURN_IF_ERROR(
        by == TrackedBy::kKeeping
            ? RequireTrackable(vm, live)
            : RequireLive(vm, live,
                          "what a reference point marks is read through the running "
                          "QEMU: start it first"));
  }
  return create.members();
}

Status ReferencePointCreate::Validate() {
  return CheckTracked(parts_, runner_, collection_id_, TrackedBy::kKeeping).status();
}

Result<catalog::ReferencePointRecord> ReferencePointCreate::Run() {
  VMG_RETURN_IF_ERROR(Validate());
  const SnapshotRequest request{
      .collection_id = collection_id_, .type = kSnapshotRecovery, .name = name_};
  SnapshotCreate create(parts_, request, parts_.env->Now());
  VMG_RETURN_IF_ERROR(runner_.Run(create));
  const catalog::SnapshotRecord& s = create.snapshot();
  ReferencePointConvert convert(parts_, s.id, rp_id_);
  const Status converted = runner_.Run(convert);
  if (converted.ok()) return convert.reference_point();
  // Not converted: the snapshot goes, unless the conversion already began
  // destroying it (then recovery or a retry finishes, as Convert says).
  auto now = parts_.catalog->GetSnapshot(s.id);
  if (now.ok() && now->state == catalog::SnapshotState::kComplete) {
    const DestroyRequest destroy_request{s.id};
    SnapshotDestroy destroy(parts_, destroy_request);
    if (Status d = runner_.Run(destroy); !d.ok()) {
      return Status(converted.code(), converted.message() + "; and its snapshot " + s.name +
                                          " remains (" + d.message() + ")");
    }
  }
  return converted;
}

}  // namespace vmgroup::engine
