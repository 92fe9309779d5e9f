// The libvirt driver's guards (ThawGuard, ResumeGuard): the shared guard
// process (hypervisor/guard_process.h) that, when its time is up or its
// caller died, acts on each domain through a libvirt connection of its own:
// it runs `virsh -c URI <command> UUID` per domain, each bounded by
// `timeout` (fork and exec are async-signal-safe; libvirt's library is not,
// in a fork of a multithreaded process). A thaw cannot share the caller's
// channel to the agent: libvirtd holds that one, and serialises the
// domain's agent calls behind the caller's (a caller stalled inside a
// freeze keeps the guard's thaw waiting until libvirt's agent timeout ends
// the freeze call). libvirtd outlives the caller, so the guard's own
// connection reaches the domains whatever became of the caller.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hypervisor/guard_process.h"

namespace vmgroup::hypervisor::libvirt {

// What the guard has virsh do to each domain.
enum class VirshAct {
  kThaw,    // domfsthaw: a ThawGuard
  kResume,  // resume: a ResumeGuard
};

// Unavailable when virsh (Debian's libvirt-clients) or timeout cannot be
// found on PATH; IoError when the process cannot start.
Result<std::unique_ptr<GuardProcess>> StartLibvirtGuard(const std::string& uri,
                                                        const std::vector<std::string>& uuids,
                                                        VirshAct act, Duration within);

}  // namespace vmgroup::hypervisor::libvirt
