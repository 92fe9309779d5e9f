// The QEMU driver's ThawGuard: a process forked from the caller that sends
// guest-fsfreeze-thaw to each guest agent when its time is up or the moment
// the caller dies (its end of a socket pair the caller alone holds sees EOF),
// unless disarmed first. Between fork and exit the guard makes only
// async-signal-safe system calls on data prepared before the fork: it is a
// fork of a multithreaded process.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hypervisor/driver.h"

namespace vmgroup::hypervisor::qemu {

// Guards the agents listening at `agent_sockets`; InvalidArgument for a
// path too long for a unix socket, IoError when the process cannot start.
Result<std::unique_ptr<ThawGuard>> StartThawGuard(const std::vector<std::string>& agent_sockets,
                                                  Duration within);

}  // namespace vmgroup::hypervisor::qemu
