// The built vmgroup and vmgroupd as an operator meets them, with no daemon
// running: --help at every level on stdout with exit 0, --version, usage
// errors on stderr with exit 2, the old name `restore`, and passwords kept
// off the command line. Every command is asked for its help.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/env.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace vmgroup::cli {
namespace {

// No daemon listens here: a command that got as far as calling one exits 3.
const std::string kNowhere = "unix:/nonexistent/vmgroupd.sock";

CommandOutput RunCommand(std::vector<std::string> argv) {
  auto r = Env::Default()->Run(argv, std::chrono::seconds(30));
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : CommandOutput{};
}

CommandOutput Vmgroup(std::vector<std::string> args) {
  args.insert(args.begin(), {VMGROUP_BIN, "--connect", kNowhere});
  return RunCommand(args);
}

void ExpectHelp(const CommandOutput& r, const std::string& head, const std::string& what) {
  EXPECT_EQ(r.exit_code, kExitOk) << what << ": " << r.err;
  EXPECT_TRUE(r.out.starts_with(head)) << what << ":\n" << r.out;
  EXPECT_EQ(r.err, "") << what;
}

TEST(BinaryTest, EveryCommandAnswersHelpOnStdout) {
  for (const Command& c : Commands()) {
    const std::string noun(c.noun), verb(c.verb);
    const std::string head = "usage: vmgroup " + noun + (verb.empty() ? "" : " " + verb);
    std::vector<std::string> words = {noun};
    if (!verb.empty()) words.push_back(verb);
    for (const char* flag : {"--help", "-h"}) {
      std::vector<std::string> asked = words;
      asked.push_back(flag);
      // `help --help` is help about everything.
      ExpectHelp(Vmgroup(asked), noun == "help" ? "usage: vmgroup [--connect" : head,
                 head + " " + std::string(flag));
    }
    words.insert(words.begin(), "help");
    ExpectHelp(Vmgroup(words), head, "help " + noun + " " + verb);
    ExpectHelp(Vmgroup({"help", noun, "--help"}), "usage:", "help " + noun + " --help");
    // Arguments before --help do not matter.
    if (noun != "help") {
      words.erase(words.begin());
      words.insert(words.end(), {"some-name", "--no-wait", "--help"});
      ExpectHelp(Vmgroup(words), head, head + " NAME --help");
    }
    if (!verb.empty()) {
      ExpectHelp(Vmgroup({noun, "--help"}), "usage:\n  vmgroup " + noun, noun + " --help");
    }
  }
  for (const std::vector<std::string>& top :
       {std::vector<std::string>{"--help"}, {"-h"}, {"help"}}) {
    CommandOutput r = Vmgroup(top);
    ExpectHelp(r, "usage: vmgroup [--connect", top[0]);
    EXPECT_NE(r.out.find("Exit codes"), std::string::npos);
  }
}

TEST(BinaryTest, VersionOfBoth) {
  for (const char* how : {"--version", "version"}) {
    CommandOutput r = Vmgroup({how});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "vmgroup " VMGROUP_VERSION "\n");
  }
  CommandOutput d = RunCommand({VMGROUPD_BIN, "--version"});
  EXPECT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(d.out, "vmgroupd " VMGROUP_VERSION "\n");
}

TEST(BinaryTest, UsageErrorsGoToStderrWithExit2) {
  for (const std::vector<std::string>& wrong :
       std::vector<std::vector<std::string>>{{},
                                             {"vm"},
                                             {"vm", "frob"},
                                             {"frob"},
                                             {"help", "frob"},
                                             {"help", "vm", "frob"},
                                             {"snapshot", "create"},
                                             {"snapshot", "create", "web", "--frob"},
                                             {"job", "show"},
                                             {"version", "extra"},
                                             {"--frob"}}) {
    CommandOutput r = Vmgroup(wrong);
    EXPECT_EQ(r.exit_code, kExitUsage) << (wrong.empty() ? "" : wrong[0]) << ": " << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err, "");
  }
  // What is well formed reaches for the daemon, which is not there.
  CommandOutput away = Vmgroup({"vm", "list"});
  EXPECT_EQ(away.exit_code, kExitUnreachable) << away.err;
}

