// The process every driver's guards (ThawGuard, ResumeGuard) run in: forked
// from the caller, it waits until its time is up, the caller orders it
// (disarm: end without acting; act now) or the caller dies (its end of a
// socket pair the caller alone holds sees EOF), then acts through the
// driver's `act` (thaws the guests, resumes the VMs) and exits. Between fork
// and exit it makes only async-signal-safe system calls on data prepared
// before the fork: it is a fork of a multithreaded process.
#pragma once

#include <memory>
#include <vector>

#include "hypervisor/driver.h"

namespace vmgroup::hypervisor {

// Runs in the guard process, async-signal-safe only: thaws the guests or
// resumes the VMs. `fds` (the guard's copies of the descriptors handed to
// StartGuardProcess) are numbered first_fd, first_fd + 1, ...; `context` is
// the caller's, as it was at fork time.
using GuardActFn = void (*)(const void* context, int first_fd, int n_fds);

// The caller's handle on a guard process, as whichever guard its driver
// made of it: ThawNow and ResumeNow both have it act at once. Disarm and
// either of those wait for the process to end; destroying it disarms it.
class GuardProcess final : public ThawGuard, public ResumeGuard {
 public:
  GuardProcess(int pid, int write_fd) : pid_(pid), write_fd_(write_fd) {}
  ~GuardProcess() override;
  GuardProcess(const GuardProcess&) = delete;
  GuardProcess& operator=(const GuardProcess&) = delete;

  void Disarm() override;
  void ThawNow() override { ActNow(); }
  void ResumeNow() override { ActNow(); }

 private:
  void ActNow();
  void End(char order);

  int pid_;
  int write_fd_;
};

// Starts the guard, handing it copies of `fds`; IoError when the process
// cannot start.
Result<std::unique_ptr<GuardProcess>> StartGuardProcess(const std::vector<int>& fds,
                                                        Duration within, GuardActFn act,
                                                        const void* context);

}  // namespace vmgroup::hypervisor
