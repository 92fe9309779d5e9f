// SnapshotEngine: CreateSnapshot for a collection of VMs, as DESIGN §4 lays
// it out — check, persist intent, prepare while the VMs run, cut, commit —
// all or nothing. The hypervisor work goes through VmRegistry's live VMs,
// the records through the catalog, the image files through qemu-img.
//
// Thread-safe. Snapshots of collections that share no VM run concurrently;
// one that overlaps a snapshot in progress is refused with Busy.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "base/env.h"
#include "catalog/catalog.h"
#include "engine/collections.h"
#include "engine/export_manifest.h"
#include "engine/guest_freeze.h"
#include "engine/operation_requests.h"
#include "engine/vm_registry.h"
#include "storage/qemu_img.h"

namespace vmgroup::engine {

class SnapshotEngine {
 public:
  SnapshotEngine(Env* env, catalog::Catalog* catalog, VmRegistry* vms,
                 CollectionManager* collections, SnapshotOptions options);

  // Takes a crash-consistent snapshot of every VM in the collection and
  // returns its Complete record, with per-member cut times and pauses and
  // the group's pause window. An application-consistent one
  // (request.consistency) freezes every running member's filesystems in
  // parallel, guarded (guest_freeze.h), before the cut and thaws them once
  // the members run again; each member records the consistency it got.
  // Members that are off take part as their disks are: crash consistent. A Standard snapshot (type
  // 1) also saves each running member's memory state as it was at the cut, streamed while the VMs
  // run again; it is Complete only once every state is on disk. InvalidState for a Standard
  // snapshot of a group with a paused member.
  //
  // Errors, and nothing changed: InvalidArgument/InvalidType/NotSupported
  // for the type; InvalidArgument for a consistency other than kCrash or
  // kApplication, or kApplication with a Standard snapshot (a guest whose
  // memory was saved frozen would come back frozen); NotFound for an unknown collection;
  // InvalidState for an empty one or a member whose QEMU does not answer; FileNotFound for a
  // missing disk image; Busy when a member is in another snapshot. Errors
  // after the intent was recorded (a member failing to prepare or to switch,
  // Timeout of the cut, a member that cannot freeze without fallback) name
  // the member and QEMU's or the agent's message; the snapshot is then
  // undone, every guest thawed and every VM runs on its previous images.
  Result<catalog::SnapshotRecord> Create(const SnapshotRequest& request);

  // The checks Create starts with, alone: what a caller that runs Create
  // later (as a job) reports at once. Same errors as Create's before the
  // intent is recorded.
  Status Validate(const SnapshotRequest& request);

  // Takes the group back to a snapshot: every member is turned off and its
  // disks start over on new overlays on the snapshot's frozen images, so the
  // snapshot itself stays and can be applied again; the state the VMs had is
  // discarded (Hyper-V's Apply). Members whose memory state the snapshot
  // holds (Standard snapshots of running VMs) go on running from exactly
  // where they were at the cut; the others are left off. All or nothing: on
  // a failure before the commit every member is as it was (those that ran
  // run again).
  //
  // Errors, nothing changed: NotFound for an unknown snapshot; InvalidState
  // for one still being taken or destroyed, or a group whose members changed
  // since; FileNotFound for a missing image or memory state; Busy when a
  // member is in another snapshot operation. Returns the applied snapshot's
  // record.
  Result<catalog::SnapshotRecord> Apply(const ApplyRequest& request);
  // Apply's checks alone.
  Status ValidateApply(const ApplyRequest& request);

  // Destroys a group snapshot as a unit (Hyper-V's DestroySnapshot): each
  // member's frozen images are merged into their neighbours (image_merge.h)
  // while the VMs keep running. Snapshots taken after it stay, now children
  // of its parent; a VM whose current snapshot it was moves to the parent.
  // Member snapshots are only ever destroyed with their group snapshot.
  //
  // Errors, nothing changed: NotFound; InvalidState for a snapshot still
  // being taken; Busy when a member is in another snapshot operation;
  // FileNotFound/IoError for an image that cannot be read. A failure after
  // the first merge leaves the snapshot being destroyed (it can no longer be
  // applied) and says so: calling Destroy again, or the next start of the
  // service, finishes it.
  Status Destroy(const DestroyRequest& request);
  // Destroy's checks alone.
  Status ValidateDestroy(const DestroyRequest& request);

