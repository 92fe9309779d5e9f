// What /proc says about a process (tests only).
#pragma once

#include <string>

namespace vmgroup::testing {

// The value of `field` in /proc/<pid>/status ("Seccomp" -> "2", "Uid" ->
// "993\t993\t993\t993", ...); "" when the process or the field is missing.
std::string ProcessStatus(int pid, const std::string& field);

}  // namespace vmgroup::testing
