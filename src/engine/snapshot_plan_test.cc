#include "engine/snapshot_plan.h"

#include <gtest/gtest.h>

#include "base/return_codes.h"

namespace vmgroup::engine {
namespace {

TEST(SnapshotPlanTest, SnapshotTypesFollowTheDesignTable) {
  EXPECT_TRUE(CheckSnapshotType(1).ok());
  EXPECT_TRUE(CheckSnapshotType(2).ok());
  EXPECT_TRUE(CheckSnapshotType(32768).ok());
  for (int t : {0, 3, 100, 32767})
    EXPECT_EQ(ReturnCodeA(CheckSnapshotType(t)), kRcInvalidParameter) << t;
  for (int t : {32769, 65535}) EXPECT_EQ(ReturnCodeA(CheckSnapshotType(t)), kRcInvalidType) << t;
  EXPECT_EQ(ReturnCodeA(CheckSnapshotType(-1)), kRcInvalidParameter);
  EXPECT_EQ(ReturnCodeA(CheckSnapshotType(70000)), kRcInvalidParameter);
}

TEST(SnapshotPlanTest, OnlyRecoverySnapshotsCarryABitmap) {
  EXPECT_EQ(BitmapFor(2, "s1234abcd"), "vmgroup-s1234abcd");
  EXPECT_EQ(BitmapFor(32768, "s1234abcd"), "");
}

TEST(SnapshotPlanTest, AGroupCutIsApplicationConsistentOnlyWhenEveryMemberWasFrozen) {
  using catalog::Consistency;
  catalog::SnapshotRecord s;
  EXPECT_EQ(AchievedConsistency(s), Consistency::kCrash) << "no member, no frozen guest";
  s.members = {{.consistency = Consistency::kApplication},
               {.consistency = Consistency::kApplication}};
  EXPECT_EQ(AchievedConsistency(s), Consistency::kApplication);
  s.members[1].consistency = Consistency::kCrash;  // fell back
  EXPECT_EQ(AchievedConsistency(s), Consistency::kCrash);
}

TEST(SnapshotPlanTest, PlanFreezesTheActiveImagesAndChainsToTheCurrentSnapshot) {
  catalog::VmRecord a{.id = "a",
                      .name = "a",
                      .disks = {"/x/a0", "/x/a1"},
                      .power = catalog::Power::kRunning,
                      .current_snapshot = "prev-a"};
  catalog::VmRecord b{.id = "b", .name = "b", .disks = {"/x/b0"}};
  auto s = PlanSnapshot("S", "t1", "G", "nightly", 2, 42, {{&a, "/st/vms/a"}, {&b, "/st/vms/b"}},
                        {"ma", "mb"});
  EXPECT_EQ(s.state, catalog::SnapshotState::kIncomplete);
  ASSERT_EQ(s.members.size(), 2u);
  EXPECT_EQ(s.members[0].parent_id, "prev-a");
  EXPECT_EQ(s.members[0].power_at_cut, catalog::Power::kRunning);
  EXPECT_EQ(s.members[1].power_at_cut, catalog::Power::kOff);
  EXPECT_EQ(s.members[0].disks[1].frozen_image, "/x/a1");
  EXPECT_EQ(s.members[0].disks[1].overlay, "/st/vms/a/disk1-t1.qcow2");
  auto overlays = OverlaysOf(s.members[0], s.tag);
  ASSERT_EQ(overlays.size(), 2u);
  EXPECT_EQ(overlays[1].disk, 1);
  EXPECT_EQ(overlays[1].tag, "t1");
  EXPECT_EQ(s.members[0].memory_state, "") << "only Standard snapshots save memory";
}

TEST(SnapshotPlanTest, StandardSnapshotsSaveTheMemoryOfRunningMembersOnly) {
  catalog::VmRecord a{
      .id = "a", .name = "a", .disks = {"/x/a0"}, .power = catalog::Power::kRunning};
  catalog::VmRecord b{.id = "b", .name = "b", .disks = {"/x/b0"}};  // off
  auto s = PlanSnapshot("S", "t2", "G", "with memory", kSnapshotStandard, 42,
                        {{&a, "/st/vms/a"}, {&b, "/st/vms/b"}}, {"ma", "mb"});
  EXPECT_EQ(s.members[0].memory_state, "/st/vms/a/memory-t2.vmstate");
  EXPECT_EQ(s.members[1].memory_state, "");
  EXPECT_TRUE(IsSnapshotFileName("memory-t2.vmstate"));
  EXPECT_TRUE(IsSnapshotFileName("disk0-t2.qcow2"));
  EXPECT_FALSE(IsSnapshotFileName("base0.qcow2"));
  EXPECT_FALSE(IsSnapshotFileName("serial.log"));
}

}  // namespace
}  // namespace vmgroup::engine
