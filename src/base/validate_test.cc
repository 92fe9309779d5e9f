#include "base/validate.h"

#include <gtest/gtest.h>

namespace vmgroup {
namespace {

TEST(ValidateTest, Utf8IsCheckedStrictly) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(
      IsValidUtf8("B\xC3\xA4"
                  "ckerei \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));              // cut short
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(ValidateTest, InvalidUtf8IsReplacedByteByByte) {
  EXPECT_EQ(ToValidUtf8("B\xC3\xA4r \xF0\x9F\x98\x80"), "B\xC3\xA4r \xF0\x9F\x98\x80");
  EXPECT_EQ(ToValidUtf8("a\xFF"
                        "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(ToValidUtf8("\xC3"), "\xEF\xBF\xBD");                  // cut short
  EXPECT_EQ(ToValidUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_TRUE(IsValidUtf8(ToValidUtf8("\xED\xA0\x80\xF4\x90\x80\x80x")));
}

TEST(ValidateTest, NamesRefuseControlsBadUtf8EmptyAndLength) {
  EXPECT_TRUE(CheckName("VM name", "db-1 (prod) \xC3\xA4").ok());
  for (std::string bad :
       {std::string(""), std::string("a\nb"), std::string("\x1b[31mred"), std::string("tab\there"),
        std::string("del\x7f"), std::string("c1\xC2\x9B"), std::string("bad\xFFutf8"),
        std::string(" lead"), std::string("trail "), std::string(kMaxNameBytes + 1, 'x')}) {
    Status s = CheckName("VM name", bad);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << Printable(bad);
    EXPECT_NE(s.message().find("VM name"), std::string::npos);
    // The message itself never carries the raw control bytes on.
    EXPECT_EQ(s.message().find('\n'), std::string::npos);
    EXPECT_EQ(s.message().find('\x1b'), std::string::npos);
  }
  EXPECT_TRUE(CheckText("command line", "", 10).ok());
  EXPECT_FALSE(CheckText("command line", "a\rb", 10).ok());
}

TEST(ValidateTest, WholeNumbersParseWholeAndWithinBounds) {
  EXPECT_EQ(*ParseInt("memory", "64", 16, 1024), 64);
  EXPECT_EQ(*ParseInt("index", "-1", -5, 5), -1);
  for (const char* bad :
       {"64abc", "", " 64", "64 ", "+64", "1e3", "0x40", "99999999999999999999"}) {
    auto r = ParseInt("memory", bad, 16, 1024);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  auto high = ParseInt("vcpus", "100000", 1, 255);
  ASSERT_FALSE(high.ok());
  EXPECT_NE(high.status().message().find("1 to 255"), std::string::npos);
  EXPECT_FALSE(ParseInt("memory", "8", 16, 1024).ok());
}

TEST(ValidateTest, SizesTakeTheUsualSuffixes) {
  constexpr uint64_t kMax = uint64_t{1} << 50;
  EXPECT_EQ(*ParseSize("disk", "512", 1, kMax), 512u);
  EXPECT_EQ(*ParseSize("disk", "4K", 1, kMax), 4096u);
  EXPECT_EQ(*ParseSize("disk", "16M", 1, kMax), 16u << 20);
  EXPECT_EQ(*ParseSize("disk", "8GiB", 1, kMax), uint64_t{8} << 30);
  EXPECT_EQ(*ParseSize("disk", "2T", 1, kMax), uint64_t{2} << 40);
  for (const char* bad : {"16m", "", "G", "1.5G", "-1G", "16 M", "99999999999T", "2048T"}) {
    EXPECT_EQ(ParseSize("disk", bad, 1, kMax).status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ParseSize("disk", "0", 1, kMax).ok());
}

TEST(ValidateTest, PrintableEscapesWhatATerminalWouldObey) {
  EXPECT_EQ(Printable("a\x1b[2Jb\n"), "a\\x1b[2Jb\\x0a");
  EXPECT_EQ(Printable("\xC3\xA4\xFF"), "\xC3\xA4\\xff");
  EXPECT_EQ(Printable("\xC3\xA4", true), "\\xc3\\xa4");
}

}  // namespace
}  // namespace vmgroup
