// Start-up recovery (DESIGN §4 step 6). After a crash at any instant it
// brings the state directory, the catalog and the running VMs back into
// agreement:
//   1. reconnect to every VM the catalog says is on (gone ones become off);
//   2. every Incomplete snapshot is completed if every member that ran at the
//      cut is alive and switched to its overlays, else undone (UndoSnapshot);
//      an application-consistent one first has its guests thawed (its
//      members keep crash consistency: what froze is not known any more);
//   3. an apply that never committed is undone (its VMs that ran run again);
//      a destroy that began is finished with the merges it stored;
//   4. every VM the catalog says is running but is paused is resumed (only a
//      cut pauses those); one QEMU paused on an I/O error stays paused and
//      is reported (resumed, it would retry into the same error);
//   5. overlay and memory-state files in VM run directories that no record
//      refers to are removed;
//   6. an export cut short is taken back (export_layout.h TakeBackExport):
//      what it wrote is removed, so that it can run again; one that only
//      had its manifest written is kept;
//   7. a restore cut short is taken back (export_restore.h TakeBackRestore):
//      its group, VMs and copied files are removed, so that it can run again;
//   8. a conversion to a reference point cut short before its snapshot's
//      destroy began is taken back: the record goes, the snapshot stays (a
//      conversion whose destroy began stands, that destroy finished in 3).
#pragma once

#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "engine/vm_registry.h"
#include "storage/qemu_img.h"

namespace vmgroup::engine {

struct RecoveryReport {
  std::vector<std::string> gone_vms;        // on in the catalog, QEMU gone
  std::vector<std::string> completed;       // snapshot ids
  std::vector<std::string> rolled_back;     // snapshot ids
  std::vector<std::string> resumed;         // VM ids
  std::vector<std::string> thawed;          // VM ids whose guest was still frozen
  std::vector<std::string> applies_undone;  // snapshot ids whose apply never committed
  // Snapshot ids whose apply had committed: its libvirt domains started again.
  std::vector<std::string> applies_finished;
  // Snapshot ids of this host's parts of applies across hosts, prepared and
  // left so for their coordinator's word (host_applies.h).
  std::vector<std::string> applies_held;
  std::vector<std::string> destroyed;      // snapshot ids whose destroy was finished
  std::vector<std::string> removed_files;  // orphaned overlays and memory states
  // Exports cut short: what they wrote was removed; or they had finished
  // (all but their intent) and are kept.
  std::vector<catalog::ExportIntent> exports_taken_back, exports_kept;
  std::vector<std::string> restores_taken_back;     // ids of the groups they were defining
  std::vector<std::string> conversions_taken_back;  // ids of the reference points they recorded
  // Backup sessions the last run left serving, ended (BackupSessions::Recover).
  std::vector<std::string> backup_sessions;
  // "VM a: disk 0 (/img.qcow2): no space left on device": VMs QEMU holds
  // paused on an I/O error, left so for the operator.
  std::vector<std::string> io_errors;
  // Snapshots that could not be cleaned now (they stay Incomplete and are
  // retried at the next start); OK when there were none.
  Status problems;

  // "recovered: 1 snapshot completed, 2 VMs resumed" or "nothing to recover".
  std::string Summary() const;
};

Result<RecoveryReport> Recover(Env* env, VmRegistry& vms, catalog::Catalog& catalog);

}  // namespace vmgroup::engine
