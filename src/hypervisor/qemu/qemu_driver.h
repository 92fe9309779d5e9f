// The QEMU driver: runs each VM as a qemu-system-x86_64 process with its disks
// as -blockdev qcow2 nodes and a QMP monitor on a unix socket in the VM's
// run directory (and a second one for the resume guard), and implements
// hypervisor::Vm over QMP.
//
// QEMU runs confined: under -sandbox (seccomp: no obsolete system calls, no
// privilege changes, no new processes, no scheduling or resource changes),
// with clean signals (SIGTERM ends it in order), and, given a user, as that
// user (qemu_user.h says what it is handed and how). Its monitor and agent
// sockets and its serial log are opened by the driver and passed to it.
//
// Block-node naming (private to this driver): disk i is device "vd<i>" whose
// initial nodes are "d<i>" (qcow2) over "f<i>" (file); an overlay with tag T
// is "d<i>-T" over "f<i>-T".
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "hypervisor/driver.h"
#include "hypervisor/qemu/qemu_user.h"

namespace vmgroup::hypervisor::qemu {

// Which accelerator QEMU uses.
enum class Accel {
  // KVM when it runs the accelerator probe's guest (accel_probe.h), else
  // TCG: a /dev/kvm that opens may still not run guests. Resolved once, by
  // QemuDriver::Create.
  kAuto,
  kKvm,
  kTcg,  // software emulation: slower, but works everywhere, nested or not
};
// "auto", "kvm", "tcg" -> Accel; InvalidArgument for anything else.
Result<Accel> ParseAccel(const std::string& name);
// The name ParseAccel reads, which is also QEMU's for kKvm and kTcg.
std::string AccelName(Accel accel);

struct QemuOptions {
  std::string binary = "qemu-system-x86_64";
  // What serves the disks of VMs that are off (ServeImages).
  std::string storage_daemon = "qemu-storage-daemon";
  Accel accel = Accel::kAuto;
  // The user QEMU runs as (QemuUser): only root can name another one than
  // its own. Empty: as this process. A daemon running as root names an
  // unprivileged one (vmgroupd: "vmgroup-qemu"); the cost is a chown of
  // each image QEMU is handed.
  std::string user;
  // How long QEMU may take from spawn to an answering monitor.
  Duration start_timeout = std::chrono::seconds(30);
  // How long kAuto's probe of KVM may take (AccelProbe::deadline).
  Duration probe_deadline = std::chrono::seconds(5);
};

class QemuDriver final : public Driver {
 public:
  // NotFound or InvalidArgument, saying what to fix, for a user QEMU cannot
  // run as (QemuUser::LookUp). Accel::kAuto is resolved here, once: QEMU
  // runs the probe's guest under KVM as the VMs' user (up to
  // options.probe_deadline), and a failure means TCG.
  static Result<std::unique_ptr<QemuDriver>> Create(Env* env, QemuOptions options = {});

  // The accelerator every VM runs under: kKvm or kTcg, never kAuto.
  Accel accel() const { return options_.accel; }
  // Why kAuto resolved to TCG (the KVM probe's failure); OK otherwise.
  const Status& kvm_refusal() const { return kvm_refusal_; }

  Result<std::unique_ptr<Vm>> Start(const VmSpec& spec,
                                    const std::function<Status(int pid)>& admit) override;
  Result<std::unique_ptr<Vm>> Attach(const VmSpec& spec, int pid) override;
  Result<std::unique_ptr<ThawGuard>> GuardThaw(const std::vector<std::shared_ptr<Vm>>& vms,
                                               Duration within) override;
  // Over each QEMU's guard monitor (resume_guard.h). Unavailable for a
  // QEMU that has none (started by an older vmgroupd, attached since): the
  // caller pauses it unguarded, or not at all.
  Result<std::unique_ptr<ResumeGuard>> GuardResume(const std::vector<std::shared_ptr<Vm>>& vms,
                                                   Duration within) override;
  // A qemu-storage-daemon per serving, run as QEMU is (storage_daemon.h).
  Result<std::vector<ServedExport>> ServeImages(const VmSpec& spec, const NbdListen& at,
                                                const std::vector<ServedImage>& images) override;
  Status StopServing(const VmSpec& spec, const std::string& socket) override;
  // A persistent dirty bitmap `name` added to `image` by qemu-img: the
  // offline merge (qemu-img commit) into `image` marks what it writes.
  Status KeepTracking(const VmSpec& spec, int disk, const std::string& image,
                      const std::string& name) override;

  // The full command line Start() runs for `spec`.
  std::vector<std::string> CommandLine(const VmSpec& spec) const;

  static std::string MonitorPath(const VmSpec& spec) { return spec.run_dir + "/qmp.sock"; }
  // The monitor reserved for the resume guard (GuardResume).
  static std::string GuardMonitorPath(const VmSpec& spec) { return spec.run_dir + "/guard.sock"; }
  static std::string LogPath(const VmSpec& spec) { return spec.run_dir + "/qemu.log"; }
  static std::string SerialPath(const VmSpec& spec) { return spec.run_dir + "/serial.log"; }

 private:
  QemuDriver(Env* env, QemuOptions options, std::optional<QemuUser> user, Status kvm_refusal)
      : env_(env),
        options_(std::move(options)),
        user_(std::move(user)),
        kvm_refusal_(std::move(kvm_refusal)) {}

  Env* env_;
  QemuOptions options_;
  std::optional<QemuUser> user_;  // who QEMU runs as, if not as this process
  Status kvm_refusal_;
};

}  // namespace vmgroup::hypervisor::qemu
