// Engine: the library's front door. Opens (or creates) a state directory,
// runs recovery, and hands out the parts: VMs, collections, snapshots.
//
//   auto engine = Engine::Open({.state_dir = "/var/lib/vmgroup"});
//   auto web = engine->collections().DefineCollection("web", "", kVirtualSystems);
//   engine->collections().AddMember(vm_id, *web);
//   auto snap = engine->snapshots().Create({.collection_id = *web});
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/env.h"
#include "catalog/catalog.h"
#include "engine/collections.h"
#include "engine/domain_sync.h"
#include "engine/export_restore.h"
#include "engine/peers.h"
#include "engine/recovery.h"
#include "engine/snapshot_engine.h"
#include "engine/vm_registry.h"
#include "hypervisor/driver.h"
#include "hypervisor/qemu/qemu_driver.h"

namespace vmgroup::engine {

struct EngineOptions {
  std::string state_dir = "/var/lib/vmgroup";
  Env* env = nullptr;                    // default: Env::Default()
  hypervisor::Driver* driver = nullptr;  // default: a QEMU driver owned by the engine
  hypervisor::qemu::QemuOptions qemu;    // for that default driver
  // Open libvirt connections by URI (owned by the caller, outliving the
  // engine): their domains become VMs (engine/domain_sync.h).
  std::map<std::string, hypervisor::Driver*> libvirt;
  SnapshotOptions snapshot;
  // The other hosts groups may span (peers.h), owned by the caller and
  // outliving the engine; null: none, and a member on another host is
  // refused.
  Peers* peers = nullptr;
  // group of the files vmgroup writes for people (exports, the catalog); -1: the process's group
  int admin_gid = -1;
};

class Engine {
 public:
  // Opens the catalog in `state_dir` (created if needed), recovers
  // (engine/recovery.h), then finds the domains of every libvirt
  // connection and follows them (DomainSync). InvalidArgument for a
  // relative state_dir; Unavailable when a connection cannot list its
  // domains.
  //
  // The state directory and its vms/ are made mode 0711 (anyone may pass
  // through to a file whose own mode lets them, as QEMU's user must reach
  // its images; nobody but the owner may list them), the catalog 0640 with
  // group admin_gid. IoError when they cannot be.
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);

  VmRegistry& vms() { return *vms_; }
  CollectionManager& collections() { return *collections_; }
  SnapshotEngine& snapshots() { return *snapshots_; }
  ExportRestorer& restorer() { return *restorer_; }
  catalog::Catalog& catalog() { return *catalog_; }
  const RecoveryReport& recovery() const { return recovery_; }
  const std::string& state_dir() const { return state_dir_; }

 private:
  Engine() = default;

  std::string state_dir_;
  std::unique_ptr<hypervisor::Driver> owned_driver_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<VmRegistry> vms_;
  std::unique_ptr<CollectionManager> collections_;
  std::unique_ptr<SnapshotEngine> snapshots_;
  std::unique_ptr<ExportRestorer> restorer_;
  std::unique_ptr<DomainSync> domains_;  // last: it uses the parts above
  RecoveryReport recovery_;
};

}  // namespace vmgroup::engine
