// What must hold after every step of the campaign, whatever was killed or
// full. Each check returns the violations it saw (empty: it holds); a
// violation's kind is what the figures count, its detail what a person
// needs to find it (ids, paths, the state seen).
//
// REQUIRES for the checks of a settled state: vmgroupd running, and no job
// of it running (a step's work finished, failed or was ended by recovery).
#pragma once

#include <map>
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

  // States and processes: one QEMU per VM that is on and none for one that
  // is off, with the PID the catalog holds; every VM in the power state the
  // catalog says it was asked for, running guests writing (a new "wrote"
  // line within a minute); every snapshot Complete; every file under the
  // state directory known to the catalog and every file it names present;
  // every export directory holding its manifest.
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
  Violations Processes(catalog::Catalog& catalog);
  Violations PowerStates(catalog::Catalog& catalog, const std::vector<std::string>& guests);
  Violations Files(catalog::Catalog& catalog);
  Violations Exports();
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
};

}  // namespace vmgroup::campaign
