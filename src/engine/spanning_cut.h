// The coordinator's side of a snapshot across hosts (issue 20): each step
// of host_cuts.h sent to every host taking part, in parallel, and the next
// step only once every host has answered: no host resumes before every host
// has cut. That rule alone makes the cut consistent, as on one host
// (cut_executor.h): each member's image is frozen while it is paused, and
// nothing it holds can come from a member that ran on past its own cut,
// since none runs before all are cut. So each host cuts as it pauses, by
// default (SpanningCutRequest::cut_with_pause), saving a round trip of
// the group's pause; a separate Cut step, once every host has paused, is
// the stricter order of the design's first sketch.
// Any host's failure aborts the snapshot on every host (CutHost::Abort
// takes back a part in any stage, a committed one included), so the
// snapshot is all or nothing for the group.
//
// A host is reached through CutHost: this host's own HostCuts (LocalCutHost)
// or another vmgroupd over CIM-XML (remote/). The coordinator dying half way
// leaves no VM paused past a lease nor a part past its step timeout: each
// host enforces both by itself.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backup_sessions.h"
#include "engine/host_applies.h"
#include "engine/host_cuts.h"

namespace vmgroup::engine {

// A host's answer to Pause and Resume.
struct HostLease {
  std::vector<std::string> vm_ids;    // by member
  std::vector<LeasedTiming> members;  // by member, on the host's clock
  std::string lease_state;            // LeaseStateName
  std::string unguarded;              // why no resume guard was armed ("": one was)
  int64_t host_time_us = 0;           // the host's clock as it answered
};

// A host's part of a backup session across hosts (CutHost::BeginBackup).
struct HostBackupRequest {
  std::string collection_id;     // the group's id: the host's part of it has it
  std::string snapshot_id;       // the snapshot across hosts: the host's part has its id
  std::string incremental_from;  // a reference point across hosts, likewise; or ""
  BackupTransport transport = BackupTransport::kUnix;
  // Without a reader for this long, the host's session ends by itself.
  Duration idle_timeout = std::chrono::minutes(10);
};

// One host taking part, as the coordinator sees it: each call is one step
// of HostCuts on that host, answered with what it said.
class CutHost {
 public:
  virtual ~CutHost() = default;
  // For messages: "host 10.77.1.2", "this host".
  virtual std::string name() const = 0;
  virtual Status Prepare(const HostCutRequest& request) = 0;
  // With `cut`, the host also cuts at once (HostCuts::Pause).
  virtual Result<HostLease> Pause(const std::string& snapshot_id, Duration lease, bool cut) = 0;
  virtual Status Cut(const std::string& snapshot_id) = 0;
  virtual Result<HostLease> Resume(const std::string& snapshot_id) = 0;
  virtual Status Commit(const std::string& snapshot_id) = 0;
  virtual Status Abort(const std::string& snapshot_id) = 0;
  // The host's export of its committed part into `directory` (with the
  // disks unless `copy_storage` is false; in full, or on top of its part of
  // reference point `base` when given), and its removal.
  virtual Status Export(const std::string& snapshot_id, const std::string& directory,
                        bool copy_storage, const std::string& base) = 0;
  virtual Status RemoveExport(const std::string& snapshot_id, const std::string& directory) = 0;
  // Whether the host's committed part can become a reference point, asking
  // it to change nothing; the conversion into reference point `rp_id`
  // (OK when the part became that one already); and that reference
  // point's destruction (OK when the host has none).
  virtual Status ValidateConvert(const std::string& snapshot_id) = 0;
  virtual Status Convert(const std::string& snapshot_id, const std::string& rp_id) = 0;
  virtual Status DestroyReferencePoint(const std::string& rp_id) = 0;
  // A backup session of the host's own serving its committed part, as
  // BackupSessions serves a snapshot it did not take, which ends by itself
  // once idle (request.idle_timeout); answered as the host serves it (the
  // id is the host's). Whether that session still serves (false once it
  // ended), its end (the part stays; OK when it ended already), and the
  // changed ranges of a disk it serves (BackupSessions::Changes).
  virtual Result<BackupSession> BeginBackup(const HostBackupRequest& request) = 0;
  virtual Result<bool> BackupServing(const std::string& session_id) = 0;
  virtual Status EndBackup(const std::string& session_id) = 0;
  virtual Result<storage::MarkedRanges> BackupChanges(const std::string& session_id,
                                                      const std::string& vm_id, int disk,
                                                      uint64_t offset, uint64_t length) = 0;
  // The host's part of an apply across hosts of its committed part
  // (host_applies.h): its checks alone; its prepare, held until the
  // coordinator's word (OK when held already); that word, commit or abort
  // (each OK when given already).
  virtual Status ValidateApply(const std::string& snapshot_id) = 0;
  virtual Status PrepareApply(const std::string& snapshot_id) = 0;
  virtual Status CommitApply(const std::string& snapshot_id) = 0;
  virtual Status AbortApply(const std::string& snapshot_id) = 0;
};

// This host's own part, through its SnapshotEngine's HostCuts, HostApplies
// and BackupSessions.
class LocalCutHost final : public CutHost {
 public:
  // REQUIRES: `cuts`, `applies` and `backups` outlive this.
  LocalCutHost(HostCuts* cuts, HostApplies* applies, BackupSessions* backups)
      : cuts_(cuts), applies_(applies), backups_(backups) {}
  std::string name() const override { return "this host"; }
  Status Prepare(const HostCutRequest& request) override { return cuts_->Prepare(request); }
  Result<HostLease> Pause(const std::string& snapshot_id, Duration lease, bool cut) override;
  Status Cut(const std::string& snapshot_id) override { return cuts_->Cut(snapshot_id); }
  Result<HostLease> Resume(const std::string& snapshot_id) override;
  Status Commit(const std::string& snapshot_id) override { return cuts_->Commit(snapshot_id); }
  Status Abort(const std::string& snapshot_id) override { return cuts_->Abort(snapshot_id); }
  Status Export(const std::string& snapshot_id, const std::string& directory, bool copy_storage,
                const std::string& base) override;
  Status RemoveExport(const std::string& snapshot_id, const std::string& directory) override {
    return cuts_->RemoveExportPart(snapshot_id, directory);
  }
  Status ValidateConvert(const std::string& snapshot_id) override {
    return cuts_->ValidateConvertPart(snapshot_id);
  }
  Status Convert(const std::string& snapshot_id, const std::string& rp_id) override {
    return cuts_->ConvertPart(snapshot_id, rp_id).status();
  }
  Status DestroyReferencePoint(const std::string& rp_id) override {
    return cuts_->DestroyReferencePointPart(rp_id);
  }
  Result<BackupSession> BeginBackup(const HostBackupRequest& request) override;
  Result<bool> BackupServing(const std::string& session_id) override {
    return backups_->Get(session_id).ok();
  }
  Status EndBackup(const std::string& session_id) override;
  Result<storage::MarkedRanges> BackupChanges(const std::string& session_id,
                                              const std::string& vm_id, int disk, uint64_t offset,
                                              uint64_t length) override {
    return backups_->Changes(session_id, vm_id, disk, offset, length);
  }
  Status ValidateApply(const std::string& snapshot_id) override {
    return applies_->Validate(snapshot_id);
  }
  Status PrepareApply(const std::string& snapshot_id) override {
    return applies_->Prepare(snapshot_id);
  }
  Status CommitApply(const std::string& snapshot_id) override {
    return applies_->Commit(snapshot_id);
  }
  Status AbortApply(const std::string& snapshot_id) override {
    return applies_->Abort(snapshot_id);
  }

