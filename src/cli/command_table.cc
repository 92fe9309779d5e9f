// The table of vmgroup's commands: each verb's arguments and what it does,
// declared once. --help at every level, usage errors and the README's list
// are all printed from it.
#include <algorithm>
#include <iostream>

#include "base/validate.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace vmgroup::cli {
namespace {

// One row per verb; `run` is the family's: it reads the verb itself. A
// family of one verb ("import") has the verb "". help and version run in
// main, before any daemon is reached: no `run`.
const Command kCommands[] = {
    {"vm", "create",
     "NAME --memory MiB --disk SIZE|PATH [--disk ...] [--cpus N] [--hugepages] "
     "[--kernel K --initrd I --append A] [--start]",
     "define a VM with new disks (SIZE) or existing qcow2 images (absolute PATH)", RunVm},
    {"vm", "list", "", "every VM, where it lives and its state", RunVm},
    {"vm", "show", "NAME", "one VM's settings, disks and state", RunVm},
    {"vm", "start", "NAME", "start a VM that is off", RunVm},
    {"vm", "stop", "NAME [--timeout SECONDS] [--force]",
     "shut a VM down by its power button (--force: turn it off after the timeout)", RunVm},
    {"vm", "turn-off", "NAME", "turn a VM off at once, as pulling its plug", RunVm},
    {"vm", "pause", "NAME", "pause a running VM's vCPUs", RunVm},
    {"vm", "resume", "NAME", "run a paused VM on", RunVm},
    {"vm", "delete", "NAME", "remove a VM and the disks vmgroupd made for it", RunVm},
    {"group", "create", "NAME [--of-groups] [--id GUID]", "a new group of VMs (or of groups)",
     RunGroup},
    {"group", "list", "", "every group and its members", RunGroup},
    {"group", "show", "NAME", "one group, its members and how many snapshots it has", RunGroup},
    {"group", "add", "NAME [--host PEER] MEMBER...",
     "add VMs (or groups) to a group; with --host, VMs of that peer by UUID", RunGroup},
    {"group", "remove", "NAME [--host PEER] MEMBER...", "take members out of a group", RunGroup},
    {"group", "rename", "NAME NEW", "give a group a new name", RunGroup},
    {"group", "delete", "NAME", "remove a group; its VMs stay", RunGroup},
    {"snapshot", "create",
     "GROUP [--type standard|recovery|disk] "
     "[--consistency crash|application|application-or-crash] [--name LABEL] [--no-wait]",
     "one snapshot of every member at the same cut", RunSnapshot},
    {"snapshot", "list", "GROUP [--tree]", "a group's snapshots (--tree: by parent)", RunSnapshot},
    {"snapshot", "show", "ID", "one snapshot: its cut, pause window and members", RunSnapshot},
    {"snapshot", "apply", "ID [--no-wait]", "bring the group back to a snapshot", RunSnapshot},
    {"snapshot", "release", "ID",
     "take back this host's part of an apply across hosts whose coordinator is gone", RunSnapshot},
    {"snapshot", "delete", "ID [--no-wait]", "merge a snapshot away while the VMs run",
     RunSnapshot},
    {"snapshot", "export", "ID DIR [--base REFPOINT|SNAPSHOT] [--no-storage] [--no-wait]",
     "write a snapshot (or what changed since --base) to DIR", RunSnapshot},
    {"snapshot", "to-refpoint", "ID [--no-wait]",
     "make a recovery snapshot the base of incremental exports", RunSnapshot},
    {"refpoint", "create", "GROUP [--name LABEL] [--no-wait]",
     "track a group's changes from now on", RunRefPoint},
    {"refpoint", "list", "GROUP", "a group's reference points", RunRefPoint},
    {"refpoint", "show", "ID", "one reference point", RunRefPoint},
    {"refpoint", "delete", "ID [--no-wait]", "stop tracking changes since a reference point",
     RunRefPoint},
    {"refpoint", "export", "ID DIR [--base REFPOINT] [--no-wait]",
     "write what changed since a reference point to DIR, at a new cut", RunRefPoint},
    {"import", "", "DIR [--as-new] [--no-wait]",
     "bring a group back from an export (its VMs off); --as-new: beside the original", RunImport},
    {"backup", "begin",
     "GROUP [--incremental-from REFPOINT] [--snapshot ID] "
     "[--consistency crash|application|application-or-crash] [--idle-timeout SECONDS] [--tcp]",
     "serve a group's cut over NBD until `backup end` (--tcp: over TCP with TLS)", RunBackup},
    {"backup", "list", "", "the backup sessions serving now", RunBackup},
    {"backup", "show", "SESSION", "one session and the disks it serves", RunBackup},
    {"backup", "changes", "SESSION VM DISK [--offset BYTES] [--length BYTES]",
     "the ranges of a disk that changed since the session's base", RunBackup},
    {"backup", "end", "SESSION [--to-refpoint] [--no-wait]",
     "stop serving; --to-refpoint: the cut becomes the next base", RunBackup},
    {"job", "list", "", "every job and its state", RunJob},
    {"job", "show", "ID", "one job", RunJob},
    {"job", "wait", "ID", "follow a job until it ends (exit 1 if it failed)", RunJob},
    {"job", "cancel", "ID", "ask a job to stop at its next safe point", RunJob},
    {"host", "", "", "the daemon's host and the accelerator its QEMUs use", RunHost},
    {"help", "", "[COMMAND [VERB]]", "this help, or a command's", nullptr},
    {"version", "", "", "vmgroup's version", nullptr},
};

constexpr std::string_view kGlobal =
    "usage: vmgroup [--connect unix:PATH|https://[USER@]HOST:PORT] [--cacert FILE]\n"
    "               [--password-file FILE] [--json] COMMAND [--help]\n";

constexpr std::string_view kFooter = R"(
The daemon is reached at --connect, else $VMGROUP_CONNECT, else
unix:/run/vmgroup/vmgroupd.sock (http:// is for loopback). An https://
daemon must prove its name with a certificate from the system's CA store
or from --cacert FILE (else $VMGROUP_CACERT). USER's password comes from
--password-file FILE, else $VMGROUP_PASSWORD, else a prompt on the
terminal; never from the command line. NAME may also be an id.

Exit codes: 0 done; 1 the daemon refused or the job failed; 2 wrong command
line; 3 vmgroupd cannot be reached; 4 no such VM, group, snapshot, job,
reference point or backup session.
)";

// "vmgroup NOUN VERB ARGS", wrapped before a word (a [...] group is one)
// that would pass column 79, continued under ARGS.
void PrintSynopsis(std::ostream& out, std::string_view lead, const Command& c) {
  std::string line =
      std::string(lead) + std::string(c.noun) + (c.verb.empty() ? "" : " " + std::string(c.verb));
  const size_t indent = line.size() + 1;
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i <= c.args.size(); ++i) {
    if (i < c.args.size()) {
      depth += c.args[i] == '[' ? 1 : c.args[i] == ']' ? -1 : 0;
      if (c.args[i] != ' ' || depth > 0) continue;
    }
    const std::string_view word = c.args.substr(start, i - start);
    start = i + 1;
    if (word.empty()) continue;
    if (line.size() + 1 + word.size() > 79 && line.size() > indent) {
      out << line << "\n";
      line = std::string(indent - 1, ' ');
    }
    line += " " + std::string(word);
  }
  out << line << "\n";
}

