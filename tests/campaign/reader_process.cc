#include "reader_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstring>

extern char** environ;

namespace vmgroup::campaign {

Status ReaderProcess::Start(const std::vector<std::string>& argv) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // posix_spawn, not fork: the campaign has threads (the CLI runs in one).
  const int rc = ::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    pid_ = 0;
    return Status::IoError("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  return Status::Ok();
}

Status ReaderProcess::Finish(Duration grace) {
  if (pid_ <= 0) return Status::Ok();
  const auto deadline = Env::Default()->Now() + grace;
  int status = 0;
  bool killed = false;
  for (;;) {
    const int r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) break;
    if (r == 0 && !killed && Env::Default()->Now() >= deadline) {
      ::kill(pid_, SIGKILL);
      killed = true;
    }
    Env::Default()->SleepFor(std::chrono::milliseconds(20));
  }
  pid_ = 0;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  auto log = Env::Default()->ReadFile(log_);
  const std::string how = killed ? "still reading, killed"
                          : WIFSIGNALED(status)
                              ? "killed by signal " + std::to_string(WTERMSIG(status))
                              : "exit " + std::to_string(WEXITSTATUS(status));
  return Status::Failed(how + ": " + (log.ok() ? log->substr(0, 300) : ""));
}

}  // namespace vmgroup::campaign
