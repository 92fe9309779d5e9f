#include "engine/snapshot_engine.h"

#include "engine/reference_point_convert.h"
#include "engine/reference_point_create.h"
#include "engine/reference_point_destroy.h"
#include "engine/reference_point_export.h"
#include "engine/snapshot_apply.h"
#include "engine/snapshot_create.h"
#include "engine/snapshot_destroy.h"
#include "engine/snapshot_export.h"

namespace vmgroup::engine {

SnapshotEngine::SnapshotEngine(Env* env, catalog::Catalog* catalog, VmRegistry* vms,
                               CollectionManager* collections, SnapshotOptions options,
                               Peers* peers)
    : parts_(env, catalog, vms, collections, options),
      backups_(parts_, runner_, vms->state_dir() + "/backups"),
      spanning_backups_(parts_, spanning_),
      spanning_(parts_, host_cuts_, host_applies_, backups_, peers) {
  spanning_.AlsoRecover([this] { return spanning_backups_.Recover(); });
}

Result<catalog::SnapshotRecord> SnapshotEngine::Create(const SnapshotRequest& request) {
  if (spanning_.Spans(request.collection_id)) {
    VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, spanning_.Take(request));
    // This host's part, when it has one, is the group snapshot as listed here.
    return Get(s.id);
  }
  SnapshotCreate op(parts_, request, parts_.env->Now());
  VMG_RETURN_IF_ERROR(runner_.Run(op));
  return op.snapshot();
}

Result<catalog::SnapshotRecord> SnapshotEngine::Get(const std::string& id) {
  auto s = parts_.catalog->GetSnapshot(id);
  if (s.ok() || s.status().code() != Code::kNotFound) return s;
  auto across = parts_.catalog->GetSpanning(id);
  if (!across.ok() || !IsSnapshot(*across)) return s.status();
  return SpanningSnapshots::AsGroupSnapshot(*across);
}

Status SnapshotEngine::Validate(const SnapshotRequest& request) {
  if (spanning_.Spans(request.collection_id)) return spanning_.Validate(request);
  return runner_.Validate(SnapshotCreate(parts_, request));
}

Result<catalog::SnapshotRecord> SnapshotEngine::Apply(const ApplyRequest& request) {
  if (spanning_.Has(request.snapshot_id)) {
    VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, spanning_.Apply(request.snapshot_id));
    return Get(s.id);
  }
  SnapshotApply op(parts_, request);
  VMG_RETURN_IF_ERROR(runner_.Run(op));
  return op.snapshot();
}

Status SnapshotEngine::ValidateApply(const ApplyRequest& request) {
  if (spanning_.Has(request.snapshot_id)) return spanning_.ValidateApply(request.snapshot_id);
  return runner_.Validate(SnapshotApply(parts_, request));
}

Status SnapshotEngine::Destroy(const DestroyRequest& request) {
  if (parts_.catalog->GetSpanning(request.snapshot_id).ok()) {
    return spanning_.Destroy(request.snapshot_id);
  }
  SnapshotDestroy op(parts_, request);
  return runner_.Run(op);
}

Status SnapshotEngine::ValidateDestroy(const DestroyRequest& request) {
  if (parts_.catalog->GetSpanning(request.snapshot_id).ok()) {
    return spanning_.ValidateDestroy(request.snapshot_id);
  }
  return runner_.Validate(SnapshotDestroy(parts_, request));
}

Result<catalog::ReferencePointRecord> SnapshotEngine::ConvertToReferencePoint(
    const std::string& snapshot_id, const std::string& rp_id) {
  if (spanning_.Has(snapshot_id)) {
    VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s, spanning_.Convert(snapshot_id, rp_id));
    return GetReferencePoint(s.reference_point_id);
  }
  ReferencePointConvert op(parts_, snapshot_id, rp_id);
  VMG_RETURN_IF_ERROR(runner_.Run(op));
  return op.reference_point();
}

Status SnapshotEngine::ValidateConvert(const std::string& snapshot_id, const std::string& rp_id) {
  if (spanning_.Has(snapshot_id)) return spanning_.ValidateConvert(snapshot_id, rp_id);
  return runner_.Validate(ReferencePointConvert(parts_, snapshot_id, rp_id));
}

