#include "hypervisor/libvirt/libvirt_guard.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "hypervisor/guard_process.h"

extern char** environ;

namespace vmgroup::hypervisor::libvirt {
namespace {

// How long one domain's thaw or resume may take before the guard goes on
// to the next.
constexpr char kActSeconds[] = "10";

// The commands the guard runs, prepared before the fork.
struct Commands {
  std::vector<std::vector<std::string>> words;
  std::vector<std::vector<char*>> argv;  // null-terminated, into `words`
};

// In the guard process: async-signal-safe calls only.
void RunAll(const void* context, int, int) {
  for (const auto& argv : static_cast<const Commands*>(context)->argv) {
    const pid_t pid = fork();
    if (pid == 0) {
      execve(argv[0], argv.data(), environ);
      _exit(127);
    }
    if (pid < 0) continue;
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

Result<std::string> OnPath(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = dir + "/" + tool;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return Status::Unavailable(tool + " is not on PATH: the libvirt guards need it");
}

}  // namespace

Result<std::unique_ptr<GuardProcess>> StartLibvirtGuard(const std::string& uri,
                                                        const std::vector<std::string>& uuids,
                                                        VirshAct act, Duration within) {
  VMG_ASSIGN_OR_RETURN(const std::string timeout, OnPath("timeout"));
  VMG_ASSIGN_OR_RETURN(const std::string virsh, OnPath("virsh"));
  const std::string command = act == VirshAct::kThaw ? "domfsthaw" : "resume";
  Commands commands;
  for (const auto& uuid : uuids) {
    commands.words.push_back({timeout, kActSeconds, virsh, "-q", "-c", uri, command, uuid});
  }
  for (auto& words : commands.words) {
    auto& argv = commands.argv.emplace_back();
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
  }
  // The guard gets its copy of `commands` with the fork.
  return StartGuardProcess({}, within, RunAll, &commands);
}

}  // namespace vmgroup::hypervisor::libvirt
