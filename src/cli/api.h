// Api: what the vmgroup command line asks of vmgroupd, in its terms (VMs,
// groups, snapshots, jobs by name or id), spoken as the Hyper-V collection
// API over CIM-XML. The command line never builds CIM requests itself.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/env.h"
#include "base/result.h"
#include "base/vm_config.h"
#include "cim/client.h"
#include "schema/values.h"

namespace vmgroup::cli {

struct VmInfo {
  // state: "running", "off", "paused", "io-error", "held" (off, held so by
  // this host's part of an apply across hosts until its coordinator decides)
  std::string id, name, state;
  // For "io-error": which disk failed and why, as vmgroupd says
  // ("disk 0 (/img.qcow2): no space left on device"); for "held": the apply
  // and what settles it.
  std::string reason;
  // As the daemon renders it (no extra arguments); 0 memory and vCPUs when
  // it renders no settings for the VM.
  VmConfig config{.memory_mib = 0, .vcpus = 0};
  std::vector<std::string> disks;
  int64_t pid = 0;
  std::string libvirt_uri;  // the libvirt connection it lives on; "" for vmgroupd's own
};

struct GroupInfo {
  std::string id, name;
  bool of_groups = false;
  std::vector<std::string> members;  // names; "HOST:UUID" for a VM of another host
};

struct MemberSnapshotInfo {
  std::string vm_id, vm_name, settings_id, cut_time, parent;
  int64_t pause_us = 0;
  int consistency = 2;  // 1 application, 2 crash
  std::vector<std::string> images;
};

struct SnapshotInfo {
  std::string id, name, group_id, created;
  std::string parent_id;  // the group snapshot this one was taken after, or empty
  bool current = false;   // every member's newest snapshot: the group runs on top of it
  int type = 0;
  int64_t pause_window_us = 0, duration_us = 0;
  int consistency = 2;           // the weakest member's
  int64_t freeze_window_us = 0;  // first freeze -> last thaw (application consistent)
  std::vector<MemberSnapshotInfo> members;
  // A snapshot across hosts, on its coordinator: each host's part, and how
  // far apart the cuts can be.
  std::vector<std::string> hosts;
  int64_t cut_spread_us = 0;
};

// A group reference point (Msvm_ReferencePointCollection).
struct RefPointInfo {
  std::string id, name, group_id, cut, created, snapshot_id;
  std::vector<std::string> vm_ids;  // its per-VM reference points' VMs
};

// One disk a backup session serves (Vmgroup_BackupDisk).
struct BackupDiskInfo {
  std::string vm_id, vm_name;
  int index = 0;
  std::string export_name, uri, socket;
  uint64_t size = 0;
  std::string context;           // changes since the base; "" for a full read
  std::string full_read_reason;  // why a full read although a base was asked
  std::string host;              // the peer that serves it (across hosts); "" for the daemon's
};
// A backup session (Vmgroup_BackupSession) and what it serves.
struct BackupInfo {
  std::string id, group_id, snapshot_id, base_id, started;
  std::string state;  // "Serving", "Ending" or "Stopped"
  bool took_snapshot = false;
  std::vector<BackupDiskInfo> disks;
};
// What BeginBackup asks for; empty strings leave a choice to the daemon.
struct BackupBegin {
  std::string snapshot_id;  // serve this snapshot instead of taking one
  std::string base_id;      // reference point: publish the changes since it
  int consistency = 0;      // a schema::ConsistencyLevel for the cut; 0: the daemon's
  bool fallback = false;
  int64_t idle_seconds = 0;  // 0: the daemon's default
  bool tcp = false;          // TCP with TLS rather than unix sockets
};
// GetVirtualDiskChanges' answer.
struct DiskChangesInfo {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // (offset, length)
  uint64_t processed = 0;
};

struct JobInfo {
  std::string id, description, error;
  int state = 0, percent = 0, error_code = 0, type = 0;
  bool cancellable = false;
  std::string started, elapsed;
  std::vector<std::string> affected;  // "Class:id" of what it made
  bool Finished() const {
    using S = schema::JobState;
    return state >= S::kCompleted && state != S::kService && state != S::kQueryPending;
  }
  bool Succeeded() const {
    return state == schema::JobState::kCompleted ||
           state == schema::JobState::kCompletedWithWarnings;
  }
};

struct NewVm {
  std::string name;
  VmConfig config;                      // no extra arguments: DefineSystem takes none
  std::vector<std::string> disk_paths;  // existing images, absolute
  std::vector<int64_t> disk_new_bytes;  // per disk: >0 creates a new one
};

// What a method call ended in: a ReturnValue and, when it started one, a job.
// What vmgroupd says of its host (its Msvm_VirtualSystemManagementService).
struct HostInfo {
  std::string name;         // the host's name: the services' SystemName
  std::string accelerator;  // what QEMU runs VMs under: "kvm" or "tcg"
};

struct CallResult {
  uint32_t code = 0;
  std::string error;  // the daemon's reason when code is not 0 or 4096
  std::string job_id;
  cim::Response response;
};

class Api {
 public:
  // `endpoint`: unix:PATH or http(s)://[user[:pass]@]host:port (see
  // cim::HttpClient::Create); `cacert`: a PEM file of the CA that vouches
  // for an https:// daemon, empty for the system's CA store; `password`:
  // the endpoint's user's (cli/password.h), empty for the endpoint's own.
  // WaitJob sleeps through `env`. REQUIRES: `env` outlives the Api.
  static Result<std::unique_ptr<Api>> Connect(Env* env, const std::string& endpoint,
                                              const std::string& cacert = "",
                                              const std::string& password = "");

