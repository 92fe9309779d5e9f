// Catalog: vmgroup's persistent state in one SQLite database (WAL mode).
// Every method that changes state is one SQL transaction: after a crash the
// catalog holds either all of a change or none of it.
//
// Errors: NotFound for an unknown id, AlreadyExists for a duplicate id,
// IoError when SQLite fails. The catalog checks identity and integrity only;
// the rules (who may be a member, when a collection may go) live in engine/.
//
// Thread-safe: calls are serialised by an internal mutex.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "catalog/records.h"
#include "catalog/sqlite.h"

namespace vmgroup::catalog {

class Catalog {
 public:
  // Opens or creates the catalog at `path` and applies pending migrations.
  static Result<std::unique_ptr<Catalog>> Open(const std::string& path);

  // The schema version in force (the number of migrations applied).
  Result<int> SchemaVersion();

  // VMs.
  Status InsertVm(const VmRecord& vm);
  Result<VmRecord> GetVm(const std::string& id);
  Result<std::vector<VmRecord>> ListVms();
  Status SetVmPower(const std::string& id, Power power, int pid);
  // A libvirt domain's record (libvirt_uri set) as libvirt now describes
  // it: name, memory, vCPUs, power (pid 0) and disks; its snapshots and the
  // rest stay. NotFound when no VM of that id lives on that URI.
  Status UpdateDomain(const VmRecord& vm);
  Status DeleteVm(const std::string& id);

  // The QEMUs started for VMs that may still run, each recorded before it
  // ran and forgotten once it is known gone. A VM's record (pid) says which
  // one is its own; any other is left over. AlreadyExists for a process
  // recorded already. Forgetting one not recorded is OK.
  Status InsertProcess(const ProcessRecord& p);
  Status DeleteProcess(const ProcessRecord& p);
  Result<std::vector<ProcessRecord>> ListProcesses();

  // Collections and membership. Members keep the order they were added in.
  Status InsertCollection(const CollectionRecord& c);
  Result<CollectionRecord> GetCollection(const std::string& id);
  Result<std::vector<CollectionRecord>> ListCollections();
  Status RenameCollection(const std::string& id, const std::string& name);
  Status DeleteCollection(const std::string& id);
  Status AddMember(const std::string& collection_id, const std::string& member_id);
  // OK whether or not `member_id` was a member; `*removed` says which.
  Status RemoveMember(const std::string& collection_id, const std::string& member_id,
                      bool* removed);
  // Ids of the collections that have `member_id` as a member.
  Result<std::vector<std::string>> CollectionsOf(const std::string& member_id);
  // Members on other hosts (spanning.cc). AddRemoteMember: AlreadyExists
  // for one that is a member already, NotFound for an unknown collection.
  Status AddRemoteMember(const std::string& collection_id, const RemoteMember& m);
  // OK whether or not it was a member; `*removed` says which.
  Status RemoveRemoteMember(const std::string& collection_id, const RemoteMember& m, bool* removed);

  // Snapshots across hosts, on their coordinator (spanning.cc).
  // InsertSpanning records the intent with every host's part (AlreadyExists
  // for an id in use); CompleteSpanning stores what each host reported and
  // marks it kComplete; SetSpanningState moves it on; DeleteSpanning
  // forgets it (OK when not recorded). ConvertSpanning marks a kComplete
  // one kConverting into reference point `rp_id` (InvalidState in any other
  // state, AlreadyExists for a reference point id in use);
  // GetSpanningReferencePoint finds it by that id.
  Status InsertSpanning(const SpanningSnapshotRecord& s);
  Status CompleteSpanning(const SpanningSnapshotRecord& s);
  Status SetSpanningState(const std::string& id, SpanningState state);
  Status ConvertSpanning(const std::string& id, const std::string& rp_id, int64_t converted_us);
  Status DeleteSpanning(const std::string& id);
  Result<SpanningSnapshotRecord> GetSpanning(const std::string& id);
  Result<SpanningSnapshotRecord> GetSpanningReferencePoint(const std::string& rp_id);
  Result<std::vector<SpanningSnapshotRecord>> ListSpanning();

