// Planning a group snapshot: which SnapshotType values are accepted, and the
// record (members, overlay paths, parents) written as the snapshot's intent
// before anything is touched. Pure logic over catalog records.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/status.h"
#include "catalog/records.h"
#include "hypervisor/driver.h"

namespace vmgroup::engine {

// SnapshotType values (DESIGN §6).
inline constexpr int kSnapshotStandard = 1;      // disks + memory state of running members
inline constexpr int kSnapshotRecovery = 2;      // disks + change-tracking bitmap
inline constexpr int kSnapshotDiskOnly = 32768;  // vendor: Standard without memory

// OK for a type this build can take. InvalidArgument for 0 and the DMTF
// reserved range, InvalidType for unknown vendor values.
Status CheckSnapshotType(int type);

// "web - 2026-11-24 20:05:31 UTC": the name of a snapshot of group
// `group_name` taken at `us` (wall clock) that was given none, as Hyper-V
// names checkpoints after their time.
std::string DefaultSnapshotName(const std::string& group_name, int64_t us);

// The persistent dirty bitmap a snapshot adds on each new overlay (empty:
// none). Recovery snapshots anchor the next incremental backup.
std::string BitmapFor(int type, const std::string& tag);

// What snapshot `s`'s cut achieved for the group as a whole: kApplication
// only when every member's guest was frozen through it.
catalog::Consistency AchievedConsistency(const catalog::SnapshotRecord& s);

// Where a member's overlay for disk `index` lives.
std::string OverlayPath(const std::string& run_dir, int index, const std::string& tag);
// How long a member's whole RAM may take to stream into its state file,
// for the snapshot and for recovery alike.
inline constexpr auto kStateSaveTimeout = std::chrono::minutes(10);

// Where a member's memory state lives (Standard snapshots).
std::string MemoryStatePath(const std::string& run_dir, const std::string& tag);
// True for the names of the files snapshots make in a run directory
// (overlays and memory states): recovery removes those no record names.
bool IsSnapshotFileName(const std::string& name);

struct PlannedMember {
  const catalog::VmRecord* vm;
  std::string run_dir;
};

// The snapshot's record in state kIncomplete: each member's frozen images
// are its current active images, its overlays new files in its run dir;
// for a Standard snapshot a running member also gets a memory state file.
catalog::SnapshotRecord PlanSnapshot(const std::string& id, const std::string& tag,
                                     const std::string& collection_id, const std::string& name,
                                     int type, int64_t now_us,
                                     const std::vector<PlannedMember>& members,
                                     const std::vector<std::string>& member_ids);

// The overlays of one member, as the driver takes them: each on the image
// the snapshot froze (the one an undo merges it back into).
std::vector<hypervisor::Overlay> OverlaysOf(const catalog::MemberSnapshot& m,
                                            const std::string& tag);

}  // namespace vmgroup::engine
