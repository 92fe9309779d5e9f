// Applying a group snapshot on real QEMU: every member back on the
// snapshot's images (new overlays, the snapshot kept), the current state
// discarded, all or nothing.
#include <signal.h>

#include "engine/fault_points.h"
#include "engine/snapshot_plan.h"
#include "group_fixture.h"
#include "testing/process_status.h"

namespace vmgroup::integration {
namespace {

using catalog::Power;

class SnapshotApplyTest : public GroupFixture {
 protected:
  // A group of `n` VMs whose disks hold pattern 0x11, snapshotted while
  // running, then stamped 0x22 (after the snapshot) while off.
  testing::TinyGroup Prepared(const std::string& prefix, int n, std::string* snapshot_id) {
    return SnapshotBetween(
        prefix, n, engine::kSnapshotRecovery, [this](const std::string& d) { Stamp(d, 0x11); },
        [this](const std::string& d) { Stamp(d, 0x22); }, snapshot_id);
  }
  // A running group of two with a Standard snapshot (each VM's disks then
  // in `before`), whose apply crash_helper runs until it is killed at `point`.
  void ApplyStandardKilledAt(const std::string& prefix, std::string_view point,
                             testing::TinyGroup* g,
                             std::map<std::string, std::vector<std::string>>* before) {
    *g = MakeGroup(prefix, 2);
    auto snap = engine_->snapshots().Create(
        {.collection_id = g->collection_id, .type = engine::kSnapshotStandard});
    ASSERT_TRUE(snap.ok()) << snap.status().ToString();
    for (const auto& id : g->vm_ids) (*before)[id] = Vm(id).disks;
    engine_.reset();
    auto r =
        Env::Default()->Run({CRASH_HELPER, dir_ / "state", "apply", snap->id, std::string(point)},
                            std::chrono::minutes(2));
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->exit_code, -1) << "the helper should have been killed at " << point << ": "
                                << r->err;
  }
};

TEST_F(SnapshotApplyTest, EveryMemberGoesBackToTheSnapshotOnNewOverlaysAndStaysOff) {
  std::string snap_id;
  auto g = Prepared("app", 3, &snap_id);
  const auto snap = *engine_->catalog().GetSnapshot(snap_id);
  std::map<std::string, std::vector<std::string>> discarded;
  for (const auto& id : g.vm_ids) discarded[id] = Vm(id).disks;

  auto applied = engine_->snapshots().Apply({.snapshot_id = snap_id});
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  for (size_t i = 0; i < g.vm_ids.size(); ++i) {
    const std::string& id = g.vm_ids[i];
    const auto vm = Vm(id);
    EXPECT_EQ(vm.power, Power::kOff);
    EXPECT_EQ(vm.current_snapshot, snap.members[i].id);
    EXPECT_EQ(vm.last_applied, snap.members[i].id);
    for (size_t d = 0; d < vm.disks.size(); ++d) {
      EXPECT_TRUE(SameContent(vm.disks[d], snap.members[i].disks[d].frozen_image));
      EXPECT_TRUE(StampReadable(vm.disks[d], 0x11));
      EXPECT_FALSE(StampReadable(vm.disks[d], 0x22)) << "the state after the snapshot is gone";
      EXPECT_FALSE(Env::Default()->FileExists(discarded[id][d]));
    }
    ExpectCatalogMatchesDisk(id);
  }

  // Again, after writing: the snapshot is intact and applies the same way.
  for (const auto& id : g.vm_ids) {
    for (const auto& disk : Vm(id).disks) Stamp(disk, 0x33);
  }
  ASSERT_TRUE(engine_->snapshots().Apply({.snapshot_id = snap_id}).ok());
  for (const auto& id : g.vm_ids) {
    for (const auto& disk : Vm(id).disks) EXPECT_TRUE(StampReadable(disk, 0x11));
    ExpectCatalogMatchesDisk(id);
  }
  // A snapshot taken now branches from the applied one.
  for (const auto& id : g.vm_ids) ASSERT_TRUE(engine_->vms().Start(id).ok());
  auto branch = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_TRUE(branch.ok()) << branch.status().ToString();
  EXPECT_EQ(branch->members[0].parent_id, snap.members[0].id);
  // Nothing under the state directory the catalog does not know: a
  // recovery finds nothing to remove.
  OpenEngine();
  EXPECT_TRUE(engine_->recovery().removed_files.empty());
}

TEST_F(SnapshotApplyTest, AFailureLeavesEveryMemberAsItWas) {
  std::string snap_id;
  auto g = Prepared("fail", 3, &snap_id);
  std::map<std::string, std::vector<std::string>> before;
  for (const auto& id : g.vm_ids) before[id] = Vm(id).disks;
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[2]).ok());  // one was off: it stays off
  OpenEngine({}, std::make_unique<OnPointEnv>(engine::fault::kApplyPrepared,
                                              [](auto) { return Status::Failed("injected"); }));
  auto applied = engine_->snapshots().Apply({.snapshot_id = snap_id});
  EXPECT_EQ(applied.status().code(), Code::kFailed);
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(Vm(id).disks, before[id]);
    for (const auto& disk : Vm(id).disks) EXPECT_TRUE(StampReadable(disk, 0x22));
    ExpectCatalogMatchesDisk(id);
  }
  EXPECT_EQ(Vm(g.vm_ids[0]).power, Power::kRunning);
  EXPECT_EQ(LiveState(g.vm_ids[0]), hypervisor::RunState::kRunning);
  EXPECT_EQ(Vm(g.vm_ids[1]).power, Power::kRunning);
  EXPECT_EQ(Vm(g.vm_ids[2]).power, Power::kOff);
  OpenEngine();
  EXPECT_TRUE(engine_->recovery().removed_files.empty()) << "no overlay was left behind";
}

