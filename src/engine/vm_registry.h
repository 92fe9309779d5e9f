// VmRegistry: the VMs vmgroup manages — their definitions in the catalog and,
// for those powered on, a live hypervisor::Vm handle. The one place that
// turns a catalog record into a hypervisor VmSpec.
//
// State directory layout (documented in docs/state-dir.md):
//   <state>/vms/<vm-id>/            run directory: qmp.sock, guard.sock, qemu.log, serial.log
//   <state>/vms/<vm-id>/disk<i>-<tag>.qcow2   overlays made by snapshots
//
// Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/vm_config.h"
#include "catalog/catalog.h"
#include "hypervisor/driver.h"
#include "storage/qemu_img.h"

namespace vmgroup::engine {

// How VmRegistry::Stop ends a VM: turned off (the default), or shut down
// by its guest (Hyper-V's Stop-VM, `virsh shutdown`).
struct StopOptions {
  bool shutdown = false;
  // How long the guest has to shut down.
  Duration timeout = std::chrono::seconds(60);
  // Turn the VM off when its guest has not shut down within `timeout`.
  bool force = false;
};

// The bounds of a VM definition, wherever it comes from (DefineSystem, the
// CLI, a restored export): Define refuses anything outside them, naming the
// value and its bounds. The services only parse numbers; the bounds live here.
// Below 16 MiB neither the firmware nor a kernel comes up.
inline constexpr int64_t kMinMemoryMib = 16;
// 1 TiB: more than any host vmgroup runs on offers one VM.
inline constexpr int64_t kMaxMemoryMib = 1048576;
inline constexpr int64_t kMinVcpus = 1;
// 255: the CPUs an xAPIC addresses; more need x2APIC with interrupt remapping.
inline constexpr int64_t kMaxVcpus = 255;
// Disks per VM: an export's disk indexes run from 0 to kMaxDisks - 1.
inline constexpr size_t kMaxDisks = 16;
// A new empty disk: 1 MiB (less holds no partition table and filesystem)
// to 64 TiB (qcow2 with 64 KiB clusters addresses far more; no VM here needs it).
inline constexpr int64_t kMinNewDiskBytes = int64_t{1} << 20;
inline constexpr int64_t kMaxNewDiskBytes = int64_t{64} << 40;
// The kernel command line: Linux on x86 takes at most 2048 bytes; twice that
// leaves room for other kernels without letting a request carry megabytes.
inline constexpr size_t kMaxKernelCommandLine = 4096;

// PATH_MAX: no longer name reaches a file.
inline constexpr size_t kMaxPathBytes = 4096;

// OK for a file or directory a client names (a disk, a kernel, an export
// directory): an absolute path, valid UTF-8 without control characters, at
// most kMaxPathBytes. InvalidArgument naming `what` otherwise.
Status CheckClientPath(const std::string& what, const std::string& path);

// A disk of a new VM: an existing qcow2 image, or a new empty one of
// `new_bytes` that the registry creates in the VM's run directory.
struct DiskSpec {
  // Implicit: a list of paths reads as a list of disks.
  DiskSpec(std::string existing_path) : path(std::move(existing_path)) {}
  DiskSpec(const char* existing_path) : path(existing_path) {}
  static DiskSpec New(int64_t bytes) {
    DiskSpec d("");
    d.create = true;
    d.new_bytes = bytes;
    return d;
  }
  std::string path;
  bool create = false;  // a new disk of new_bytes, not `path`
  int64_t new_bytes = 0;
};

struct VmDefinition {
  std::string name;
  std::string id;  // optional; a GUID is generated when empty
  VmConfig config;
  std::vector<DiskSpec> disks;  // existing images by absolute path, or new ones
};

class VmRegistry {
 public:
  VmRegistry(Env* env, catalog::Catalog* catalog, hypervisor::Driver* driver,
             std::string state_dir);

  // The Env the registry works through; deadlines for its VMs are on its clock.
  Env* env() const { return env_; }

