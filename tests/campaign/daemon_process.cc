#include "daemon_process.h"

#include <signal.h>

#include <filesystem>

namespace vmgroup::campaign {

Status DaemonProcess::Start() {
  const size_t before = Log().size();
  auto pid = Env::Default()->Spawn({vmgroupd_, "--no-config", "--state-dir", state_dir_, "--listen",
                                    "unix:" + socket_, "--accel", "tcg", "--log-level", "debug"},
                                   {.log_path = log_, .new_session = false});
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  const auto deadline = Env::Default()->Now() + std::chrono::minutes(2);
  while (Env::Default()->Now() < deadline) {
    const std::string log = Log(before);
    if (log.find("vmgroupd ready") != std::string::npos) return Status::Ok();
    if (!Env::Default()->IsAlive(pid_)) {
      pid_ = 0;
      return Status::Failed("vmgroupd exited at start:\n" + log);
    }
    Env::Default()->SleepFor(std::chrono::milliseconds(20));
  }
  return Status::Failed("vmgroupd did not get ready in 2 minutes:\n" + Log(before));
}

Status DaemonProcess::Kill() {
  if (pid_ <= 0) return Status::Ok();
  VMG_RETURN_IF_ERROR(Env::Default()->Kill(pid_, SIGKILL));
  VMG_RETURN_IF_ERROR(Env::Default()->WaitGone(pid_, std::chrono::seconds(30)));
  pid_ = 0;
  return Status::Ok();
}

Status DaemonProcess::Stop() {
  if (pid_ <= 0) return Status::Ok();
  VMG_RETURN_IF_ERROR(Env::Default()->Kill(pid_, SIGTERM));
  Status gone = Env::Default()->WaitGone(pid_, std::chrono::minutes(2));
  if (!gone.ok()) return Kill();
  pid_ = 0;
  return Status::Ok();
}

Result<CommandOutput> DaemonProcess::Cli(const std::vector<std::string>& args,
                                         Duration timeout) const {
  std::vector<std::string> argv = {vmgroup_, "--connect", "unix:" + socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return Env::Default()->Run(argv, timeout);
}

std::string DaemonProcess::Log(size_t from) const {
  auto text = Env::Default()->ReadFile(log_);
  if (!text.ok() || text->size() <= from) return "";
  return text->substr(from);
}

std::map<std::string, std::vector<int>> OurQemus() {
  namespace fs = std::filesystem;
  std::map<std::string, std::vector<int>> out;
  std::error_code ec;
  const fs::path ours = fs::read_symlink("/proc/self/ns/mnt", ec);
  if (ec) return out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (fs::read_symlink(entry.path() / "ns/mnt", ec) != ours || ec) continue;
    auto cmdline = Env::Default()->ReadFile(entry.path() / "cmdline");
    if (!cmdline.ok()) continue;
    // Arguments are NUL-separated; the VM id follows "-uuid".
    const std::string marker = std::string("-uuid") + '\0';
    const size_t at = cmdline->find(marker);
    if (at == std::string::npos) continue;  // the campaign, its daemon, a CLI, a helper
    const size_t start = at + marker.size();
    out[cmdline->substr(start, cmdline->find('\0', start) - start)].push_back(std::stoi(name));
  }
  return out;
}

void EndQemus() {
  std::vector<int> pids;
  for (const auto& [vm, list] : OurQemus()) pids.insert(pids.end(), list.begin(), list.end());
  for (int pid : pids) (void)Env::Default()->Kill(pid, SIGTERM);
  for (int pid : pids) {
    if (!Env::Default()->WaitGone(pid, std::chrono::seconds(20)).ok()) {
      (void)Env::Default()->Kill(pid, SIGKILL);
      (void)Env::Default()->WaitGone(pid, std::chrono::seconds(10));
    }
  }
}

}  // namespace vmgroup::campaign
