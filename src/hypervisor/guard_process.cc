#include "hypervisor/guard_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vmgroup::hypervisor {
namespace {

constexpr int kGuardFd = 3;
// What the caller sends: end without acting, or act at once.
constexpr char kDisarm = 'x';
constexpr char kActNow = 't';

// `scratch` has room for fds.size() descriptors (no allocation after fork).
[[noreturn]] void Guard(int read_fd, const std::vector<int>& fds, int* scratch, int within_ms,
                        GuardActFn act, const void* context) {
  setsid();  // out of the caller's process group and its signals
  // Not the caller's signal state (the daemon blocks SIGTERM): a guard ends
  // on SIGTERM like any process. SIGPIPE stays ignored: a write to a guest
  // whose QEMU is gone must not end it before it acted on the others.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Keep the caller's end at kGuardFd and the others right above it: copy
  // each out of the way first, so that no dup2 lands on one still needed.
  const int n = static_cast<int>(fds.size());
  const int above = kGuardFd + 1 + n;
  const int guard_copy = fcntl(read_fd, F_DUPFD, above);
  for (int i = 0; i < n; ++i) scratch[i] = fcntl(fds[i], F_DUPFD, above);
  dup2(guard_copy, kGuardFd);
  for (int i = 0; i < n; ++i) dup2(scratch[i], kGuardFd + 1 + i);
  close_range(above, ~0U, 0);  // the caller's end among them: EOF means it died
  pollfd wait{kGuardFd, POLLIN, 0};
  if (poll(&wait, 1, within_ms) > 0) {
    char c;
    if (read(kGuardFd, &c, 1) == 1 && c == kDisarm) _exit(0);
  }
  act(context, kGuardFd + 1, n);
  _exit(0);
}

}  // namespace

GuardProcess::~GuardProcess() { Disarm(); }

void GuardProcess::Disarm() { End(kDisarm); }

void GuardProcess::ActNow() { End(kActNow); }

void GuardProcess::End(char order) {
  if (pid_ <= 0) return;
  // The guard may have ended already (its time was up): no SIGPIPE.
  (void)send(write_fd_, &order, 1, MSG_NOSIGNAL);
  close(write_fd_);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = 0;
}

Result<std::unique_ptr<GuardProcess>> StartGuardProcess(const std::vector<int>& fds,
                                                        Duration within, GuardActFn act,
                                                        const void* context) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(within).count();
  const int within_ms = static_cast<int>(std::max<int64_t>(0, ms));
  std::vector<int> scratch(fds.size());
  int pair[2];
  // Close-on-exec: a QEMU started later must not hold the caller's end, or
  // the guard would never see the caller die.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return Status::IoError(std::string("guard process: socketpair: ") + std::strerror(errno));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(pair[0]);
    close(pair[1]);
    return Status::IoError(std::string("guard process: fork: ") + std::strerror(errno));
  }
  if (pid == 0) Guard(pair[0], fds, scratch.data(), within_ms, act, context);
  close(pair[0]);
  return std::make_unique<GuardProcess>(pid, pair[1]);
}

}  // namespace vmgroup::hypervisor