Result<catalog::ReferencePointRecord> SnapshotEngine::GetReferencePoint(const std::string& rp_id) {
  auto across = parts_.catalog->GetSpanningReferencePoint(rp_id);
  if (across.ok() && across->state != catalog::SpanningState::kReferencePoint) {
    return Status::NotFound(
        "reference point " + rp_id + " is still being " +
        (across->state == catalog::SpanningState::kConverting ? "converted" : "destroyed") +
        " on the hosts of snapshot " + across->name);
  }
  auto here = parts_.catalog->GetReferencePoint(rp_id);
  if (here.ok() || !across.ok()) return here;
  return SpanningSnapshots::AsGroupReferencePoint(*across);
}

Result<std::vector<catalog::ReferencePointRecord>> SnapshotEngine::ListReferencePoints() {
  VMG_ASSIGN_OR_RETURN(auto here, parts_.catalog->ListReferencePoints());
  VMG_ASSIGN_OR_RETURN(auto across, parts_.catalog->ListSpanning());
  std::vector<catalog::ReferencePointRecord> out;
  std::map<std::string, const catalog::SpanningSnapshotRecord*> by_rp;
  for (const auto& s : across) {
    if (!IsSnapshot(s)) by_rp[s.reference_point_id] = &s;
  }
  for (auto& rp : here) {
    auto it = by_rp.find(rp.id);
    if (it == by_rp.end()) {
      out.push_back(std::move(rp));
      continue;
    }
    // This host's part, once every host converted its own.
    if (it->second->state == catalog::SpanningState::kReferencePoint) out.push_back(std::move(rp));
    by_rp.erase(it);
  }
  for (const auto& [id, s] : by_rp) {
    if (s->state == catalog::SpanningState::kReferencePoint) {
      out.push_back(SpanningSnapshots::AsGroupReferencePoint(*s));
    }
  }
  return out;
}

Status SnapshotEngine::DestroyReferencePoint(const std::string& rp_id) {
  if (spanning_.HasReferencePoint(rp_id)) return spanning_.DestroyReferencePoint(rp_id);
  ReferencePointDestroy op(parts_, rp_id);
  return runner_.Run(op);
}

Result<catalog::ReferencePointRecord> SnapshotEngine::CreateReferencePoint(
    const std::string& collection_id, const std::string& name, const std::string& rp_id) {
  if (spanning_.Spans(collection_id)) {
    VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s,
                         spanning_.CreateReferencePoint(collection_id, name, rp_id));
    return GetReferencePoint(s.reference_point_id);
  }
  return ReferencePointCreate(parts_, runner_, collection_id, name, rp_id).Run();
}

Status SnapshotEngine::ValidateCreateReferencePoint(const std::string& collection_id) {
  if (spanning_.Spans(collection_id)) {
    return spanning_.Validate({.collection_id = collection_id, .type = kSnapshotRecovery});
  }
  return ReferencePointCreate(parts_, runner_, collection_id, "", "").Validate();
}

Result<ExportManifest> SnapshotEngine::ExportReferencePoint(const std::string& rp_id,
                                                            ExportRequest request) {
  if (spanning_.HasReferencePoint(rp_id)) {
    return Status::InvalidArgument("reference point " + rp_id +
                                   " spans hosts: spanning().ExportReferencePoint exports it");
  }
  return ReferencePointExport(parts_, runner_, rp_id, std::move(request)).Run();
}

Status SnapshotEngine::ValidateExportReferencePoint(const std::string& rp_id,
                                                    const ExportRequest& request) {
  if (spanning_.HasReferencePoint(rp_id)) {
    return spanning_.ValidateExportReferencePoint(rp_id, request);
  }
  return ReferencePointExport(parts_, runner_, rp_id, request).Validate();
}

Result<ExportManifest> SnapshotEngine::Export(const ExportRequest& request) {
  if (spanning_.Has(request.snapshot_id)) {
    return Status::InvalidArgument("snapshot " + request.snapshot_id +
                                   " spans hosts: spanning().Export exports it");
  }
  SnapshotExport op(parts_, request);
  VMG_RETURN_IF_ERROR(runner_.Run(op));
  return op.manifest();
}

Status SnapshotEngine::ValidateExport(const ExportRequest& request) {
  if (spanning_.Has(request.snapshot_id)) return spanning_.ValidateExport(request);
  return runner_.Validate(SnapshotExport(parts_, request));
}

}  // namespace vmgroup::engine
