// The QEMU driver's ResumeGuard: a process forked from the caller that sends
// `cont` to each QEMU when its time is up or the moment the caller dies (its
// end of a socket pair the caller alone holds sees EOF), unless disarmed
// first. It speaks to each QEMU on a monitor of its own, the guard monitor
// every QEMU vmgroupd starts has beside the one its Vm uses: a QMP monitor
// serves one client at a time, so the guard could neither share the
// caller's connection (a command of the caller's may be half written) nor
// connect anew while the caller holds it. The connections are made and
// negotiated (greeting, qmp_capabilities) here, before the fork; the guard
// then only writes `cont` on each and waits for its answer (QEMU drops a
// command still queued when its client hangs up), async-signal-safe
// system calls only: it is a fork of a multithreaded process.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/env.h"
#include "hypervisor/driver.h"

namespace vmgroup::hypervisor::qemu {

// Guards the QEMUs whose guard monitors listen at `monitors`. Unavailable,
// naming the socket, when one does not answer by `deadline` (on env's
// clock; another client holds it, or its QEMU is gone); IoError when the
// process cannot start. The guard's connections are its own: this process
// keeps none of them.
Result<std::unique_ptr<ResumeGuard>> StartResumeGuard(Env* env,
                                                      const std::vector<std::string>& monitors,
                                                      Duration within, Deadline deadline);

}  // namespace vmgroup::hypervisor::qemu
