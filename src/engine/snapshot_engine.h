// SnapshotEngine: CreateSnapshot for a collection of VMs, as DESIGN §4 lays
// it out — check, persist intent, prepare while the VMs run, cut, commit —
// all or nothing. The hypervisor work goes through VmRegistry's live VMs,
// the records through the catalog, the image files through qemu-img.
//
// Thread-safe. Snapshots of collections that share no VM run concurrently;
// one that overlaps a snapshot in progress is refused with Busy.
//
// The front door: each operation is its own type (snapshot_create.h,
// snapshot_apply.h, snapshot_destroy.h, snapshot_export.h, reference_point_*.h),
// run by OperationRunner (group_operation.h), which claims its members.
#pragma once

#include <functional>
#include <string>

#include "base/env.h"
#include "catalog/catalog.h"
#include "engine/backup_sessions.h"
#include "engine/collections.h"
#include "engine/export_manifest.h"
#include "engine/group_operation.h"
#include "engine/host_applies.h"
#include "engine/host_cuts.h"
#include "engine/member_claims.h"
#include "engine/operation_requests.h"
#include "engine/spanning_backups.h"
#include "engine/spanning_snapshots.h"
#include "engine/vm_registry.h"

namespace vmgroup::engine {

class SnapshotEngine {
 public:
  // `peers`: the hosts groups may span (null: none); outlives this.
  SnapshotEngine(Env* env, catalog::Catalog* catalog, VmRegistry* vms,
                 CollectionManager* collections, SnapshotOptions options, Peers* peers = nullptr);

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

  // Group snapshot `id` as this host knows it: its record, or, for a
  // snapshot across hosts with no part here, its record across hosts as
  // one (no members). NotFound when it is neither.
  Result<catalog::SnapshotRecord> Get(const std::string& id);

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
  // record. A snapshot across hosts is applied by spanning().Apply, every
  // host applying its part, all or nothing for the group.
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
  // into those images), so the bitmap goes on marking every cluster written
  // since the cut. What remains is the reference point, the base of later
  // incremental exports. A running member's QEMU keeps the bitmap (stored
  // when it closes an image); a member of vmgroupd's own that is off gets
  // it added offline, before its offline merge.
  //
  // Errors, nothing changed: NotFound; InvalidType for a snapshot that is not
  // a recovery snapshot; InvalidState for one still being taken or destroyed,
  // or that is not every member's newest snapshot; NotSupported when a member
  // that is off is a libvirt domain (its tracking is a checkpoint, made only
  // while it runs); Busy. A failure after the first merge leaves the snapshot being
  // destroyed and the reference point made (as for Destroy).
  // `rp_id`: the reference point's id when the caller must name it first
  // (a job's out-parameter); a new GUID when empty.
  //
  // A snapshot across hosts is converted on every host
  // (SpanningSnapshots::Convert): this host's part, or the group reference
  // point where it has none, is the answer.
  Result<catalog::ReferencePointRecord> ConvertToReferencePoint(const std::string& snapshot_id,
                                                                const std::string& rp_id = "");
  Status ValidateConvert(const std::string& snapshot_id, const std::string& rp_id = "");

  // The group's reference points: this host's, and those across hosts it
  // coordinates once every host converted its part (this host's part, or
  // the group reference point where it has none). GetReferencePoint finds
  // one by id (NotFound also while one across hosts is being converted or
  // destroyed).
  Result<std::vector<catalog::ReferencePointRecord>> ListReferencePoints();
  Result<catalog::ReferencePointRecord> GetReferencePoint(const std::string& rp_id);

  // Forgets a reference point (Hyper-V's DestroyReferencePoint) and takes
  // its bitmaps off the images of running members. A bitmap on an image
  // that is read-only now (frozen by a later snapshot) or of a VM that is
  // off stays in its file, unused. NotFound for an unknown id. One across
  // hosts is destroyed on every host (SpanningSnapshots::DestroyReferencePoint).
  Status DestroyReferencePoint(const std::string& rp_id);

