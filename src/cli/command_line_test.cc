// How a command reads its own arguments: empty ones, and ones CIM-XML
// cannot carry, are refused; and the table of commands help comes from.
#include <gtest/gtest.h>

#include <sstream>

#include "cli/commands.h"

namespace vmgroup::cli {
namespace {

TEST(CommandLineTest, EmptyArgumentsAndControlCharactersAreRefused) {
  for (const std::vector<std::string>& words :
       {std::vector<std::string>{""}, {"id", ""}, {"--name", ""}, {"--name="}}) {
    auto c = CommandLine::Parse(words, {"name"}, {"no-wait"});
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
    EXPECT_NE(c.status().message().find("empty"), std::string::npos) << c.status().message();
  }
  for (const std::vector<std::string>& words :
       {std::vector<std::string>{"db\x1b[31m"}, {"--name", "a\nb"}, {"--name=\xff"}}) {
    auto c = CommandLine::Parse(words, {"name"}, {"no-wait"});
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(c.status().message().find('\x1b'), std::string::npos) << c.status().message();
  }
  auto ok = CommandLine::Parse({"id", "--name", "x", "--no-wait"}, {"name"}, {"no-wait"});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->Get("name"), "x");
  EXPECT_EQ(AbsolutePath("DIR", "").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(*AbsolutePath("DIR", "/srv/../srv/backup"), "/srv/backup");
}

TEST(CommandTableTest, HelpIsAskedAtEveryLevel) {
  using Words = std::vector<std::string>;
  EXPECT_EQ(HelpAsked({"vm", "list"}), std::nullopt);
  EXPECT_EQ(HelpAsked({"help"}), Words{});
  EXPECT_EQ(HelpAsked({"help", "snapshot", "create"}), (Words{"snapshot", "create"}));
  EXPECT_EQ(HelpAsked({"help", "vm", "--help"}), Words{"vm"});
  EXPECT_EQ(HelpAsked({"vm", "--help"}), Words{"vm"});
  EXPECT_EQ(HelpAsked({"snapshot", "create", "web", "-h", "--name"}),
            (Words{"snapshot", "create", "web"}));
}

TEST(CommandTableTest, EveryCommandHasItsOwnUsage) {
  std::set<std::string> families;
  for (const Command& c : Commands()) {
    const std::string noun(c.noun), verb(c.verb);
    families.insert(noun);
    EXPECT_EQ(FindCommand(noun, verb), &c) << noun << " " << verb;
    EXPECT_FALSE(c.summary.empty()) << noun << " " << verb;
    EXPECT_EQ(c.run == nullptr, noun == "help" || noun == "version") << noun;
    std::ostringstream one;
    PrintUsage(one, noun, verb);
    const std::string head = "usage: vmgroup " + noun + (verb.empty() ? "" : " " + verb);
    EXPECT_TRUE(one.str().starts_with(head)) << one.str();
    EXPECT_NE(one.str().find(c.summary), std::string::npos) << one.str();
    // Wrapped within 80 columns, [...] groups kept whole (one alone on its
    // line may be longer).
    std::istringstream lines(one.str());
    for (std::string l; std::getline(lines, l);) {
      const std::string word = l.substr(std::min(l.size(), l.find_first_not_of(" ")));
      if (!word.starts_with('[') || std::count(l.begin(), l.end(), '[') != 1) {
        EXPECT_LE(l.size(), 80u) << l;
      }
      EXPECT_EQ(std::count(l.begin(), l.end(), '['), std::count(l.begin(), l.end(), ']')) << l;
    }
    std::ostringstream family;
    PrintUsage(family, noun);
    EXPECT_NE(family.str().find("vmgroup " + noun), std::string::npos);
    EXPECT_NE(family.str().find(c.summary), std::string::npos) << family.str();
  }
  EXPECT_EQ(families, (std::set<std::string>{"vm", "group", "snapshot", "refpoint", "import",
                                             "backup", "job", "host", "help", "version"}));
  // The whole usage lists every family; an unknown verb finds nothing.
  std::ostringstream all;
  PrintUsage(all, "");
  for (const auto& f : families) EXPECT_NE(all.str().find("  " + f), std::string::npos) << f;
  EXPECT_NE(all.str().find("Exit codes"), std::string::npos);
  EXPECT_EQ(FindCommand("vm", "frob"), nullptr);
  EXPECT_EQ(FindCommand("vm", ""), nullptr);
  EXPECT_EQ(FindCommand("import", "/srv/export")->run, &RunImport);
}

}  // namespace
}  // namespace vmgroup::cli
