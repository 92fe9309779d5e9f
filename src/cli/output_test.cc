// What the command line prints of what vmgroupd sends: nothing a terminal
// would obey gets through, and nothing a daemon sends makes it abort.
#include "cli/output.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <sstream>

namespace vmgroup::cli {
namespace {

// What `print` writes on stdout.
template <typename Fn>
std::string Stdout(Fn print) {
  std::ostringstream out;
  std::streambuf* was = std::cout.rdbuf(out.rdbuf());
  print();
  std::cout.rdbuf(was);
  return out.str();
}

TEST(OutputTest, TablesShowNamesButNoEscapeSequences) {
  std::ostringstream out;
  PrintTable(out, {{"NAME", "ID"}, {"\x1b[2J\x1b]0;owned\x07web\nsecond line", "g1"}});
  const std::string text = out.str();
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_EQ(text.find('\x07'), std::string::npos) << text;
  EXPECT_NE(text.find("\\x1b[2J\\x1b]0;owned\\x07web\\x0asecond line  g1\n"), std::string::npos)
      << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << "one line per row";
}

TEST(OutputTest, JsonNeverAbortsOnBytesThatAreNotUtf8) {
  VmInfo vm{.id = "v1", .name = "db\xff\xc3", .state = "off"};
  const std::string text = Stdout([&] { PrintJson(ToJson(vm)); });
  auto back = nlohmann::json::parse(text);
  EXPECT_EQ(back["name"], "db\uFFFD\uFFFD");
  EXPECT_EQ(back["id"], "v1");
}

TEST(OutputTest, TimesThatAreNotCimDatetimesAreShownAsSent) {
  EXPECT_EQ(CimTimeText("20261124211918.000000+000"), "2026-11-24 21:19:18 UTC");
  EXPECT_EQ(CimTimeText("00000000000001.500000:000"), "1.5 s");
  const std::string odd = "abcdefgh000001.500000:000";
  EXPECT_EQ(CimTimeText(odd), odd);
  EXPECT_EQ(CimClockText(odd), odd);
}

}  // namespace
}  // namespace vmgroup::cli
