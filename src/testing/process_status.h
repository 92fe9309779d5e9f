// What /proc says about a process (tests only).
#pragma once

#include <string>
#include <vector>

namespace vmgroup::testing {

// The value of `field` in /proc/<pid>/status ("Seccomp" -> "2", "Uid" ->
// "993\t993\t993\t993", ...); "" when the process or the field is missing.
std::string ProcessStatus(int pid, const std::string& field);

// The pids of the processes whose command line names VM `uuid` (-uuid
// UUID): its QEMUs, held or running; zombies (whose command line is empty)
// are not counted. A fresh VM id is the test's own: no other test's
// processes are seen.
std::vector<int> QemusOf(const std::string& uuid);

}  // namespace vmgroup::testing
