// Bounded socket I/O shared by the QMP client and the HTTP transport: every
// wait ends at a deadline, EINTR is retried, a closed peer is Unavailable.
// A deadline is a point on `env`'s clock (env->Now()): the time left for a
// kernel wait is measured there, so a test clock that has passed the
// deadline ends the wait at once.
#pragma once

#include <string>
#include <string_view>

#include "base/env.h"
#include "base/status.h"

namespace vmgroup {

// Appends what `fd` has (waiting for it until `deadline`) to `buffer`.
// Timeout when nothing came in time; Unavailable when the peer closed.
Status ReadSome(Env* env, int fd, Deadline deadline, std::string* buffer);

// Sends all of `data` (never raising SIGPIPE). Timeout when the peer stops
// reading; Unavailable when it is gone.
Status WriteAll(Env* env, int fd, std::string_view data, Deadline deadline);

}  // namespace vmgroup
