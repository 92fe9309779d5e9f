// The vmgroup commands, one function per noun. Each parses the rest of its
// command line, talks to vmgroupd through Api and returns an exit code.
#pragma once

#include <iosfwd>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cli/api.h"

namespace vmgroup::cli {

// A command's words after the noun: positionals and --flags. `flags` names
// those taking a value; `switches` those that do not; repeated flags keep
// every value. An empty word (a positional or a flag's value), and one that
// is not UTF-8 or holds a control character, is refused: InvalidArgument,
// which ReportError turns into exit code 2.
class CommandLine {
 public:
  static Result<CommandLine> Parse(const std::vector<std::string>& words,
                                   const std::set<std::string>& flags,
                                   const std::set<std::string>& switches);
  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(const std::string& flag) const { return values_.count(flag) > 0; }
  std::string Get(const std::string& flag, const std::string& fallback = "") const;
  std::vector<std::string> All(const std::string& flag) const;

 private:
  std::vector<std::string> positional_;
  std::multimap<std::string, std::string> values_;
};

// `path` made absolute against the working directory, for the daemon,
// which does not share it; InvalidArgument naming `what` when it cannot be.
Result<std::string> AbsolutePath(const std::string& what, const std::string& path);

// --consistency's words (crash, application, application-or-crash: Hyper-V's
// production checkpoint with fallback) as a schema::ConsistencyLevel and
// whether to fall back; false for any other word.
bool ParseConsistency(const std::string& word, int* level, bool* fallback);

struct Context {
  Api* api;
  bool json = false;
  bool terminal = false;  // stderr is a terminal: draw progress bars
};

// Each family's runner; `words` start with the verb (import: none).
int RunVm(Context& ctx, const std::vector<std::string>& words);
int RunGroup(Context& ctx, const std::vector<std::string>& words);
int RunSnapshot(Context& ctx, const std::vector<std::string>& words);
int RunJob(Context& ctx, const std::vector<std::string>& words);
int RunImport(Context& ctx, const std::vector<std::string>& words);
int RunRefPoint(Context& ctx, const std::vector<std::string>& words);
int RunBackup(Context& ctx, const std::vector<std::string>& words);
int RunHost(Context& ctx, const std::vector<std::string>& words);

// One command, as the table in command_table.cc declares it: `vmgroup
// NOUN VERB ARGS`, what it does, and the family's runner (null for help and
// version, which need no daemon). Usage text exists only there.
struct Command {
  std::string_view noun, verb;  // verb "": the family has this one command
  std::string_view args;        // "GROUP [--name LABEL] [--no-wait]"
  std::string_view summary;     // one line: what it does
  int (*run)(Context& ctx, const std::vector<std::string>& words);
};
// Every command, in the order help lists them.
std::span<const Command> Commands();
// The command `noun verb` names (a one-command family's whatever `verb`);
// null when there is none.
const Command* FindCommand(const std::string& noun, const std::string& verb);
bool IsCommandFamily(const std::string& noun);
// The usage of `noun verb`, of every verb of `noun` (verb ""), or of
// vmgroup as a whole (noun "" or unknown).
void PrintUsage(std::ostream& out, const std::string& noun, const std::string& verb = "");
// PrintUsage on stderr; returns kExitUsage.
int UsageError(const std::string& noun, const std::string& verb = "");
// The words help is asked about, when it is: `help NOUN VERB`, or the
// words before a --help or -h anywhere. nullopt when not asked.
std::optional<std::vector<std::string>> HelpAsked(const std::vector<std::string>& words);
// Help about `topic` (noun and verb, either may be missing) on stdout,
// exit 0; a noun or verb that does not exist is a usage error (stderr, 2).
int Help(const std::vector<std::string>& topic);

// A method's outcome: 0 done, 4096 waited for (unless `wait` is false:
// then the job id is printed), anything else reported with the daemon's
// reason. Returns the exit code; `job` receives the finished job.
int Settle(Context& ctx, const Result<CallResult>& r, const std::string& what, bool wait,
           JobInfo* job = nullptr);

// Prints the id of the reference point `job` made (stdout, or JSON), and
// `note` followed by the id (stderr): how it came to be and how to use it.
void PrintRefPointMade(const Context& ctx, const JobInfo& job, const std::string& note);

}  // namespace vmgroup::cli
