// vmgroup: the command line of vmgroupd. Reads the options before the
// command, answers help and version itself, checks the command against the
// table (command_table.cc) and only then reaches the daemon.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "base/env.h"
#include "base/validate.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/password.h"

namespace {

int Version() {
  std::cout << "vmgroup " VMGROUP_VERSION "\n";  // project(VERSION) in CMakeLists.txt
  return vmgroup::cli::kExitOk;
}

bool IsPasswordOption(const std::string& w) {
  return w == "--password" || w.starts_with("--password=");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vmgroup::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (std::any_of(args.begin(), args.end(), IsPasswordOption)) {
    return ReportError(vmgroup::Status::InvalidArgument(
        "a password on the command line is readable by every local user (ps); use "
        "--password-file FILE, $VMGROUP_PASSWORD or the prompt"));
  }
  const char* env = std::getenv("VMGROUP_CONNECT");
  std::string endpoint = env && *env ? env : "unix:/run/vmgroup/vmgroupd.sock";
  bool endpoint_from_command_line = false;
  const char* ca_env = std::getenv("VMGROUP_CACERT");
  std::string cacert = ca_env ? ca_env : "";
  PasswordSources passwords{.prompt = PromptOnTerminal};
  if (const char* p = std::getenv("VMGROUP_PASSWORD")) passwords.env = p;
  bool json = false;
  size_t i = 0;
  for (; i < args.size() && args[i].starts_with("-"); ++i) {
    const bool has_value = i + 1 < args.size() && !args[i + 1].empty();
    if (args[i] == "--json") {
      json = true;
    } else if (args[i] == "--connect" && i + 1 < args.size()) {
      endpoint = args[++i];
      endpoint_from_command_line = true;
    } else if (args[i] == "--cacert" && has_value) {
      cacert = args[++i];
    } else if (args[i] == "--password-file" && has_value) {
      passwords.file = args[++i];
    } else if (args[i] == "--help" || args[i] == "-h") {
      PrintUsage(std::cout, "");
      return kExitOk;
    } else if (args[i] == "--version") {
      return Version();
    } else {
      std::cerr << "vmgroup: unknown option " << vmgroup::Printable(args[i]) << "\n";
      return UsageError("");
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
  if (words.empty()) return UsageError("");
  if (auto topic = HelpAsked(words)) return Help(*topic);
  if (words[0] == "version") return words.size() == 1 ? Version() : UsageError("version");
  if (words[0] == "restore") {
    std::cerr << "vmgroup: `restore` is now `import`; the old name goes in a later release\n";
    words[0] = "import";
  }
  if (!IsCommandFamily(words[0])) {
    std::cerr << "vmgroup: no command " << vmgroup::Printable(words[0]) << "\n";
    return UsageError("");
  }
  const Command* command = FindCommand(words[0], words.size() > 1 ? words[1] : "");
  if (!command || !command->run) {
    if (words.size() > 1) {
      std::cerr << "vmgroup: " << words[0] << " has no verb " << vmgroup::Printable(words[1])
                << "\n";
    }
    return UsageError(words[0]);
  }
  auto password = PasswordFor(endpoint, endpoint_from_command_line, passwords);
  if (!password.ok()) return ReportError(password.status());
  auto api = Api::Connect(vmgroup::Env::Default(), endpoint, cacert, *password);
  if (!api.ok()) return ReportError(api.status());
  Context ctx{api->get(), json, ::isatty(STDERR_FILENO) == 1};
  return command->run(ctx, std::vector<std::string>(words.begin() + 1, words.end()));
}
