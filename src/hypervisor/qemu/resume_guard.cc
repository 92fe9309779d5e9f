#include "hypervisor/qemu/resume_guard.h"

#include <poll.h>
#include <unistd.h>

#include "hypervisor/guard_process.h"
#include "hypervisor/qemu/qmp_client.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// The id marks the answer among the events QEMU sends every monitor.
constexpr char kAnswerId[] = "vmg-resume-guard";
constexpr char kCont[] = "{\"execute\":\"cont\",\"id\":\"vmg-resume-guard\"}\n";
// How long the guard waits for each QEMU's next message before giving up on it.
constexpr int kAnswerMs = 3000;

// In the guard process: reads what QEMU sends until the answer carrying
// kAnswerId, EOF or a silence of kAnswerMs. kAnswerId's first letter occurs
// in it only once, so a mismatch restarts the match at that letter or before.
void AwaitAnswer(int fd) {
  char buf[512];
  size_t matched = 0;
  for (;;) {
    pollfd answer{fd, POLLIN, 0};
    if (poll(&answer, 1, kAnswerMs) <= 0) return;
    const ssize_t got = read(fd, buf, sizeof buf);
    if (got <= 0) return;
    for (ssize_t i = 0; i < got; ++i) {
      matched = buf[i] == kAnswerId[matched] ? matched + 1 : (buf[i] == kAnswerId[0] ? 1 : 0);
      if (matched == sizeof kAnswerId - 1) return;
    }
  }
}

// In the guard process: async-signal-safe calls only. Every `cont` goes out
// before any answer is awaited: the VMs run again together.
void ResumeAll(const void*, int first_fd, int n) {
  for (int fd = first_fd; fd < first_fd + n; ++fd) (void)write(fd, kCont, sizeof kCont - 1);
  for (int fd = first_fd; fd < first_fd + n; ++fd) AwaitAnswer(fd);
}

}  // namespace

Result<std::unique_ptr<ResumeGuard>> StartResumeGuard(Env* env,
                                                      const std::vector<std::string>& monitors,
                                                      Duration within, Deadline deadline) {
  std::vector<std::unique_ptr<QmpClient>> clients;
  std::vector<int> fds;
  for (const auto& path : monitors) {
    auto client = QmpClient::Connect(env, path, deadline);
    if (!client.ok()) {
      return Status::Unavailable("the resume guard's monitor " + path +
                                 " does not answer: " + client.status().message());
    }
    fds.push_back((*client)->fd());
    clients.push_back(std::move(client).value());
  }
  VMG_ASSIGN_OR_RETURN(auto guard, StartGuardProcess(fds, within, ResumeAll, nullptr));
  // `clients` close this process's copies on return: the guard's are the
  // connections now, and QEMU serves the next client once the guard ends.
  return std::unique_ptr<ResumeGuard>(std::move(guard));
}

}  // namespace vmgroup::hypervisor::qemu
