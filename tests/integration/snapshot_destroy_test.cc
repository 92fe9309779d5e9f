// Destroying group snapshots on real QEMU: every other snapshot and every
// VM's current disks read exactly as before, in any order, live or offline,
// with no image left over or missing; a failure or a crash part way ends
// with the snapshot either intact or gone, never half.
#include <algorithm>

#include "engine/fault_points.h"
#include "group_fixture.h"

namespace vmgroup::integration {
namespace {

using catalog::Power;

class SnapshotDestroyTest : public GroupFixture {
 protected:
  // Builds, with the VMs off, a history whose per-disk image tree has every
  // shape a destroy meets:
  //   0x11, S1, 0x22, S2, 0x33, apply S1, 0x44, S3, apply S2, 0x55
  // S1's image then has two children (S2's, and S3's branch), S2's image one
  // (the active image), S3's none. Saves what each snapshot and each disk
  // reads, to compare with after.
  testing::TinyGroup History(const std::string& prefix, int n) {
    auto g = MakeGroup(prefix, n, /*start=*/false);
    auto stamp = [&](int pattern) {
      for (const auto& id : g.vm_ids) {
        for (const auto& disk : Vm(id).disks) Stamp(disk, pattern);
      }
    };
    auto snap = [&] {
      auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
      EXPECT_TRUE(s.ok()) << s.status().ToString();
      snaps_.push_back(s.ok() ? s->id : "");
    };
    auto apply = [&](int k) {
      EXPECT_TRUE(engine_->snapshots().Apply({.snapshot_id = snaps_[k]}).ok());
    };
    stamp(0x11), snap(), stamp(0x22), snap(), stamp(0x33), apply(0);
    stamp(0x44), snap(), apply(1), stamp(0x55);
    for (const auto& id : snaps_) {
      const auto s = engine_->catalog().GetSnapshot(id);
      for (const auto& m : s->members) {
        for (const auto& d : m.disks) Save(m.id + "-" + std::to_string(d.index), d.frozen_image);
      }
    }
    for (const auto& id : g.vm_ids) {
      const auto disks = Vm(id).disks;
      for (size_t i = 0; i < disks.size(); ++i) Save(id + "-" + std::to_string(i), disks[i]);
    }
    return g;
  }

  void Save(const std::string& key, const std::string& image) {
    const std::string copy = dir_ / ("ref-" + key + ".qcow2");
    auto r = Env::Default()->Run({"qemu-img", "convert", "-U", "-O", "qcow2", image, copy});
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << r->err;
    saved_[key] = copy;
  }

  // Every snapshot still in the catalog and every disk reads as saved, and
  // the catalog and the files agree.
  void ExpectNothingElseChanged(const testing::TinyGroup& g) {
    const auto all = engine_->catalog().ListSnapshots();
    for (const auto& s : *all) {
      EXPECT_EQ(s.state, catalog::SnapshotState::kComplete);
      for (const auto& m : s.members) {
        for (const auto& d : m.disks) {
          EXPECT_TRUE(SameContent(d.frozen_image, saved_[m.id + "-" + std::to_string(d.index)]))
              << "snapshot " << s.id << " VM " << m.vm_id << " disk " << d.index;
        }
      }
    }
    for (const auto& id : g.vm_ids) {
      const auto disks = Vm(id).disks;
      for (size_t i = 0; i < disks.size(); ++i) {
        EXPECT_TRUE(SameContent(disks[i], saved_[id + "-" + std::to_string(i)])) << id << " " << i;
      }
      ExpectCatalogMatchesDisk(id);
    }
  }

  void StartAll(const testing::TinyGroup& g) {
    for (const auto& id : g.vm_ids) ASSERT_TRUE(engine_->vms().Start(id).ok());
  }

