// The requests SnapshotEngine's operations take, and the options they all
// run with.
#pragma once

#include <functional>
#include <string>

#include "base/env.h"
#include "catalog/catalog.h"
#include "engine/cut_executor.h"

namespace vmgroup::engine {

struct FreezeTiming;  // guest_freeze.h

struct SnapshotOptions {
  // Longest the group may stay paused (first pause -> last switch). Past it
  // the cut is rolled back and Create returns Timeout. Default 2 s: far above
  // the tens of milliseconds a cut takes, far below what guests notice badly.
  Duration pause_deadline = std::chrono::seconds(2);
  // Longest a guest's filesystems may stay frozen for an application-
  // consistent snapshot (first freeze -> its thaw). The freezes must be
  // answered early enough to leave the cut its pause_deadline; a guard
  // process thaws every guest when the bound passes, should the service
  // stall or die. Default 10 s, the limit Windows VSS keeps too.
  Duration freeze_bound = std::chrono::seconds(10);
  // The group exports are given (directories 0750, files 0640: root and
  // this group only); -1 keeps the process's group. Engine sets it from
  // EngineOptions::admin_gid.
  int admin_gid = -1;
  // Backup sessions over TCP (BackupTransport::kTcp): the numeric address
  // their NBD servers listen on, and the directory of QEMU-format x509
  // files they speak TLS with (hypervisor::NbdListen). "" (the default):
  // sessions serve on unix sockets only, and one over TCP is refused.
  std::string nbd_listen;
  std::string nbd_tls_dir;
  // Snapshots across hosts (spanning_snapshots.h), this host coordinating:
  // how long each host may keep its members paused waiting for the next
  // word (the lease: two round trips to the farthest host, well under what
  // guests notice), and how long a host waits for it outside the lease.
  Duration host_lease = std::chrono::milliseconds(500);
  Duration host_step_timeout = std::chrono::seconds(30);
  // This host's name in an export across hosts: the folder its part goes
  // to (spanning_export.h). The daemon gives the machine's host name.
  std::string host_name = "localhost";
};

struct SnapshotRequest {
  std::string collection_id;
  int type = 2;      // SnapshotType (snapshot_plan.h)
  std::string name;  // ElementName; default "<collection name> - <UTC time>"
  // The snapshot's id, when the caller must name it before it exists (a
  // job's out-parameter); a new GUID when empty.
  std::string id;
  // Polled once everything is prepared, before the cut: true abandons the
  // snapshot (Cancelled). Optional.
  std::function<bool()> cancelled;
  // Told the percentage done as the snapshot advances. Optional.
  std::function<void(int)> progress;
  // ConsistencyLevel: kCrash, or kApplication to have every running member's
  // guest agent flush and freeze its filesystems through the cut (recovery
  // and disk-only snapshots).
  catalog::Consistency consistency = catalog::Consistency::kCrash;
  // With kApplication, for a member whose guest cannot freeze (no agent, an
  // agent that fails or is too slow, a paused VM): true cuts it crash
  // consistent and tells `warning` why (Hyper-V's production checkpoint
  // with fallback); false fails the whole snapshot.
  bool fallback = false;
  // Told each thing the caller should know of a snapshot that succeeded
  // (a member that fell back, a thaw that failed). Optional.
  std::function<void(const std::string&)> warning;
  // With kApplication, told once the guests are thawed when each member's
  // freeze and thaw were sent and answered, by member index (all 0 for a
  // member not asked): what a benchmark explains a freeze window with.
  // Optional.
  std::function<void(const std::vector<FreezeTiming>&)> freeze_timings;
  // Told the timings of a cut that succeeded, one per member it took part
  // in (running or paused), in member order: what each pause was made of,
  // for benchmarks. Optional.
  std::function<void(const std::vector<CutTiming>&)> cut_timings;
  // How the running members are cut, given them, the tracking the cut
  // starts and when it must have ended (the guests' freeze bound, less
  // what their thaws need, with kApplication; Deadline::max() otherwise):
  // ExecuteCut at once when empty (with pause_deadline). A host's part of a
  // cut across hosts cuts on its coordinator's word instead (host_cuts.h);
  // its outcome answers as ExecuteCut's does. Optional.
  std::function<CutOutcome(const std::vector<CutMember>&, const std::string& tracking,
                           Deadline cut_by)>
      cut;
  // Called once the cut is made and every switch finished, just before the
  // commit: an error undoes the snapshot (a host's part waits here for its
  // coordinator's commit). Optional.
  std::function<Status()> before_commit;
  // This host's part of a snapshot across hosts: recorded so, so that
  // recovery undoes it rather than complete it (SnapshotRecord::coordinated).
  bool coordinated = false;
};

struct ApplyRequest {
  std::string snapshot_id;
};

struct DestroyRequest {
  std::string snapshot_id;
};

// Msvm_CollectionSnapshotExportSettingData with the method's parameters.
struct ExportRequest {
  std::string snapshot_id;
  std::string directory;     // ExportDirectory: absolute, new or empty
  bool copy_storage = true;  // CopyVmStorage: with the disks' content
  // DifferentialBackupBase, to export only what changed since it: the id of
  // a reference point of the group (on top of the export of the snapshot
  // it was made from), or of the group snapshot right before this one (on
  // top of its export); empty for a full export.
  std::string base;
  // Told the percentage done as disks are copied. Optional.
  std::function<void(int)> progress;
};

}  // namespace vmgroup::engine
