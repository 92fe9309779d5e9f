// How many clients a unix socket server has, read from the kernel's table
// of unix sockets (/proc/net/unix): how a backup session tells it is idle,
// with no NBD client left on QEMU's server. The server is not asked, so
// this works for any server (QEMU, qemu-storage-daemon) without its help.
#pragma once

#include <string>

#include "base/env.h"
#include "base/result.h"

namespace vmgroup {

// The number of stream connections to the unix socket bound at `path` (the
// same string the server bound, as /proc/net/unix prints it) in this
// process's network namespace: those the server accepted and still holds
// open, and those waiting in its backlog; the listening socket itself is
// not counted. A client that has gone counts until the server closes its
// end (QEMU does as soon as it reads the end of the connection).
// Reads /proc/net/unix through `env` (env->ReadFile).
// OK: the count, 0 when nobody is connected or nothing is bound at `path`.
// IoError: the table cannot be read, or a line of it cannot be parsed.
Result<int> ConnectedPeers(Env* env, const std::string& path);

}  // namespace vmgroup
