// The vmgroupd under test, as the campaign's own child (the same command
// line tests/e2e/daemon_fixture.h uses: its state directory, a unix socket,
// --accel tcg), and the vmgroup CLI pointed at it. The QEMUs the daemon
// starts outlive it by design; they are found by the mount namespace the
// campaign made for itself (fault_injection.h), which only its own
// descendants share, never by name.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/env.h"

namespace vmgroup::campaign {

class DaemonProcess {
 public:
  DaemonProcess(std::string vmgroupd, std::string vmgroup, std::string state_dir,
                std::string socket, std::string log)
      : vmgroupd_(std::move(vmgroupd)),
        vmgroup_(std::move(vmgroup)),
        state_dir_(std::move(state_dir)),
        socket_(std::move(socket)),
        log_(std::move(log)) {}

  // Starts vmgroupd and waits (up to 2 minutes) until it logs that it is
  // ready, that is, until start-up recovery is done. Failed with the log's
  // tail when it exits or never gets ready.
  Status Start();
  // SIGKILL by PID, then waits until it is gone. OK when not running.
  Status Kill();
  // SIGTERM (running jobs finish first), then waits until it is gone.
  Status Stop();
  bool running() const { return pid_ > 0; }
  int pid() const { return pid_; }

  // vmgroup --connect unix:SOCKET args...; the exit code is the caller's
  // to read. Thread-safe.
  Result<CommandOutput> Cli(const std::vector<std::string>& args,
                            Duration timeout = std::chrono::minutes(3)) const;
  // The daemon's log from byte `from` on.
  std::string Log(size_t from = 0) const;

 private:
  std::string vmgroupd_, vmgroup_, state_dir_, socket_, log_;
  int pid_ = 0;
};

// The PIDs of the QEMU processes in this process's mount namespace (so
// started by this campaign's daemon), keyed by the VM id they were started
// with (-uuid).
std::map<std::string, std::vector<int>> OurQemus();

// Ends every QEMU OurQemus finds: SIGTERM, and SIGKILL to those still there
// after 20 s. By PID only.
void EndQemus();

}  // namespace vmgroup::campaign
