// DomainSync: libvirt's domains in the catalog. vmgroupd does not define
// the domains of a libvirt connection, it finds them: each becomes a VM
// keyed by the domain's UUID, with its name, size, power and disks as
// libvirt describes them, and the connection's URI. Domains defined,
// undefined, renamed, started or stopped in libvirt while vmgroupd runs are
// followed: each driver event (hypervisor::Driver::Watch) leads to a new
// listing, and so does a quiet minute, in case an event was lost.
//
// A VM in a snapshot operation is left alone until the operation ends (its
// record is the operation's to change: disks during a cut, power while the
// cut pauses it), and so is what a listing read of it while one was under
// way; the end of an operation leads to a new listing. A domain that
// libvirt no longer knows loses its record, unless group snapshots of it
// remain. A domain whose UUID is already another VM's (vmgroupd's own, or
// one on another connection) is ignored, with a warning in the log.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "catalog/catalog.h"
#include "engine/snapshot_engine.h"
#include "engine/vm_registry.h"

namespace vmgroup::engine {

// The catalog record of domain `d` on `uri`, as DomainSync records it;
// `was`, when not null, is its record so far (what libvirt does not say is kept).
catalog::VmRecord RecordOfDomain(const hypervisor::DomainInfo& d, const std::string& uri,
                                 const catalog::VmRecord* was);

class DomainSync {
 public:
  DomainSync(catalog::Catalog* catalog, VmRegistry* vms, SnapshotEngine* snapshots)
      : catalog_(catalog), vms_(vms), snapshots_(snapshots) {}
  // Stops following.
  ~DomainSync();

  // Lists the domains on `uri` (an open connection of the registry's) and
  // makes the catalog and the registry's live handles agree with them.
  // Unavailable when libvirt cannot be reached; the first other error met
  // (the rest of the domains are still synced).
  Status Sync(const std::string& uri);

  // From now on syncs every connection whenever its driver reports a change
  // or an operation ends, and at least every minute, on a thread of its
  // own; failures are logged.
  void Follow();

 private:
  // Sync of every connection, logging what fails.
  void SyncAll();

  catalog::Catalog* catalog_;
  VmRegistry* vms_;
  SnapshotEngine* snapshots_;

  // What the drivers' callbacks reach: shared with them, so that a call
  // still under way when the sync goes finds it alive.
  struct Signal {
    std::mutex mu;
    std::condition_variable wake;
    bool changed = false;  // guarded by mu
    bool stop = false;     // guarded by mu
  };
  std::shared_ptr<Signal> signal_ = std::make_shared<Signal>();
  std::thread thread_;
};

}  // namespace vmgroup::engine
