// Snapshots of groups that span hosts, with this vmgroupd as their
// coordinator (issue 20; docs/multihost.md). A group spans hosts when it
// has members on other hosts (catalog::RemoteMember); CreateSnapshot of such
// a group comes here instead of SnapshotCreate.
//
// The coordinator records its intent first, with the part of every host
// (this one's when the group has members here, then each peer's), then
// takes the cut across them (spanning_cut.h: prepare, pause under a lease
// and cut, resume, commit on every host), and marks its record Complete only
// once every host committed. Anything short of that is taken back on every
// host (Abort, which also destroys a part that committed): presumed abort.
// A coordinator that dies leaves its record not Complete; at its next start
// Recover takes the snapshot back on every host it can reach, and keeps the
// record of what it could not for the next try. Meanwhile the hosts keep no
// VM paused beyond the lease nor a part beyond their step timeout, by
// themselves (host_cuts.h).
//
// Each host's part is an ordinary snapshot there under the group snapshot's
// id; this host's part, when it has one, is listed as the group snapshot
// here. Destroy takes every part away; Export has every host export its
// part (spanning_export.h); Convert has every host convert its part into a
// reference point of one id, rolled forward once every host checked its
// part, for a conversion cannot be taken back; ExportReferencePoint takes
// a snapshot, exports it on a reference point and destroys it. Backup
// sessions across hosts serve these snapshots (spanning_backups.h). Apply
// has every host apply its part, all or nothing, in two phases: each
// host's part prepared and held, the decision recorded, then committed
// everywhere (Recover finishes either way what a dead coordinator left).
//
// Thread-safe: snapshots of different groups run concurrently; each host's
// part claims its members as any snapshot does.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "catalog/catalog.h"
#include "engine/host_cuts.h"
#include "engine/operation_requests.h"
#include "engine/peers.h"
#include "engine/spanning_cut.h"
#include "engine/spanning_export.h"

namespace vmgroup::engine {

class SpanningSnapshots {
 public:
  // REQUIRES: `parts`, `local`, `applies` (this host's parts of applies
  // across hosts) and `backups` (its parts of backup sessions across
  // hosts) outlive this; `peers` too, unless null.
  SpanningSnapshots(GroupParts& parts, HostCuts& local, HostApplies& applies,
                    BackupSessions& backups, Peers* peers)
      : parts_(parts), local_(local), applies_(applies), backups_(backups), peers_(peers) {}
  // Stops RecoverInBackground's thread.
  ~SpanningSnapshots();

  // True when group `collection_id` has members on other hosts (false for
  // an unknown one: the caller's own checks say NotFound).
  bool Spans(const std::string& collection_id);

  // Take's checks alone, asking no host: NotSupported for a Standard
  // snapshot (a memory state is saved as the VMs resume, which a lease
  // cannot wait for), and when this vmgroupd has no peers;
  // NotFound for a member's host that is not a configured peer;
  // InvalidArgument for an id that is not a GUID.
  Status Validate(const SnapshotRequest& request);

  // Takes the snapshot on every host and answers the coordinator's record.
  // Application consistent (request.consistency, with request.fallback):
  // every host freezes its guests as it prepares and thaws them as it
  // resumes, within its own freeze bound (HostCutRequest).
  // On a failure every part is taken back and the error names the host and
  // step; a part whose abort failed keeps the record (kUndoing) for
  // Recover, and the error says so. request.cancelled is polled once every
  // host has prepared: true takes every part back (Cancelled).
  Result<catalog::SpanningSnapshotRecord> Take(const SnapshotRequest& request);

  // Destroys snapshot `id` on every host (each destroys its part), then its
  // record. NotFound when it is no snapshot across hosts. A host that
  // cannot be reached fails it; the record stays (kUndoing) and Recover
  // finishes it.
  Status Destroy(const std::string& id);
  // Destroy's checks alone: NotFound as Destroy says, InvalidState for a
  // snapshot still being taken.
  Status ValidateDestroy(const std::string& id);

  // True when `id` is a snapshot across hosts this host coordinates.
  bool Has(const std::string& id);