  // NotFound if the daemon serves no management service.
  Result<HostInfo> GetHost();
  Result<std::vector<VmInfo>> ListVms();
  // By name or id; NotFound, or InvalidArgument when a name is ambiguous.
  Result<VmInfo> FindVm(const std::string& name_or_id);
  Result<CallResult> CreateVm(const NewVm& vm);
  Result<CallResult> DeleteVm(const std::string& id);
  // `requested`: a schema::RequestedState (kRunning, kOff, kQuiesce: paused).
  Result<CallResult> ChangeVmState(const std::string& id, int requested);
  // A clean shutdown (RequestedState 4): the guest's power button, the job
  // done once the VM is off or failed after `timeout_seconds`; with `force`
  // the VM is turned off then instead.
  Result<CallResult> ShutDownVm(const std::string& id, int64_t timeout_seconds, bool force);

  Result<std::vector<GroupInfo>> ListGroups();
  Result<GroupInfo> FindGroup(const std::string& name_or_id);
  // `id`: the group's id (a GUID), as New-VMGroup -Id gives it (a group
  // that spans hosts has the same id on each); a new one when empty.
  Result<CallResult> CreateGroup(const std::string& name, bool of_groups,
                                 const std::string& id = "");
  // A group back from the export in `directory` (absolute); with `as_new`,
  // beside the original under new ids.
  Result<CallResult> ImportGroup(const std::string& directory, bool as_new);
  Result<CallResult> AddMember(const GroupInfo& g, const std::string& member_name_or_id);
  Result<CallResult> RemoveMember(const GroupInfo& g, const std::string& member_name_or_id);
  // A VM of another host (one of the daemon's peers, by the name its
  // configuration gives it), by its UUID there.
  Result<CallResult> AddRemoteMember(const GroupInfo& g, const std::string& host,
                                     const std::string& vm_id);
  Result<CallResult> RemoveRemoteMember(const GroupInfo& g, const std::string& host,
                                        const std::string& vm_id);
  Result<CallResult> RenameGroup(const GroupInfo& g, const std::string& new_name);
  Result<CallResult> DeleteGroup(const GroupInfo& g);

