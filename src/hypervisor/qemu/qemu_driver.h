// The QEMU driver: runs each VM as a qemu-system-x86_64 process with its disks
// as -blockdev qcow2 nodes and a QMP monitor on a unix socket in the VM's
// run directory, and implements hypervisor::Vm over QMP.
//
// Block-node naming (private to this driver): disk i is device "vd<i>" whose
// initial nodes are "d<i>" (qcow2) over "f<i>" (file); an overlay with tag T
// is "d<i>-T" over "f<i>-T".
#pragma once

#include <memory>
#include <string>

#include "hypervisor/driver.h"

namespace vmgroup::hypervisor::qemu {

// Which accelerator QEMU uses.
enum class Accel {
  kAuto,  // KVM where the host offers it, else TCG: QEMU takes the first that opens
  kKvm,
  kTcg,  // software emulation: slower, but works everywhere, nested or not
};
// "auto", "kvm", "tcg" -> Accel; InvalidArgument for anything else.
Result<Accel> ParseAccel(const std::string& name);

struct QemuOptions {
  std::string binary = "qemu-system-x86_64";
  Accel accel = Accel::kAuto;
  // How long QEMU may take from spawn to an answering monitor.
  Duration start_timeout = std::chrono::seconds(30);
};

class QemuDriver final : public Driver {
 public:
  explicit QemuDriver(Env* env, QemuOptions options = {});

  Result<std::unique_ptr<Vm>> Start(const VmSpec& spec) override;
  Result<std::unique_ptr<Vm>> Attach(const VmSpec& spec, int pid) override;
  Result<std::unique_ptr<ThawGuard>> GuardThaw(const std::vector<std::shared_ptr<Vm>>& vms,
                                               Duration within) override;

  // The full command line Start() runs for `spec` (exposed for tests).
  std::vector<std::string> CommandLine(const VmSpec& spec) const;

  static std::string MonitorPath(const VmSpec& spec) { return spec.run_dir + "/qmp.sock"; }
  static std::string LogPath(const VmSpec& spec) { return spec.run_dir + "/qemu.log"; }
  static std::string SerialPath(const VmSpec& spec) { return spec.run_dir + "/serial.log"; }

 private:
  Env* env_;
  QemuOptions options_;
};

}  // namespace vmgroup::hypervisor::qemu