  // Exports snapshot `request.snapshot_id`: every host exports its part, in
  // parallel, into `request.directory`/<host> (this host's folder:
  // SnapshotOptions::host_name), then this host writes the manifest naming
  // them, last. In full, or with request.base (a reference point across
  // hosts) incrementally: each host on top of its part of it. All or nothing: when a host fails,
  // each host that finished removes its part (CutHost::RemoveExport), and the error names the host,
  // and any part that could not be removed. request.progress is told as hosts finish.
  Result<SpanningExportManifest> Export(const ExportRequest& request);
  // Export's checks alone, asking no host: NotFound; InvalidState for a
  // snapshot not Complete; NotSupported for a base that is no reference
  // point across hosts, InvalidArgument for one of another group,
  // InvalidState for one whose hosts are not the snapshot's; the
  // export directory's checks (CheckExportDirectory); InvalidState when two
  // hosts would share a folder.
  Status ValidateExport(const ExportRequest& request);

  // Converts snapshot `snapshot_id` into reference point `rp_id` (a new
  // GUID when empty) on every host: each host's part becomes a reference
  // point of that id, as ConvertToReferencePoint makes one there. Every
  // host checks its part first, in parallel: a refusal is the answer,
  // named after the host, and nothing changed. Then the record says the
  // snapshot is being converted, and every host converts its part. A
  // conversion is not taken back (a host's frozen images are merged
  // away), so one that did not reach every host is finished by Recover
  // (in the background at once): Unavailable naming the hosts still to
  // convert. Answers the record, a reference point.
  Result<catalog::SpanningSnapshotRecord> Convert(const std::string& snapshot_id,
                                                  const std::string& rp_id);
  // Convert's checks alone, asking no host: NotFound; InvalidState for a
  // snapshot not Complete; InvalidArgument for an rp_id that is not a GUID
  // (empty: a new one); NotFound for a host that is not a configured peer.
  Status ValidateConvert(const std::string& snapshot_id, const std::string& rp_id);

  // CreateReferencePoint of a group across hosts: a recovery snapshot of
  // it (Take) converted at once (Convert), with Take's and Convert's
  // errors. When no host converted (one refused), the snapshot is
  // destroyed again on every host.
  Result<catalog::SpanningSnapshotRecord> CreateReferencePoint(const std::string& collection_id,
                                                               const std::string& name,
                                                               const std::string& rp_id);

  // ExportReferencePoint of reference point `rp_id` across hosts: what
  // changed in its group since then, as on one host (ReferencePointExport)
  // but on every host: a recovery snapshot of the group (Take), exported
  // by every host on its part of request.base (`rp_id` when empty; an
  // older reference point across hosts of the group for a longer
  // differential), then destroyed again on every host. Answers the
  // manifest across hosts; Take's, Export's and Destroy's errors, and when
  // the destroy fails after all, the export stands and the error names the
  // snapshot left to destroy. A host whose part of the base was never
  // exported refuses its part: "export in full", the snapshot destroyed.
  Result<SpanningExportManifest> ExportReferencePoint(const std::string& rp_id,
                                                      ExportRequest request);
  // ExportReferencePoint's checks alone, asking no host: NotFound unless
  // `rp_id` is a reference point across hosts; InvalidState while it is
  // being converted or destroyed; Take's checks of its group; Export's of
  // the snapshot it would take (the base is one of the group's reference
  // points across hosts, with a part on every host the group spans now).
  Status ValidateExportReferencePoint(const std::string& rp_id, const ExportRequest& request);

  // True when `rp_id` is a reference point across hosts this host
  // coordinates (also while being converted or destroyed).
  bool HasReferencePoint(const std::string& rp_id);
  // Destroys reference point `rp_id` on every host (each destroys its
  // part, and takes back a part of its snapshot not converted yet), then
  // its record. NotFound when it is none; Busy while a conversion or
  // another destroy of it is under way. A host that cannot be reached:
  // Unavailable naming it; Recover finishes it.
  Status DestroyReferencePoint(const std::string& rp_id);

