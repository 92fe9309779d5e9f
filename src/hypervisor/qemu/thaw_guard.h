// The QEMU driver's ThawGuard: a process forked from the caller that sends
// guest-fsfreeze-thaw to each guest agent when its time is up or the moment
// the caller dies (its end of a socket pair the caller alone holds sees EOF),
// unless disarmed first. It thaws through copies of the caller's own agent
// channels, inherited by the fork: a QEMU agent socket serves one client at
// a time, so a guard connecting anew would wait behind a caller that stalled
// with its channel open, and an agent may take a poll interval to notice a
// new connection. Between fork and exit the guard makes only
// async-signal-safe system calls on data prepared before the fork: it is a
// fork of a multithreaded process.
#pragma once

#include <memory>
#include <vector>

#include "hypervisor/driver.h"

namespace vmgroup::hypervisor::qemu {

// Guards the agents connected at `agent_fds` (the caller keeps its own);
// IoError when the process cannot start.
Result<std::unique_ptr<ThawGuard>> StartThawGuard(const std::vector<int>& agent_fds,
                                                  Duration within);

}  // namespace vmgroup::hypervisor::qemu
