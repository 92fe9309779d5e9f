#include "daemon/access.h"

#include <gtest/gtest.h>

namespace vmgroup::daemon {
namespace {

// Debian's own accounts: nobody (uid 65534) whose primary group is nogroup
// (65534), and the root group, which nobody is not in.
TEST(AccessTest, RolesComeFromTheAdminAndReaderGroups) {
  const Access admins("nogroup", "");
  EXPECT_EQ(admins.ForUser("nobody").role, cim::Role::kAdmin);
  EXPECT_EQ(admins.ForUid(65534, 65534).role, cim::Role::kAdmin);

  const Access readers("root", "nogroup");
  EXPECT_EQ(readers.ForUser("nobody").role, cim::Role::kReader);
  const cim::Peer nobody = readers.ForUid(65534, 65534);
  EXPECT_EQ(nobody.role, cim::Role::kReader);
  EXPECT_EQ(nobody.name, "nobody (uid 65534)");
  EXPECT_EQ(nobody.admin_group, "root");
  EXPECT_EQ(nobody.reader_group, "nogroup");

  const Access neither("root", "");
  EXPECT_EQ(neither.ForUser("nobody").role, cim::Role::kNone);
  EXPECT_EQ(neither.ForUid(65534, 65534).role, cim::Role::kNone);
}

TEST(AccessTest, RootAlwaysManagesAndStrangersNever) {
  const Access a("root", "");
  EXPECT_EQ(a.ForUid(0, 0).role, cim::Role::kAdmin);
  EXPECT_EQ(Access("nogroup", "").ForUid(0, 0).role, cim::Role::kAdmin);
  EXPECT_EQ(a.ForUser("no-such-user-vmg").role, cim::Role::kNone);
  // A uid without an account is judged by its process's group alone.
  const cim::Peer stranger = Access("root", "nogroup").ForUid(54321, 65534);
  EXPECT_EQ(stranger.role, cim::Role::kReader);
  EXPECT_EQ(stranger.name, "uid 54321");
  EXPECT_EQ(Access("root", "nogroup").ForUid(54321, 54321).role, cim::Role::kNone);
}

TEST(AccessTest, MissingGroupsAreNamed) {
  EXPECT_TRUE(Access("root", "nogroup").CheckGroupsExist().ok());
  const Status s = Access("root", "no-such-group-vmg").CheckGroupsExist();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("no-such-group-vmg"), std::string::npos);
}

}  // namespace
}  // namespace vmgroup::daemon