  // Group snapshots. InsertSnapshot records the intent (state kIncomplete)
  // before any image or VM is touched. CompleteSnapshot marks it kComplete,
  // stores its timings and, for every member, makes each disk's overlay its
  // active image and the member its VM's current snapshot: all in one step.
  Status InsertSnapshot(const SnapshotRecord& s);
  Status CompleteSnapshot(const SnapshotRecord& s);
  Status DeleteSnapshot(const std::string& id);
  // An apply begins (`intent.committed`, `held` and `tag` are ignored).
  // Busy while one of the same snapshot is in progress.
  Status InsertApplyIntent(const ApplyIntent& intent);
  // The apply of `snapshot_id` is prepared and held for its coordinator
  // (ApplyIntent::held), its new overlays named by `tag`. NotFound when no
  // apply of it is in progress, or it committed.
  Status HoldApplyIntent(const std::string& snapshot_id, const std::string& tag);
  // The apply ended: undone, or committed and its VMs started again.
  Status DeleteApplyIntent(const std::string& snapshot_id);
  Result<std::vector<ApplyIntent>> ListApplyIntents();
  // A restore begins: it will define `intent`'s group and VMs. AlreadyExists
  // when a restore of that group is in progress.
  Status InsertRestoreIntent(const RestoreIntent& intent);
  // The restore of group `collection_id` ended, done or taken back.
  Status DeleteRestoreIntent(const std::string& collection_id);
  // Restores in progress (after a crash: those it cut short).
  Result<std::vector<RestoreIntent>> ListRestoreIntents();
  // One transaction: each VM runs on its new images (and as the QEMU started
  // from its memory state, if any), its branch and last applied snapshot
  // become the member applied, no snapshot refers to a discarded image as an
  // overlay any more, no reference point whose bitmap was on a discarded
  // image remains, and the apply's intent is marked committed.
  Status ApplySnapshot(const std::string& snapshot_id, const std::vector<AppliedMember>& members);
  // Destroying a Complete snapshot: BeginDestroy marks it kDestroying and
  // stores its merges; CancelDestroy puts it back to kComplete (no image was
  // changed yet). FinishDestroy, in one transaction, forgets the snapshot and
  // its merges, names each merge's frozen image wherever its child was named,
  // deletes the reference points whose bitmaps were on a merged child (a
  // merge does not carry bitmaps down), hands its members' children to their
  // parents and moves each VM's current snapshot to the parent (last
  // applied: to none).
  Status BeginDestroy(const std::string& snapshot_id, const std::vector<DiskMerge>& merges);
  Status CancelDestroy(const std::string& snapshot_id);
  Result<std::vector<DiskMerge>> DiskMerges(const std::string& snapshot_id);
  Status FinishDestroy(const std::string& snapshot_id);
  Result<SnapshotRecord> GetSnapshot(const std::string& id);
  // The group snapshot whose members include per-VM snapshot `member_id`,
  // in whatever state; NotFound when none has it. One lookup by key: a
  // client reading one per-VM snapshot does not list them all.
  Result<SnapshotRecord> SnapshotOfMember(const std::string& member_id);
  // All snapshots of `collection_id` (all snapshots when empty), oldest first.
  Result<std::vector<SnapshotRecord>> ListSnapshots(const std::string& collection_id = "");

  // Reference points (reference_points.cc). ListReferencePoints: those of
  // `collection_id` (all when empty), oldest first.
  Status InsertReferencePoint(const ReferencePointRecord& rp);
  Result<ReferencePointRecord> GetReferencePoint(const std::string& id);
  Result<std::vector<ReferencePointRecord>> ListReferencePoints(
      const std::string& collection_id = "");
  Status DeleteReferencePoint(const std::string& id);
  // Snapshot `snapshot_id` was exported into `directory`.
  Status RecordExport(const std::string& snapshot_id, const std::string& directory, int64_t us);
  // The directories snapshot `snapshot_id` was exported into, newest first.
  Result<std::vector<std::string>> ExportsOf(const std::string& snapshot_id);
  // The export of `snapshot_id` into `directory` was removed; OK if none was recorded.
  Status ForgetExport(const std::string& snapshot_id, const std::string& directory);
  // An export into `intent.directory` begins (before it creates anything
  // there); AlreadyExists if one into that directory is in progress.
  Status InsertExportIntent(const ExportIntent& intent);
  // The export into `directory` ended, done or taken back; OK if none was recorded.
  Status DeleteExportIntent(const std::string& directory);
  // Exports in progress (after a crash: those it cut short).
  Result<std::vector<ExportIntent>> ListExportIntents();

