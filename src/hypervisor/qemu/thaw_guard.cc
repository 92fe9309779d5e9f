#include "hypervisor/qemu/thaw_guard.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vmgroup::hypervisor::qemu {
namespace {

// 0xFF resets the agent's parser in case the caller died mid-command. No id:
// should the caller still read the channel, it skips the answer.
constexpr char kThaw[] = "\xff{\"execute\":\"guest-fsfreeze-thaw\"}\n";
// How long the guard waits for each agent to answer before the next one.
constexpr int kAnswerMs = 3000;
constexpr int kGuardFd = 3;
// What the caller sends: end without a thaw, or thaw at once.
constexpr char kDisarm = 'x';
constexpr char kThawNow = 't';

// `scratch` has room for agents.size() descriptors (no allocation after fork).
[[noreturn]] void Guard(int read_fd, const std::vector<int>& agents, int* scratch, int within_ms) {
  setsid();  // out of the caller's process group and its signals
  // Not the caller's signal state (the daemon blocks SIGTERM): a guard ends
  // on SIGTERM like any process. SIGPIPE stays ignored: a write to a guest
  // whose QEMU is gone must not end it before it thawed the others.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Keep the caller's end at kGuardFd and the agents right above it: copy
  // each out of the way first, so that no dup2 lands on one still needed.
  const int n = static_cast<int>(agents.size());
  const int above = kGuardFd + 1 + n;
  const int guard_copy = fcntl(read_fd, F_DUPFD, above);
  for (int i = 0; i < n; ++i) scratch[i] = fcntl(agents[i], F_DUPFD, above);
  dup2(guard_copy, kGuardFd);
  for (int i = 0; i < n; ++i) dup2(scratch[i], kGuardFd + 1 + i);
  close_range(above, ~0U, 0);  // the caller's end among them: EOF means it died
  pollfd wait{kGuardFd, POLLIN, 0};
  if (poll(&wait, 1, within_ms) > 0) {
    char c;
    if (read(kGuardFd, &c, 1) == 1 && c == kDisarm) _exit(0);
  }
  for (int i = 0; i < n; ++i) {
    const int fd = kGuardFd + 1 + i;
    if (write(fd, kThaw, sizeof kThaw - 1) > 0) {
      pollfd answer{fd, POLLIN, 0};
      (void)poll(&answer, 1, kAnswerMs);  // the thaw is done when the agent answers
    }
  }
  _exit(0);
}

class QemuThawGuard final : public ThawGuard {
 public:
  QemuThawGuard(int pid, int write_fd) : pid_(pid), write_fd_(write_fd) {}
  ~QemuThawGuard() override { Disarm(); }
  void Disarm() override { End(kDisarm); }
  void ThawNow() override { End(kThawNow); }

 private:
  void End(char order) {
    if (pid_ <= 0) return;
    // The guard may have ended already (its time was up): no SIGPIPE.
    (void)send(write_fd_, &order, 1, MSG_NOSIGNAL);
    close(write_fd_);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = 0;
  }

  int pid_;
  int write_fd_;
};

}  // namespace

Result<std::unique_ptr<ThawGuard>> StartThawGuard(const std::vector<int>& agent_fds,
                                                  Duration within) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(within).count();
  const int within_ms = static_cast<int>(std::max<int64_t>(0, ms));
  std::vector<int> scratch(agent_fds.size());
  int fds[2];
  // Close-on-exec: a QEMU started later must not hold the caller's end, or
  // the guard would never see the caller die.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return Status::IoError(std::string("thaw guard: socketpair: ") + std::strerror(errno));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return Status::IoError(std::string("thaw guard: fork: ") + std::strerror(errno));
  }
  if (pid == 0) Guard(fds[0], agent_fds, scratch.data(), within_ms);
  close(fds[0]);
  return std::unique_ptr<ThawGuard>(new QemuThawGuard(pid, fds[1]));
}

}  // namespace vmgroup::hypervisor::qemu
