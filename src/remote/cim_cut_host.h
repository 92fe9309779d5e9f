// A host taking part in a snapshot across hosts that is another vmgroupd:
// each step of engine::CutHost is a method of its Vmgroup_HostCutService
// (services/host_cut_providers.cc), called over CIM-XML as one of that
// host's administrators (HTTPS with PAM credentials, or its unix socket).
// Its answers come back as the Status the host answered with, its reason
// kept, named after the host.
//
// Each call waits no longer than its answer is of use: Pause, Cut and
// Resume the lease (given to Pause) and a margin, the others the part's
// step timeout (given to Prepare): a host that vanished fails the step
// within those, not after HTTP's own minute.
//
// Export and Convert are jobs on the host (ExportPart and ConvertPart
// answer 4096): copying a part's disks, or merging its overlays, can take
// hours, and no HTTP call should stay open that long. Their call and each
// look at the job wait at most the step timeout; the job itself may take
// as long as the host has it run (Export's contract says how long).
//
// Calls of one CimCutHost must not overlap (one HTTP connection, kept
// alive); the coordinator makes one call per host at a time.
#pragma once

#include <memory>
#include <string>

#include "cim/client.h"
#include "engine/spanning_cut.h"

namespace vmgroup::remote {

class CimCutHost final : public engine::CutHost {
 public:
  // `endpoint` and `options` as cim::HttpClient::Create takes them
  // (https://user@host:port with options.password and options.cacert).
  // `name`: what messages call the host ("host db1", a configured peer's
  // name); empty: "host <address>", from the endpoint. Connects lazily: a
  // host that cannot be reached fails its first step.
  static Result<std::unique_ptr<CimCutHost>> Create(const std::string& endpoint,
                                                    const cim::HttpClient::Options& options,
                                                    const std::string& name = "");

  std::string name() const override { return name_; }
  Status Prepare(const engine::HostCutRequest& request) override;
  Result<engine::HostLease> Pause(const std::string& snapshot_id, Duration lease,
                                  bool cut) override;
  Status Cut(const std::string& snapshot_id) override;
  Result<engine::HostLease> Resume(const std::string& snapshot_id) override;
  Status Commit(const std::string& snapshot_id) override;
  Status Abort(const std::string& snapshot_id) override;
  // ExportPart on the host, then its job followed until it ends: OK when it
  // completed (with warnings or not), else the Status its ErrorCode (family
  // A) and ErrorDescription stand for. A look at the job that fails is
  // tried again; the error of the last is the answer once the host has
  // answered none for longer than the step timeout. Timeout when the job's
  // progress stands still for longer than the host lets one disk's copy
  // take. In both cases the job may still run there. OK also if the host
  // answers 0 (done at once).
  Status Export(const std::string& snapshot_id, const std::string& directory, bool copy_storage,
                const std::string& base) override;
  // RemoveExportPart on the host, within the step timeout: OK when it
  // removed that export or had none.
  Status RemoveExport(const std::string& snapshot_id, const std::string& directory) override;
  // ValidateConvertPart and DestroyReferencePointPart on the host, within
  // the step timeout; ConvertPart, its job followed as Export's.
  Status ValidateConvert(const std::string& snapshot_id) override;
  Status Convert(const std::string& snapshot_id, const std::string& rp_id) override;
  Status DestroyReferencePoint(const std::string& rp_id) override;
  // The host's own Vmgroup_BackupService: BeginBackup on the part, its
  // answer awaited until the session serves (or its job failed), within the
  // step timeout, and its disks as Vmgroup_BackupDisk lists them; whether
  // its Vmgroup_BackupSession is still listed; EndBackup, its job followed
  // as Export's (OK when the session is gone already); GetVirtualDiskChanges,
  // answered at once.
  Result<engine::BackupSession> BeginBackup(const engine::HostBackupRequest& request) override;
  Result<bool> BackupServing(const std::string& session_id) override;
  Status EndBackup(const std::string& session_id) override;
  Result<storage::MarkedRanges> BackupChanges(const std::string& session_id,
                                              const std::string& vm_id, int disk, uint64_t offset,
                                              uint64_t length) override;
  // ValidateApplyPart, PrepareApplyPart, CommitApplyPart and AbortApplyPart
  // on the host, each within the step timeout.
  Status ValidateApply(const std::string& snapshot_id) override;
  Status PrepareApply(const std::string& snapshot_id) override;
  Status CommitApply(const std::string& snapshot_id) override;
  Status AbortApply(const std::string& snapshot_id) override;

 private:
  CimCutHost(std::string name, std::unique_ptr<cim::CimClient> cim)
      : name_(std::move(name)), cim_(std::move(cim)) {}
  // `method` on the part of `snapshot_id` (empty: a method not on a part),
  // with `more`, waiting at most `within` for the answer: the answer
  // whatever its ReturnValue (Timeout past `within`).
  Result<cim::Response> Ask(const std::string& method, const std::string& snapshot_id,
                            Duration within, std::vector<cim::OutParam> more = {});
  // `method` of the host's Vmgroup_BackupService, with `args`, waiting at
  // most the step timeout for the answer.
  Result<cim::Response> AskBackupService(const std::string& method,
                                         std::vector<cim::OutParam> args);
  // The disks session `session_id` serves, by member, as the host lists them.
  Result<std::vector<engine::BackupMember>> BackupMembers(const std::string& session_id);
  // Ask, for a method that answers when done: the answer when the host did
  // it (ReturnValue 0), else the Status it answered with.
  Result<cim::Response> Call(const std::string& method, const std::string& snapshot_id,
                             Duration within, std::vector<cim::OutParam> more = {});
  // The outcome of `method`, which runs as a job, from its answer `r`: OK
  // at once (0), its job followed until it ends (4096), else its refusal.
  Status Finished(const char* method, const cim::Response& r);
  // Follows the host's job at `job` until it ends (Export's contract).
  Status AwaitJob(const cim::ObjectPath& job);

  const std::string name_;  // "host db1" or "host <address>", without credentials
  std::unique_ptr<cim::CimClient> cim_;
  cim::ObjectPath service_;         // found at the first call
  cim::ObjectPath backup_service_;  // likewise
  // Prepare's step timeout: how long Prepare, Commit and Abort may take.
  Duration step_timeout_ = std::chrono::seconds(30);
  // Pause's lease: an answer to Pause, Cut or Resume later than it (and a
  // margin for the host's own resume) is of no use.
  Duration lease_ = std::chrono::seconds(30);
};

}  // namespace vmgroup::remote
