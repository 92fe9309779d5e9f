#include "catalog/schema.h"

#include <array>

namespace vmgroup::catalog {
namespace {

constexpr std::string_view kV1 = R"sql(
CREATE TABLE vms (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  memory_mib INTEGER NOT NULL,
  vcpus INTEGER NOT NULL,
  kernel TEXT NOT NULL DEFAULT '',
  initrd TEXT NOT NULL DEFAULT '',
  append TEXT NOT NULL DEFAULT '',
  extra_args TEXT NOT NULL DEFAULT '[]',  -- JSON array of strings
  power INTEGER NOT NULL DEFAULT 0,
  pid INTEGER NOT NULL DEFAULT 0,
  current_snapshot TEXT NOT NULL DEFAULT ''
);
CREATE TABLE disks (
  vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  image TEXT NOT NULL,
  PRIMARY KEY (vm_id, idx)
);
CREATE TABLE collections (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  type INTEGER NOT NULL,
  created_us INTEGER NOT NULL
);
CREATE TABLE collection_members (
  collection_id TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  member_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  PRIMARY KEY (collection_id, member_id)
);
CREATE TABLE snapshots (
  id TEXT PRIMARY KEY,
  collection_id TEXT NOT NULL,
  name TEXT NOT NULL,
  tag TEXT NOT NULL UNIQUE,
  type INTEGER NOT NULL,
  state INTEGER NOT NULL,
  created_us INTEGER NOT NULL,
  pause_window_us INTEGER NOT NULL DEFAULT 0,
  duration_us INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE member_snapshots (
  id TEXT PRIMARY KEY,
  snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  vm_id TEXT NOT NULL,
  parent_id TEXT NOT NULL DEFAULT '',
  power_at_cut INTEGER NOT NULL,
  cut_time_us INTEGER NOT NULL DEFAULT 0,
  pause_us INTEGER NOT NULL DEFAULT 0,
  position INTEGER NOT NULL
);
CREATE TABLE snapshot_disks (
  member_id TEXT NOT NULL REFERENCES member_snapshots(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  frozen_image TEXT NOT NULL,
  overlay TEXT NOT NULL,
  PRIMARY KEY (member_id, idx)
);
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  type INTEGER NOT NULL,
  state INTEGER NOT NULL,
  percent INTEGER NOT NULL DEFAULT 0,
  error_code INTEGER NOT NULL DEFAULT 0,
  error_description TEXT NOT NULL DEFAULT '',
  created_us INTEGER NOT NULL,
  started_us INTEGER NOT NULL DEFAULT 0,
  ended_us INTEGER NOT NULL DEFAULT 0,
  affected TEXT NOT NULL DEFAULT '[]'  -- JSON array of object ids
);
CREATE INDEX member_snapshots_by_vm ON member_snapshots(vm_id);
)sql";

// v2: what a job is, for people (Caption/Description) and whether it may be cancelled.
constexpr std::string_view kV2 = R"sql(
ALTER TABLE jobs ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN cancellable INTEGER NOT NULL DEFAULT 0;
)sql";

// v3: the snapshot last applied to each VM (Msvm_LastAppliedSnapshot).
constexpr std::string_view kV3 = R"sql(
ALTER TABLE vms ADD COLUMN last_applied TEXT NOT NULL DEFAULT '';
)sql";

// v4: an apply in progress, and the VMs to start again if it never commits.
constexpr std::string_view kV4 = R"sql(
CREATE TABLE apply_intents (
  snapshot_id TEXT PRIMARY KEY,
  restart TEXT NOT NULL DEFAULT '[]'  -- JSON array of VM ids that were running
);
)sql";

// v5: how a snapshot being destroyed (state 2) takes each disk's frozen
// image out of the tree, fixed before any image changes so that a destroy cut
// short is finished the same way.
constexpr std::string_view kV5 = R"sql(
CREATE TABLE disk_merges (
  snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  vm_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  frozen_image TEXT NOT NULL,
  child TEXT NOT NULL DEFAULT '',     -- merged into frozen_image, which takes its place
  others TEXT NOT NULL DEFAULT '[]',  -- JSON array: children made independent first
  PRIMARY KEY (snapshot_id, vm_id, idx)
);
)sql";

// v6: memory state of Standard snapshots, and the VMs an apply started
// from theirs before it committed (recovery ends them if it never does).
constexpr std::string_view kV6 = R"sql(
ALTER TABLE member_snapshots ADD COLUMN memory_state TEXT NOT NULL DEFAULT '';
ALTER TABLE apply_intents ADD COLUMN started TEXT NOT NULL DEFAULT '[]';  -- JSON ["<vm id>/<pid>"]
)sql";

