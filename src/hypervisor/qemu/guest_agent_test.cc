// What a guest's agent answers is the guest's to choose: the readers of its
// replies (agent_reply) accept only what qemu-ga means, and a refusal quotes
// a short, printable excerpt of whatever came.
#include "hypervisor/qemu/guest_agent.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <string>

namespace vmgroup::hypervisor::qemu {
namespace {

TEST(GuestAgentReplyTest, ACountIsAWholeNumberOfFilesystems) {
  EXPECT_EQ(*agent_reply::Count("guest-fsfreeze-freeze", Json(3)), 3);
  EXPECT_EQ(*agent_reply::Count("guest-fsfreeze-thaw", Json(0)), 0);
  EXPECT_EQ(*agent_reply::Count("guest-fsfreeze-thaw", Json(INT_MAX)), INT_MAX);
  // Below zero, or past int (which read as an int wrapped, to 1 here): no count.
  for (const Json& bad : {Json(-1), Json(uint64_t{1} << 32 | 1), Json(INT64_MIN), Json("2"),
                          Json(2.0), Json(nullptr), Json::array({1})}) {
    auto n = agent_reply::Count("guest-fsfreeze-freeze", bad);
    EXPECT_EQ(n.status().code(), Code::kFailed) << bad.dump();
    EXPECT_NE(n.status().message().find("guest-fsfreeze-freeze"), std::string::npos);
  }
}

TEST(GuestAgentReplyTest, StatusIsFrozenOrThawedAndNothingElse) {
  EXPECT_TRUE(*agent_reply::Frozen(Json("frozen")));
  EXPECT_FALSE(*agent_reply::Frozen(Json("thawed")));
  // Anything else is no answer, not "thawed".
  for (const Json& bad : {Json("thawing"), Json(""), Json(1), Json::object()}) {
    EXPECT_EQ(agent_reply::Frozen(bad).status().code(), Code::kFailed) << bad.dump();
  }
}

TEST(GuestAgentReplyTest, SyncNeedsItsOwnId) {
  EXPECT_TRUE(agent_reply::Synced(Json(42), 42).ok());
  EXPECT_EQ(agent_reply::Synced(Json(41), 42).code(), Code::kUnavailable);
  EXPECT_EQ(agent_reply::Synced(Json("42"), 42).code(), Code::kUnavailable);
}

TEST(GuestAgentReplyTest, ARefusalQuotesAShortPrintableExcerpt) {
  // A megabyte: quoted whole, it went into every log line and CIM error.
  auto long_text = agent_reply::Count("guest-fsfreeze-freeze", Json(std::string(1 << 20, 'x')));
  EXPECT_LT(long_text.status().message().size(), 200u);
  // Not ASCII, and a terminal escape: spelled out, never raw bytes.
  const std::string text = agent_reply::Frozen(Json("\xc3\xa9t\xc3\xa9\x1b[2J")).status().message();
  for (char c : text) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << text;
  // 100,000 arrays deep: written out, the quote recursed as deep and overran
  // the stack.
  const int depth = 100000;
  const Json deep = Json::parse(std::string(depth, '[') + std::string(depth, ']'));
  Status s = agent_reply::Synced(deep, 1);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_LT(s.message().size(), 200u);
}

}  // namespace
}  // namespace vmgroup::hypervisor::qemu
