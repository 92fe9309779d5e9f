// The libvirt driver: the VMs libvirt already runs (its domains on one
// connection, local or remote) as hypervisor::Vm, driven only through
// libvirt's sanctioned API, never QMP passthrough: passthrough leaves
// libvirt's view of the disks stale, breaks its next snapshot and makes its
// backups copy stale data (measured on libvirt 9.0, see docs/libvirt.md).
//
// How each Vm call maps onto libvirt (one connection and one worker thread
// per Vm, so that a group's calls run in parallel):
//   Pause / Resume            virDomainSuspend / virDomainResume
//   OpenOverlays              checks the overlay files (made by the caller,
//                             each naming its base and format in its header)
//   SendSwitch / AwaitSwitch  suspend (when asked), then one disk-only,
//                             atomic external snapshot of the overlays with
//                             REUSE_EXT and NO_METADATA: libvirt records no
//                             snapshot of its own, vmgroup's catalog is the
//                             truth; its live and persistent definitions
//                             name the new images afterwards
//   RevertOverlays            active block commit of each switched overlay
//                             into its base, then pivot
//   CommitImage               virDomainBlockCommit (+ pivot for the active
//                             image)
//   State / IoErrors          virDomainGetState / virDomainGetDiskErrors
//   Freeze / Thaw             virDomainFSFreeze / virDomainFSThaw
//   PowerOff                  virDomainDestroy
// Driver::DefineDisks (a shut-off domain's disks, for apply and offline
// merges) is virDomainDefineXML of the rewritten inactive XML.
// Disk i is the i-th file-backed qcow2 disk (device "disk") of the domain's
// definition, as DomainInfo::disks lists them.
#pragma once

#include <memory>
#include <string>

#include "hypervisor/driver.h"

namespace vmgroup::hypervisor::libvirt {

class LibvirtDriver final : public Driver {
 public:
  // Opens `uri` (e.g. "qemu:///system", "qemu+ssh://host/system") and
  // starts watching its domain events. Unavailable, with libvirt's message,
  // when it cannot be opened.
  static Result<std::unique_ptr<LibvirtDriver>> Connect(Env* env, const std::string& uri);
  ~LibvirtDriver() override;

  const std::string& uri() const;

  Result<std::vector<DomainInfo>> List() override;
  void Watch(std::function<void()> changed) override;
  Result<std::unique_ptr<Vm>> Start(const VmSpec& spec,
                                    const std::function<Status(int pid)>& admit) override;
  // The inactive XML redefined as Start does it (sources replaced, every
  // <backingStore> removed), also when only a stale <backingStore> differs.
  Status DefineDisks(const VmSpec& spec) override;
  Result<std::unique_ptr<Vm>> Attach(const VmSpec& spec, int pid) override;
  // --- Change tracking of shut-off domains ---
  // Its `vmgroup-*` checkpoints. DropTracking: libvirt 9.0 removes a
  // checkpoint's bitmaps only from a running domain, so vmgroup removes
  // them from the images of the disks' chains (`qemu-img bitmap --remove`),
  // then deletes the checkpoint's metadata (METADATA_ONLY).
  Result<std::vector<std::string>> Trackings(const VmSpec& spec) override;
  Status DropTracking(const VmSpec& spec, const std::string& name) override;
  // --- Serving the frozen images of shut-off domains ---
  // As LibvirtVm's, offline (frozen_serving.h): the same whether the
  // domain runs or not.
  Result<std::vector<ServedExport>> ServeImages(const VmSpec& spec, const NbdListen& at,
                                                const std::vector<ServedImage>& images) override;
  Status StopServing(const VmSpec& spec, const std::string& socket) override;
  // Both run virsh per domain from the forked guard (libvirt_guard.h).
  Result<std::unique_ptr<ThawGuard>> GuardThaw(const std::vector<std::shared_ptr<Vm>>& vms,
                                               Duration within) override;
  Result<std::unique_ptr<ResumeGuard>> GuardResume(const std::vector<std::shared_ptr<Vm>>& vms,
                                                   Duration within) override;

  // --- Export and restore (issue 15) ---
  // ExportDefinition: virDomainGetXMLDesc(INACTIVE), without secrets, and
  // the kernel and initrd it names. PrepareRestore: domain_xml.h
  // SanitizeRestored, after checking that libvirt knows no domain of that
  // UUID or name. DefineRestored: the same check, then virDomainDefineXML
  // (libvirt would otherwise redefine a domain of that UUID).
  // UndefineRestored: virDomainUndefineFlags(NVRAM), images left.
  Result<ExportedDefinition> ExportDefinition(const std::string& uuid) override;
  Result<std::string> PrepareRestore(const RestoredDefinition& r) override;
  Result<DomainInfo> DefineRestored(const std::string& definition) override;
  Status UndefineRestored(const std::string& uuid) override;

 private:
  struct State;
  explicit LibvirtDriver(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace vmgroup::hypervisor::libvirt
