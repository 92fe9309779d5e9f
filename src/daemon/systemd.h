// vmgroupd under systemd: the listening sockets a socket unit passes
// (socket activation, sd_listen_fds(3)) and the readiness the service
// manager waits for (Type=notify, sd_notify(3)). Outside systemd nothing is
// passed and every notification is a no-op.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "daemon/options.h"

namespace vmgroup::daemon {

// For each of `listens`, in order, the socket systemd passed for it (a unix
// socket bound to its path; a TCP socket on its port), or -1 where the
// daemon binds its own (close-on-exec). InvalidArgument, naming it, when a
// passed socket matches no --listen: served by nobody, its clients would
// wait forever.
Result<std::vector<UniqueFd>> TakePassedSockets(const std::vector<Listen>& listens);

// Tells systemd the daemon serves (recovery done, every listener up).
void NotifyReady();
// Tells systemd the daemon is stopping (it finishes or rolls back a
// snapshot in progress first), with what it is doing.
void NotifyStopping(const std::string& status);

}  // namespace vmgroup::daemon