  // Takes a recovery snapshot of the group and converts it at once
  // (Hyper-V's CreateReferencePoint): a reference point whose bitmaps mark
  // every change from its cut on. `name` defaults as a snapshot's does.
  // Members that are off are as ConvertToReferencePoint says. Errors as
  // Create's and ConvertToReferencePoint's; a conversion that fails takes
  // the snapshot away again. A group across hosts: a snapshot across hosts
  // converted at once (SpanningSnapshots::CreateReferencePoint).
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
  // base to build on: Failed, "export in full". A reference point across
  // hosts is exported by spanning().ExportReferencePoint, whose manifest
  // names each host's part (InvalidArgument here); Validate checks it too.
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
  //
  // A snapshot across hosts is exported by spanning().Export, whose
  // manifest names each host's part (InvalidArgument here).
  Result<ExportManifest> Export(const ExportRequest& request);
  // Export's checks alone; a snapshot across hosts's too.
  Status ValidateExport(const ExportRequest& request);

  // For DomainSync, whose record of a libvirt domain must never overwrite
  // what an operation is changing (its disks during a cut, its power while
  // the cut pauses it), nor record what it read while one was under way:
  // how many operations' claims have ended so far (taken before reading),
  // and `fn` run unless VM `vm_id` is in an operation or one of its
  // operations ended since (member_claims.h), with no operation able to
  // claim it meanwhile (false, `fn` not run, otherwise). `ended` is told
  // the members of every operation that ends (empty: no one is).
  uint64_t ClaimsEnded() { return claims_.Releases(); }
  bool RunUnclaimed(const std::string& vm_id, uint64_t since, const std::function<void()>& fn) {
    return claims_.RunUnclaimed(vm_id, since, fn);
  }
  void OnOperationEnd(std::function<void(const std::vector<std::string>&)> ended) {
    claims_.OnRelease(std::move(ended));
  }

  // Backup sessions of the groups (backup_sessions.h), run by the same
  // runner: their sockets live under <state directory>/backups.
  BackupSessions& backups() { return backups_; }
  // This host's parts of snapshots across hosts (host_cuts.h), run by the
  // same runner, step by step on a coordinator's word.
  HostCuts& host_cuts() { return host_cuts_; }
  // This host's parts of applies across hosts (host_applies.h), their
  // members claimed as any operation's, held until a coordinator's word.
  HostApplies& host_applies() { return host_applies_; }
  // Snapshots of groups with members on other hosts, this host coordinating
  // (spanning_snapshots.h). Create, Apply, Destroy and the reference
  // points' operations come here for them, and the validation of exports;
  // its Export and ExportReferencePoint export them.
  SpanningSnapshots& spanning() { return spanning_; }
  // Backup sessions of groups with members on other hosts, this host
  // coordinating (spanning_backups.h).
  SpanningBackups& spanning_backups() { return spanning_backups_; }

  // Busy, naming the session, while a backup session serves vmgroupd's
  // own VM `vm` from its QEMU: `what` ("turning it off") would end that
  // QEMU, and with it the serving, under the session's reader. A libvirt
  // domain's frozen images are served apart from it: OK.
  Status CheckNotServed(const catalog::VmRecord& vm, const std::string& what) {
    if (!vm.libvirt_uri.empty()) return Status::Ok();
    return parts_.served.CheckVms({vm}, what);
  }

  // What the operations run here measured (operation_metrics.h), and the
  // registry the daemon renders for Prometheus.
  OperationMetrics& metrics() { return metrics_; }

 private:
  GroupParts parts_;
  MemberClaims claims_;
  MetricsRegistry registry_;
  OperationMetrics metrics_{&registry_};
  OperationRunner runner_{&claims_, &metrics_};
  BackupSessions backups_;
  HostCuts host_cuts_{parts_, runner_};  // after runner_: its parts end before the runner does
  HostApplies host_applies_{parts_, claims_};  // after claims_: its parts release theirs first
  // Before spanning_, whose recovery passes call it: those end first.
  SpanningBackups spanning_backups_;
  SpanningSnapshots spanning_;  // after host_cuts_: its retries end first
};

}  // namespace vmgroup::engine