  // The group reference point `s` is (a record converted on every host)
  // where this host has no part of it: its record with no members.
  static catalog::ReferencePointRecord AsGroupReferencePoint(
      const catalog::SpanningSnapshotRecord& s);

  // The group snapshot `s` is where this host has no part of it: its
  // record as a SnapshotRecord with no members (pause window: the cut's
  // window across hosts).
  static catalog::SnapshotRecord AsGroupSnapshot(const catalog::SpanningSnapshotRecord& s);

  // Applies snapshot `id` on every host, all or nothing: every host checks
  // its part, then prepares it (members stopped, new overlays made: its
  // part held, host_applies.h); once every host prepared, the record says
  // so (the decision) and every host commits. A host that refuses or
  // fails to prepare: every host takes its part back and the error names
  // the host (with any part not taken back: Recover goes on with it).
  // Once decided, a host not reached fails it with Unavailable naming it:
  // Recover commits it there (in the background at once), and the
  // record stays being applied until then. Answers the record.
  Result<catalog::SpanningSnapshotRecord> Apply(const std::string& id);
  // Apply's checks alone, asking no host: NotFound; InvalidState for a
  // snapshot not Complete or a group that gained a host since; NotFound
  // for a host that is not a configured peer.
  Status ValidateApply(const std::string& id);

  // Takes back, on every host, each snapshot across hosts being taken or
  // undone that no Take has in hand (a coordinator that died, an abort
  // that failed), and forgets its record once every host answered; goes on
  // converting, on the hosts that did not, each one being converted, and
  // destroying each reference point being destroyed; so too each export
  // across hosts left unfinished (its intent recorded, its manifest not
  // written) that no Export has in hand: every host removes its part.
  // Returns how many remain: a host could not be reached.
  int Recover();
  // Recover in a thread of its own, again every 10 s until none remains
  // (at start: a host that cannot be reached does not hold the daemon up).
  void RecoverInBackground();
  // A pass Recover also makes, last (after the snapshots it takes back):
  // SpanningBackups', which ends sessions that use those snapshots. It
  // returns how many remain. Set once, before RecoverInBackground.
  void AlsoRecover(std::function<int()> pass) { also_recover_ = std::move(pass); }

  // A host of a snapshot across hosts as the coordinator reaches it: this
  // host's part, or a peer (NotFound, NotSupported: as Peers::Connect).
  Result<std::unique_ptr<CutHost>> HostOf(const catalog::SpanningPart& part);

 private:
  // Validate's checks of `request` for `group`, its group, already read.
  Status Check(const SnapshotRequest& request, const catalog::CollectionRecord& group);
  // HostOf each of `parts`, in order.
  Result<std::vector<std::unique_ptr<CutHost>>> Reach(
      const std::vector<catalog::SpanningPart>& parts);
  // Holds `key` in `set` (taking_ or exporting_) for its lifetime, unless
  // another holds it already (then held() is false and it leaves it be).
  class InHand {
   public:
    InHand(SpanningSnapshots* self, std::set<std::string>* set, std::string key);
    ~InHand();
    InHand(const InHand&) = delete;
    InHand& operator=(const InHand&) = delete;
    bool held() const { return held_; }

   private:
    SpanningSnapshots* const self_;
    std::set<std::string>* const set_;
    const std::string key_;
    bool held_ = false;
  };

