// Unix stream sockets by path: the one place vmgroup fills a sockaddr_un
// and connects to one (QEMU's monitor and agent channel, the daemon's own
// socket, tests' raw clients).
#pragma once

#include <sys/un.h>

#include <string>

#include "base/env.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace vmgroup {

// The address of the unix socket at `path`, for bind(2) or connect(2).
// InvalidArgument when `path` does not fit a unix socket's address.
Result<sockaddr_un> UnixAddress(const std::string& path);

// A blocking stream socket (close-on-exec) connected to the unix socket at
// `path`. While nobody accepts there (no socket file yet, a refusal, a full
// backlog, ...), tries again every 10 ms (env->SleepFor) until `deadline`, a
// point on env's clock; a deadline that has passed means one try.
// OK: the connection. InvalidArgument: `path` is too long. IoError: no
// socket could be made. Unavailable: no connection by `deadline`, naming
// `path` and why the last try failed (its errno, as strerror says it).
Result<UniqueFd> ConnectUnix(Env* env, const std::string& path, Deadline deadline);

}  // namespace vmgroup