  // The driver of a libvirt connection (owned by the caller, who keeps it
  // as long as the registry): the VMs whose record names `uri` are driven
  // through it. Domains reach the catalog through DomainSync.
  void AddConnection(const std::string& uri, hypervisor::Driver* driver);
  // nullptr when no connection to `uri` is open.
  hypervisor::Driver* Connection(const std::string& uri);
  std::vector<std::string> ConnectionUris();
  // Why vmgroup cannot snapshot VM `id` (hypervisor::DomainInfo::
  // unsupported, as DomainSync last found it); "" when it can.
  std::string Unsupported(const std::string& id);
  void SetUnsupported(const std::string& id, std::string why);

  // Records a new VM, powered off. InvalidArgument, naming the value, for
  // anything CheckBounds refuses, and for a file that is not fit to be
  // opened by QEMU: each disk image and, when given, the kernel and initrd
  // must be named by an absolute path and reached through no symbolic link
  // (storage/untrusted_files.h); each image and its whole backing chain
  // must pass our own qcow2 header checks (storage/image_check.h
  // InspectHostChain: no json: or protocol names, no external data file,
  // explicit backing formats), read before qemu-img or QEMU opens any of
  // them; and no image of the chain may be one vmgroup manages (another
  // VM's active disk, a snapshot's frozen image, an export's image...:
  // managed_images.h), InvalidArgument naming its owner. FileNotFound for
  // a missing file; AlreadyExists for a taken id. Unavailable for RAM on
  // huge pages when the host has too few of them free now
  // (base/huge_pages.h CheckHugePagesFree).
  Result<std::string> Define(const VmDefinition& def);

  // The bounds of a definition alone, without looking at any file: the
  // name (base/validate.h CheckName), a GUID id when given, memory (a
  // multiple of 2 MiB on huge pages), vCPUs,
  // the number of disks and each new disk's size (the k* bounds above),
  // the kernel command line (CheckText, kMaxKernelCommandLine), and the
  // kernel and initrd named by absolute paths without control characters
  // (an initrd or a command line only with a kernel). For a caller that
  // must refuse a definition before it does any work for it (a restore).
  static Status CheckBounds(const VmDefinition& def);

  // Forgets a VM that is off: takes it out of its collections and removes
  // what the registry made for it (its run directory, the disks it
  // created); images the VM was defined with stay. InvalidState while it
  // is on or while snapshots of it exist, and for a libvirt domain
  // (vmgroupd never undefines those).
  Status Undefine(const std::string& id);
  // Forgets the record of a libvirt domain that libvirt no longer knows:
  // out of its collections, its live handle dropped. InvalidState while
  // snapshots of it exist (they stay, and so does the record).
  Status ForgetDomain(const std::string& id);

  // Powers a VM on from its current images; with `paused`, its guest stays
  // paused (recorded so) without having run. InvalidState if it is not off.
  Status Start(const std::string& id, bool paused = false);
  // Stops a VM as `how` says: by default turns it off (QEMU quits, the
  // domain is destroyed: the plug pulled). InvalidState if it is off.
  //
  // A shutdown (`how.shutdown`) presses the guest's power button and waits
  // up to `how.timeout` for the VM to be off. When the guest has not shut
  // down by then: Timeout, and the VM runs on as it was, recorded running
  // (it may still shut down later), or, with `how.force`, it is turned off.
  // InvalidState for a paused VM, whose guest cannot act on the button,
  // unless `how.force` (turned off at once). Either way, once the VM is
  // off it is recorded off and its process forgotten.
  Status Stop(const std::string& id, const StopOptions& how = {});
  // Operator pause and resume: the recorded power follows, so recovery
  // leaves an operator-paused VM paused. Resume also resumes a VM recorded
  // running that QEMU paused on an I/O error (IoError): QEMU retries the
  // failed requests at once, and if they fail again it pauses the VM again,
  // which Resume reports as Failed with the new reason when it happens
  // within a second.
  Status Pause(const std::string& id);
  Status Resume(const std::string& id);

