#include "hypervisor/qemu/thaw_guard.h"

#include <poll.h>
#include <unistd.h>

#include "hypervisor/guard_process.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// 0xFF resets the agent's parser in case the caller died mid-command. No id:
// should the caller still read the channel, it skips the answer.
constexpr char kThaw[] = "\xff{\"execute\":\"guest-fsfreeze-thaw\"}\n";
// How long the guard waits for each agent to answer before the next one.
constexpr int kAnswerMs = 3000;

// In the guard process: async-signal-safe calls only.
void ThawAgents(const void*, int first_fd, int n) {
  for (int fd = first_fd; fd < first_fd + n; ++fd) {
    if (write(fd, kThaw, sizeof kThaw - 1) > 0) {
      pollfd answer{fd, POLLIN, 0};
      (void)poll(&answer, 1, kAnswerMs);  // the thaw is done when the agent answers
    }
  }
}

}  // namespace

Result<std::unique_ptr<ThawGuard>> StartThawGuard(const std::vector<int>& agent_fds,
                                                  Duration within) {
  VMG_ASSIGN_OR_RETURN(auto guard, StartGuardProcess(agent_fds, within, ThawAgents, nullptr));
  return std::unique_ptr<ThawGuard>(std::move(guard));
}

}  // namespace vmgroup::hypervisor::qemu