  // Recover's pass over the exports across hosts: how many remain.
  int RecoverExports();
  // Has every host of `s` remove its part of the export `intent` records
  // (only those whose `exported` is OK, when given), then the manifest
  // across hosts and the directories the export made, then the intent.
  // Unavailable naming the hosts that did not: the intent stays.
  Status RemoveExportEverywhere(const catalog::SpanningSnapshotRecord& s,
                                const catalog::ExportIntent& intent,
                                const std::vector<Status>* exported);
  // ValidateApply's checks of `s`, already read.
  Status CheckApply(const catalog::SpanningSnapshotRecord& s);
  // Every host takes back its part of the apply of `s` (kApplying); then
  // the record is kComplete again. Unavailable naming the hosts that did not.
  Status AbortApplyEverywhere(const catalog::SpanningSnapshotRecord& s);
  // Every host commits its part of the apply of `s` (kApplyCommitting);
  // then the record is kComplete again. Unavailable naming the hosts that
  // did not.
  Status CommitApplyEverywhere(const catalog::SpanningSnapshotRecord& s);
  // ValidateConvert's checks of `s`, already read.
  Status CheckConvert(const catalog::SpanningSnapshotRecord& s, const std::string& rp_id);
  // NotFound naming the first host of `s` that is not a configured peer.
  Status KnownHosts(const catalog::SpanningSnapshotRecord& s);
  // ValidateExportReferencePoint's checks of `rp`, already read.
  Status CheckExportReferencePoint(const catalog::SpanningSnapshotRecord& rp,
                                   const ExportRequest& request);
  // What ExportReferencePoint of `rp` has Take take.
  static SnapshotRequest SnapshotToExport(const catalog::SpanningSnapshotRecord& rp);
  // ValidateExport's checks of `s`, already read.
  Status CheckExport(const catalog::SpanningSnapshotRecord& s, const ExportRequest& request);
  // That reference point `base` across hosts can be what an incremental
  // export of `s` builds on: one of its group, with a part on each of its
  // hosts.
  Status CheckBase(const catalog::SpanningSnapshotRecord& s, const std::string& base);
  // The folder of an export across hosts that `part` goes to, and its path
  // in export directory `dir`.
  std::string FolderOf(const catalog::SpanningPart& part) const;
  std::string PartDir(const std::string& dir, const catalog::SpanningPart& part) const;
  // Writes `m` into `dir` (made here when `made`: given the export's
  // access), last of an export across hosts.
  Status WriteSpanningManifest(const std::string& dir, const SpanningExportManifest& m, bool made);
  // Abort on every host of `s` (the record says kUndoing first); forgets
  // the record once all succeeded. Unavailable naming the hosts whose
  // abort failed.
  Status Undo(const catalog::SpanningSnapshotRecord& s);
  // Convert's second phase for `s` (kConverting): every host converts its
  // part; the record says kReferencePoint once all did. Unavailable naming
  // the hosts that did not.
  Status ConvertEverywhere(const catalog::SpanningSnapshotRecord& s);
  // DestroyReferencePoint's work for `s` (the record says kForgetting
  // first): on every host, the part of the snapshot taken back (one not
  // converted) and the reference point destroyed; the record forgotten
  // once all did. Unavailable naming the hosts that did not.
  Status Forget(const catalog::SpanningSnapshotRecord& s);
  // `step` on the host of each part of `s` (by its index), in parallel:
  // each one's answer, named after its host.
  std::vector<Status> EachHost(const catalog::SpanningSnapshotRecord& s,
                               const std::function<Status(CutHost&, size_t)>& step);
  // EachHost's first error, by part (a host's refusal), or OK.
  Status OnEachHost(const catalog::SpanningSnapshotRecord& s,
                    const std::function<Status(CutHost&, size_t)>& step);
  // EachHost, answered OK, or Unavailable saying "<left> on <host: why>;
  // ..." and that vmgroupd tries again.
  Status OnEveryHost(const catalog::SpanningSnapshotRecord& s, const std::string& left,
                     const std::function<Status(CutHost&, size_t)>& step);

  GroupParts& parts_;
  HostCuts& local_;
  HostApplies& applies_;
  BackupSessions& backups_;
  Peers* const peers_;
  std::function<int()> also_recover_;

  std::mutex recover_mu_;  // held by each pass of Recover
  std::mutex mu_;
  std::condition_variable stop_cv_;
  std::set<std::string> taking_;     // ids Take is taking; guarded by mu_
  std::set<std::string> exporting_;  // directories Export writes; guarded by mu_
  bool stopping_ = false;            // guarded by mu_
  bool retrying_ = false;            // RecoverInBackground's thread runs; guarded by mu_
  std::thread retries_;
};

}  // namespace vmgroup::engine
