#include "engine/reference_point_export.h"

#include <algorithm>

#include "engine/export_base.h"
#include "engine/member_checks.h"
#include "engine/reference_point_create.h"
#include "engine/snapshot_create.h"
#include "engine/snapshot_destroy.h"
#include "engine/snapshot_export.h"
#include "engine/snapshot_plan.h"

namespace vmgroup::engine {

Status ReferencePointExport::Validate() {
  VMG_RETURN_IF_ERROR(CheckExportDirectory(parts_, request_.directory));
  VMG_ASSIGN_OR_RETURN(catalog::ReferencePointRecord rp, parts_.catalog->GetReferencePoint(rp_id_));
  VMG_ASSIGN_OR_RETURN(
      catalog::ReferencePointRecord base,
      parts_.catalog->GetReferencePoint(request_.base.empty() ? rp_id_ : request_.base));
  if (base.collection_id != rp.collection_id) {
    return Status::InvalidArgument("reference point " + base.name + " belongs to another group");
  }
  VMG_ASSIGN_OR_RETURN(auto vms, CheckTracked(parts_, runner_, rp.collection_id));
  // The cut the export takes freezes each member's active images: the base
  // serves when its bitmaps are on those, as CheckBase will find.
  for (const auto& vm : vms) {
    auto m = std::find_if(base.members.begin(), base.members.end(),
                          [&](const auto& member) { return member.vm_id == vm.id; });
    if (m == base.members.end() || m->images != vm.disks) {
      return Status::Failed("reference point " + base.name + " does not lead up to VM " + vm.name +
                            "'s disks now (" +
                            (m == base.members.end() ? std::string("the VM joined the group later")
                                                     : "a snapshot came after it") +
                            "); export in full");
    }
  }
  IncrementalBase found;
  VMG_RETURN_IF_ERROR(
      FindBaseExport(parts_, base.snapshot_id, "reference point " + base.name, &found));
  return CheckBaseImages(found, vms);
}

Result<ExportManifest> ReferencePointExport::Run() {
  VMG_RETURN_IF_ERROR(Validate());
  VMG_ASSIGN_OR_RETURN(catalog::ReferencePointRecord rp, parts_.catalog->GetReferencePoint(rp_id_));
  const SnapshotRequest snapshot_request{.collection_id = rp.collection_id,
                                         .type = kSnapshotRecovery,
                                         .name = "Export of reference point " + rp.name};
  SnapshotCreate create(parts_, snapshot_request, parts_.env->Now());
  VMG_RETURN_IF_ERROR(runner_.Run(create));
  const catalog::SnapshotRecord& s = create.snapshot();
  ExportRequest& request = request_;
  request.snapshot_id = s.id;
  if (request.base.empty()) request.base = rp_id_;
  request.copy_storage = true;
  SnapshotExport snapshot_export(parts_, request);
  const Status exported = runner_.Run(snapshot_export);
  // Taken only to be read: destroying it merges its overlays back, and the
  // bitmaps mark those writes too, so every reference point stays whole.
  const DestroyRequest destroy_request{s.id};
  SnapshotDestroy destroy(parts_, destroy_request);
  VMG_RETURN_IF_ERROR(AfterTakenBack(exported, runner_.Run(destroy), s.name, request.directory));
  return snapshot_export.manifest();
}

Status AfterTakenBack(const Status& exported, const Status& destroyed, const std::string& name,
                      const std::string& directory) {
  if (destroyed.ok()) return exported;
  const std::string left = "the snapshot " + name + " taken for the export remains (" +
                           destroyed.message() + "); destroy it";
  return exported.ok() ? Status(destroyed.code(), "exported into " + directory + ", but " + left)
                       : Status(exported.code(), exported.message() + "; and " + left);
}

}  // namespace vmgroup::engine