// The daemon killed (SIGKILL, a separate process) in the middle of an apply:
// before the commit everything is as it was once recovery ran; after it the
// apply stands.
TEST_F(SnapshotApplyTest, ACrashMidApplyEndsAllOrNothing) {
  for (std::string_view point : {engine::fault::kApplyPrepared, engine::fault::kApplyCommitted}) {
    std::string snap_id;
    auto g = Prepared(std::string(point == engine::fault::kApplyPrepared ? "p" : "c"), 2, &snap_id);
    std::map<std::string, std::vector<std::string>> before;
    for (const auto& id : g.vm_ids) before[id] = Vm(id).disks;
    engine_.reset();  // the helper is the daemon now
    auto r =
        Env::Default()->Run({CRASH_HELPER, dir_ / "state", "apply", snap_id, std::string(point)},
                            std::chrono::minutes(2));
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->exit_code, -1) << "killed at " << point << ": " << r->err;
    OpenEngine();
    const bool committed = point == engine::fault::kApplyCommitted;
    EXPECT_EQ(engine_->recovery().applies_undone.size(), committed ? 0u : 1u) << point;
    for (const auto& id : g.vm_ids) {
      const auto vm = Vm(id);
      EXPECT_EQ(vm.power, committed ? Power::kOff : Power::kRunning) << point;
      if (!committed) {
        EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
        EXPECT_EQ(vm.disks, before[id]);
      }
      for (const auto& disk : vm.disks) EXPECT_TRUE(StampReadable(disk, committed ? 0x11 : 0x22));
      ExpectCatalogMatchesDisk(id);
    }
    ASSERT_TRUE(engine_->vms().StopAll().ok());
  }
}

// Killed after members were started from their memory state but before the
// commit: recovery ends those QEMUs (recorded as processes, named by no VM's
// record) and starts the members again as they were.
TEST_F(SnapshotApplyTest, ACrashBeforeTheCommitEndsTheQemusStartedFromMemory) {
  testing::TinyGroup g;
  std::map<std::string, std::vector<std::string>> before;
  ASSERT_NO_FATAL_FAILURE(ApplyStandardKilledAt("mem", engine::fault::kApplyPrepared, &g, &before));
  // The helper's QEMUs outlive it; the catalog knows them as its processes.
  auto recorded = catalog::Catalog::Open(dir_ / "state/catalog.db");
  ASSERT_TRUE(recorded.ok());
  ASSERT_EQ((*recorded)->ListApplyIntents()->size(), 1u);
  const auto started = *(*recorded)->ListProcesses();
  ASSERT_EQ(started.size(), 2u);
  recorded->reset();
  for (const auto& p : started) EXPECT_TRUE(Env::Default()->IsAlive(p.pid));

  OpenEngine();
  EXPECT_EQ(engine_->recovery().applies_undone.size(), 1u);
  for (const auto& p : started) {
    EXPECT_FALSE(Env::Default()->IsAlive(p.pid)) << "a QEMU started for the apply survived";
  }
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(Vm(id).disks, before[id]);
    EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
    ExpectCatalogMatchesDisk(id);
  }
  EXPECT_FALSE(engine_->recovery().removed_files.empty()) << "the apply's overlays are gone";
}

