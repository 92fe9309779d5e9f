// VmRegistry: the VMs vmgroup manages — their definitions in the catalog and,
// for those powered on, a live hypervisor::Vm handle. The one place that
// turns a catalog record into a hypervisor VmSpec.
//
// State directory layout (documented in docs/state-dir.md):
//   <state>/vms/<vm-id>/            run directory: qmp.sock, qemu.log, serial.log
//   <state>/vms/<vm-id>/disk<i>-<tag>.qcow2   overlays made by snapshots
//
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/env.h"
#include "catalog/catalog.h"
#include "hypervisor/driver.h"
#include "storage/qemu_img.h"

namespace vmgroup::engine {

// A disk of a new VM: an existing qcow2 image, or a new empty one of
// `new_bytes` that the registry creates in the VM's run directory.
struct DiskSpec {
  // Implicit: a list of paths reads as a list of disks.
  DiskSpec(std::string existing_path) : path(std::move(existing_path)) {}
  DiskSpec(const char* existing_path) : path(existing_path) {}
  static DiskSpec New(int64_t bytes) {
    DiskSpec d("");
    d.new_bytes = bytes;
    return d;
  }
  std::string path;
  int64_t new_bytes = 0;
};

struct VmDefinition {
  std::string name;
  std::string id;  // optional; a GUID is generated when empty
  int memory_mib = 128;
  int vcpus = 1;
  std::vector<DiskSpec> disks;  // existing images by absolute path, or new ones
  std::string kernel, initrd, append;
  std::vector<std::string> extra_args;
};

class VmRegistry {
 public:
  VmRegistry(Env* env, catalog::Catalog* catalog, hypervisor::Driver* driver,
             std::string state_dir);

  // Records a new VM, powered off. InvalidArgument for an empty name, bad
  // sizes or a relative disk path; FileNotFound for a missing disk image;
  // InvalidArgument for a disk that is not qcow2; AlreadyExists for a taken id.
  Result<std::string> Define(const VmDefinition& def);

  // Forgets a VM that is off: takes it out of its collections and removes
  // what the registry made for it (its run directory, the disks it
  // created); images the VM was defined with stay. InvalidState while it
  // is on or while snapshots of it exist.
  Status Undefine(const std::string& id);

  // Powers a VM on from its current images. InvalidState if it is not off.
  Status Start(const std::string& id);
  // Powers a VM off (QEMU quits). InvalidState if it is off.
  Status Stop(const std::string& id);
  // Operator pause and resume: the recorded power follows, so recovery
  // leaves an operator-paused VM paused.
  Status Pause(const std::string& id);
  Status Resume(const std::string& id);

  // Starts the VM's QEMU on `disks` from the memory state `incoming`, paused,
  // without recording it: the caller records it (with the disks) and hands
  // it over with Adopt, or powers it off. The VM must be off.
  Result<std::unique_ptr<hypervisor::Vm>> Launch(const std::string& id,
                                                 const std::vector<std::string>& disks,
                                                 const std::string& incoming);
  // Makes a Launched QEMU, now in the catalog, the VM's live one.
  void Adopt(const std::string& id, std::unique_ptr<hypervisor::Vm> live);
  // Ends QEMU `pid` if it is still this VM's (one Launched by a process that
  // died before recording it).
  Status EndStray(const std::string& id, int pid);

  // The live VM, or nullptr while it is off.
  std::shared_ptr<hypervisor::Vm> Live(const std::string& id);

  // Reconnects to every VM the catalog says is on. A VM whose QEMU is gone
  // is recorded as off. Returns the ids of the VMs found gone.
  Result<std::vector<std::string>> AttachAll();

  // Powers off every live VM (tests and the demo; the daemon leaves them running).
  Status StopAll();

  // A guard that thaws the filesystems of the live VMs `vms`, whose agent
  // channels are open (hypervisor::Driver::GuardThaw), after `within`, or at
  // once if this process dies: armed before freezing.
  Result<std::unique_ptr<hypervisor::ThawGuard>> GuardThaw(
      const std::vector<std::shared_ptr<hypervisor::Vm>>& vms, Duration within) {
    return driver_->GuardThaw(vms, within);
  }

  std::string RunDir(const std::string& id) const { return state_dir_ + "/vms/" + id; }
  hypervisor::VmSpec SpecOf(const catalog::VmRecord& vm) const;

 private:
  Env* env_;
  catalog::Catalog* catalog_;
  hypervisor::Driver* driver_;
  storage::QemuImg img_;
  const std::string state_dir_;

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<hypervisor::Vm>> live_;  // guarded by mu_
};

}  // namespace vmgroup::engine