  // type: a schema::SnapshotType; consistency: a schema::ConsistencyLevel;
  // fallback: with 1, members whose guest cannot freeze are cut crash
  // consistent (the job then completes with warnings) instead of failing it.
  Result<CallResult> CreateSnapshot(const GroupInfo& g, int type, int consistency, bool fallback,
                                    const std::string& name);
  Result<CallResult> ApplySnapshot(const std::string& id);
  // Takes back this host's part of an apply across hosts of snapshot `id`,
  // held for its coordinator (Vmgroup_HostCutService.AbortApplyPart).
  Result<CallResult> ReleaseApplyPart(const std::string& id);
  Result<CallResult> DestroySnapshot(const std::string& id);
  // An export of a group snapshot into `directory` (absolute), with the
  // disks' content unless `copy_storage` is false; with `base` (a
  // reference point's id) only what changed since it.
  Result<CallResult> ExportSnapshot(const std::string& id, const std::string& directory,
                                    bool copy_storage, const std::string& base);
  Result<CallResult> ConvertToReferencePoint(const std::string& snapshot_id);
  // Reference points of `group_id` (all when empty), oldest first.
  Result<std::vector<RefPointInfo>> ListRefPoints(const std::string& group_id);
  // By id, or by name when exactly one has it.
  Result<RefPointInfo> GetRefPoint(const std::string& id_or_name);
  // CreateReferencePoint: a recovery cut of the group, converted at once.
  Result<CallResult> CreateRefPoint(const GroupInfo& g, const std::string& name);
  // ExportReferencePoint: what changed since `rp` (or since `base`, an older
  // reference point's id, when not empty) into `directory`.
  Result<CallResult> ExportRefPoint(const RefPointInfo& rp, const std::string& directory,
                                    const std::string& base);
  Result<CallResult> DestroyRefPoint(const RefPointInfo& rp);
  // Backup sessions: BeginBackup's job lasts as long as the session
  // serves; the session (its id in the answer's ResultingBackupSession)
  // shows once it serves.
  Result<CallResult> BeginBackup(const GroupInfo& g, const BackupBegin& b);
  // Sessions serving now, oldest first.
  Result<std::vector<BackupInfo>> ListBackups();
  // NotFound while the session does not serve (yet, or any more).
  Result<BackupInfo> GetBackup(const std::string& id);
  // Waits until the session BeginBackup answered `begun` with serves, and
  // returns it; Failed with the job's reason when it ended instead.
  Result<BackupInfo> AwaitBackup(const CallResult& begun);
  Result<CallResult> EndBackup(const std::string& id, bool to_refpoint);
  Result<DiskChangesInfo> BackupChanges(const std::string& id, const std::string& vm, int disk,
                                        uint64_t offset, uint64_t length);

  Result<std::vector<SnapshotInfo>> ListSnapshots(const std::string& group_id);
  Result<SnapshotInfo> GetSnapshot(const std::string& id);

  Result<std::vector<JobInfo>> ListJobs();
  Result<JobInfo> GetJob(const std::string& id);
  Result<CallResult> CancelJob(const std::string& id);
  // Polls until the job ends; `progress` sees every change.
  Result<JobInfo> WaitJob(const std::string& id,
                          const std::function<void(const JobInfo&)>& progress);

 private:
  Api(Env* env, std::unique_ptr<cim::CimClient> c) : env_(env), cim_(std::move(c)) {}
  Result<cim::ObjectPath> ServicePath(const std::string& cls);
  Result<CallResult> Call(const std::string& service_class, const std::string& method,
                          const std::vector<cim::OutParam>& args);
  Result<CallResult> CallOn(const cim::ObjectPath& target, const std::string& method,
                            const std::vector<cim::OutParam>& args);
  // A member reference: a VM (for VM groups) or a group (for groups of groups).
  Result<cim::ObjectPath> MemberPath(const GroupInfo& g, const std::string& member);
  Result<MemberSnapshotInfo> ReadMember(const cim::Instance& vssd);

  Env* const env_;
  std::unique_ptr<cim::CimClient> cim_;
};

// "Class:id" -> id.
std::string AffectedId(const std::string& entry);
// True if `entry` ("Class:id") is an instance of `class_name` (a schema kClass).
bool IsInstanceOf(const std::string& entry, std::string_view class_name);

}  // namespace vmgroup::cli