 private:
  HostCuts* const cuts_;
  HostApplies* const applies_;
  BackupSessions* const backups_;
};

struct SpanningCutRequest {
  std::string snapshot_id;    // the group snapshot's id (a GUID): each host's part has it
  std::string collection_id;  // the group's id: each host's part of it has it too
  std::string name;           // the snapshot's ElementName
  int type = kSnapshotRecovery;
  // Application consistency (HostCutRequest's): each host freezes its
  // guests as it prepares and thaws them as it resumes.
  catalog::Consistency consistency = catalog::Consistency::kCrash;
  bool fallback = false;
  // How long each host may keep its members paused waiting for "cut" and
  // "resume": long enough for two round trips to the farthest host, short
  // enough that guests barely notice should the coordinator die.
  Duration lease = std::chrono::milliseconds(500);
  // How long each host waits for the next step outside the lease.
  Duration step_timeout = std::chrono::seconds(30);
  // Each host cuts as it pauses (one round trip less of pause); false: a
  // Cut step once every host has paused.
  bool cut_with_pause = true;
  // Polled once every host has prepared, before any pauses: true takes
  // every part back (Cancelled). Optional.
  std::function<bool()> cancelled;
};

// A Pause or Resume: what the host answered, and when on the coordinator's
// clock it was asked and answered. The round trip bounds how far the host's
// clock is from ours: it stamped its answer somewhere inside it.
struct LeaseExchange {
  HostLease answer;
  int64_t sent_us = 0;
  int64_t answered_us = 0;
};

// What one host did.
struct SpannedHost {
  std::string name;
  LeaseExchange pause;
  LeaseExchange resume;  // each member's pause and cut
  // The host's cut times on the coordinator's clock: the earliest and
  // latest they can be, given the Resume round trip (0: no member of the
  // host ran or was paused; its commit was its cut).
  int64_t earliest_cut_us = 0, latest_cut_us = 0;
};

struct SpanningCutReport {
  std::vector<SpannedHost> hosts;  // in the order given
  // First Pause sent -> last Resume answered, on the coordinator's clock:
  // no member of the group paused before it began or ran on after it ended.
  int64_t window_us = 0;
  // How far apart the members' cuts can be, from the host clocks and the
  // round trips: latest of any cut minus earliest of any.
  int64_t cut_spread_us = 0;
};

// Takes the group snapshot across `hosts` (each with its part prepared,
// paused, cut, resumed and committed, a step at a time, in parallel). On
// any host's failure every host aborts its part and the first failure is
// returned, naming its host and step, with any abort that failed too (that
// part is finished by the host's recovery, or by aborting again). A host
// whose lease ran out before our Resume came fails the snapshot (Timeout):
// it resumed by itself, perhaps before another host cut.
Result<SpanningCutReport> TakeSpanningCut(Env* env, const std::vector<CutHost*>& hosts,
                                          const SpanningCutRequest& request);

}  // namespace vmgroup::engine