// v7: reference points (Msvm_ReferencePointCollection): what a recovery
// snapshot leaves when converted — per member disk the image whose bitmap
// marks every change since the cut — and where snapshots were exported, so
// that an incremental export can build on the export of its base.
constexpr std::string_view kV7 = R"sql(
CREATE TABLE reference_points (
  id TEXT PRIMARY KEY,
  collection_id TEXT NOT NULL,
  name TEXT NOT NULL,
  snapshot_id TEXT NOT NULL,  -- the recovery snapshot it was
  bitmap TEXT NOT NULL,
  cut_us INTEGER NOT NULL,
  created_us INTEGER NOT NULL
);
CREATE TABLE reference_point_members (
  id TEXT PRIMARY KEY,
  rp_id TEXT NOT NULL REFERENCES reference_points(id) ON DELETE CASCADE,
  vm_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  images TEXT NOT NULL DEFAULT '[]'  -- JSON array: per disk, the image holding the bitmap
);
CREATE TABLE exports (
  snapshot_id TEXT NOT NULL,
  directory TEXT NOT NULL,
  exported_us INTEGER NOT NULL,
  PRIMARY KEY (snapshot_id, directory)
);
)sql";

// v8: application-consistent snapshots: the consistency asked for, the
// one each member got, and how long the guests stayed frozen.
constexpr std::string_view kV8 = R"sql(
ALTER TABLE snapshots ADD COLUMN consistency INTEGER NOT NULL DEFAULT 2;
ALTER TABLE snapshots ADD COLUMN freeze_window_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE member_snapshots ADD COLUMN consistency INTEGER NOT NULL DEFAULT 2;
)sql";

// v9: every QEMU the daemon started that may still run, recorded before it
// runs (its pid and start time name it for the host's uptime): recovery
// adopts the one a VM's record names and ends the others. It replaces the
// QEMUs an apply noted only once they had loaded their state.
constexpr std::string_view kV9 = R"sql(
CREATE TABLE processes (
  pid INTEGER NOT NULL,
  start_time INTEGER NOT NULL,  -- /proc/<pid>/stat field 22, clock ticks since boot
  vm_id TEXT NOT NULL,
  PRIMARY KEY (pid, start_time)
);
ALTER TABLE apply_intents DROP COLUMN started;
)sql";

// v10: exports in progress, so that recovery removes what one cut short by a
// crash left in its directory (only what it made: `made` is the outermost
// directory it created, '' when the directory was there, empty, before).
constexpr std::string_view kV10 = R"sql(
CREATE TABLE export_intents (
  directory TEXT PRIMARY KEY,
  snapshot_id TEXT NOT NULL,
  made TEXT NOT NULL DEFAULT ''
);
)sql";

// v11: VMs that live in libvirt (issue 15): the URI of the connection a
// domain is found on; '' for the VMs vmgroupd runs itself.
constexpr std::string_view kV11 = R"sql(
ALTER TABLE vms ADD COLUMN libvirt_uri TEXT NOT NULL DEFAULT '';
)sql";

// v12: restores in progress, so that recovery takes back the group, the VMs
// (libvirt domains undefined on their connection) and the copied files of
// one cut short by a crash (issues 14 and 15).
constexpr std::string_view kV12 = R"sql(
CREATE TABLE restore_intents (
  collection_id TEXT PRIMARY KEY,
  vm_ids TEXT NOT NULL DEFAULT '[]',        -- JSON array
  libvirt_uris TEXT NOT NULL DEFAULT '[]',  -- JSON array, by VM as vm_ids
  files TEXT NOT NULL DEFAULT '[]'          -- JSON array
);
)sql";

// v13: an apply's intent outlives its commit until the libvirt domains that
// ran are started again (recovery starts them if the daemon died first), and
// names those that were paused, to start them paused.
constexpr std::string_view kV13 = R"sql(
ALTER TABLE apply_intents ADD COLUMN paused TEXT NOT NULL DEFAULT '[]';  -- JSON array of VM ids
ALTER TABLE apply_intents ADD COLUMN committed INTEGER NOT NULL DEFAULT 0;
)sql";

// v14: backup sessions being served (issue 17), so that recovery ends what
// one left serving when the daemon died (the VMs' QEMUs serve on) and takes
// away the snapshot it took; and the consistency a reference point's cut had.
constexpr std::string_view kV14 = R"sql(
CREATE TABLE backup_intents (
  id TEXT PRIMARY KEY,
  collection_id TEXT NOT NULL,
  snapshot_id TEXT NOT NULL,
  took_snapshot INTEGER NOT NULL,
  directory TEXT NOT NULL,
  vm_ids TEXT NOT NULL DEFAULT '[]'  -- JSON array
);
ALTER TABLE reference_points ADD COLUMN consistency INTEGER NOT NULL DEFAULT 2;
)sql";

