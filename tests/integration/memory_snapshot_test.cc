// Standard snapshots with memory state, on real guests that count in memory
// (tests/guest_kit counter=mem): the state saved at the cut brings each
// guest back exactly where it was, counting on, never rebooted.
#include <regex>
#include <thread>

#include "engine/fault_points.h"
#include "engine/snapshot_plan.h"
#include "guest_fixture.h"
#include "testing/huge_page_pool.h"

namespace vmgroup::integration {
namespace {

using catalog::Power;

class MemorySnapshotTest : public GuestFixture {
 protected:
  // The last "count N" the guest printed to its serial console (0: none),
  // and whether it printed a boot since its QEMU started.
  int64_t LastCount(const std::string& vm_id, bool* booted = nullptr) {
    const std::string text = SerialText(vm_id);
    if (booted) *booted = text.find("BOOT-DONE") != std::string::npos;
    static const std::regex kCount("count ([0-9]+)");
    int64_t last = 0;
    for (std::sregex_iterator it(text.begin(), text.end(), kCount), end; it != end; ++it) {
      last = std::stoll((*it)[1]);
    }
    return last;
  }
  // After an apply: every guest counts on from its count at the cut (past
  // `before`, the counts just before it, and not far past `after`, those
  // just after), never rebooted, its record matching its disks.
  void ExpectCountingOnFromTheCut(const std::vector<std::string>& ids,
                                  const std::vector<int64_t>& before,
                                  const std::vector<int64_t>& after) {
    ASSERT_NO_FATAL_FAILURE(WaitForCounts(ids, 1));
    for (size_t i = 0; i < ids.size(); ++i) {
      bool booted = true;
      const int64_t resumed = LastCount(ids[i], &booted);
      EXPECT_FALSE(booted) << "guest " << i << " rebooted:\n" << SerialText(ids[i]);
      // The first counts printed after the apply follow the count at the cut.
      EXPECT_GT(resumed, before[i]) << "guest " << i;
      EXPECT_LE(resumed, after[i] + 10) << "guest " << i << " went on from later than the cut";
      ExpectCatalogMatchesDisk(ids[i]);
    }
  }
  // Waits until every guest's count is past `at_least`.
  void WaitForCounts(const std::vector<std::string>& ids, int64_t at_least) {
    const auto deadline = Clock::now() + std::chrono::minutes(2);
    for (const auto& id : ids) {
      while (LastCount(id) < at_least) {
        ASSERT_LT(Clock::now(), deadline) << "guest is not counting:\n" << SerialText(id);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
};

TEST_F(MemorySnapshotTest, ApplyingBringsEveryGuestBackCountingFromTheCut) {
  auto g = testing::MakeTinyGroup(*engine_, dir_ / "images", "m", 3, Guest("counter=mem"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_NO_FATAL_FAILURE(WaitForCounts(g->vm_ids, 10));

  std::vector<int64_t> before, after;
  for (const auto& id : g->vm_ids) before.push_back(LastCount(id));
  auto snap = engine_->snapshots().Create(
      {.collection_id = g->collection_id, .type = engine::kSnapshotStandard});
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  for (const auto& id : g->vm_ids) after.push_back(LastCount(id));
  for (const auto& m : snap->members) {
    EXPECT_FALSE(m.memory_state.empty());
    EXPECT_TRUE(Env::Default()->FileExists(m.memory_state));
  }
  std::printf("memory snapshot of 3 guests: pause window %.2f ms, whole %.0f ms\n",
              static_cast<double>(snap->pause_window_us) / 1000.0,
              static_cast<double>(snap->duration_us) / 1000.0);

  // They count on past the cut, then go back to it.
  ASSERT_NO_FATAL_FAILURE(
      WaitForCounts(g->vm_ids, *std::max_element(after.begin(), after.end()) + 15));
  auto applied = engine_->snapshots().Apply({.snapshot_id = snap->id});
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  for (const auto& id : g->vm_ids) {
    EXPECT_EQ(Vm(id).power, Power::kRunning);
    EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
  }
  ASSERT_NO_FATAL_FAILURE(ExpectCountingOnFromTheCut(g->vm_ids, before, after));

  // The snapshot stays: applied again, and destroyed with its memory states.
  ASSERT_TRUE(engine_->snapshots().Apply({.snapshot_id = snap->id}).ok());
  ASSERT_TRUE(engine_->snapshots().Destroy({.snapshot_id = snap->id}).ok());
  for (const auto& m : snap->members) EXPECT_FALSE(Env::Default()->FileExists(m.memory_state));
  for (const auto& id : g->vm_ids) ExpectCatalogMatchesDisk(id);
  OpenEngine();
  EXPECT_TRUE(engine_->recovery().removed_files.empty());
}

TEST_F(MemorySnapshotTest, AFailedMemoryApplyLeavesTheGroupAsItWas) {
  auto g = testing::MakeTinyGroup(*engine_, dir_ / "images", "f", 2, Guest("counter=mem"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_NO_FATAL_FAILURE(WaitForCounts(g->vm_ids, 5));
  auto snap = engine_->snapshots().Create(
      {.collection_id = g->collection_id, .type = engine::kSnapshotStandard});
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  std::map<std::string, std::vector<std::string>> disks;
  for (const auto& id : g->vm_ids) disks[id] = Vm(id).disks;

  // The memory state of the second member cannot be loaded: the first was
  // already started from its own when the second fails.
  ASSERT_TRUE(Env::Default()->Run({"truncate", "-s", "4096", snap->members[1].memory_state}).ok());
  auto applied = engine_->snapshots().Apply({.snapshot_id = snap->id});
  EXPECT_FALSE(applied.ok());
  for (const auto& id : g->vm_ids) {
    EXPECT_EQ(Vm(id).disks, disks[id]) << "still on its own disks";
    EXPECT_EQ(Vm(id).power, Power::kRunning);
    EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
    ExpectCatalogMatchesDisk(id);
  }
  OpenEngine();
  EXPECT_TRUE(engine_->recovery().removed_files.empty()) << "nothing of the apply stayed";
}

TEST_F(MemorySnapshotTest, APausedMemberIsRefusedForAStandardSnapshot) {
  auto g = MakeGroup("p", 2);
  ASSERT_TRUE(engine_->vms().Pause(g.vm_ids[1]).ok());
  auto snap = engine_->snapshots().Create(
      {.collection_id = g.collection_id, .type = engine::kSnapshotStandard});
  EXPECT_EQ(snap.status().code(), Code::kInvalidState);
  EXPECT_NE(snap.status().message().find("paused"), std::string::npos);
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  EXPECT_EQ(LiveState(g.vm_ids[1]), hypervisor::RunState::kPaused);
}

// Guests whose RAM is on 2 MiB huge pages: snapshotted with memory and
// brought back as any guest; once the pages are gone, starting one again
// is refused as such.
TEST_F(MemorySnapshotTest, GuestsOnHugePagesAreSnapshottedWithMemoryAndApplied) {
  // Two guests of 128 MiB: 64 pages each (an apply ends each QEMU before it
  // starts the next, so they never need more).
  auto pool = testing::HugePagePool::Reserve(128);
  if (!pool.ok()) GTEST_SKIP() << "no huge pages for this test: " << pool.status().ToString();
  testing::TinyVmOptions guest = Guest("counter=mem");
  guest.config.hugepages = true;
  auto g = testing::MakeTinyGroup(*engine_, dir_ / "images", "h", 2, guest);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_NO_FATAL_FAILURE(WaitForCounts(g->vm_ids, 5));
  for (const auto& id : g->vm_ids) EXPECT_TRUE(Vm(id).config.hugepages);

  std::vector<int64_t> before;
  for (const auto& id : g->vm_ids) before.push_back(LastCount(id));
  auto snap = engine_->snapshots().Create(
      {.collection_id = g->collection_id, .type = engine::kSnapshotStandard});
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  std::vector<int64_t> after;
  for (const auto& id : g->vm_ids) after.push_back(LastCount(id));
  std::printf("memory snapshot of 2 guests on huge pages: pause window %.2f ms\n",
              static_cast<double>(snap->pause_window_us) / 1000.0);
  ASSERT_NO_FATAL_FAILURE(
      WaitForCounts(g->vm_ids, *std::max_element(after.begin(), after.end()) + 10));
  auto applied = engine_->snapshots().Apply({.snapshot_id = snap->id});
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  ASSERT_NO_FATAL_FAILURE(ExpectCountingOnFromTheCut(g->vm_ids, before, after));

  // The pages go back to the host, and are gone by the next start.
  const std::string& id = g->vm_ids[0];
  ASSERT_TRUE(engine_->vms().Stop(id).ok());
  (*pool)->Restore();
  Status started = engine_->vms().Start(id);
  EXPECT_EQ(started.code(), Code::kUnavailable) << started.ToString();
  EXPECT_NE(started.message().find("needs 64 free 2 MiB pages"), std::string::npos)
      << started.message();
  EXPECT_EQ(Vm(id).power, Power::kOff);
}

}  // namespace
}  // namespace vmgroup::integration
