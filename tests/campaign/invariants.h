// What must hold after every step of the campaign, whatever was killed or
// full. Each check returns the violations it saw (empty: it holds); a
// violation's kind is what the figures count, its detail what a person
// needs to find it (ids, paths, the state seen).
//
// REQUIRES for the checks of a settled state: vmgroupd running, and no job
// of it running (a step's work finished, failed or was ended by recovery).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "daemon_process.h"

namespace vmgroup::campaign {

struct Violation {
  std::string kind;
  std::string detail;
  std::string vm_id;  // the VM it concerns, if one
  int stray_pid = 0;  // a QEMU of the campaign's that no VM should have, if one
};
using Violations = std::vector<Violation>;

class Invariants {
 public:
  Invariants(DaemonProcess& daemon, std::string state_dir, std::string export_root,
             std::string scratch_dir, std::vector<std::string> ignored_files)
      : daemon_(daemon),
        state_dir_(std::move(state_dir)),
        export_root_(std::move(export_root)),
        scratch_(std::move(scratch_dir) + "/image.raw"),
        ignored_(std::move(ignored_files)) {}

  // Just after a restart, before anything new is asked: every job the dead
  // daemon left has a terminal state.
  Violations JobsEnded(catalog::Catalog& catalog);

  // Backup sessions the dead daemon left: recorded in its catalog, and the
  // sockets under <state>/backups. Read after the kill, before the restart.
  struct DeadSessions {
    std::vector<catalog::BackupIntent> intents;
    std::vector<std::string> sockets;
  };
  DeadSessions NoteDeadSessions(catalog::Catalog& catalog);
  // Just after the restart (backup_invariants.cc): the daemon lists no
  // session, its catalog records none, <state>/backups holds nothing, no
  // snapshot a dead session took is left, and no QEMU serves any more on a
  // dead session's socket (nbdinfo cannot read it, no process listens on it).
  Violations SessionsEnded(catalog::Catalog& catalog, const DeadSessions& dead);
  // A QEMU of VM `vm_id` was killed or stopped where its change tracking
  // may be lost (SIGKILL, a full disk): an incremental of it may fall back
  // to a full read from now on.
  void NoteTrackingLost(const std::string& vm_id) { tracking_lost_.insert(vm_id); }

  // States and processes: one QEMU per VM that is on and none for one that
  // is off, with the PID the catalog holds; every VM in the power state the
  // catalog says it was asked for, running guests writing (a new "wrote"
  // line within a minute); every snapshot Complete; every file under the
  // state directory known to the catalog and every file it names present;
  // every export directory holding its manifest; backup sessions as
  // Sessions checks them.
  Violations Settled(catalog::Catalog& catalog, const std::vector<std::string>& guests);

  // Images (image_invariants.cc): `qemu-img check` clean on every frozen
  // image and on the active images of VMs that are off; every frozen image
  // a gap-free prefix of its guest's records and, as data, what it was when
  // first seen after its cut; every base unchanged since the campaign made it.
  Violations Images(catalog::Catalog& catalog);
  // Remembers the digest of a base (a shared template) to compare with later.
  Status NoteBase(const std::string& path);

  // At the end, with every guest stopped: each guest's active image holds
  // every record its guest acknowledged since it last (re)started.
  Violations AcknowledgedKept(catalog::Catalog& catalog, const std::vector<std::string>& guests);

 private:
  // A backup session's end destroys the snapshot it took outside any job:
  // one that idled out while a job held the group ends just after that job,
  // its snapshot Destroying for a while after the step's jobs are done
  // (seed 1796521368608996542, under ASan). Waits up to a minute for the
  // snapshots of sessions to be Complete or gone; what remains then is a
  // violation Settled reports.
  void AwaitSessionSnapshots(catalog::Catalog& catalog);
  Violations Processes(catalog::Catalog& catalog);
  Violations PowerStates(catalog::Catalog& catalog, const std::vector<std::string>& guests);
  Violations Files(catalog::Catalog& catalog);
  Violations Exports();
  // Backup sessions (backup_invariants.cc): every one the daemon lists has
  // its sockets, its snapshot Complete and a reader can connect (nbdinfo
  // --size); an incremental one offers each disk's changes as a context,
  // not a full read, unless the VM's tracking was lost (NoteTrackingLost);
  // every session the catalog records is listed; no snapshot a session took
  // is left by a session no longer listed.
  Violations Sessions(catalog::Catalog& catalog);
  // The records 1..k image `path` holds (through its chain) and its data's
  // digest; Failed if a record follows a gap.
  struct Content {
    int64_t records = 0;
    std::string digest;
  };
  Result<Content> Read(const std::string& path);

  DaemonProcess& daemon_;
  std::string state_dir_, export_root_, scratch_;
  std::vector<std::string> ignored_;
  // By "<snapshot id>/<vm id>/<disk index>": the frozen image's content at first sight.
  std::map<std::string, Content> frozen_;
  std::map<std::string, std::string> bases_;  // path -> file digest
  std::set<std::string> tracking_lost_;       // VM ids (NoteTrackingLost)
};

}  // namespace vmgroup::campaign
