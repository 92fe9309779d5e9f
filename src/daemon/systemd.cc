#include "daemon/systemd.h"

#include <systemd/sd-daemon.h>

namespace vmgroup::daemon {

namespace {

bool Matches(int fd, const Listen& l) {
  if (!l.unix_path.empty()) {
    return sd_is_socket_unix(fd, SOCK_STREAM, 1, l.unix_path.c_str(), 0) > 0;
  }
  // Port 0 (any free port) would match any: such a listener binds its own.
  return l.port != 0 &&
         sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, static_cast<uint16_t>(l.port)) > 0;
}

}  // namespace

Result<std::vector<UniqueFd>> TakePassedSockets(const std::vector<Listen>& listens) {
  std::vector<UniqueFd> taken(listens.size());
  // Unsets LISTEN_FDS and LISTEN_PID, so QEMUs and helpers the daemon
  // starts see none; sd_listen_fds marks the descriptors close-on-exec.
  const int n = sd_listen_fds(1);
  if (n < 0) return Status::IoError("the sockets systemd passed cannot be read");
  Status unmatched;
  for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; ++fd) {
    UniqueFd passed(fd);
    for (size_t i = 0; i < listens.size() && passed.valid(); ++i) {
      if (!taken[i].valid() && Matches(fd, listens[i])) taken[i] = std::move(passed);
    }
    if (passed.valid() && unmatched.ok()) {
      unmatched = Status::InvalidArgument(
          "systemd passed a socket (descriptor " + std::to_string(fd) +
          ") that no --listen names: give its path (unix:PATH) or port (https://HOST:PORT) "
          "to vmgroupd as well, or drop it from the socket unit");
    }
  }
  if (!unmatched.ok()) return unmatched;
  return taken;
}

void NotifyReady() { (void)sd_notify(0, "READY=1\nSTATUS=serving"); }

void NotifyStopping(const std::string& status) {
  (void)sd_notify(0, ("STOPPING=1\nSTATUS=" + status).c_str());
}

}  // namespace vmgroup::daemon
