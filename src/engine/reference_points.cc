// SnapshotEngine::ConvertToReferencePoint: a recovery snapshot becomes the
// anchor of the next incremental backup.
#include <algorithm>

#include "base/ids.h"
#include "engine/fault_points.h"
#include "engine/snapshot_engine.h"
#include "engine/snapshot_plan.h"
#include "engine/tracking_sweep.h"

namespace vmgroup::engine {
namespace {

// Keeping or dropping a tracking is one quick QMP command or libvirt call.
Deadline TrackingDeadline() { return Clock::now() + std::chrono::seconds(30); }

}  // namespace

Result<SnapshotEngine::CheckedConvert> SnapshotEngine::CheckConvert(
    const std::string& snapshot_id) {
  VMG_ASSIGN_OR_RETURN(catalog::SnapshotRecord s, catalog_->GetSnapshot(snapshot_id));
  if (s.type != kSnapshotRecovery) {
    return Status::InvalidType("snapshot " + s.name +
                               " is not a recovery snapshot (type 2); only those become "
                               "reference points");
  }
  VMG_RETURN_IF_ERROR(RequireComplete(s));
  VMG_ASSIGN_OR_RETURN(auto vms, MembersOf(s));
  CheckedConvert c{.snapshot = s, .vms = vms, .live = {}};
  for (size_t i = 0; i < vms.size(); ++i) {
    if (vms[i].current_snapshot != s.members[i].id) {
      return Status::InvalidState("snapshot " + s.name + " is not the newest of VM " + vms[i].name +
                                  "; only a group's newest snapshot becomes a reference point");
    }
    auto live = vms_->Live(vms[i].id);
    VMG_RETURN_IF_ERROR(RequireLive(vms[i], live.get(),
                                    "converting the snapshot of a VM that is off is not "
                                    "supported yet: start it first"));
    c.live.push_back(std::move(live));
  }
  return c;
}

Status SnapshotEngine::ValidateConvert(const std::string& snapshot_id) {
  VMG_ASSIGN_OR_RETURN(auto c, CheckConvert(snapshot_id));
  std::lock_guard lock(mu_);
  return CheckNotBusyLocked(c.vms);
}

Result<catalog::ReferencePointRecord> SnapshotEngine::ConvertToReferencePoint(
    const std::string& snapshot_id, const std::string& rp_id) {
  VMG_ASSIGN_OR_RETURN(auto c, CheckConvert(snapshot_id));
  const catalog::SnapshotRecord& s = c.snapshot;
  VMG_RETURN_IF_ERROR(Claim(c.vms));
  const Releaser releaser{this, c.vms};

  catalog::ReferencePointRecord rp{.id = rp_id.empty() ? NewGuid() : rp_id,
                                   .collection_id = s.collection_id,
                                   .name = s.name,
                                   .snapshot_id = s.id,
                                   .bitmap = BitmapFor(s.type, s.tag),
                                   .cut_us = s.members.empty() ? 0 : s.members[0].cut_time_us,
                                   .created_us = env_->NowMicros()};
  // The tracking the snapshot's cut started is kept on the frozen images:
  // the merges that follow write the overlays' clusters (everything since
  // the cut) into them, and it marks those writes and every later one.
  // Nothing is taken back on failure: what a driver added is named by the
  // snapshot, which stays, and a retry keeps it (a QEMU bitmap on a frozen
  // image could not be removed anyway, the image being read-only).
  for (size_t i = 0; i < c.vms.size(); ++i) {
    catalog::ReferencePointMember member{.id = NewGuid(), .vm_id = c.vms[i].id, .images = {}};
    for (const auto& d : s.members[i].disks) {
      Status st = c.live[i]->KeepTracking(d.index, d.frozen_image, rp.bitmap, TrackingDeadline());
      if (!st.ok()) return st.Annotate("VM " + c.vms[i].name);
      member.images.push_back(d.frozen_image);
    }
    rp.members.push_back(std::move(member));
  }
  // Recorded before the merges: if the service dies during them, recovery
  // finishes the destroy and the reference point stands; if it dies before
  // they begin, recovery takes the record back (the snapshot stays).
  VMG_RETURN_IF_ERROR(catalog_->InsertReferencePoint(rp));
  Status st = env_->Hit(fault::kRefpointRecorded, s.id);
  if (st.ok()) st = DestroyClaimed(s, c.vms);
  if (!st.ok()) {
    auto now = catalog_->GetSnapshot(s.id);
    if (now.ok() && now->state == catalog::SnapshotState::kComplete) {
      (void)catalog_->DeleteReferencePoint(rp.id);  // nothing merged: as before
    }
    return st;
  }
  return rp;
}

Status SnapshotEngine::DestroyReferencePoint(const std::string& rp_id) {
  VMG_ASSIGN_OR_RETURN(catalog::ReferencePointRecord rp, catalog_->GetReferencePoint(rp_id));
  for (const auto& m : rp.members) {
    auto live = vms_->Live(m.vm_id);
    if (!live) continue;
    for (size_t d = 0; d < m.images.size(); ++d) {
      (void)live->DropTracking(static_cast<int>(d), m.images[d], rp.bitmap, TrackingDeadline());
    }
  }
  VMG_RETURN_IF_ERROR(catalog_->DeleteReferencePoint(rp.id));
  std::vector<std::string> ids;
  for (const auto& m : rp.members) ids.push_back(m.vm_id);
  (void)SweepTrackings(*vms_, *catalog_, ids);  // what the drops above missed; else recovery's
  return Status::Ok();
}

Result<SnapshotEngine::Checked> SnapshotEngine::CheckTracked(const std::string& collection_id) {
  VMG_ASSIGN_OR_RETURN(Checked c,
                       Check({.collection_id = collection_id, .type = kSnapshotRecovery}));
  {
    std::lock_guard lock(mu_);
    VMG_RETURN_IF_ERROR(CheckNotBusyLocked(c.vms));
  }
  for (size_t i = 0; i < c.vms.size(); ++i) {
    VMG_RETURN_IF_ERROR(
        RequireLive(c.vms[i], c.live[i].get(),
                    "reference points track changes through the running QEMU: start it first"));
  }
  return c;
}

Status SnapshotEngine::ValidateCreateReferencePoint(const std::string& collection_id) {
  return CheckTracked(collection_id).status();
}

Result<catalog::ReferencePointRecord> SnapshotEngine::CreateReferencePoint(
    const std::string& collection_id, const std::string& name, const std::string& rp_id) {
  VMG_RETURN_IF_ERROR(CheckTracked(collection_id).status());
  VMG_ASSIGN_OR_RETURN(
      catalog::SnapshotRecord s,
      Create({.collection_id = collection_id, .type = kSnapshotRecovery, .name = name}));
  auto rp = ConvertToReferencePoint(s.id, rp_id);
  if (rp.ok()) return rp;
  // Not converted: the snapshot goes, unless the conversion already began
  // destroying it (then recovery or a retry finishes, as Convert says).
  auto now = catalog_->GetSnapshot(s.id);
  if (now.ok() && now->state == catalog::SnapshotState::kComplete) {
    if (Status d = Destroy({s.id}); !d.ok()) {
      return Status(rp.status().code(), rp.status().message() + "; and its snapshot " + s.name +
                                            " remains (" + d.message() + ")");
    }
  }
  return rp.status();
}

Status SnapshotEngine::ValidateExportReferencePoint(const std::string& rp_id,
                                                    const ExportRequest& request) {
  VMG_RETURN_IF_ERROR(CheckExportDirectory(request.directory));
  VMG_ASSIGN_OR_RETURN(catalog::ReferencePointRecord rp, catalog_->GetReferencePoint(rp_id));
  VMG_ASSIGN_OR_RETURN(catalog::ReferencePointRecord base,
                       catalog_->GetReferencePoint(request.base.empty() ? rp_id : request.base));
  if (base.collection_id != rp.collection_id) {
    return Status::InvalidArgument("reference point " + base.name + " belongs to another group");
  }
  VMG_ASSIGN_OR_RETURN(Checked c, CheckTracked(rp.collection_id));
  // The cut the export takes freezes each member's active images: the base
  // serves when its bitmaps are on those, as CheckBase will find.
  for (const auto& vm : c.vms) {
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
  VMG_RETURN_IF_ERROR(FindBaseExport(base.snapshot_id, "reference point " + base.name, &found));
  return CheckBaseImages(found, c.vms);
}

Result<ExportManifest> SnapshotEngine::ExportReferencePoint(const std::string& rp_id,
                                                            ExportRequest request) {
  VMG_RETURN_IF_ERROR(ValidateExportReferencePoint(rp_id, request));
  VMG_ASSIGN_OR_RETURN(catalog::ReferencePointRecord rp, catalog_->GetReferencePoint(rp_id));
  VMG_ASSIGN_OR_RETURN(catalog::SnapshotRecord s,
                       Create({.collection_id = rp.collection_id,
                               .type = kSnapshotRecovery,
                               .name = "Export of reference point " + rp.name}));
  request.snapshot_id = s.id;
  if (request.base.empty()) request.base = rp_id;
  request.copy_storage = true;
  auto m = Export(request);
  // Taken only to be read: destroying it merges its overlays back, and the
  // bitmaps mark those writes too, so every reference point stays whole.
  if (Status d = Destroy({s.id}); !d.ok()) {
    const std::string left = "the snapshot " + s.name + " taken for the export remains (" +
                             d.message() + "); destroy it";
    return m.ok() ? Status(d.code(), "exported into " + request.directory + ", but " + left)
                  : Status(m.status().code(), m.status().message() + "; and " + left);
  }
  return m;
}

}  // namespace vmgroup::engine
