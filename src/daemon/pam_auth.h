// PAM checks of HTTP Basic credentials, as CIM servers on Linux do: the
// PAM service "vmgroupd" (dist/pam/vmgroupd) decides who may manage VMs.
#pragma once

#include <string>

namespace vmgroup::daemon {

// True if PAM authenticates `user` with `password` and its account checks
// pass. Blocks for PAM's failure delay on a wrong password.
bool PamAuthenticate(const std::string& service, const std::string& user,
                     const std::string& password);

}  // namespace vmgroup::daemon
