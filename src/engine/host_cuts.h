// One host's part of a snapshot across hosts (issue 20), driven step by step
// by the group's coordinator, which may be another machine: Prepare, Pause
// under a lease, Cut, Resume, then Commit or Abort. The coordinator sends
// each step to every host and goes on only once every host has answered, so
// no host cuts before every member of the group is paused (leased_pause.h
// says why the lease).
//
// The part is an ordinary snapshot, in this host's catalog, of this host's
// part of the group: a collection with the group's id holding the members
// that run here, snapshotted under the group snapshot's id. SnapshotCreate
// takes it, in a thread of its own, with its cut and its commit waiting for
// the coordinator's word (SnapshotRequest::cut, ::before_commit): the
// claims, the intent, the prepare, the undo and the recovery at the next
// start are those of a snapshot on one host, and once committed the part is
// a Complete snapshot that apply, destroy, export and backup act on as on
// any other.
//
// A host never waits long for a coordinator that stopped talking: outside
// the lease it waits at most `step_timeout` for the next word, and past the
// lease no cut is taken; then it undoes its part by itself, as on Abort.
// The coordinator learns of such an end from the next step's answer, and
// aborts the snapshot on every host.
//
// Thread-safe: steps may come on any thread. A step waits for the part to
// answer it; steps of one part out of order are refused (InvalidState);
// Abort is taken at any time. Parts of different snapshots run
// concurrently, their members claimed apart as snapshots on one host are.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/export_manifest.h"
#include "engine/group_operation.h"
#include "engine/leased_pause.h"
#include "engine/snapshot_plan.h"

namespace vmgroup::engine {

struct HostCutRequest {
  std::string collection_id;     // this host's part of the group: the group's id
  std::string snapshot_id;       // the group snapshot's id (a GUID), the part's too
  std::string name;              // the snapshot's ElementName; as CreateSnapshot's when empty
  int type = kSnapshotRecovery;  // recovery or disk-only
  // As SnapshotRequest's: with kApplication every running member's guest
  // is frozen once the part is prepared (before it answers Prepare) and
  // thawed once it resumes; no wait of the part then outlasts the guests'
  // freeze bound.
  catalog::Consistency consistency = catalog::Consistency::kCrash;
  bool fallback = false;
  // How long the part waits for the coordinator's next word, outside the
  // lease, before it undoes itself.
  Duration step_timeout = std::chrono::seconds(30);
};

enum class HostCutStage {
  kPreparing,  // checked, intent recorded, members being prepared
  kPrepared,   // overlays open; waiting for Pause
  kPaused,     // members paused under the lease; waiting for Cut (unless Pause cut them)
  kCut,        // members switched, still paused; waiting for Resume
  kResumed,    // members run on their overlays, switches finished; waiting for Commit
  kEnded,      // committed (end OK) or undone (end says why)
};
const char* HostCutStageName(HostCutStage stage);

struct HostCutStatus {
  HostCutStage stage = HostCutStage::kPreparing;
  // From Pause on: the lease's state and each member's timings, and the id
  // of the VM of each (the members that run or are paused; those off are
  // cut by the commit).
  LeaseReport lease;
  std::vector<std::string> vm_ids;
  Status end;  // kEnded: OK when committed, else why the part was undone
};

class HostCuts {
 public:
  HostCuts(GroupParts& parts, OperationRunner& runner) : parts_(parts), runner_(runner) {}
  // Aborts every part under way and waits for each to be undone.
  ~HostCuts();

  HostCuts(const HostCuts&) = delete;
  HostCuts& operator=(const HostCuts&) = delete;

  // Checks the part as CreateSnapshot does, records its intent and prepares
  // its members (overlays made and opened, tracking started) while they
  // run. OK once prepared. Errors, and nothing left: CreateSnapshot's;
  // InvalidArgument without a snapshot id; NotSupported for a Standard
  // snapshot (a memory state is saved as the VM resumes, which a lease
  // cannot wait for); AlreadyExists for a snapshot id this host has a part
  // of under way.
  Status Prepare(const HostCutRequest& request);

