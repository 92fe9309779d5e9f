// Bounded socket I/O shared by the QMP client and the HTTP transport: every
// wait ends at a deadline, EINTR is retried, a closed peer is Unavailable.
#pragma once

#include <string>
#include <string_view>

#include "base/env.h"
#include "base/status.h"

namespace vmgroup {

// Appends what `fd` has (waiting for it until `deadline`) to `buffer`.
// Timeout when nothing came in time; Unavailable when the peer closed.
Status ReadSome(int fd, Deadline deadline, std::string* buffer);

// Sends all of `data` (never raising SIGPIPE). Timeout when the peer stops
// reading; Unavailable when it is gone.
Status WriteAll(int fd, std::string_view data, Deadline deadline);

}  // namespace vmgroup