  // Why the hypervisor holds a powered-on VM paused on a failed disk
  // request (hypervisor::RunState::kIoError), as "disk 0 (/img.qcow2): no
  // space left on device" (several disks joined by "; "); "" when it does
  // not (off, running, paused by the operator or a cut). Timeout or Busy
  // when the VM is in the middle of a merge or a cut at `deadline`;
  // Unavailable when its QEMU is gone.
  Result<std::string> IoError(const std::string& id, Deadline deadline);

  // Starts the VM's QEMU on `disks` from the memory state `incoming`, paused,
  // without making it the VM's: the caller records it in the VM's record
  // (with the disks) and hands it over with Adopt, or ends it with Discard.
  // The VM must be off. Like Start, the process is in the catalog's
  // processes before it runs, so that recovery ends it if the VM's record
  // never names it.
  Result<std::unique_ptr<hypervisor::Vm>> Launch(const std::string& id,
                                                 const std::vector<std::string>& disks,
                                                 const std::string& incoming);
  // Makes the hypervisor's own definition of VM `id`, which is off, name
  // `disks` (hypervisor::Driver::DefineDisks): a libvirt domain is redefined
  // (no <backingStore> left); a VM of vmgroupd's own has no definition but
  // its record, which the caller keeps: OK, nothing done. The record is not
  // changed. InvalidState while the domain runs; Unavailable when its
  // connection is not open.
  Status DefineDisks(const std::string& id, const std::vector<std::string>& disks);
  // The change tracking of VM `id` while it is off, through its driver
  // (hypervisor::Driver::Trackings, DropTracking; for one that runs, its
  // live Vm's calls). Unavailable when its connection is not open.
  Result<std::vector<std::string>> OffTrackings(const std::string& id);
  Status DropOffTracking(const std::string& id, const std::string& name);
  // Keeps tracking `name` of disk `disk` of VM `id`, off, on `image`
  // through its driver (hypervisor::Driver::KeepTracking for a VM that is
  // off): NotSupported from a driver that cannot.
  Status KeepOffTracking(const std::string& id, int disk, const std::string& image,
                         const std::string& name);
  // Serving the frozen images of VM `id` while it is off, through its
  // driver (hypervisor::Driver::ServeImages, StopServing; for one that
  // runs, its live Vm's calls). Unavailable when its connection is not open.
  Result<std::vector<hypervisor::ServedExport>> ServeOff(
      const std::string& id, const hypervisor::NbdListen& at,
      const std::vector<hypervisor::ServedImage>& images);
  Status StopServingOff(const std::string& id, const std::string& socket);
  // Makes a Launched QEMU, now in the catalog, the VM's live one.
  void Adopt(const std::string& id, std::unique_ptr<hypervisor::Vm> live);
  // Forgets the live handle of a VM that is off now (a libvirt domain shut
  // off from outside).
  void Drop(const std::string& id);
  // Powers off a Launched QEMU that was never adopted and forgets its process.
  Status Discard(const std::string& id, std::unique_ptr<hypervisor::Vm> launched);

  // The live VM, or nullptr while it is off.
  std::shared_ptr<hypervisor::Vm> Live(const std::string& id);

  // At start-up: attaches every libvirt domain recorded running or paused
  // on an open connection (recorded off when it is shut off now), and
  // settles every QEMU the catalog's processes name, so that no VM has two. A VM that is on gets
  // its own QEMU back (the process its record names, still the same process by its start time,
  // answering its monitor); a VM whose QEMU is gone, or is another process now, is recorded as off.
  // Every other recorded process still running (started by a daemon that died before the VM's
  // record named it) is ended by pid, SIGTERM then SIGKILL; a pid now used by another process is
  // never signalled. Returns the ids of the VMs found gone.
  Result<std::vector<std::string>> AttachAll();

  // Powers off every live VM (tests and the demo; the daemon leaves them running).
  Status StopAll();

