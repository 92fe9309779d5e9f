// vmgroup: the command line of vmgroupd.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "base/env.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace {

const char* kUsage =
    R"(usage: vmgroup [--connect unix:PATH|https://[USER:PASS@]HOST:PORT] [--cacert FILE]
               [--json] COMMAND

  vm create NAME --memory MiB --disk SIZE|PATH [--disk ...] [--cpus N]
            [--kernel K --initrd I --append A] [--start]
  vm list | show NAME | start NAME | stop NAME | pause NAME | resume NAME | delete NAME
  group create NAME [--of-groups] | list | show NAME | add NAME MEMBER... |
        remove NAME MEMBER... | rename NAME NEW | delete NAME
  snapshot create GROUP [--type standard|recovery|disk]
           [--consistency crash|application|application-or-crash] [--name LABEL] [--no-wait]
  snapshot list GROUP [--tree] | show ID | apply ID [--no-wait] | delete ID [--no-wait]
  snapshot export ID DIR [--base REFPOINT|SNAPSHOT] [--no-storage] [--no-wait]
  snapshot to-refpoint ID [--no-wait]
  refpoint create GROUP [--name LABEL] [--no-wait]
  refpoint list GROUP | show ID | delete ID [--no-wait]
  refpoint export ID DIR [--base REFPOINT] [--no-wait]
  restore DIR [--as-new] [--no-wait]
  backup begin GROUP [--incremental-from REFPOINT] [--snapshot ID]
         [--consistency crash|application|application-or-crash] [--idle-timeout SECONDS]
  backup list | show SESSION | changes SESSION VM DISK [--offset B] [--length B]
  backup end SESSION [--to-refpoint] [--no-wait]
  job list | show ID | wait ID | cancel ID

The daemon is reached at --connect, else $VMGROUP_CONNECT, else
unix:/run/vmgroup/vmgroupd.sock (http:// is for loopback). An https://
daemon must prove its name with a certificate from the system's CA store
or from --cacert FILE (else $VMGROUP_CACERT). NAME may also be an id.

Exit codes: 0 done; 1 the daemon refused or the job failed; 2 wrong command
line; 3 vmgroupd cannot be reached; 4 no such VM, group, snapshot or job.
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace vmgroup::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* env = std::getenv("VMGROUP_CONNECT");
  std::string endpoint = env && *env ? env : "unix:/run/vmgroup/vmgroupd.sock";
  const char* ca_env = std::getenv("VMGROUP_CACERT");
  std::string cacert = ca_env ? ca_env : "";
  bool json = false;
  size_t i = 0;
  for (; i < args.size() && args[i].starts_with("-"); ++i) {
    if (args[i] == "--json") {
      json = true;
    } else if (args[i] == "--connect" && i + 1 < args.size()) {
      endpoint = args[++i];
    } else if (args[i] == "--cacert" && i + 1 < args.size() && !args[i + 1].empty()) {
      cacert = args[++i];
    } else if (args[i] == "--help" || args[i] == "-h") {
      std::cout << kUsage;
      return kExitOk;
    } else {
      std::cerr << kUsage;
      return kExitUsage;
    }
  }
  // --json is also accepted after the command, where people put it.
  std::vector<std::string> words;
  for (; i < args.size(); ++i) {
    if (args[i] == "--json") {
      json = true;
    } else {
      words.push_back(args[i]);
    }
  }
  if (words.empty()) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  auto api = Api::Connect(vmgroup::Env::Default(), endpoint, cacert);
  if (!api.ok()) return ReportError(api.status());
  Context ctx{api->get(), json, ::isatty(STDERR_FILENO) == 1};
  const std::string noun = words[0];
  const std::vector<std::string> rest(words.begin() + 1, words.end());
  if (noun == "vm") return RunVm(ctx, rest);
  if (noun == "group") return RunGroup(ctx, rest);
  if (noun == "snapshot") return RunSnapshot(ctx, rest);
  if (noun == "job") return RunJob(ctx, rest);
  if (noun == "restore") return RunRestore(ctx, rest);
  if (noun == "refpoint") return RunRefPoint(ctx, rest);
  if (noun == "backup") return RunBackup(ctx, rest);
  std::cerr << kUsage;
  return kExitUsage;
}