TEST(BinaryTest, RestoreIsImportWithANote) {
  CommandOutput r = Vmgroup({"restore", "/srv/export"});
  EXPECT_EQ(r.exit_code, kExitUnreachable) << r.err;
  EXPECT_NE(r.err.find("`restore` is now `import`"), std::string::npos) << r.err;
  CommandOutput i = Vmgroup({"import", "/srv/export"});
  EXPECT_EQ(i.exit_code, kExitUnreachable) << i.err;
  EXPECT_EQ(i.err.find("restore"), std::string::npos) << i.err;
}

TEST(BinaryTest, PasswordsStayOffTheCommandLine) {
  auto with = [](std::vector<std::string> pre, std::vector<std::string> args) {
    pre.push_back(VMGROUP_BIN);
    pre.insert(pre.end(), args.begin(), args.end());
    return RunCommand(pre);
  };
  // setsid: no controlling terminal, so nothing can be asked.
  const std::vector<std::string> no_tty = {"setsid", "-w", "env", "-u", "VMGROUP_PASSWORD"};
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--connect", "https://admin:s3cret@127.0.0.1:1", "group", "list"},
           {"--password", "s3cret", "group", "list"},
           {"group", "list", "--password=s3cret"},
           {"--connect", "https://admin@127.0.0.1:1", "group", "list"},
           {"--connect", "https://admin@127.0.0.1:1", "--password-file", "/nonexistent", "group",
            "list"}}) {
    CommandOutput r = with(no_tty, args);
    EXPECT_EQ(r.exit_code, kExitUsage) << args[1] << ": " << r.err;
    EXPECT_NE(r.err.find("password"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("s3cret"), std::string::npos) << r.err;
  }
  // From the environment it is taken, and the daemon then sought (exit 3).
  CommandOutput env = with({"setsid", "-w", "env", "VMGROUP_PASSWORD=s3cret"},
                           {"--connect", "https://admin@127.0.0.1:1", "group", "list"});
  EXPECT_EQ(env.exit_code, kExitUnreachable) << env.err;
}

// The README's command list (lines starting "vmgroup NOUN") names every
// command of the table, so a new one cannot be left out of it.
TEST(BinaryTest, ReadmeNamesEveryCommand) {
  std::ifstream readme(VMGROUP_SOURCE_DIR "/README.md");
  ASSERT_TRUE(readme);
  std::vector<std::string> lines;
  for (std::string l; std::getline(readme, l);) {
    if (l.starts_with("vmgroup ")) lines.push_back(l.substr(0, l.find('#')) + " ");
  }
  for (const Command& c : Commands()) {
    const std::string noun = "vmgroup " + std::string(c.noun) + " ";
    const std::string verb = " " + std::string(c.verb) + " ";
    EXPECT_TRUE(std::any_of(lines.begin(), lines.end(),
                            [&](const std::string& l) {
                              return l.starts_with(noun) &&
                                     (c.verb.empty() || l.find(verb) != std::string::npos);
                            }))
        << noun << c.verb;
  }
}

// A man page as its reader sees the words: roff's escaped dashes plain,
// font changes gone.
std::string ManText(const std::string& page) {
  std::ifstream in(std::string(VMGROUP_SOURCE_DIR "/docs/man/") + page);
  EXPECT_TRUE(in) << page;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  for (size_t at; (at = text.find("\\-")) != std::string::npos;) text.replace(at, 2, "-");
  for (size_t at; (at = text.find("\\f")) != std::string::npos;) text.erase(at, 3);
  return text;
}

TEST(BinaryTest, TheManPagesNameEveryCommandAndEveryDaemonOption) {
  const std::string vmgroup = ManText("vmgroup.1");
  for (const Command& c : Commands()) {
    const std::string words =
        std::string(c.noun) + (c.verb.empty() ? "" : " ") + std::string(c.verb);
    EXPECT_NE(vmgroup.find(words), std::string::npos) << "vmgroup.1 lacks `" << words << "`";
  }
  const std::string vmgroupd = ManText("vmgroupd.8");
  CommandOutput help = RunCommand({VMGROUPD_BIN, "--help"});
  ASSERT_EQ(help.exit_code, 0);
  std::istringstream words(help.out);
  int options = 0;
  for (std::string w; words >> w;) {
    if (!w.starts_with("--")) continue;
    w = w.substr(0, w.find_first_not_of("-abcdefghijklmnopqrstuvwxyz"));
    ++options;
    EXPECT_NE(vmgroupd.find(w), std::string::npos) << "vmgroupd.8 lacks " << w;
  }
  EXPECT_GT(options, 15) << help.out;
}

}  // namespace
}  // namespace vmgroup::cli
