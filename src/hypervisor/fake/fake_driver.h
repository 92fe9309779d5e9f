// FakeDriver (tests only): a hypervisor::Driver of FakeVms, so that the
// engine's operations (create, apply, destroy, export, reference points)
// and its recovery run as fast unit tests, unchanged, without QEMU:
//
//   FakeDriver driver(&test_env);
//   auto engine = engine::Engine::Open(
//       {.state_dir = dir, .env = driver.env(), .driver = &driver});
//
// Like QemuDriver it drives the VMs vmgroupd defines itself (List is empty).
// Each VM it starts is a FakeVm (fake_vm.h) on the VM's real qcow2 files,
// run as a fake process: a pid above any the kernel hands out (kFirstPid
// on), which the Env of env() knows — its start time, whether it is alive,
// Kill and WaitGone — while every other call goes to `env`. The engine's
// own checks of its QEMUs (recorded processes, adoption at start-up, ending
// the strays) so run as they do on QEMU. The fake processes outlive an
// engine that is abandoned, as QEMUs outlive a vmgroupd that dies: a new
// engine on the same state directory Attaches to them again.
//
// It serves the disks of VMs that are off as a qemu-storage-daemon would:
// a serving outlives an abandoned engine, the trackings are those the VM's
// last fake process left in its images and those kept offline since
// (KeepTracking of a VM that is off, as qemu-img adds a bitmap), and the
// calls reach fault points "fake.serve-off", "fake.stop-serving-off" and
// "fake.keep-off".
//
// Start reaches fault point "fake.start" first, then, once its process is
// admitted, hypervisor::kFaultStarted, as QemuDriver does; Attach reaches
// "fake.attach" (Env::Hit, subject: the VM's name).
//
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/env.h"
#include "hypervisor/driver.h"
#include "hypervisor/fake/fake_vm.h"

namespace vmgroup::hypervisor::fake {

// Above PID_MAX_LIMIT (4194304 on 64-bit Linux): no real process has it.
inline constexpr int kFirstPid = 1 << 23;

class FakeDriver final : public Driver {
 public:
  // `env` (outliving the driver): what the driver's and its VMs' fault
  // points go through, and what the process Env wraps.
  explicit FakeDriver(Env* env);
  ~FakeDriver() override;

  // The Env to open the engine with (or to wrap): `env`, knowing the fake processes.
  Env* env();

  // The VM named `name` whose fake process is alive, or null.
  std::shared_ptr<FakeVm> Running(const std::string& name);
  // What was asked of the driver, in order: "start <name>", "start <name>
  // from <memory state>", "attach <name>", "guard <n> VMs", "thaw now",
  // "guard resume <n> VMs", "resume now".
  std::vector<std::string> calls();

  // The fake guard thaws every VM it guards on ThawNow, and nothing by time.
  Result<std::unique_ptr<ThawGuard>> GuardThaw(const std::vector<std::shared_ptr<Vm>>& vms,
                                               Duration within) override;
  // The fake resume guard resumes every VM it guards on ResumeNow, and
  // nothing by time.
  Result<std::unique_ptr<ResumeGuard>> GuardResume(const std::vector<std::shared_ptr<Vm>>& vms,
                                                   Duration within) override;
  // Unavailable when a disk or the memory state to load is missing (a QEMU
  // would not start); the VM is paused when `spec.paused` or it loads a state.
  Result<std::unique_ptr<Vm>> Start(const VmSpec& spec,
                                    const std::function<Status(int pid)>& admit) override;
  // Unavailable unless `pid` is the live fake process of VM `spec.uuid`.
  Result<std::unique_ptr<Vm>> Attach(const VmSpec& spec, int pid) override;
  // As FakeVm's (ServeFake) on `spec.disks`.
  Result<std::vector<ServedExport>> ServeImages(const VmSpec& spec, const NbdListen& at,
                                                const std::vector<ServedImage>& images) override;
  Status StopServing(const VmSpec& spec, const std::string& socket) override;
  // "keep-off <name>" in calls(); InvalidState while the VM's fake process
  // runs.
  Status KeepTracking(const VmSpec& spec, int disk, const std::string& image,
                      const std::string& name) override;
  // The socket VM `uuid`, off, is served on, or "" when none.
  std::string ServingOff(const std::string& uuid);
  // The trackings of VM `uuid` while it is off (name -> disk -> image):
  // those its last fake process left, and those kept offline since.
  std::map<std::string, std::map<int, std::string>> TrackingsOff(const std::string& uuid);

 private:
  class ProcessEnv;
  struct Process {
    std::string uuid, name;
    int64_t start_time = 0;
    std::shared_ptr<FakeVm> vm;
  };
  void Record(std::string call);
  // The live process `pid` is, or null. REQUIRES: mu_ held.
  Process* LiveLocked(int pid);
  // As TrackingsOff. REQUIRES: mu_ held.
  std::map<std::string, std::map<int, std::string>> TrackingsOffLocked(const std::string& uuid);

  Env* env_;
  std::unique_ptr<ProcessEnv> process_env_;
  std::mutex mu_;
  int next_pid_ = kFirstPid;                        // guarded by mu_
  std::map<int, Process> processes_;                // guarded by mu_, by pid
  std::vector<std::string> calls_;                  // guarded by mu_
  std::map<std::string, std::string> serving_off_;  // guarded by mu_: uuid -> socket
  // guarded by mu_: uuid -> the trackings KeepTracking added while it was off
  std::map<std::string, std::map<std::string, std::map<int, std::string>>> kept_off_;
};

}  // namespace vmgroup::hypervisor::fake
