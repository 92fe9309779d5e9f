// Recovery after vmgroupd died at each fault point of each operation, over
// the fake driver: the engine stops for good at the point (DyingEnv), its
// fake QEMUs live on, and a new engine opens the state directory. As the
// crash tests on QEMU (tests/integration/crash_recovery_test.cc and the
// crash cases of the apply, destroy and export tests) check: no VM left
// paused, no snapshot left Incomplete or Destroying, the catalog's images
// the ones the VMs run on, and the operation all done or not at all.
#include "engine/recovery.h"

#include <set>

#include "engine/fake_group_test.h"
#include "engine/fault_points.h"
#include "engine/snapshot_plan.h"

namespace vmgroup::engine {
namespace {

using catalog::Power;
using hypervisor::RunState;

// A fault point of the fake QEMUs' (fake_vm.h).
std::string DriverPoint(std::string_view op) {
  return std::string(hypervisor::fake::kFakePointPrefix) + std::string(op);
}

// A test name from a fault point: letters and digits only.
std::string NameOf(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (auto& c : n) {
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return n;
}

class RecoveryOnFakes : public FakeGroupTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void ExpectRecovered() {
    const auto& report = engine_->recovery();
    EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
    EXPECT_TRUE(report.gone_vms.empty()) << "every fake QEMU lived on";
    ExpectConsistent();
  }
  // CrashAt, for the second VM ("vm1") at a point reached once per member.
  bool Crash(const std::string& point, const std::function<void(Engine&)>& op) {
    static const std::set<std::string_view> kPerMember = {
        fault::kMemberPrepared,        fault::kMemberSwitch,        fault::kMemberSwitched,
        fault::kDestroyMemberDetached, fault::kDestroyMemberMerged, fault::kExportDiskCopied,
        hypervisor::kFaultStarted};
    const bool per_member = kPerMember.count(point) || point.starts_with(DriverPoint(""));
    return CrashAt(point, op, per_member ? "vm1" : "");
  }
};

// Killed while taking a snapshot of two VMs: at each point of the protocol
// (subject: the second member for the per-member points), and inside the
// fake QEMU's own steps.
class CreateCrash : public RecoveryOnFakes {};

TEST_P(CreateCrash, RecoveryLeavesNoPausedVmAndNoHalfSnapshot) {
  const std::string point = GetParam();
  auto g = MakeGroup(2);
  const auto before = Disks(g);
  ASSERT_TRUE(Crash(
      point, [&](Engine& e) { (void)e.snapshots().Create({.collection_id = g.collection_id}); }));
  ExpectRecovered();
  const auto& report = engine_->recovery();
  const auto snapshots = *engine_->catalog().ListSnapshots();
  // The cut took effect on every member (a member left paused is resumed):
  // kept. Killed after one member's switch: the others may have switched
  // too, and either outcome is whole. Otherwise no member had switched.
  const bool cut =
      point == fault::kCutDone || point == fault::kCommitted || point == DriverPoint("resume");
  if (point != fault::kMemberSwitched) {
    EXPECT_EQ(snapshots.size(), cut ? 1u : 0u);
    if (!cut) {
      for (const auto& id : g.vm_ids) EXPECT_EQ(Vm(id).disks, before.at(id));
    }
  }
  if (point != fault::kCommitted) {
    EXPECT_EQ(report.completed.size() + report.rolled_back.size(), 1u);
  }
  if (point == fault::kCutDone) {
    EXPECT_EQ(report.completed.size(), 1u);
  }
  if (point == fault::kMemberSwitched || point == DriverPoint("switch") ||
      point == DriverPoint("resume")) {
    EXPECT_FALSE(report.resumed.empty()) << "the crash left paused VMs to resume";
  }
  EXPECT_TRUE(engine_->snapshots().Create({.collection_id = g.collection_id}).ok());
}

std::vector<std::string> CreatePoints() {
  std::vector<std::string> points(fault::kAll.begin(), fault::kAll.end());
  for (const char* op : {"open", "track", "pause", "switch", "resume"})
    points.push_back(DriverPoint(op));
  return points;
}

INSTANTIATE_TEST_SUITE_P(AtEachPoint, CreateCrash, ::testing::ValuesIn(CreatePoints()), NameOf);

// Killed with every guest frozen: recovery thaws them (the guard of a dead
// daemon may be gone too) and takes the snapshot back.
TEST_F(RecoveryOnFakes, AGroupFrozenByADeadDaemonIsThawed) {
  auto g = MakeGroup(2);
  ASSERT_TRUE(Crash(std::string(fault::kFrozen), [&](Engine& e) {
    (void)e.snapshots().Create(
        {.collection_id = g.collection_id, .consistency = catalog::Consistency::kApplication});
  }));
  ExpectRecovered();
  EXPECT_EQ(engine_->recovery().thawed.size(), 2u);
  EXPECT_EQ(engine_->recovery().rolled_back.size(), 1u);
  for (const auto& id : g.vm_ids) {
    EXPECT_FALSE(*Fake(id)->FilesystemsFrozen(Clock::now())) << Vm(id).name;
  }
}

class ApplyCrash : public RecoveryOnFakes {};

TEST_P(ApplyCrash, AnApplyIsAllDoneOrNotAtAll) {
  const std::string point = GetParam();
  auto g = MakeGroup(2);
  const std::string s = Snapshot(g).id;
  const auto before = Disks(g);
  ASSERT_TRUE(Crash(point, [&](Engine& e) { (void)e.snapshots().Apply({.snapshot_id = s}); }));
  ExpectRecovered();
  const bool committed = point == fault::kApplyCommitted;
  EXPECT_EQ(engine_->recovery().applies_undone.size(), committed ? 0u : 1u);
  EXPECT_TRUE(engine_->catalog().ListApplyIntents()->empty());
  for (const auto& id : g.vm_ids) {
    const auto vm = Vm(id);
    EXPECT_EQ(vm.power, committed ? Power::kOff : Power::kRunning);
    EXPECT_EQ(vm.disks == before.at(id), !committed) << vm.name;
  }
}

INSTANTIATE_TEST_SUITE_P(AtEachPoint, ApplyCrash,
                         ::testing::Values(std::string(fault::kApplyPrepared),
                                           std::string(fault::kApplyCommitted)),
                         NameOf);

// Killed while the second member starts from its memory state: recovery
// ends both fake QEMUs the apply started, which no VM's record names, and
// starts each member again on its own images.
TEST_F(RecoveryOnFakes, AnApplyKilledWhileAMemberLoadsItsStateLeavesOneQemuPerVm) {
  auto g = MakeGroup(2);
  const std::string s = Snapshot(g, kSnapshotStandard).id;
  const auto before = Disks(g);
  ASSERT_TRUE(Crash(std::string(hypervisor::kFaultStarted),
                    [&](Engine& e) { (void)e.snapshots().Apply({.snapshot_id = s}); }));
  ExpectRecovered();  // the processes recorded are the VMs' own
  EXPECT_EQ(engine_->recovery().applies_undone.size(), 1u);
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(Vm(id).disks, before.at(id));
    EXPECT_EQ(Vm(id).power, Power::kRunning);
  }
}

class DestroyCrash : public RecoveryOnFakes {};

TEST_P(DestroyCrash, RecoveryFinishesTheDestroy) {
  const std::string point = GetParam();
  auto g = MakeGroup(2);
  const std::string s = Snapshot(g).id;
  ASSERT_TRUE(Crash(point, [&](Engine& e) { (void)e.snapshots().Destroy({.snapshot_id = s}); }));
  ExpectRecovered();
  EXPECT_EQ(engine_->recovery().destroyed.size(), point == fault::kDestroyCommitted ? 0u : 1u);
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
}

INSTANTIATE_TEST_SUITE_P(AtEachPoint, DestroyCrash,
                         ::testing::Values(std::string(fault::kDestroyMemberDetached),
                                           std::string(fault::kDestroyMemberMerged),
                                           std::string(fault::kDestroyCommitted),
                                           DriverPoint("commit")),
                         NameOf);

TEST_F(RecoveryOnFakes, AnExportCutShortIsTakenBackAndCanRunAgain) {
  auto g = MakeGroup(2);
  const std::string s = Snapshot(g).id;
  const std::string out = Path("export");
  ASSERT_TRUE(Crash(std::string(fault::kExportDiskCopied), [&](Engine& e) {
    (void)e.snapshots().Export({.snapshot_id = s, .directory = out});
  }));
  ExpectRecovered();
  EXPECT_EQ(engine_->recovery().exports_taken_back.size(), 1u);
  EXPECT_FALSE(Env::Default()->FileExists(out));
  auto again = engine_->snapshots().Export({.snapshot_id = s, .directory = out});
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

// Killed while a snapshot becomes a reference point: before its destroy
// began (the reference point recorded or not), the snapshot stays, no
// reference point is left, and the conversion can run again; once the
// destroy began, recovery finishes it and the reference point stands, its
// tracking kept.
class ConvertCrash : public RecoveryOnFakes {};

TEST_P(ConvertCrash, TheReferencePointIsWholeOrNotThere) {
  const std::string point = GetParam();
  auto g = MakeGroup(2);
  const std::string s = Snapshot(g).id;
  ASSERT_TRUE(Crash(point, [&](Engine& e) { (void)e.snapshots().ConvertToReferencePoint(s); }));
  ExpectRecovered();
  const auto& report = engine_->recovery();
  EXPECT_EQ(report.conversions_taken_back.size(), point == fault::kRefpointRecorded ? 1u : 0u);
  if (point == DriverPoint("keep") || point == fault::kRefpointRecorded) {
    EXPECT_TRUE(engine_->catalog().ListReferencePoints()->empty());
    EXPECT_EQ(engine_->catalog().GetSnapshot(s)->state, catalog::SnapshotState::kComplete);
    auto again = engine_->snapshots().ConvertToReferencePoint(s);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
  }
  const auto rps = *engine_->catalog().ListReferencePoints();
  ASSERT_EQ(rps.size(), 1u);
  EXPECT_EQ(engine_->catalog().GetSnapshot(s).status().code(), Code::kNotFound);
  for (const auto& id : g.vm_ids) EXPECT_EQ(Fake(id)->trackings().count(rps[0].bitmap), 1u);
  ExpectConsistent();
}

INSTANTIATE_TEST_SUITE_P(AtEachPoint, ConvertCrash,
                         ::testing::Values(DriverPoint("keep"),
                                           std::string(fault::kRefpointRecorded),
                                           std::string(fault::kDestroyMemberDetached),
                                           std::string(fault::kDestroyMemberMerged),
                                           std::string(fault::kDestroyCommitted)),
                         NameOf);

}  // namespace
}  // namespace vmgroup::engine
