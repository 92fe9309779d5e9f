// qemu-storage-daemon, run by vmgroup to reach images no QEMU has open:
// the command line that opens images read-only beside whoever else reads
// them (libvirt's frozen copies, frozen_copy.h), and the NBD serving of the
// frozen images of a VM that is off (QemuDriver::ServeImages).
//
// A serving daemon outlives this process, as a VM's QEMU serving would: a
// backup session is ended by vmgroupd, also after a restart (its intent is
// recorded before it serves). It is recorded in "<socket>.pid" (its pid and
// start time, written before it runs; "<path>.pid" for a TCP serving at
// NbdListen path), so that StopServingOffline finds it again and never
// ends another process that reuses the pid.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/env.h"
#include "hypervisor/driver.h"
#include "hypervisor/qemu/qemu_user.h"

namespace vmgroup::hypervisor::qemu {

// The arguments after the binary's name that give the daemon a monitor on
// chardev socket options `monitor` ("path=..." or "fd=N") and open each
// (node name, qcow2 file) read-only and shared (force-share: whoever has the
// file open keeps it), through its backing chain.
std::vector<std::string> ReadOnlyDaemonArgs(
    const std::string& monitor, const std::vector<std::pair<std::string, std::string>>& images);

// Serves `images` of shut-off VM `spec` as Driver::ServeImages says, from a
// qemu-storage-daemon (`binary`) run as `user` (as this process when none).
Result<std::vector<ServedExport>> ServeOffline(Env* env, const std::string& binary,
                                               const std::optional<QemuUser>& user,
                                               const VmSpec& spec, const NbdListen& at,
                                               const std::vector<ServedImage>& images);

// Ends the daemon serving at `socket` (Driver::StopServing; NbdListen's
// path): OK when none does.
Status StopServingOffline(Env* env, const std::string& socket);

}  // namespace vmgroup::hypervisor::qemu
