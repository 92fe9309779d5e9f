// Crash at every fault point of the snapshot protocol: a separate process
// (crash_helper) takes a group snapshot and is killed with SIGKILL at the
// point; the engine is then opened again, and its recovery must leave no VM
// paused, no half-made snapshot, the catalog matching the images on disk,
// and the data written before the snapshot in place.
#include <signal.h>

#include "engine/fault_points.h"
#include "group_fixture.h"
#include "testing/process_status.h"

namespace vmgroup::integration {
namespace {

using hypervisor::RunState;

class CrashRecoveryTest : public GroupFixture,
                          public ::testing::WithParamInterface<std::string_view> {
 protected:
  void SetUp() override {}  // the helper creates the state directory
  CommandOutput Helper(std::vector<std::string> args) {
    args.insert(args.begin(), CRASH_HELPER);
    auto r = Env::Default()->Run(args, std::chrono::minutes(2));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommandOutput{};
  }
};

TEST_P(CrashRecoveryTest, RecoveryLeavesNoPausedVmNoHalfSnapshotAndNoLostData) {
  const std::string state = dir_ / "state";
  const std::string images = dir_ / "images";
  // Data on the first disk of each VM before anything runs.
  CommandOutput setup = Helper({state, images, "setup", "3"});
  ASSERT_EQ(setup.exit_code, 0) << setup.err;
  std::string collection = setup.out.substr(0, setup.out.find('\n'));
  {
    OpenEngine();
    for (const auto& vm : *engine_->catalog().ListVms()) {
      // Stamp while stopped (qemu-io needs the write lock), then start again.
      ASSERT_TRUE(engine_->vms().Stop(vm.id).ok());
      Stamp(vm.disks[0]);
      ASSERT_TRUE(engine_->vms().Start(vm.id).ok());
    }
    engine_.reset();  // the helper needs the VMs' monitors
  }

  CommandOutput crashed = Helper({state, "snapshot", collection, std::string(GetParam())});
  ASSERT_EQ(crashed.exit_code, -1) << "the helper should have been killed; stderr: " << crashed.err;

  OpenEngine();
  const auto& report = engine_->recovery();
  EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
  EXPECT_TRUE(report.gone_vms.empty());
  auto snapshots = *engine_->catalog().ListSnapshots();
  for (const auto& s : snapshots) EXPECT_EQ(s.state, catalog::SnapshotState::kComplete);

  const std::string_view point = GetParam();
  if (point == engine::fault::kCutDone || point == engine::fault::kCommitted) {
    EXPECT_EQ(snapshots.size(), 1u) << "the cut happened on every member: kept";
  } else if (point != engine::fault::kMemberSwitched) {
    EXPECT_TRUE(snapshots.empty()) << "no member had switched: rolled back";
  }  // killed after one member's switch: others may have switched too; either outcome is whole
  if (point == engine::fault::kCutDone) {
    EXPECT_EQ(report.completed.size(), 1u);
  }
  // Recovery had the work to do that the crash left.
  if (point != engine::fault::kCommitted) {
    EXPECT_EQ(report.completed.size() + report.rolled_back.size(), 1u);
  }
  if (point == engine::fault::kMemberSwitched) {
    EXPECT_FALSE(report.resumed.empty()) << "the crash left paused VMs to resume";
  }

  for (const auto& vm : *engine_->catalog().ListVms()) {
    EXPECT_EQ(LiveState(vm.id), RunState::kRunning) << vm.name << " left paused";
    EXPECT_TRUE(SchedulingIsNormal(vm.id)) << vm.name << " left at real-time priority";
    EXPECT_EQ(LiveImages(vm.id), vm.disks) << vm.name;
    ExpectCatalogMatchesDisk(vm.id);
    EXPECT_TRUE(StampReadable(vm.disks[0])) << vm.name << ": data written before the cut is lost";
  }
  // And the group can be snapshotted again.
  auto again = engine_->snapshots().Create({.collection_id = collection});
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

// Killed while starting a VM, its QEMU running but the VM not yet recorded
// as started: recovery ends that QEMU (the VM stays off), and the VM then
// starts with exactly one QEMU.
class CrashedStartTest : public GroupFixture {};

TEST_F(CrashedStartTest, ACrashWhileAVmStartsLeavesNoQemuBehind) {
  auto g = MakeGroup("s", 1, /*start=*/false);
  const std::string id = g.vm_ids[0];
  engine_.reset();
  auto r = Env::Default()->Run(
      {CRASH_HELPER, dir_ / "state", "start", id, std::string(hypervisor::kFaultStarted)},
      std::chrono::minutes(2));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, -1) << "the helper should have been killed: " << r->err;
  ASSERT_EQ(testing::QemusOf(id).size(), 1u) << "the QEMU the helper started runs";

  OpenEngine();
  EXPECT_TRUE(engine_->recovery().problems.ok()) << engine_->recovery().problems.ToString();
  EXPECT_EQ(Vm(id).power, catalog::Power::kOff);
  const auto left = testing::QemusOf(id);
  EXPECT_TRUE(left.empty()) << left.size() << " QEMUs of a VM that is off";
  for (int pid : left) {  // this test's own, ended by pid
    (void)Env::Default()->Kill(pid, SIGKILL);
    (void)Env::Default()->WaitGone(pid, std::chrono::seconds(10));
  }
  ASSERT_TRUE(engine_->vms().Start(id).ok());
  EXPECT_EQ(testing::QemusOf(id), std::vector<int>{Vm(id).pid});
}

INSTANTIATE_TEST_SUITE_P(AtEveryFaultPoint, CrashRecoveryTest,
                         ::testing::ValuesIn(engine::fault::kAll), [](const auto& param_info) {
                           std::string n(param_info.param);
                           for (auto& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace vmgroup::integration