  // Converts a recovery snapshot into a reference point (Hyper-V's
  // ConvertToReferencePoint): each member disk's frozen image gets a
  // persistent bitmap, then the snapshot is destroyed (its overlays merged
  // into those images while the VMs run), so the bitmap goes on marking
  // every cluster written since the cut. What remains is the reference
  // point, the base of later incremental exports. The members must run
  // (their QEMU keeps the bitmaps; they are stored when it closes an image).
  //
  // Errors, nothing changed: NotFound; InvalidType for a snapshot that is not
  // a recovery snapshot; InvalidState for one still being taken or destroyed,
  // or that is not every member's newest snapshot; NotSupported when a member
  // is off; Busy. A failure after the first merge leaves the snapshot being
  // destroyed and the reference point made (as for Destroy).
  // `rp_id`: the reference point's id when the caller must name it first
  // (a job's out-parameter); a new GUID when empty.
  Result<catalog::ReferencePointRecord> ConvertToReferencePoint(const std::string& snapshot_id,
                                                                const std::string& rp_id = "");
  Status ValidateConvert(const std::string& snapshot_id);

  // Forgets a reference point (Hyper-V's DestroyReferencePoint) and takes
  // its bitmaps off the images of running members. A bitmap on an image
  // that is read-only now (frozen by a later snapshot) or of a VM that is
  // off stays in its file, unused. NotFound for an unknown id.
  Status DestroyReferencePoint(const std::string& rp_id);

  // Takes a recovery snapshot of the group and converts it at once
  // (Hyper-V's CreateReferencePoint): a reference point whose bitmaps mark
  // every change from its cut on. `name` defaults as a snapshot's does.
  // Every member must run. Errors as Create's and ConvertToReferencePoint's;
  // a conversion that fails takes the snapshot away again.
  Result<catalog::ReferencePointRecord> CreateReferencePoint(const std::string& collection_id,
                                                             const std::string& name,
                                                             const std::string& rp_id = "");
  Status ValidateCreateReferencePoint(const std::string& collection_id);

  // Exports what changed in the group since reference point `rp_id`
  // (Hyper-V's ExportReferencePoint). A reference point keeps no data of
  // its own, only the bitmaps, so the export is of a new cut: a recovery
  // snapshot taken for it, exported incrementally on top of the export of
  // the reference point's snapshot (request.base: the reference point
  // itself when empty, or an older one of the group, for a longer
  // differential), then destroyed again. request.snapshot_id is ignored.
  // Errors as Export's, refused before the cut; a reference point whose
  // snapshot was never exported (one made by CreateReferencePoint) has no
  // base to build on: Failed, "export in full".
  Result<ExportManifest> ExportReferencePoint(const std::string& rp_id, ExportRequest request);
  Status ValidateExportReferencePoint(const std::string& rp_id, const ExportRequest& request);

