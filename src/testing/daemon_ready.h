// AwaitDaemonReady (tests only): waits until a vmgroupd a test started
// serves, reading the port it chose from its log.
#pragma once

#include <cstddef>
#include <string>

#include "base/result.h"

namespace vmgroup::testing {

// Waits until the log at `log_path`, read from byte `from` on (what the
// daemon wrote since the test started it), says "vmgroupd ready", and
// returns the port it said it listens on at `host` ("listening on
// http(s)://<host>:<port>"; 0 when it named none there). Failed with the
// log when the process `pid` exits first, Timeout with the log after about
// 10 s.
Result<int> AwaitDaemonReady(int pid, const std::string& log_path, size_t from,
                             const std::string& host);

}  // namespace vmgroup::testing