  // A guard that thaws the filesystems of the live VMs `vms`, whose agent
  // channels are open (hypervisor::Driver::GuardThaw), after `within`, or at
  // once if this process dies: armed before freezing. Each VM is guarded by
  // the driver it lives on (one guard per driver, disarmed and fired
  // together). InvalidArgument when a VM of `vms` is not one of this
  // registry's live handles.
  Result<std::unique_ptr<hypervisor::ThawGuard>> GuardThaw(
      const std::vector<std::shared_ptr<hypervisor::Vm>>& vms, Duration within);
  // A guard that resumes the live VMs `vms` after `within`, or at once if
  // this process dies (hypervisor::Driver::GuardResume): armed before
  // pausing them on another host's word (engine::LeasedPause). Each VM is
  // guarded by the driver it lives on, as GuardThaw's; NotSupported or
  // Unavailable from a driver that cannot guard one (the pause then goes on
  // unguarded, LeasedPause says).
  Result<std::unique_ptr<hypervisor::ResumeGuard>> GuardResume(
      const std::vector<std::shared_ptr<hypervisor::Vm>>& vms, Duration within);

  std::string RunDir(const std::string& id) const { return state_dir_ + "/vms/" + id; }
  const std::string& state_dir() const { return state_dir_; }
  hypervisor::VmSpec SpecOf(const catalog::VmRecord& vm) const;

 private:
  // The driver VM `vm` lives on: its libvirt connection's, or vmgroupd's
  // own. Unavailable when its libvirt connection is not open.
  Result<hypervisor::Driver*> DriverOf(const catalog::VmRecord& vm);
  // One guard over the live VMs `vms`: `arm` for each driver with the VMs
  // that live on it, one Set over the guards when there are several
  // (GuardThaw, GuardResume).
  template <typename Set, typename Guard>
  Result<std::unique_ptr<Guard>> GuardEach(
      const std::vector<std::shared_ptr<hypervisor::Vm>>& vms,
      const std::function<Result<std::unique_ptr<Guard>>(
          hypervisor::Driver*, const std::vector<std::shared_ptr<hypervisor::Vm>>&)>& arm);
  // Attaches libvirt domain `vm`, recorded on: false (and recorded off)
  // when it is shut off or gone; true when attached, or when its
  // connection is not open (it stays as recorded).
  Result<bool> AttachDomain(const catalog::VmRecord& vm);
  // Takes VM `id` out of every collection and deletes its record.
  Status DeleteRecord(const std::string& id);
  // Starts QEMU for VM `id` from `spec`, its process recorded in the
  // catalog before it runs; a process that did not come up is ended.
  Result<std::unique_ptr<hypervisor::Vm>> StartRecorded(const std::string& id,
                                                        const hypervisor::VmSpec& spec);
  // The shutdown of Stop: true once the guest shut down, false when the
  // VM is to be turned off instead (`how.force`); else the error Stop gives.
  Result<bool> ShutDown(const catalog::VmRecord& vm, hypervisor::Vm& live, const StopOptions& how);
  // Ends process `p` by pid if it is still that process (same start time),
  // then forgets it.
  Status EndRecorded(const catalog::ProcessRecord& p);
  // Forgets the record of VM `id`'s QEMU `pid`, which is gone.
  Status Forget(const std::string& id, int pid);
  // Resumes `live`, paused by QEMU on an I/O error, and watches it for
  // kRetrySettle: Failed if it pauses again.
  Status RetryIoError(const catalog::VmRecord& vm, hypervisor::Vm& live);

  Env* env_;
  catalog::Catalog* catalog_;
  hypervisor::Driver* driver_;
  storage::QemuImg img_;
  const std::string state_dir_;

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<hypervisor::Vm>> live_;  // guarded by mu_
  std::map<std::string, hypervisor::Driver*> connections_;       // guarded by mu_, by URI
  std::map<std::string, std::string> unsupported_;               // guarded by mu_, by VM id
};

}  // namespace vmgroup::engine