  // Exports a group snapshot for backup (Hyper-V's ExportSnapshot) into a
  // new or empty directory, in the layout of docs/export-format.md: for
  // each member its configuration and, with copy_storage, one standalone
  // qcow2 image per disk as of the snapshot, each with its size and
  // checksum, then the manifest. Files are synced before the manifest is
  // written, and only a directory with a manifest holds an export. The VMs
  // keep running; the snapshot is not changed. Returns the manifest.
  //
  // An incremental export (request.base) writes, per disk, a qcow2 overlay
  // of the base export's image. On a reference point it holds just the
  // clusters the point's bitmap marks, read from the snapshot's frozen
  // image by the member's QEMU: the members must run, and the snapshot must
  // be the one taken right after the reference point. On a snapshot it
  // holds what the snapshot's frozen images hold themselves, which must
  // sit right on that snapshot's.
  //
  // Errors, nothing changed: NotFound; InvalidState for a snapshot still
  // being taken or destroyed; InvalidArgument for a directory that is not
  // absolute or not a directory, or a base that is neither a reference
  // point nor a snapshot of the group; AlreadyExists for a directory that
  // is not empty;
  // NotSupported for an export on a reference point of a VM that is off;
  // Failed when the base cannot serve (its export is gone, another snapshot
  // came between, its change tracking was lost): the message says to
  // export in full. Busy when a member is in another snapshot operation
  // (the export holds the members until it ends, so the snapshot's images
  // cannot change under it). A failure while writing (no space, not writable) removes
  // what the export had written.
  Result<ExportManifest> Export(const ExportRequest& request);
  // Export's checks alone.
  Status ValidateExport(const ExportRequest& request);

  // Runs `fn` unless VM `vm_id` is in a snapshot operation, with no
  // operation able to claim it meanwhile: false (and `fn` not run) when it
  // is in one. For DomainSync, whose record of a libvirt domain must never
  // overwrite what an operation is changing (its disks during a cut, its
  // power while the cut pauses it).
  bool RunUnclaimed(const std::string& vm_id, const std::function<void()>& fn);