  // Pauses the part's members under a lease of `lease` (LeasedPause::Pause)
  // and answers each member's pause time on this host's clock. On an error
  // nothing was paused and the part is undone. With `cut`, also switches
  // them at once, still paused, as Cut does (stage kCut): a coordinator
  // that cuts every host as it pauses it saves a round trip of the
  // group's pause, and the cut is as consistent, because no host resumes
  // before every host has cut (spanning_cut.h).
  Result<HostCutStatus> Pause(const std::string& snapshot_id, Duration lease, bool cut = false);
  // Switches every member to its overlays, still paused (LeasedPause::Cut).
  // Timeout when the lease ran out first. On an error every switch is
  // reverted, the members run, and the part is undone.
  Status Cut(const std::string& snapshot_id);
  // Resumes the members and finishes their switches; answers each member's
  // pause and cut time. On an error the part is undone.
  Result<HostCutStatus> Resume(const std::string& snapshot_id);
  // Commits the part: a Complete snapshot. An error (the part ended before:
  // the reason it was undone) leaves nothing of it.
  Status Commit(const std::string& snapshot_id);
  // Takes the part back in any stage, and destroys a committed one (the
  // coordinator undoing a snapshot that did not commit on every host), also
  // one this host committed before it restarted. OK when nothing of it is
  // left, also when this host never had it. An error says what is left: a
  // failed undo is finished by recovery at the next start.
  Status Abort(const std::string& snapshot_id);

  // Where the part stands. NotFound when this host has none (never had it,
  // or it ended and was collected by Commit or Abort).
  Result<HostCutStatus> Get(const std::string& snapshot_id);

  // Exports the committed part `request.snapshot_id` into
  // `request.directory` as any snapshot is exported (SnapshotEngine::Export:
  // the same checks, errors and taking back of a failed export): this
  // host's folder of an export across hosts; with request.base, on top of
  // this host's part of that reference point across hosts (its export of
  // the snapshot it was), as an incremental export is.
  Result<ExportManifest> ExportPart(const ExportRequest& request);
  // Removes the finished export of part `snapshot_id` in `directory`: the
  // coordinator taking back an export that failed on another host
  // (export_layout.h RemoveExport). OK when there is none.
  Status RemoveExportPart(const std::string& snapshot_id, const std::string& directory);

  // The committed part `snapshot_id` becoming reference point `rp_id` of
  // its snapshot across hosts, as ConvertToReferencePoint converts any
  // (SnapshotEngine::ConvertToReferencePoint: the same checks and errors):
  // ValidateConvertPart checks alone. Both are OK also when the part
  // became `rp_id` already (the coordinator asking again after an answer
  // it lost), ConvertPart then answering it. DestroyReferencePointPart
  // destroys it: OK when there is none.
  Status ValidateConvertPart(const std::string& snapshot_id, const std::string& rp_id = "");
  Result<catalog::ReferencePointRecord> ConvertPart(const std::string& snapshot_id,
                                                    const std::string& rp_id);
  Status DestroyReferencePointPart(const std::string& rp_id);

 private:
  struct Part;
  enum class Word { kNone, kPause, kCut, kResume, kCommit, kAbort };

  std::shared_ptr<Part> Find(const std::string& snapshot_id);
  // Forgets `part` and joins its thread, unless another caller did already.
  void Collect(const std::shared_ptr<Part>& part);
  // Where a part stands (Get's answer).
  static HostCutStatus StatusOf(Part& part);
  // StatusOf a part a step was just answered for: its end, if it ended
  // since (an Abort came).
  Result<HostCutStatus> Answered(Part& part);
  // Gives `part` the word `word` if it is at stage `at` (InvalidState
  // otherwise), then waits until it has moved on: the step's answer.
  Status Step(Part& part, HostCutStage at, Word word);
  // The part's thread: SnapshotCreate, then the end.
  void Run(Part& part);
  // SnapshotRequest::cut and ::before_commit of a part, on its thread.
  CutOutcome CutOnWord(Part& part, const std::vector<CutMember>& members,
                       const std::string& tracking, Deadline cut_by);
  Status AwaitCommit(Part& part);
  // Destroys the Complete snapshot `snapshot_id`: OK when it is gone.
  Status DestroyCommitted(const std::string& snapshot_id);
  // Reference point `rp_id`, if part `snapshot_id` became it; else NotFound.
  Result<catalog::ReferencePointRecord> ConvertedInto(const std::string& snapshot_id,
                                                      const std::string& rp_id);

  GroupParts& parts_;
  OperationRunner& runner_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Part>> parts_by_id_;  // guarded by mu_
};

}  // namespace vmgroup::engine
