// A helper process that must not outlive the daemon: qemu-img and
// qemu-storage-daemon write the images recovery judges, so one left running
// by a daemon killed mid-step would go on changing them after the next
// start's recovery has looked (campaign seeds 18 and 20). QEMUs are the
// opposite (they outlive the daemon by design) and are never started so.
#pragma once

#include <string>
#include <vector>

namespace vmgroup {

// `argv` as a command line to start from this process (Env::Run or
// Env::Spawn) that dies with it: setpriv asks the kernel for SIGKILL when
// the thread that started it ends, and the shell it runs execs `argv` only
// while its parent is still this process, which closes the window before
// setpriv has asked (a parent gone by then sends no signal). If the parent
// is gone, it exits 125 saying so on standard error.
std::vector<std::string> TiedToThisProcess(const std::vector<std::string>& argv);

}  // namespace vmgroup