  std::vector<std::string> snaps_;  // S1, S2, S3
  std::map<std::string, std::string> saved_;
};

// Destroy order (a permutation of S1..S3) x VMs running or off.
class DestroyOrderTest : public SnapshotDestroyTest,
                         public ::testing::WithParamInterface<std::tuple<int, bool>> {};

TEST_P(DestroyOrderTest, OthersKeepTheirContentAndNoImageIsLeftOrMissing) {
  const auto [permutation, live] = GetParam();
  auto g = History("o", 3);
  if (live) StartAll(g);
  std::vector<int> order = {0, 1, 2};
  for (int i = 0; i < permutation; ++i) std::next_permutation(order.begin(), order.end());

  for (int k : order) {
    SCOPED_TRACE("destroying S" + std::to_string(k + 1));
    Status destroyed = engine_->snapshots().Destroy({.snapshot_id = snaps_[k]});
    ASSERT_TRUE(destroyed.ok()) << destroyed.ToString();
    EXPECT_EQ(engine_->catalog().GetSnapshot(snaps_[k]).status().code(), Code::kNotFound);
    ExpectNothingElseChanged(g);
    for (const auto& id : g.vm_ids) {
      EXPECT_EQ(Vm(id).power, live ? Power::kRunning : Power::kOff);
      if (live) {
        EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning) << "no downtime";
        EXPECT_EQ(LiveImages(id), Vm(id).disks) << "QEMU runs on what the catalog says";
      }
    }
  }
  // Snapshots taken and applied afterwards still work on the merged tree.
  auto again = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ASSERT_TRUE(engine_->snapshots().Apply({.snapshot_id = again->id}).ok());
  for (const auto& id : g.vm_ids) {
    for (const auto& disk : Vm(id).disks) EXPECT_TRUE(StampReadable(disk, 0x55));
    ExpectCatalogMatchesDisk(id);
  }
  OpenEngine();
  EXPECT_TRUE(engine_->recovery().removed_files.empty()) << "a destroy left a file behind";
}

INSTANTIATE_TEST_SUITE_P(EveryOrder, DestroyOrderTest,
                         ::testing::Combine(::testing::Range(0, 6), ::testing::Bool()));

// Snapshots cut while the VMs run leave named overlay nodes in QEMU: every
// order of destroying three of them keeps QEMU's graph usable for the next
// merge, snapshot and apply.
TEST_F(SnapshotDestroyTest, LiveCutSnapshotsGoInAnyOrderWithoutStoppingTheVms) {
  std::vector<int> order = {0, 1, 2};
  int round = 0;
  do {
    SCOPED_TRACE("order " + std::to_string(order[0]) + std::to_string(order[1]) +
                 std::to_string(order[2]));
    auto g = MakeGroup("l" + std::to_string(round++), 2);
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
      auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      ids.push_back(s->id);
    }
    for (int k : order) {
      Status st = engine_->snapshots().Destroy({.snapshot_id = ids[k]});
      ASSERT_TRUE(st.ok()) << st.ToString();
      for (const auto& id : g.vm_ids) {
        EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
        EXPECT_EQ(LiveImages(id), Vm(id).disks);
        ExpectCatalogMatchesDisk(id);
      }
    }
    auto next = engine_->snapshots().Create({.collection_id = g.collection_id});
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    ASSERT_TRUE(engine_->snapshots().Destroy({.snapshot_id = next->id}).ok());
    ASSERT_TRUE(engine_->vms().StopAll().ok());
  } while (std::next_permutation(order.begin(), order.end()));
}

TEST_F(SnapshotDestroyTest, TheTreeClosesOverADestroyedSnapshot) {
  auto g = History("tree", 1);
  const auto s1 = *engine_->catalog().GetSnapshot(snaps_[0]);
  ASSERT_TRUE(engine_->snapshots().Destroy({.snapshot_id = snaps_[1]}).ok());
  // S2 was the VM's current snapshot (applied last): its parent S1 is now.
  const auto vm = Vm(g.vm_ids[0]);
  EXPECT_EQ(vm.current_snapshot, s1.members[0].id);
  EXPECT_EQ(vm.last_applied, "") << "the snapshot last applied is gone";
  ASSERT_TRUE(engine_->snapshots().Destroy({.snapshot_id = snaps_[0]}).ok());
  EXPECT_EQ(engine_->catalog().GetSnapshot(snaps_[2])->members[0].parent_id, "")
      << "S3 hangs from what S1 hung from";
  EXPECT_EQ(Vm(g.vm_ids[0]).current_snapshot, "");
  ExpectNothingElseChanged(g);
}

