// A host's part of a snapshot across hosts on real QEMU (the steps' rules
// are unit-tested in engine/host_cuts_test): driven step by step as a
// coordinator would, two tiny VMs end on their overlays with a Complete
// snapshot holding the images from before; with a coordinator that falls
// silent after "pause", they run again by themselves within the lease and
// nothing of the part is left.
#include <thread>

#include "base/ids.h"
#include "engine/host_cuts.h"
#include "group_fixture.h"

namespace vmgroup::integration {
namespace {

using namespace std::chrono_literals;
using hypervisor::RunState;

class HostCutQemuTest : public GroupFixture {
 protected:
  void SetUp() override {
    GroupFixture::SetUp();
    g_ = MakeGroup("h", 2);
    ASSERT_EQ(g_.vm_ids.size(), 2u);
  }

  engine::HostCuts& cuts() { return engine_->snapshots().host_cuts(); }

  std::vector<std::string> Active(const std::string& id) {
    auto images = engine_->vms().Live(id)->ActiveImages(Clock::now() + 10s);
    EXPECT_TRUE(images.ok()) << images.status().ToString();
    return images.ok() ? *images : std::vector<std::string>{};
  }
  RunState State(const std::string& id) {
    auto s = engine_->vms().Live(id)->State(Clock::now() + 10s);
    return s.ok() ? *s : RunState::kOther;
  }

  testing::TinyGroup g_;
};

TEST_F(HostCutQemuTest, EveryStepInTurnLeavesTheMembersOnTheirOverlaysAndACompleteSnapshot) {
  std::map<std::string, std::vector<std::string>> before;
  for (const auto& id : g_.vm_ids) before[id] = Active(id);
  const std::string sid = NewGuid();
  Status prepared = cuts().Prepare({.collection_id = g_.collection_id, .snapshot_id = sid});
  ASSERT_TRUE(prepared.ok()) << prepared.ToString();
  for (const auto& id : g_.vm_ids) EXPECT_EQ(State(id), RunState::kRunning) << "prepared running";

  auto paused = cuts().Pause(sid, 30s);
  ASSERT_TRUE(paused.ok()) << paused.status().ToString();
  EXPECT_EQ(paused->lease.unguarded, "") << "each QEMU of ours has its resume guard's monitor";
  for (const auto& id : g_.vm_ids) EXPECT_EQ(State(id), RunState::kPaused);
  Status cut = cuts().Cut(sid);
  ASSERT_TRUE(cut.ok()) << cut.ToString();
  auto resumed = cuts().Resume(sid);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  Status committed = cuts().Commit(sid);
  ASSERT_TRUE(committed.ok()) << committed.ToString();

  auto s = engine_->catalog().GetSnapshot(sid);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->state, catalog::SnapshotState::kComplete);
  EXPECT_TRUE(s->coordinated);
  ASSERT_EQ(s->members.size(), 2u);
  for (const auto& m : s->members) {
    EXPECT_EQ(State(m.vm_id), RunState::kRunning);
    std::vector<std::string> frozen, overlays;
    for (const auto& d : m.disks) {
      frozen.push_back(d.frozen_image);
      overlays.push_back(d.overlay);
    }
    EXPECT_EQ(frozen, before[m.vm_id]);
    EXPECT_EQ(Active(m.vm_id), overlays);
    EXPECT_GT(m.pause_us, 0);
  }
  // A committed part is an ordinary snapshot: destroyed as one.
  ASSERT_TRUE(engine_->snapshots().Destroy({sid}).ok());
}

TEST_F(HostCutQemuTest, ACoordinatorSilentAfterPauseLeavesTheMembersRunningAndNothingOfThePart) {
  std::map<std::string, std::vector<std::string>> before;
  for (const auto& id : g_.vm_ids) before[id] = Active(id);
  const std::string sid = NewGuid();
  ASSERT_TRUE(cuts().Prepare({.collection_id = g_.collection_id, .snapshot_id = sid}).ok());
  ASSERT_TRUE(cuts().Pause(sid, 300ms).ok());
  // Nobody says "cut": the host resumes them by itself, well within this margin.
  const auto until = Clock::now() + 300ms + 10s;
  auto running = [&] {
    for (const auto& id : g_.vm_ids) {
      if (State(id) != RunState::kRunning) return false;
    }
    return true;
  };
  while (Clock::now() < until && !running()) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(running());
  // The part undoes itself; a late cut is refused.
  for (int i = 0; i < 1000; ++i) {
    auto st = cuts().Get(sid);
    if (!st.ok() || st->stage == engine::HostCutStage::kEnded) break;
    std::this_thread::sleep_for(10ms);
  }
  Status late = cuts().Cut(sid);
  EXPECT_EQ(late.code(), Code::kTimeout) << late.ToString();
  EXPECT_EQ(engine_->catalog().GetSnapshot(sid).status().code(), Code::kNotFound);
  for (const auto& id : g_.vm_ids) {
    EXPECT_EQ(Active(id), before[id]);
    EXPECT_EQ(State(id), RunState::kRunning);
  }
  EXPECT_TRUE(cuts().Abort(sid).ok());
}

}  // namespace
}  // namespace vmgroup::integration
