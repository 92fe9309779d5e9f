// How a command reads its own arguments: empty ones, and ones CIM-XML
// cannot carry, are refused.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace vmgroup::cli