// v15: guest RAM on huge pages (issue 19).
constexpr std::string_view kV15 = R"sql(
ALTER TABLE vms ADD COLUMN hugepages INTEGER NOT NULL DEFAULT 0;
)sql";

// v16: a snapshot's members found by their snapshot, not by a scan of every
// member of every snapshot (issue 19: 1,000 snapshots of 64 VMs); also what
// deleting a snapshot cascades through.
constexpr std::string_view kV16 = R"sql(
CREATE INDEX member_snapshots_by_snapshot ON member_snapshots(snapshot_id, position);
)sql";

// v17: a host's part of a snapshot across hosts (issue 20), which only its
// coordinator completes.
constexpr std::string_view kV17 = R"sql(
ALTER TABLE snapshots ADD COLUMN coordinated INTEGER NOT NULL DEFAULT 0;
)sql";

// v18: groups that span hosts (issue 20), on their coordinator: members on
// other hosts, and each snapshot across hosts with the part of every host,
// recorded before any host is asked so that a restart can take back what a
// dead coordinator left.
constexpr std::string_view kV18 = R"sql(
CREATE TABLE remote_members (
  collection_id TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  host TEXT NOT NULL,
  vm_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  PRIMARY KEY (collection_id, host, vm_id)
);
CREATE TABLE spanning_snapshots (
  id TEXT PRIMARY KEY,
  collection_id TEXT NOT NULL,
  name TEXT NOT NULL,
  type INTEGER NOT NULL,
  state INTEGER NOT NULL,
  created_us INTEGER NOT NULL,
  window_us INTEGER NOT NULL DEFAULT 0,
  cut_spread_us INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE spanning_parts (
  snapshot_id TEXT NOT NULL REFERENCES spanning_snapshots(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  host TEXT NOT NULL,  -- '' for this host
  vm_ids TEXT NOT NULL DEFAULT '[]',  -- JSON array
  earliest_cut_us INTEGER NOT NULL DEFAULT 0,
  latest_cut_us INTEGER NOT NULL DEFAULT 0,
  longest_pause_us INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (snapshot_id, position)
);
)sql";

// v19: exports across hosts in progress, on their coordinator, so that a
// restart has the parts the hosts finished removed (issue 20).
constexpr std::string_view kV19 = R"sql(
ALTER TABLE export_intents ADD COLUMN across_hosts INTEGER NOT NULL DEFAULT 0;
)sql";

// v20: snapshots across hosts converted to reference points (issue 20): the
// reference point each host's part becomes.
constexpr std::string_view kV20 = R"sql(
ALTER TABLE spanning_snapshots ADD COLUMN reference_point_id TEXT NOT NULL DEFAULT '';
ALTER TABLE spanning_snapshots ADD COLUMN converted_us INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX spanning_reference_points ON spanning_snapshots(reference_point_id)
  WHERE reference_point_id != '';
)sql";

// v21: application-consistent snapshots across hosts: the ConsistencyLevel
// asked of every host.
constexpr std::string_view kV21 = R"sql(
ALTER TABLE spanning_snapshots ADD COLUMN consistency INTEGER NOT NULL DEFAULT 2;
)sql";

// v22: backup sessions across hosts, on their coordinator: the snapshot
// across hosts each serves and each host's own session, so that a restart
// ends them on every host and destroys the snapshot a session took.
constexpr std::string_view kV22 = R"sql(
CREATE TABLE spanning_backups (
  id TEXT PRIMARY KEY,
  collection_id TEXT NOT NULL,
  snapshot_id TEXT NOT NULL,
  took_snapshot INTEGER NOT NULL,
  hosts TEXT NOT NULL DEFAULT '[]',     -- JSON array: each host's name, '' for this host
  sessions TEXT NOT NULL DEFAULT '[]'   -- JSON array: each host's session id, by position
);
)sql";

// v23: applies across hosts (issue 20): a host's part of one is held,
// prepared, for its coordinator's word, also across a restart of this host
// (recovery leaves it be), with the tag that names its new overlays.
constexpr std::string_view kV23 = R"sql(
ALTER TABLE apply_intents ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE apply_intents ADD COLUMN tag TEXT NOT NULL DEFAULT '';
)sql";

constexpr std::array<std::string_view, 23> kMigrations = {
    kV1,  kV2,  kV3,  kV4,  kV5,  kV6,  kV7,  kV8,  kV9,  kV10, kV11, kV12,
    kV13, kV14, kV15, kV16, kV17, kV18, kV19, kV20, kV21, kV22, kV23};

}  // namespace

std::span<const std::string_view> Migrations() { return kMigrations; }

}  // namespace vmgroup::catalog
