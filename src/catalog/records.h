// What the catalog stores, as plain values. The catalog is the source of truth
// for what exists; the hypervisor and the image files are checked against it
// at start-up (engine/recovery.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/vm_config.h"

namespace vmgroup::catalog {

// The power state the operator asked for. Recovery resumes a VM that is
// paused while its record says kRunning: only vmgroup's own cut pauses those.
enum class Power { kOff = 0, kRunning = 1, kPaused = 2 };
const char* PowerName(Power p);

struct VmRecord {
  std::string id;  // GUID
  std::string name;
  VmConfig config;
  std::vector<std::string> disks;  // active (top) image of each disk, absolute paths
  Power power = Power::kOff;
  int pid = 0;                   // hypervisor process while not kOff
  std::string current_snapshot;  // newest snapshot in the VM's branch, or empty
  std::string last_applied;      // member snapshot last applied to it, or empty
  // A domain of libvirt's: the URI of the connection it lives on (vmgroupd
  // found it there and follows it). Empty for the VMs vmgroupd runs itself.
  std::string libvirt_uri;
};

// What applying a group snapshot changes for one VM (Catalog::ApplySnapshot).
struct AppliedMember {
  std::string vm_id;
  std::string member_id;               // the member snapshot applied
  std::vector<std::string> disks;      // the new active image of each disk
  std::vector<std::string> discarded;  // former active images no longer kept
  int pid = 0;  // the VM's QEMU, started from the member's memory state; 0: the VM is off
};

// An apply in progress (Catalog::InsertApplyIntent). Before its commit,
// recovery undoes it and starts again the VMs of `restart`; after it, the
// libvirt domains among them (which run again after an apply, unlike
// vmgroupd's own VMs) until the apply has started them itself. A `held`
// one, this host's part of an apply across hosts once prepared, is left as
// it is before its commit: its coordinator decides (engine/host_applies.h).
struct ApplyIntent {
  std::string snapshot_id;
  std::vector<std::string> restart;  // VMs that were on before the apply
  std::vector<std::string> paused;   // those of them that were paused: started paused
  bool committed = false;            // the catalog names the applied images
  bool held = false;                 // prepared, for its coordinator's word
  std::string tag;                   // names the new overlays (held ones only)
};

// A restore in progress (Catalog::InsertRestoreIntent), recorded before it
// makes anything, so that recovery takes back what a crash cut short.
struct RestoreIntent {
  std::string collection_id;        // the group it defines
  std::vector<std::string> vm_ids;  // the VMs it defines, and so their run directories
  // By VM, as vm_ids: the libvirt connection a VM is defined on as a domain,
  // "" for one of vmgroupd's own (or none at all: an older intent).
  std::vector<std::string> libvirt_uris;
  // Files it copies outside the VMs' run directories (beside the images of
  // libvirt domains), each one new.
  std::vector<std::string> files;
};

// A QEMU the daemon started for a VM (Catalog::InsertProcess), recorded
// before it ran. pid and start_time (Env::ProcessStartTime) name the process.
struct ProcessRecord {
  std::string vm_id;
  int pid = 0;
  int64_t start_time = 0;
  bool operator==(const ProcessRecord&) const = default;
};

// DefineCollection's Type (reference §3.1).
enum class CollectionType { kVirtualSystems = 0, kCollections = 1 };

// A member of a group that runs on another host (issue 20): a VM of one of
// this vmgroupd's peers (engine/peers.h), named by the peer and the VM's
// UUID there.
struct RemoteMember {
  std::string host;   // the peer's name in this vmgroupd's configuration
  std::string vm_id;  // the VM's UUID on that host
  bool operator==(const RemoteMember&) const = default;
};

struct CollectionRecord {
  std::string id;  // CollectionID, a GUID unless the caller chose one
  std::string name;
  CollectionType type = CollectionType::kVirtualSystems;
  int64_t created_us = 0;
  std::vector<std::string> members;          // VM ids, or collection ids for kCollections
  std::vector<RemoteMember> remote_members;  // kVirtualSystems only, in the order added
};

// kDestroying: DestroySnapshot began merging the snapshot's images away; it
// can no longer be applied, and the destroy is finished, never undone.
enum class SnapshotState { kIncomplete = 0, kComplete = 1, kDestroying = 2 };

// One disk of a member snapshot: the image frozen by the cut and the overlay
// that became the disk's active image.
struct SnapshotDisk {
  int index = 0;
  std::string frozen_image;
  std::string overlay;
};

// ConsistencyLevel, as Msvm_VirtualSystemSnapshotSettingData counts it.
// kApplication: the guest's filesystems were flushed and frozen by its agent
// at the cut. kCrash: the disks as a power cut would leave them.
enum class Consistency { kUnknown = 0, kApplication = 1, kCrash = 2 };

// The per-VM snapshot inside a group snapshot (an Msvm_VirtualSystemSettingData).
struct MemberSnapshot {
  std::string id;  // GUID
  std::string vm_id;
  std::string parent_id;  // the VM's previous snapshot in its branch, or empty
  Power power_at_cut = Power::kOff;
  int64_t cut_time_us = 0;  // wall clock when the member's switch took effect
  int64_t pause_us = 0;     // how long vmgroup kept the member paused
  std::vector<SnapshotDisk> disks;
  // The member's RAM and device state at the cut (Standard snapshots of a
  // running VM), or empty.
  std::string memory_state;
  // What the cut achieved for this member: kApplication only when its guest
  // was frozen through the cut.
  Consistency consistency = Consistency::kCrash;
};

// A group snapshot (an Msvm_SnapshotCollection).
struct SnapshotRecord {
  std::string id;  // GUID
  std::string collection_id;
  std::string name;
  std::string tag;  // short unique tag, names the overlays' files and nodes
  int type = 0;     // SnapshotType as requested
  SnapshotState state = SnapshotState::kIncomplete;
  int64_t created_us = 0;
  int64_t pause_window_us = 0;  // first member paused -> last member resumed
  int64_t duration_us = 0;      // whole operation, check to commit
  // As requested. Recovery thaws the guests of an Incomplete kApplication
  // snapshot: the daemon may have died with them frozen.
  Consistency consistency = Consistency::kCrash;
  int64_t freeze_window_us = 0;  // first freeze sent -> last thaw answered (kApplication)
  // This host's part of a snapshot across hosts (engine/host_cuts.h): its
  // coordinator decides whether it commits, so recovery never completes one
  // left Incomplete, even with its cut made on every member here: it undoes it.
  bool coordinated = false;
  std::vector<MemberSnapshot> members;
};

// A snapshot across hosts, on its coordinator (engine/spanning_snapshots.h).
// kTaking: recorded before any host was asked, until every host committed
// its part; kUndoing: being taken back on every host (a take that failed
// and whose aborts did not all succeed, or a destroy). A restart takes back
// every one kTaking or kUndoing: presumed abort.
//
// Converted to a reference point, the record is that reference point:
// kConverting once every host checked its part, until each converted it
// (a restart converts the rest: a host's conversion cannot be taken back);
// kReferencePoint once all did; kForgetting while every host destroys its
// part of the reference point (a restart goes on with it).
//
// Applied, a Complete snapshot is kApplying while every host prepares its
// part, until each took it back (a restart takes back the rest: presumed
// abort), and kApplyCommitting once every host prepared, until each
// committed (a restart commits the rest: the decision was recorded before
// any host heard it); then kComplete again.
enum class SpanningState {
  kTaking = 0,
  kComplete = 1,
  kUndoing = 2,
  kConverting = 3,
  kReferencePoint = 4,
  kForgetting = 5,
  kApplying = 6,
  kApplyCommitting = 7
};

// One host's part of it, with what the host reported once it committed.
struct SpanningPart {
  std::string host;  // the peer's name; "" for this host
  std::vector<std::string> vm_ids;
  // The host's cuts on the coordinator's clock, bounded by the round trip
  // of its Resume (engine/spanning_cut.h).
  int64_t earliest_cut_us = 0, latest_cut_us = 0;
  int64_t longest_pause_us = 0;  // of its members
};

struct SpanningSnapshotRecord {
  std::string id;  // the group snapshot's GUID: each host's part has it too
  std::string collection_id;
  std::string name;
  int type = 0;
  // The ConsistencyLevel asked of every host (what each member achieved is
  // in each host's part).
  Consistency consistency = Consistency::kCrash;
  SpanningState state = SpanningState::kTaking;
  int64_t created_us = 0;
  int64_t window_us = 0;            // first Pause sent -> last Resume answered
  int64_t cut_spread_us = 0;        // how far apart the members' cuts can be
  std::vector<SpanningPart> parts;  // one per host, in the order asked
  // From kConverting on: the reference point every host's part becomes
  // (the same id on each), and when the conversion was decided.
  std::string reference_point_id;
  int64_t converted_us = 0;
};

// True while `s` is a snapshot, not (being) converted to a reference point.
inline bool IsSnapshot(const SpanningSnapshotRecord& s) { return s.reference_point_id.empty(); }

// True when `s` is a complete snapshot, also while it is being applied
// (which leaves it as it is): one to list.
inline bool IsComplete(const SpanningSnapshotRecord& s) {
  return s.state == SpanningState::kComplete || s.state == SpanningState::kApplying ||
         s.state == SpanningState::kApplyCommitting;
}

// How destroying a snapshot takes one disk's frozen image out of the VM's
// image tree. Each of `others` is first made independent of the frozen image
// (it copies what it read through it); then `child`, the last image based on
// it, is merged into the frozen image, which takes the child's place in every
// record. With no child at all the frozen image is simply dropped.
struct DiskMerge {
  std::string vm_id;
  int index = 0;
  std::string frozen_image;
  std::string child;
  std::vector<std::string> others;
};

// A member VM's part of a reference point (an Msvm_VirtualSystemReferencePoint).
struct ReferencePointMember {
  std::string id;  // GUID
  std::string vm_id;
  // Per disk, the image that holds the reference point's bitmap.
  std::vector<std::string> images;
};

// A group reference point (an Msvm_ReferencePointCollection): what remains
// of a recovery snapshot converted by ConvertToReferencePoint. Its bitmap,
// on each member disk's image, marks every cluster written since the cut.
struct ReferencePointRecord {
  std::string id;  // GUID
  std::string collection_id;
  std::string name;
  std::string snapshot_id;  // the recovery snapshot it was (gone now)
  std::string bitmap;
  int64_t cut_us = 0;
  int64_t created_us = 0;
  std::vector<ReferencePointMember> members;
  // What the cut it came from achieved (the snapshot's consistency):
  // kApplication only when every member's guest was frozen through it.
  Consistency consistency = Consistency::kCrash;
};

// An export in progress (Catalog::InsertExportIntent): recovery removes what
// it left if it never finished.
struct ExportIntent {
  std::string directory;    // the export's directory, as requested
  std::string snapshot_id;  // the snapshot being exported
  // The outermost directory the export created (`directory` or one of its
  // parents), or empty when `directory` existed, empty, before it began.
  std::string made;
  // An export across hosts, on its coordinator: its parts are the hosts'
  // (engine/spanning_snapshots.h takes it back, not the export's own recovery).
  bool across_hosts = false;
};

// A backup session serving a group snapshot's frozen images
// (Catalog::InsertBackupIntent), recorded before anything is served:
// recovery ends what it left serving and takes away the snapshot it took.
struct BackupIntent {
  std::string id;  // the session's GUID
  std::string collection_id;
  std::string snapshot_id;     // the snapshot whose frozen images it serves
  bool took_snapshot = false;  // taken for the session (and destroyed with it)
  std::string directory;       // holds the session's sockets, one per VM
  std::vector<std::string> vm_ids;
};

// A backup session across hosts, on its coordinator: one session of each
// host's own (hosts[i] serves with session sessions[i]) on its part of
// snapshot `snapshot_id` across hosts. Recorded before the snapshot is
// taken; the hosts' sessions once every host serves.
struct SpanningBackupIntent {
  std::string id;  // the session's GUID on the coordinator
  std::string collection_id;
  std::string snapshot_id;
  bool took_snapshot = false;  // taken for the session (and destroyed with it)
  std::vector<std::string> hosts;
  std::vector<std::string> sessions;
};

// CIM_ConcreteJob states used by vmgroup (reference §11).
enum class JobState {
  kNew = 2,
  kStarting = 3,
  kRunning = 4,
  kCompleted = 7,
  kTerminated = 8,
  kKilled = 9,
  kException = 10,
  // Vendor value Microsoft's samples read as "completed with warnings": the
  // work succeeded; ErrorDescription says what the caller should know.
  kCompletedWithWarnings = 32768,
};

struct JobRecord {
  std::string id;
  int type = 0;             // JobType (e.g. 198 Snapshot Collection)
  std::string description;  // what the job does, for people
  bool cancellable = false;
  JobState state = JobState::kNew;
  int percent = 0;
  int error_code = 0;
  std::string error_description;
  int64_t created_us = 0, started_us = 0, ended_us = 0;
  // The objects the job created or touched, as "<CIM class>:<id>".
  std::vector<std::string> affected;
};

}  // namespace vmgroup::catalog
