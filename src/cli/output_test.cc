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

TEST(OutputTest, JsonTimesAreRfc3339) {
  EXPECT_EQ(JsonTime("20261205032451.000000+000"), "2026-12-05T03:24:51Z");
  EXPECT_EQ(JsonTime("20261205032451.921619+000"), "2026-12-05T03:24:51.921619Z");
  EXPECT_EQ(JsonTime("20261205042451.000500+060"), "2026-12-05T04:24:51.000500+01:00");
  EXPECT_EQ(JsonTime("20261204222451.000000-330"), "2026-12-04T22:24:51-05:30");
  // Intervals (a job's elapsed time) as durations.
  EXPECT_EQ(JsonTime("00000000000001.500000:000"), "P0DT0H0M1.5S");
  EXPECT_EQ(JsonTime("00000002030405.000000:000"), "P2DT3H4M5S");
  // Not a CIM datetime: as sent, never half converted.
  for (const char* odd :
       {"", "abcdefgh000001.500000:000", "20261205032451.000000+0x0", "2026-12-05T03:24:51Z"}) {
    EXPECT_EQ(JsonTime(odd), odd);
  }
}

TEST(OutputTest, EveryTimeInJsonIsRfc3339) {
  JobInfo job{
      .id = "j", .started = "20261205032451.123000+000", .elapsed = "00000000000002.000000:000"};
  auto j = nlohmann::json::parse(Stdout([&] { PrintJson(ToJson(job)); }));
  EXPECT_EQ(j["started"], "2026-12-05T03:24:51.123000Z");
  EXPECT_EQ(j["elapsed"], "P0DT0H0M2S");
  SnapshotInfo snap{.id = "s", .created = "20261205032451.000000+000"};
  snap.members.push_back({.vm_id = "v", .cut_time = "20261205032450.921619+000"});
  auto s = nlohmann::json::parse(Stdout([&] { PrintJson(ToJson(snap)); }));
  EXPECT_EQ(s["created"], "2026-12-05T03:24:51Z");
  EXPECT_EQ(s["members"][0]["cut_time"], "2026-12-05T03:24:50.921619Z");
}

}  // namespace
}  // namespace vmgroup::cli
