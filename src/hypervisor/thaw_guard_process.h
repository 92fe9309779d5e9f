// The process every driver's ThawGuard runs in: forked from the caller, it
// waits until its time is up, the caller orders it (disarm: end without a
// thaw; thaw now) or the caller dies (its end of a socket pair the caller
// alone holds sees EOF), then thaws through the driver's `thaw` and exits.
// Between fork and exit it makes only async-signal-safe system calls on
// data prepared before the fork: it is a fork of a multithreaded process.
#pragma once

#include <memory>
#include <vector>

#include "hypervisor/driver.h"

namespace vmgroup::hypervisor {

// Runs in the guard process, async-signal-safe only: thaws the guests.
// `fds` (the guard's copies of the descriptors handed to StartGuardProcess)
// are numbered first_fd, first_fd + 1, ...; `context` is the caller's,
// as it was at fork time.
using GuardThawFn = void (*)(const void* context, int first_fd, int n_fds);

// Starts the guard, handing it copies of `fds`; IoError when the process
// cannot start. The returned ThawGuard's Disarm and ThawNow wait for the
// process to end; destroying it disarms it.
Result<std::unique_ptr<ThawGuard>> StartGuardProcess(const std::vector<int>& fds, Duration within,
                                                     GuardThawFn thaw, const void* context);

}  // namespace vmgroup::hypervisor
