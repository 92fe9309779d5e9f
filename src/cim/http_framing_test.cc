#include "cim/http_framing.h"

#include <gtest/gtest.h>

namespace vmgroup::cim {
namespace {

constexpr uint64_t kMax = 4 << 20;

// The status a head is refused with, or 0 when it is accepted.
int Refused(const Headers& h, const std::string& version = "HTTP/1.1") {
  auto f = CheckFraming(h, version, kMax);
  if (auto* e = std::get_if<FramingError>(&f)) {
    EXPECT_FALSE(e->reason.empty());
    return e->status;
  }
  return 0;
}

TEST(HttpFramingTest, AcceptsLengthChunkedAndNoBody) {
  auto none = CheckFraming({{"Host", "x"}}, "HTTP/1.1", kMax);
  EXPECT_EQ(std::get<BodyFraming>(none).kind, BodyFraming::Kind::kNone);
  auto length = CheckFraming({{"content-length", " 42 "}}, "HTTP/1.1", kMax);
  EXPECT_EQ(std::get<BodyFraming>(length).kind, BodyFraming::Kind::kLength);
  EXPECT_EQ(std::get<BodyFraming>(length).length, 42u);
  EXPECT_EQ(
      std::get<BodyFraming>(CheckFraming({{"Content-Length", "4194304"}}, "HTTP/1.1", kMax)).length,
      kMax);
  for (const char* te : {"chunked", "Chunked", " chunked ", ", chunked"}) {
    auto chunked = CheckFraming({{"Transfer-Encoding", te}}, "HTTP/1.1", kMax);
    ASSERT_TRUE(std::holds_alternative<BodyFraming>(chunked)) << te;
    EXPECT_EQ(std::get<BodyFraming>(chunked).kind, BodyFraming::Kind::kChunked) << te;
  }
}

TEST(HttpFramingTest, OnlyChunkedIsATransferCoding) {
  EXPECT_EQ(Refused({{"Transfer-Encoding", "gzip, chunked"}}), 501);
  EXPECT_EQ(Refused({{"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}}), 501);
  EXPECT_EQ(Refused({{"Transfer-Encoding", "gzip"}}), 400);
  EXPECT_EQ(Refused({{"Transfer-Encoding", "identity"}}), 400);
  EXPECT_EQ(Refused({{"Transfer-Encoding", "chunked, gzip"}}), 400);
  EXPECT_EQ(Refused({{"Transfer-Encoding", "chunked, chunked"}}), 400);
  EXPECT_EQ(Refused({{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}}), 400);
  EXPECT_EQ(Refused({{"Transfer-Encoding", "xchunked"}}), 400);
  EXPECT_EQ(Refused({{"Transfer-Encoding", ""}}), 400);
  EXPECT_EQ(Refused({{"Transfer-Encoding", "chunked"}}, "HTTP/1.0"), 400);
}

TEST(HttpFramingTest, AmbiguousLengthsAreRefused) {
  EXPECT_EQ(Refused({{"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}}), 400);
  EXPECT_EQ(Refused({{"Content-Length", "5"}, {"Content-Length", "5"}}), 400);
  EXPECT_EQ(Refused({{"Content-Length", "5"}, {"content-length", "6"}}), 400);
  for (const char* bad : {"", "-1", "+5", "5,5", "0x10", "1 2", "12x"}) {
    EXPECT_EQ(Refused({{"Content-Length", bad}}), 400) << bad;
  }
}

TEST(HttpFramingTest, LengthsOverTheLimitAreRefusedWithoutOverflow) {
  EXPECT_EQ(Refused({{"Content-Length", "4194305"}}), 413);
  EXPECT_EQ(Refused({{"Content-Length", "18446744073709551615"}}), 413);
  EXPECT_EQ(Refused({{"Content-Length", "18446744073709551616"}}), 413);
  EXPECT_EQ(Refused({{"Content-Length", "99999999999999999999999999999"}}), 413);
  EXPECT_EQ(Refused({{"Content-Length", "0000000000000000000000000042"}}), 0);
}

TEST(HttpFramingTest, HeaderNamesMustBeTokens) {
  // libmicrohttpd keeps "Transfer-Encoding " (space before the colon) as a
  // header of its own: a smuggler's way past the framing.
  EXPECT_EQ(Refused({{"Transfer-Encoding ", "chunked"}, {"Content-Length", "3"}}), 400);
  EXPECT_EQ(Refused({{"Content\tLength", "3"}}), 400);
  EXPECT_EQ(Refused({{"", "x"}}), 400);
  EXPECT_EQ(Refused({{"X-Ok_Name.1", "x"}}), 0);
}

}  // namespace
}  // namespace vmgroup::cim