 private:
  // Validated inputs of one snapshot.
  struct Checked {
    catalog::CollectionRecord collection;
    std::vector<catalog::VmRecord> vms;
    // The live VM of each member that runs or is paused (null when off),
    // taken once: a VM stopped meanwhile fails its calls instead of vanishing.
    std::vector<std::shared_ptr<hypervisor::Vm>> live;
  };
  Result<Checked> Check(const SnapshotRequest& request);
  // Check of a recovery snapshot of the group whose every member runs (its
  // QEMU keeps the bitmaps), not busy.
  Result<Checked> CheckTracked(const std::string& collection_id);
  // The snapshot and its members' VMs, checked for Apply.
  Result<std::pair<catalog::SnapshotRecord, std::vector<catalog::VmRecord>>> CheckApply(
      const ApplyRequest& request);
  // The snapshot and its members' VMs, checked for Destroy.
  Result<std::pair<catalog::SnapshotRecord, std::vector<catalog::VmRecord>>> CheckDestroy(
      const DestroyRequest& request);
  // The snapshot and its members' VMs, checked for Export.
  Result<std::pair<catalog::SnapshotRecord, std::vector<catalog::VmRecord>>> CheckExport(
      const ExportRequest& request);
  // InvalidState unless `s` is Complete (neither being taken nor destroyed).
  static Status RequireComplete(const catalog::SnapshotRecord& s);
  // A libvirt domain as a member of a new snapshot of `type`: NotSupported
  // with the reason when vmgroup cannot snapshot its disks, or for a type
  // other than disk-only.
  Status CheckDomain(const catalog::VmRecord& vm, int type);
  // Unavailable, naming the first libvirt domain among `vms` whose
  // connection is not open, for an operation (`what`) that must redefine it.
  Status RequireConnected(const std::vector<catalog::VmRecord>& vms, const std::string& what);
  // NotSupported, saying "VM <name> is off; <why>", unless `vm` has a live
  // QEMU (`live`): the work that needs it reads or keeps bitmaps there.
  static Status RequireLive(const catalog::VmRecord& vm, const hypervisor::Vm* live,
                            const std::string& why);
  // The VM of each member of `s`, in member order; FileNotFound if one of
  // the snapshot's images is missing.
  Result<std::vector<catalog::VmRecord>> MembersOf(const catalog::SnapshotRecord& s);
  Result<std::shared_ptr<hypervisor::Vm>> CheckMember(const catalog::VmRecord& vm);
  Status Prepare(const catalog::SnapshotRecord& s, const Checked& checked);
  // Arms the thaw guard and freezes every running member of `s`
  // (application consistency); `frozen_index` gets the member index of each
  // of the result's members. Without request.fallback, the first member that
  // could not freeze is the error (the others are thawed again); with it,
  // request.warning is told of each.
  Result<std::unique_ptr<GuestFreeze>> FreezeGuests(const catalog::SnapshotRecord& s,
                                                    const Checked& checked,
                                                    const SnapshotRequest& request,
                                                    std::vector<size_t>* frozen_index);
  // Busy if any of `vms` is in another snapshot operation. REQUIRES: mu_ held.
  Status CheckNotBusyLocked(const std::vector<catalog::VmRecord>& vms);
  Status Claim(const std::vector<catalog::VmRecord>& vms);
  void Release(const std::vector<catalog::VmRecord>& vms);
  // Releases claimed VMs when it goes out of scope.
  struct Releaser {
    SnapshotEngine* engine;
    const std::vector<catalog::VmRecord>& vms;
    ~Releaser() { engine->Release(vms); }
  };
  // Destroy of `s` once its members `vms` are claimed.
  Status DestroyClaimed(const catalog::SnapshotRecord& s,
                        const std::vector<catalog::VmRecord>& vms);
  // The snapshot and its members' VMs, checked for ConvertToReferencePoint,
  // with each member's live VM.
  struct CheckedConvert {
    catalog::SnapshotRecord snapshot;
    std::vector<catalog::VmRecord> vms;
    std::vector<std::shared_ptr<hypervisor::Vm>> live;
  };
  Result<CheckedConvert> CheckConvert(const std::string& snapshot_id);
  // What an incremental export builds on.
  struct IncrementalBase {
    // The reference point whose bitmaps mark the changes; none when the
    // base is the snapshot right before (the changes are what the frozen
    // images hold themselves).
    std::optional<catalog::ReferencePointRecord> rp;
    std::string snapshot_id;  // of the base export
    std::string directory;    // the base export (absolute)
    ExportManifest manifest;
    std::vector<std::shared_ptr<hypervisor::Vm>> live;  // per member, with `rp`
  };
  Result<IncrementalBase> CheckBase(const ExportRequest& request, const catalog::SnapshotRecord& s,
                                    const std::vector<catalog::VmRecord>& vms);
  // CheckBase for a base that is snapshot `base` of the group.
  Result<IncrementalBase> CheckSnapshotBase(const catalog::SnapshotRecord& base,
                                            const catalog::SnapshotRecord& s,
                                            const std::vector<catalog::VmRecord>& vms);
  // The newest export (directory and manifest) of snapshot `snapshot_id`
  // with its disks, into `base`; Failed ("export in full") when there is
  // none. `what` names the base in the message.
  Status FindBaseExport(const std::string& snapshot_id, const std::string& what,
                        IncrementalBase* base);
  // Writes to `path` an overlay of `base_file` (recorded as `relative`)
  // holding what changed since the base in `disk`'s frozen image of member
  // `member`.
  Status CopyChanges(const IncrementalBase& base, size_t member, const catalog::SnapshotDisk& disk,
                     const std::string& base_file, const std::string& relative,
                     const std::string& path);
  // The export directory checks: absolute and printable, not inside the
  // state directory, and new, or an empty directory that is no link.
  Status CheckExportDirectory(const std::string& dir);
  // Failed ("export in full") unless every image of `base` that an
  // export of `vms` will build on passes export_images.h's checks.
  Status CheckBaseImages(const IncrementalBase& base, const std::vector<catalog::VmRecord>& vms);
  // Undoes `s` and returns `cause`, with any undo failure appended.
  Status Abandon(const catalog::SnapshotRecord& s, const Status& cause);

  Env* env_;
  catalog::Catalog* catalog_;
  VmRegistry* vms_;
  CollectionManager* collections_;
  storage::QemuImg img_;
  SnapshotOptions options_;

  std::mutex mu_;
  std::set<std::string> busy_;  // guarded by mu_: VM ids in a snapshot now
};

}  // namespace vmgroup::engine