  // Backup sessions being served (backup_intents.cc). InsertBackupIntent:
  // AlreadyExists for a session id recorded already.
  Status InsertBackupIntent(const BackupIntent& intent);
  // The VMs of `intent`, recorded before it served any (a session records
  // itself before it takes its snapshot); NotFound if it is not recorded.
  Status SetBackupIntentVms(const BackupIntent& intent);
  // The session ended; OK if none was recorded.
  Status DeleteBackupIntent(const std::string& id);
  // Sessions being served (after a crash: those the daemon left), by id.
  Result<std::vector<BackupIntent>> ListBackupIntents();

  // Backup sessions across hosts this host coordinates (backup_intents.cc):
  // InsertSpanningBackup (AlreadyExists for an id in use), then
  // SetSpanningBackupSessions once every host serves (NotFound if it is
  // not recorded); DeleteSpanningBackup, OK if none was recorded.
  Status InsertSpanningBackup(const SpanningBackupIntent& intent);
  Status SetSpanningBackupSessions(const SpanningBackupIntent& intent);
  Status DeleteSpanningBackup(const std::string& id);
  Result<std::vector<SpanningBackupIntent>> ListSpanningBackups();

  // Jobs.
  Status InsertJob(const JobRecord& j);
  Status UpdateJob(const JobRecord& j);
  Result<JobRecord> GetJob(const std::string& id);
  Result<std::vector<JobRecord>> ListJobs();
  // Forgets the jobs that ended before `us` (wall clock, microseconds).
  Status DeleteJobsEndedBefore(int64_t us);

 private:
  explicit Catalog(std::unique_ptr<Db> db) : db_(std::move(db)) {}
  Status Migrate();
  // The disks rows of `vm` (inside the caller's transaction).
  Status InsertDisksLocked(const VmRecord& vm);
  Result<VmRecord> GetVmLocked(const std::string& id);
  Result<CollectionRecord> GetCollectionLocked(const std::string& id);
  Result<SpanningSnapshotRecord> GetSpanningLocked(const std::string& id);
  Result<SnapshotRecord> GetSnapshotLocked(const std::string& id);
  // The snapshots that `where` (a condition on snapshots s, ?1 bound to
  // `value`) selects, oldest first, with their members and disks: three
  // statements whatever their number, not three per snapshot.
  Result<std::vector<SnapshotRecord>> LoadSnapshotsLocked(const std::string& where,
                                                          const std::string& value);
  Result<ReferencePointRecord> GetReferencePointLocked(const std::string& id);
  // Deletes every reference point whose bitmap lives on `image`, which an
  // apply discards or a destroy merges away: its tracking goes with the
  // image, so it could never serve an incremental again.
  Status DropReferencePointsOnLocked(const std::string& image);
  Result<JobRecord> ReadJob(Stmt& q);
  // Disk `index` of VM `vm_id` now runs on `image`. REQUIRES: mu_ held.
  Status SetDiskImageLocked(const std::string& vm_id, int index, const std::string& image);
  Result<std::vector<DiskMerge>> DiskMergesLocked(const std::string& snapshot_id);
  // Moves snapshot `id` from state `from` to `to`; InvalidState if it was not in `from`.
  Status SetSnapshotStateLocked(const std::string& id, SnapshotState from, SnapshotState to);
  // Loads, with `get`, the record of each id that the query `ids` selects.
  template <typename T>
  Result<std::vector<T>> LoadEach(Stmt& ids, Result<T> (Catalog::*get)(const std::string&));

  std::mutex mu_;
  std::unique_ptr<Db> db_;  // guarded by mu_
};

}  // namespace vmgroup::catalog
