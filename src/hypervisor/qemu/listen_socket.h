// Listening sockets the QEMU driver makes for QEMU (its monitor, its agent
// channel, the NBD server of a backup session, on a unix socket or TCP):
// QEMU runs sandboxed and maybe as another user, so it never binds an
// address itself; it is handed the descriptor.
#pragma once

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmgroup::hypervisor::qemu {

// What ListenAt does with a file already at the path.
enum class ExistingFile {
  kReplace,  // a stale socket of an earlier run: removed first
  kRefuse,   // AlreadyExists, the file left as it is
};

// A listening socket (close-on-exec) at `path`, mode 0600: only this
// process's user may connect (the directory decides who may reach it at
// all). InvalidArgument when `path` does not fit a socket address;
// AlreadyExists (kRefuse) when something is at `path`; IoError otherwise.
Result<UniqueFd> ListenAt(const std::string& path, ExistingFile existing);

// A listening socket and the TCP port it listens on.
struct Listener {
  UniqueFd fd;
  int port = 0;  // 0 for a unix socket
};
// A listening TCP socket (close-on-exec) on numeric address `host` (IPv4
// or IPv6), on a port the kernel picks. InvalidArgument when `host` is no
// numeric address; IoError otherwise.
Result<Listener> ListenTcp(const std::string& host);

}  // namespace vmgroup::hypervisor::qemu
