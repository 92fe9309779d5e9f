#include "engine/snapshot_undo.h"

#include "base/log.h"
#include "base/validate.h"
#include "engine/snapshot_plan.h"
#include "engine/tracking_sweep.h"

namespace vmgroup::engine {
namespace {

Status UndoMember(Env* env, VmRegistry& vms, storage::QemuImg& img, const std::string& tag,
                  const catalog::MemberSnapshot& m) {
  auto live = vms.Live(m.vm_id);
  if (live) {
    Status s = live->RevertOverlays(OverlaysOf(m, tag));
    // A QEMU that died cannot revert; its images are free for the offline path.
    if (!s.ok() && (s.code() != Code::kUnavailable || env->IsAlive(live->pid()))) return s;
    if (!s.ok()) live = nullptr;
  }
  if (!live && m.power_at_cut != catalog::Power::kOff) {
    // Its QEMU died after the snapshot began: an overlay it switched to may
    // hold the guest's last writes. Committing an unused overlay is harmless.
    // Only into the image the snapshot froze below it.
    for (const auto& d : m.disks) {
      if (!env->FileExists(d.overlay)) continue;
      VMG_ASSIGN_OR_RETURN(storage::ImageInfo info, img.Info(d.overlay));
      if (info.backing_filename != d.frozen_image) {
        return Status::InvalidState("cannot merge " + d.overlay + ": it lies on " +
                                    info.backing_filename + ", not on " + d.frozen_image +
                                    " as recorded; nothing was merged");
      }
      VMG_RETURN_IF_ERROR(img.Commit(d.overlay));
    }
  }
  for (const auto& d : m.disks) VMG_RETURN_IF_ERROR(env->RemoveFile(d.overlay));
  return m.memory_state.empty() ? Status::Ok() : env->RemoveFile(m.memory_state);
}

}  // namespace

Status UndoSnapshot(Env* env, VmRegistry& vms, catalog::Catalog& catalog, storage::QemuImg& img,
                    const catalog::SnapshotRecord& snapshot, const std::string& why) {
  // Whether the undo then fails is told where it ends: the job, or recovery's report.
  Log(LogLevel::kWarning, "snapshot " + snapshot.id + " (" + Printable(snapshot.name) +
                              ") is undone: " + Printable(why));
  Status first;
  for (const auto& m : snapshot.members) {
    Status s = UndoMember(env, vms, img, snapshot.tag, m);
    if (!s.ok() && first.ok()) first = s.Annotate("undo of VM " + m.vm_id);
  }
  VMG_RETURN_IF_ERROR(first);
  VMG_RETURN_IF_ERROR(catalog.DeleteSnapshot(snapshot.id));
  // The tracking a recovery snapshot started (a libvirt checkpoint) goes
  // with it; a failure here leaves it to the next sweep (recovery's).
  std::vector<std::string> ids;
  for (const auto& m : snapshot.members) ids.push_back(m.vm_id);
  if (Status s = SweepTrackings(vms, catalog, ids); !s.ok()) {
    Log(LogLevel::kWarning, "snapshot " + snapshot.id + ": " + Printable(s.message()));
  }
  return Status::Ok();
}

}  // namespace vmgroup::engine
