// LibvirtVm: hypervisor::Vm over one libvirt domain (libvirt_driver.h maps
// each call). It has its own connection and its own worker thread
// (SerialWorker): every call runs on the worker, in order, so SendSwitch and
// SendResume return at once and the calls to several Vms run in parallel.
// A caller waits until its deadline; a libvirt call that outlives it keeps
// running on the worker (the calls after it queue behind), and is reported
// as Timeout. pid() is 0: QEMU is libvirtd's child, not ours.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hypervisor/driver.h"
#include "hypervisor/libvirt/domain_xml.h"
#include "hypervisor/libvirt/libvirt_connection.h"
#include "hypervisor/libvirt/serial_worker.h"

namespace vmgroup::hypervisor::libvirt {

class LibvirtVm final : public Vm {
 public:
  // Opens a connection of its own to `uri` and finds domain `uuid`:
  // NotFound when libvirt has no such domain, Unavailable while it is shut
  // off or when `uri` cannot be opened. `env` paces its waits for block jobs.
  // `spec` names the domain (uuid) and its run directory.
  static Result<std::unique_ptr<LibvirtVm>> Open(Env* env, const std::string& uri,
                                                 const VmSpec& spec);

  int pid() const override { return 0; }
  Result<RunState> State(Deadline deadline) override;
  Status Pause(Deadline deadline) override;
  Status Resume(Deadline deadline) override;
  Result<std::vector<std::string>> IoErrors(Deadline deadline) override;
  Status OpenOverlays(const std::vector<Overlay>& overlays, Deadline deadline) override;
  Status SendSwitch(const std::vector<Overlay>& overlays, const std::string& bitmap, bool pause,
                    Deadline deadline) override;
  Status AwaitSwitch(Deadline deadline, bool* paused) override;
  Status SendResume(Deadline deadline, bool save_state) override;
  Status AwaitResume(Deadline deadline) override;
  // OK: libvirt's switch keeps nothing for later.
  Status FinishSwitch(Deadline deadline) override;
  // NotSupported: memory states through libvirt come later.
  Status PrepareStateSave(const std::string& path, Deadline deadline) override;
  Status AwaitStateSaved(Deadline deadline) override;
  Status RevertOverlays(const std::vector<Overlay>& overlays) override;
  Result<std::vector<std::string>> ActiveImages(Deadline deadline) override;
  Status CommitImage(int disk, const std::string& top, const std::string& base,
                     Deadline deadline) override;
  // Change tracking through libvirt checkpoints (virDomainCheckpoint*), one
  // per tracking name: PrepareTracking creates it on the disks of
  // `overlays` while the domain runs, before the switch (so it marks a
  // superset of what is written after the cut; the snapshot then carries its
  // bitmaps into the new overlays). KeepTracking checks it is there (libvirt
  // carries its bitmap down when it merges an overlay). DropTracking deletes
  // it with its bitmaps. Trackings lists the domain's `vmgroup-*`
  // checkpoints; no other checkpoint is ever touched. CopyMarked reads the
  // frozen image's bitmap offline (frozen_copy.h), libvirt left out.
  Status PrepareTracking(const std::vector<Overlay>& overlays, const std::string& name,
                         Deadline deadline) override;
  Status KeepTracking(int disk, const std::string& image, const std::string& name,
                      Deadline deadline) override;
  Status DropTracking(int disk, const std::string& image, const std::string& name,
                      Deadline deadline) override;
  Result<std::vector<std::string>> Trackings(Deadline deadline) override;
  Status CopyMarked(int disk, const std::string& image, const std::string& name,
                    const std::string& target, Deadline deadline) override;
  // The frozen images served offline, libvirt left out (frozen_serving.h:
  // why not libvirt's pull-mode backup).
  Result<std::vector<ServedExport>> ServeImages(const NbdListen& at,
                                                const std::vector<ServedImage>& images,
                                                Deadline deadline) override;
  Status StopServing(const std::string& socket, Deadline deadline) override;
  // libvirt keeps its agent channel to itself: OpenAgent checks that the
  // agent answers (virDomainGetTime: reads the guest's clock, changes
  // nothing) and keeps nothing open.
  Status OpenAgent(Deadline deadline) override;
  Result<int> FreezeFilesystems(Deadline deadline) override;
  Result<int> ThawFilesystems(Deadline deadline) override;
  // NotSupported: libvirt has no call that asks the agent whether the
  // guest is frozen (QEMU's guest-fsfreeze-status is not exposed).
  Result<bool> FilesystemsFrozen(Deadline deadline) override;
  Status PowerOff() override;
  // virDomainShutdown (the guest's choice of ACPI or agent, as `virsh
  // shutdown`), then the domain's state read until it is shut off.
  Status Shutdown(Deadline deadline) override;

  const std::string& name() const { return name_; }
  const std::string& uuid() const { return uuid_; }

 private:
  struct SwitchOutcome {
    SwitchOutcome(Status s, bool p = false) : status(std::move(s)), paused(p) {}  // NOLINT
    Status status;
    bool paused;
  };

  LibvirtVm(Env* env, std::unique_ptr<LibvirtConnection> conn, DomainPtr dom, std::string uuid,
            std::string name, std::string run_dir);

  // Runs `call` on the worker and waits for it until `deadline`.
  template <typename R>
  R Call(Deadline deadline, const std::string& what, std::function<R()> call);

  // On the worker:
  Result<DomainXml> LiveXml();
  // The target of disk `disk` in `xml`: InvalidArgument when there is none.
  Result<const DomainDisk*> Disk(const DomainXml& xml, int disk);
  // Suspends (when `pause`), then takes the snapshot `snapshot_xml` (none
  // when empty).
  SwitchOutcome Switch(const std::string& snapshot_xml, bool pause);
  Status Revert(const std::vector<Overlay>& overlays, Deadline deadline);
  // Waits for the block job on `target` to be ready, then pivots to its base.
  Status Pivot(const std::string& target, Deadline deadline);
  // Waits until `target` has no block job left.
  Status WaitJobGone(const std::string& target, Deadline deadline);
  Status Commit(int disk, const std::string& top, const std::string& base, Deadline deadline);

  Env* env_;
  std::unique_ptr<LibvirtConnection> conn_;
  DomainPtr dom_;
  const std::string uuid_;
  const std::string name_;
  const std::string run_dir_;  // where a serving's daemon keeps its monitor and log
  // The live definition OpenOverlays read: SendSwitch builds the snapshot
  // from it without asking libvirt inside the pause.
  DomainXml opened_;
  // Between a Send* and its Await*.
  std::shared_future<SwitchOutcome> pending_switch_;
  bool pending_pause_ = false;
  // The checkpoint PrepareTracking made, for the SendSwitch that follows.
  std::string prepared_tracking_;
  std::shared_future<Status> pending_resume_;
  SerialWorker worker_;  // last: ends (running what is queued) before the domain is freed
};

}  // namespace vmgroup::hypervisor::libvirt