bool IsHelpWord(const std::string& w) { return w == "--help" || w == "-h"; }

}  // namespace

std::span<const Command> Commands() { return kCommands; }

const Command* FindCommand(const std::string& noun, const std::string& verb) {
  for (const Command& c : kCommands) {
    if (c.noun == noun && (c.verb.empty() || c.verb == verb)) return &c;
  }
  return nullptr;
}

bool IsCommandFamily(const std::string& noun) {
  return std::any_of(std::begin(kCommands), std::end(kCommands),
                     [&](const Command& c) { return c.noun == noun; });
}

void PrintUsage(std::ostream& out, const std::string& noun, const std::string& verb) {
  if (const Command* c = FindCommand(noun, verb); c && (!verb.empty() || c->verb.empty())) {
    PrintSynopsis(out, "usage: vmgroup ", *c);
    out << "\n  " << c->summary << "\n";
    return;
  }
  if (IsCommandFamily(noun)) {
    out << "usage:\n";
    for (const Command& c : kCommands) {
      if (c.noun != noun) continue;
      PrintSynopsis(out, "  vmgroup ", c);
      out << "      " << c.summary << "\n";
    }
    return;
  }
  out << kGlobal << "\n";
  for (const Command& c : kCommands) PrintSynopsis(out, "  ", c);
  out << kFooter;
}

int UsageError(const std::string& noun, const std::string& verb) {
  PrintUsage(std::cerr, noun, verb);
  return kExitUsage;
}

std::optional<std::vector<std::string>> HelpAsked(const std::vector<std::string>& words) {
  const bool help_command = !words.empty() && words[0] == "help";
  auto h = std::find_if(words.begin(), words.end(), IsHelpWord);
  if (!help_command && h == words.end()) return std::nullopt;
  return std::vector<std::string>(words.begin() + (help_command ? 1 : 0), h);
}

int Help(const std::vector<std::string>& topic) {
  const std::string noun = topic.empty() ? "" : topic[0];
  const std::string verb = topic.size() > 1 ? topic[1] : "";
  if (!noun.empty() && !IsCommandFamily(noun)) {
    std::cerr << "vmgroup: no command " << Printable(noun) << "\n";
    return UsageError("");
  }
  const Command* c = noun.empty() ? nullptr : FindCommand(noun, verb);
  if (!verb.empty() && !c) {
    std::cerr << "vmgroup: " << Printable(noun) << " has no verb " << Printable(verb) << "\n";
    return UsageError(noun);
  }
  // A family of one verb takes no verb: what follows is its arguments.
  PrintUsage(std::cout, noun, c && c->verb.empty() ? "" : verb);
  return kExitOk;
}

}  // namespace vmgroup::cli
