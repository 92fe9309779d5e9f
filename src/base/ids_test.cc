#include "base/ids.h"

#include <gtest/gtest.h>

#include <set>

namespace vmgroup {
namespace {

TEST(IdsTest, NewGuidIsWellFormedVersion4AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string g = NewGuid();
    ASSERT_TRUE(IsGuid(g)) << g;
    EXPECT_EQ(g[14], '4');
    EXPECT_NE(std::string("89ab").find(g[19]), std::string::npos) << g;
    EXPECT_TRUE(seen.insert(g).second);
  }
}

TEST(IdsTest, IsGuidRejectsOtherShapes) {
  EXPECT_TRUE(IsGuid("3F2B9C1E-8D4A-4E7B-9C2D-1A2B3C4D5E6F"));
  EXPECT_FALSE(IsGuid(""));
  EXPECT_FALSE(IsGuid("web"));
  EXPECT_FALSE(IsGuid("3f2b9c1e-8d4a-4e7b-9c2d-1a2b3c4d5e6"));
  EXPECT_FALSE(IsGuid("3f2b9c1e+8d4a-4e7b-9c2d-1a2b3c4d5e6f"));
  EXPECT_FALSE(IsGuid("3f2b9c1e-8d4a-4e7b-9c2d-1a2b3c4d5e6g"));
}

}  // namespace
}  // namespace vmgroup