// Killed while the first member starts from its memory state: its new QEMU
// runs (-incoming, on an overlay the apply made) and has not loaded the
// state. Recovery ends that QEMU, which no VM's record names, and starts the
// member again on its own images: each VM has exactly one QEMU.
TEST_F(SnapshotApplyTest, ACrashWhileAMemberLoadsItsStateLeavesOneQemuPerVm) {
  testing::TinyGroup g;
  std::map<std::string, std::vector<std::string>> before;
  ASSERT_NO_FATAL_FAILURE(ApplyStandardKilledAt("load", hypervisor::kFaultStarted, &g, &before));
  const std::string first = g.vm_ids[0];
  ASSERT_EQ(testing::QemusOf(first).size(), 1u) << "the QEMU started from the memory state runs";

  OpenEngine();
  EXPECT_TRUE(engine_->recovery().problems.ok()) << engine_->recovery().problems.ToString();
  EXPECT_EQ(engine_->recovery().applies_undone.size(), 1u);
  for (const auto& id : g.vm_ids) {
    const auto vm = Vm(id);
    const auto qemus = testing::QemusOf(id);
    EXPECT_EQ(qemus, std::vector<int>{vm.pid}) << vm.name << " has " << qemus.size() << " QEMUs";
    EXPECT_EQ(vm.power, Power::kRunning);
    EXPECT_EQ(vm.disks, before[id]);
    EXPECT_EQ(LiveImages(id), before[id]) << vm.name << " runs on other images";
    EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
    ExpectCatalogMatchesDisk(id);
    // A QEMU recovery missed is this test's: ended here, by pid.
    for (int pid : qemus) {
      if (pid == vm.pid) continue;
      (void)Env::Default()->Kill(pid, SIGKILL);
      (void)Env::Default()->WaitGone(pid, std::chrono::seconds(10));
    }
  }
  EXPECT_EQ(engine_->catalog().ListProcesses()->size(), g.vm_ids.size())
      << "a process is recorded that no VM runs as";
}

// Killed after a Standard snapshot's cut, while the memory states stream:
// QEMU finishes them on its own, and recovery completes the snapshot once
// they are on disk; it then applies like any other.
TEST_F(SnapshotApplyTest, AMemorySnapshotCutBeforeACrashIsCompletedByRecovery) {
  auto g = MakeGroup("cut", 2);
  engine_.reset();
  auto r = Env::Default()->Run({CRASH_HELPER, dir_ / "state", "snapshot", g.collection_id,
                                std::string(engine::fault::kCutDone), "1"},
                               std::chrono::minutes(2));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, -1) << r->err;
  OpenEngine();
  ASSERT_EQ(engine_->recovery().completed.size(), 1u) << engine_->recovery().Summary();
  const auto snap = *engine_->catalog().GetSnapshot(engine_->recovery().completed[0]);
  for (const auto& m : snap.members) {
    EXPECT_TRUE(Env::Default()->FileExists(m.memory_state));
  }
  ASSERT_TRUE(engine_->snapshots().Apply({.snapshot_id = snap.id}).ok());
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning) << "back from its memory state";
    ExpectCatalogMatchesDisk(id);
  }
}

TEST_F(SnapshotApplyTest, RefusalsChangeNothing) {
  std::string snap_id;
  auto g = Prepared("no", 2, &snap_id);
  EXPECT_EQ(engine_->snapshots().Apply({.snapshot_id = "nope"}).status().code(), Code::kNotFound);
  // The group changed since the snapshot.
  ASSERT_TRUE(engine_->collections().RemoveMember(g.vm_ids[1], g.collection_id).ok());
  auto changed = engine_->snapshots().Apply({.snapshot_id = snap_id});
  EXPECT_EQ(changed.status().code(), Code::kInvalidState);
  EXPECT_NE(changed.status().message().find("members changed"), std::string::npos);
  EXPECT_EQ(engine_->snapshots().ValidateApply({.snapshot_id = snap_id}).code(),
            Code::kInvalidState);
  for (const auto& id : g.vm_ids) EXPECT_EQ(Vm(id).power, Power::kRunning);
}

}  // namespace
}  // namespace vmgroup::integration