TEST_F(SnapshotDestroyTest, AFailureBeforeAnyMergeKeepsTheSnapshot) {
  auto g = History("keep", 3);
  StartAll(g);
  const std::string victim = Vm(g.vm_ids[1]).name;
  OpenEngine({}, std::make_unique<OnPointEnv>(
                     engine::fault::kDestroyMemberDetached, [&](std::string_view vm) {
                       return vm == victim ? Status::Failed("injected") : Status::Ok();
                     }));
  EXPECT_EQ(engine_->snapshots().Destroy({.snapshot_id = snaps_[0]}).code(), Code::kFailed);
  EXPECT_EQ(engine_->catalog().GetSnapshot(snaps_[0])->state, catalog::SnapshotState::kComplete);
  ExpectNothingElseChanged(g);
  for (const auto& id : g.vm_ids) EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
  // The snapshot is whole: it applies, and then destroys cleanly.
  OpenEngine();
  ASSERT_TRUE(engine_->snapshots().Apply({.snapshot_id = snaps_[0]}).ok());
  for (const auto& id : g.vm_ids) {
    for (const auto& disk : Vm(id).disks) EXPECT_TRUE(StampReadable(disk, 0x11));
  }
  ASSERT_TRUE(engine_->snapshots().Destroy({.snapshot_id = snaps_[0]}).ok());
}

TEST_F(SnapshotDestroyTest, AFailureAfterAMergeIsFinishedByTheNextDestroy) {
  auto g = History("fwd", 3);
  StartAll(g);
  const std::string victim = Vm(g.vm_ids[1]).name;
  bool failed_once = false;  // the failure strikes once: the next destroy gets through
  OpenEngine({}, std::make_unique<OnPointEnv>(
                     engine::fault::kDestroyMemberMerged, [&](std::string_view vm) {
                       if (vm != victim || std::exchange(failed_once, true)) return Status::Ok();
                       return Status::Failed("injected");
                     }));
  Status failed = engine_->snapshots().Destroy({.snapshot_id = snaps_[0]});
  EXPECT_EQ(failed.code(), Code::kFailed);
  EXPECT_NE(failed.message().find("destroy it again"), std::string::npos) << failed.message();
  EXPECT_EQ(engine_->catalog().GetSnapshot(snaps_[0])->state, catalog::SnapshotState::kDestroying);
  EXPECT_EQ(engine_->snapshots().Apply({.snapshot_id = snaps_[0]}).status().code(),
            Code::kInvalidState)
      << "a partly merged snapshot must never be applied";
  for (const auto& id : g.vm_ids) EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);

  Status again = engine_->snapshots().Destroy({.snapshot_id = snaps_[0]});
  ASSERT_TRUE(again.ok()) << again.ToString();
  ExpectNothingElseChanged(g);
}

// The daemon killed in the middle of a destroy: recovery finishes it.
TEST_F(SnapshotDestroyTest, ACrashMidDestroyIsFinishedByRecovery) {
  const std::string_view points[] = {engine::fault::kDestroyMemberDetached,
                                     engine::fault::kDestroyMemberMerged,
                                     engine::fault::kDestroyCommitted};
  for (size_t i = 0; i < std::size(points); ++i) {
    const std::string_view point = points[i];
    SCOPED_TRACE(std::string(point));
    snaps_.clear();
    auto g = History("c" + std::to_string(i), 2);
    StartAll(g);
    engine_.reset();  // the helper is the daemon now
    auto r = Env::Default()->Run(
        {CRASH_HELPER, dir_ / "state", "destroy", snaps_[0], std::string(point)},
        std::chrono::minutes(2));
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->exit_code, -1) << "killed at " << point << ": " << r->err;
    OpenEngine();
    EXPECT_TRUE(engine_->recovery().problems.ok()) << engine_->recovery().problems.ToString();
    EXPECT_EQ(engine_->recovery().destroyed.size(),
              point == engine::fault::kDestroyCommitted ? 0u : 1u);
    EXPECT_EQ(engine_->catalog().GetSnapshot(snaps_[0]).status().code(), Code::kNotFound);
    ExpectNothingElseChanged(g);
    for (const auto& id : g.vm_ids) EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
    ASSERT_TRUE(engine_->vms().StopAll().ok());
  }
}

TEST_F(SnapshotDestroyTest, RefusalsChangeNothing) {
  auto g = History("no", 1);
  EXPECT_EQ(engine_->snapshots().Destroy({.snapshot_id = "nope"}).code(), Code::kNotFound);
  EXPECT_EQ(engine_->snapshots().ValidateDestroy({.snapshot_id = "nope"}).code(), Code::kNotFound);
  ExpectNothingElseChanged(g);
}

}  // namespace
}  // namespace vmgroup::integration
