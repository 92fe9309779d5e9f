// The libvirt driver's ThawGuard: the shared guard process
// (hypervisor/guard_process.h) that, when its time is up or its caller
// died, thaws each domain through a libvirt connection of its own: it runs
// `virsh -c URI domfsthaw UUID` per domain, each bounded by `timeout`. It
// cannot share the caller's channel to the agent: libvirtd holds that one,
// and serialises the domain's agent calls behind the caller's (a caller
// stalled inside a freeze keeps the guard's thaw waiting until libvirt's
// agent timeout ends the freeze call).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hypervisor/driver.h"

namespace vmgroup::hypervisor::libvirt {

// Unavailable when virsh (Debian's libvirt-clients) or timeout cannot be
// found on PATH; IoError when the process cannot start.
Result<std::unique_ptr<ThawGuard>> StartLibvirtThawGuard(const std::string& uri,
                                                         const std::vector<std::string>& uuids,
                                                         Duration within);

}  // namespace vmgroup::hypervisor::libvirt
