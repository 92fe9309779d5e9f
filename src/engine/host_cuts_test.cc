// A host's part of a snapshot across hosts over the fake driver, driven
// step by step as a coordinator would: what each step leaves, the orders
// refused, the part undoing itself when its coordinator falls silent, and
// recovery after the host dies. On real QEMU: tests/integration/host_cut_test.
#include "engine/host_cuts.h"

#include <algorithm>
#include <thread>

#include "base/ids.h"
#include "engine/fake_group_test.h"
#include "engine/fault_points.h"
#include "engine/spanning_cut.h"

namespace vmgroup::engine {
namespace {

using hypervisor::RunState;
using namespace std::chrono_literals;

constexpr Duration kLease = 5s;  // a lease that does not run out unless a test waits for it

class HostCutsTest : public FakeGroupTest {
 protected:
  HostCuts& cuts() { return engine_->snapshots().host_cuts(); }

  // A prepared part of `g`'s snapshot `id`.
  void Prepare(const FakeGroup& g, const std::string& id, Duration step_timeout = 10s) {
    ASSERT_TRUE(
        cuts()
            .Prepare(
                {.collection_id = g.collection_id, .snapshot_id = id, .step_timeout = step_timeout})
            .ok());
  }

  // Every member of `g` runs (not paused) on `disks`.
  void ExpectRunningOn(const FakeGroup& g,
                       const std::map<std::string, std::vector<std::string>>& disks) {
    for (const auto& id : g.vm_ids) {
      auto vm = Fake(id);
      ASSERT_TRUE(vm);
      EXPECT_EQ(vm->state(), RunState::kRunning) << Vm(id).name;
      EXPECT_EQ(vm->active(), disks.at(id)) << Vm(id).name;
    }
  }

  // Waits until the part of `id` has ended by itself (or 10 s passed).
  void AwaitEnd(const std::string& id) {
    for (int i = 0; i < 2000; ++i) {
      auto s = cuts().Get(id);
      if (!s.ok() || s->stage == HostCutStage::kEnded) return;
      std::this_thread::sleep_for(5ms);
    }
    ADD_FAILURE() << "the part of " << id << " did not end";
  }
};

TEST_F(HostCutsTest, EveryStepInTurnLeavesACompleteSnapshotOfThisHostsMembers) {
  auto g = MakeGroup(2);
  const auto before = Disks(g);
  const std::string id = NewGuid();
  Prepare(g, id);
  EXPECT_EQ(cuts().Get(id)->stage, HostCutStage::kPrepared);
  ExpectRunningOn(g, before);  // prepared while they run

  auto paused = cuts().Pause(id, kLease);
  ASSERT_TRUE(paused.ok()) << paused.status().ToString();
  EXPECT_EQ(paused->lease.state, LeaseState::kPaused);
  ASSERT_EQ(paused->lease.members.size(), 2u);
  EXPECT_EQ(paused->vm_ids, g.vm_ids);
  for (const auto& vm : g.vm_ids) EXPECT_EQ(Fake(vm)->state(), RunState::kPaused);
  for (const auto& t : paused->lease.members) EXPECT_GT(t.paused_at_us, 0);
  // Guarded through the registry, by the driver the VMs live on.
  const auto calls = driver_.calls();
  EXPECT_NE(std::find(calls.begin(), calls.end(), "guard resume 2 VMs"), calls.end());
  EXPECT_EQ(paused->lease.unguarded, "");

  ASSERT_TRUE(cuts().Cut(id).ok());
  for (const auto& vm : g.vm_ids) EXPECT_EQ(Fake(vm)->state(), RunState::kPaused) << "until Resume";

  auto resumed = cuts().Resume(id);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->lease.state, LeaseState::kResumed);
  EXPECT_TRUE(resumed->lease.cut_kept);
  for (const auto& t : resumed->lease.members) {
    EXPECT_GT(t.pause_us, 0);
    EXPECT_GE(t.cut_time_us, t.paused_at_us);
  }
  auto incomplete = engine_->catalog().GetSnapshot(id);
  ASSERT_TRUE(incomplete.ok());
  EXPECT_EQ(incomplete->state, catalog::SnapshotState::kIncomplete) << "until Commit";

  ASSERT_TRUE(cuts().Commit(id).ok());
  auto s = engine_->catalog().GetSnapshot(id);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->state, catalog::SnapshotState::kComplete);
  EXPECT_EQ(s->collection_id, g.collection_id);
  for (size_t i = 0; i < s->members.size(); ++i) {
    EXPECT_EQ(s->members[i].cut_time_us, resumed->lease.members[i].cut_time_us);
    EXPECT_EQ(s->members[i].pause_us, resumed->lease.members[i].pause_us);
    EXPECT_EQ(s->members[i].disks[0].frozen_image, before.at(g.vm_ids[i])[0]);
    EXPECT_EQ(Fake(g.vm_ids[i])->active()[0], s->members[i].disks[0].overlay);
  }
  EXPECT_EQ(cuts().Get(id).status().code(), Code::kNotFound) << "collected by Commit";
  ExpectConsistent();
}

// Pause with `cut`: the members are switched as they are paused, still
// paused until Resume, and the part goes on as after a Cut.
TEST_F(HostCutsTest, APauseThatCutsAtOnceLeavesThePartCutAndPaused) {
  auto g = MakeGroup(2);
  const auto before = Disks(g);
  const std::string id = NewGuid();
  Prepare(g, id);
  auto paused = cuts().Pause(id, kLease, /*cut=*/true);
  ASSERT_TRUE(paused.ok()) << paused.status().ToString();
  EXPECT_EQ(paused->stage, HostCutStage::kCut);
  EXPECT_EQ(paused->lease.state, LeaseState::kCut);
  for (const auto& vm : g.vm_ids) {
    EXPECT_EQ(Fake(vm)->state(), RunState::kPaused);
    EXPECT_NE(Fake(vm)->active(), before.at(vm)) << "on its overlay";
  }
  EXPECT_EQ(cuts().Cut(id).code(), Code::kInvalidState) << "cut already";
  ASSERT_TRUE(cuts().Resume(id).ok());
  ASSERT_TRUE(cuts().Commit(id).ok());
  EXPECT_EQ(engine_->catalog().GetSnapshot(id)->state, catalog::SnapshotState::kComplete);
  ExpectConsistent();
}

TEST_F(HostCutsTest, AbortInAnyStageLeavesEveryMemberRunningOnItsImagesFromBefore) {
  const std::vector<std::string> stages = {"prepared", "paused", "cut", "resumed"};
  for (size_t stop = 0; stop < stages.size(); ++stop) {
    SCOPED_TRACE(stages[stop]);
    auto g = MakeGroup(2, stages[stop]);
    const auto before = Disks(g);
    const std::string id = NewGuid();
    Prepare(g, id);
    if (stop >= 1) {
      ASSERT_TRUE(cuts().Pause(id, kLease).ok());
    }
    if (stop >= 2) {
      ASSERT_TRUE(cuts().Cut(id).ok());
    }
    if (stop >= 3) {
      ASSERT_TRUE(cuts().Resume(id).ok());
    }
    ASSERT_TRUE(cuts().Abort(id).ok());
    ExpectRunningOn(g, before);
    EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);
    EXPECT_EQ(cuts().Get(id).status().code(), Code::kNotFound);
    EXPECT_TRUE(cuts().Abort(id).ok()) << "again: nothing left to take back";
    ExpectConsistent();
  }
}

TEST_F(HostCutsTest, AbortDestroysACommittedPartAndANeverSeenOneIsNothingToTakeBack) {
  auto g = MakeGroup(2);
  const auto before = Disks(g);
  const std::string id = NewGuid();
  Prepare(g, id);
  ASSERT_TRUE(cuts().Pause(id, kLease).ok());
  ASSERT_TRUE(cuts().Cut(id).ok());
  ASSERT_TRUE(cuts().Resume(id).ok());
  ASSERT_TRUE(cuts().Commit(id).ok());
  // The coordinator undoes a snapshot that did not commit everywhere, also
  // after this host restarted.
  Open();
  ASSERT_TRUE(cuts().Abort(id).ok());
  EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);
  for (const auto& vm : g.vm_ids) EXPECT_EQ(Fake(vm)->state(), RunState::kRunning);
  EXPECT_TRUE(cuts().Abort(NewGuid()).ok());
  ExpectConsistent();
}

TEST_F(HostCutsTest, StepsOutOfOrderAreRefusedAndChangeNothing) {
  auto g = MakeGroup(2);
  const std::string id = NewGuid();
  Prepare(g, id);
  const Status early_cut = cuts().Cut(id);
  EXPECT_EQ(early_cut.code(), Code::kInvalidState) << early_cut.ToString();
  EXPECT_NE(early_cut.message().find("prepared"), std::string::npos) << early_cut.ToString();
  EXPECT_EQ(cuts().Commit(id).code(), Code::kInvalidState);
  EXPECT_EQ(cuts().Resume(id).status().code(), Code::kInvalidState);
  ASSERT_TRUE(cuts().Pause(id, kLease).ok());
  EXPECT_EQ(cuts().Pause(id, kLease).status().code(), Code::kInvalidState);
  EXPECT_EQ(cuts().Commit(id).code(), Code::kInvalidState);
  ASSERT_TRUE(cuts().Cut(id).ok());
  ASSERT_TRUE(cuts().Resume(id).ok());
  ASSERT_TRUE(cuts().Commit(id).ok());
  EXPECT_EQ(cuts().Cut(NewGuid()).code(), Code::kNotFound);
  ExpectConsistent();
}

TEST_F(HostCutsTest, RefusesWhatItCannotTakeAndChangesNothing) {
  auto g = MakeGroup(2);
  const auto before = Disks(g);
  EXPECT_EQ(cuts().Prepare({.collection_id = g.collection_id}).code(), Code::kInvalidArgument);
  EXPECT_EQ(cuts()
                .Prepare({.collection_id = g.collection_id,
                          .snapshot_id = NewGuid(),
                          .type = kSnapshotStandard})
                .code(),
            Code::kNotSupported);
  EXPECT_EQ(cuts().Prepare({.collection_id = NewGuid(), .snapshot_id = NewGuid()}).code(),
            Code::kNotFound);
  const std::string id = NewGuid();
  Prepare(g, id);
  EXPECT_EQ(cuts().Prepare({.collection_id = g.collection_id, .snapshot_id = id}).code(),
            Code::kAlreadyExists);
  const Status busy = cuts().Prepare({.collection_id = g.collection_id, .snapshot_id = NewGuid()});
  EXPECT_EQ(busy.code(), Code::kBusy) << busy.ToString();
  EXPECT_EQ(cuts().Pause(id, 0ms).status().code(), Code::kInvalidArgument);
  ASSERT_TRUE(cuts().Abort(id).ok());
  ExpectRunningOn(g, before);
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  ExpectConsistent();
}

TEST_F(HostCutsTest, ACoordinatorThatFallsSilentLeavesNothingAfterTheStepTimeout) {
  auto g = MakeGroup(2);
  const auto before = Disks(g);
  const std::string id = NewGuid();
  Prepare(g, id, 200ms);
  AwaitEnd(id);
  const auto late = cuts().Pause(id, kLease);
  EXPECT_EQ(late.status().code(), Code::kTimeout) << late.status().ToString();
  EXPECT_NE(late.status().message().find("no pause came"), std::string::npos)
      << late.status().ToString();
  ExpectRunningOn(g, before);
  EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);

  // Silent after the cut too: resumed, switches taken back, nothing kept.
  const std::string again = NewGuid();
  Prepare(g, again, 300ms);
  ASSERT_TRUE(cuts().Pause(again, kLease).ok());
  ASSERT_TRUE(cuts().Cut(again).ok());
  AwaitEnd(again);
  EXPECT_EQ(cuts().Resume(again).status().code(), Code::kTimeout);
  ExpectRunningOn(g, before);
  EXPECT_EQ(engine_->catalog().GetSnapshot(again).status().code(), Code::kNotFound);
  ExpectConsistent();
}

TEST_F(HostCutsTest, ALeaseThatRunsOutBeforeTheCutResumesTheMembersAndRefusesTheCut) {
  auto g = MakeGroup(2);
  const auto before = Disks(g);
  const std::string id = NewGuid();
  Prepare(g, id);
  ASSERT_TRUE(cuts().Pause(id, 100ms).ok());
  AwaitEnd(id);
  const Status late = cuts().Cut(id);
  EXPECT_EQ(late.code(), Code::kTimeout) << late.ToString();
  EXPECT_NE(late.message().find("pause lease"), std::string::npos) << late.ToString();
  ExpectRunningOn(g, before);
  EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);
  ExpectConsistent();
}

// ConsistencyLevel 1: the part freezes its guests once prepared, before
// it answers Prepare, and thaws them once resumed, before it answers
// Resume; the members are recorded application consistent.
TEST_F(HostCutsTest, AnApplicationConsistentPartKeepsItsGuestsFrozenFromPrepareToResume) {
  auto g = MakeGroup(2);
  const std::string id = NewGuid();
  const auto frozen = [&](const std::string& vm) {
    return Fake(vm)->FilesystemsFrozen(Clock::now() + 1s).value_or(false);
  };
  ASSERT_TRUE(cuts()
                  .Prepare({.collection_id = g.collection_id,
                            .snapshot_id = id,
                            .consistency = catalog::Consistency::kApplication})
                  .ok());
  for (const auto& vm : g.vm_ids) EXPECT_TRUE(frozen(vm)) << Vm(vm).name;
  ASSERT_TRUE(cuts().Pause(id, kLease, /*cut=*/true).ok());
  for (const auto& vm : g.vm_ids) EXPECT_TRUE(frozen(vm)) << Vm(vm).name << ": through the cut";
  ASSERT_TRUE(cuts().Resume(id).ok());
  for (const auto& vm : g.vm_ids) EXPECT_FALSE(frozen(vm)) << Vm(vm).name << ": thawed";
  ASSERT_TRUE(cuts().Commit(id).ok());
  auto s = engine_->catalog().GetSnapshot(id);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->consistency, catalog::Consistency::kApplication);
  for (const auto& m : s->members) EXPECT_EQ(m.consistency, catalog::Consistency::kApplication);
  EXPECT_GT(s->freeze_window_us, 0);
  ExpectConsistent();
}

// Frozen guests bound every wait of the part by their freeze bound, not
// the step timeout: a coordinator that falls silent after the prepare
// leaves them thawed and the part undone once the bound's time is up.
TEST_F(HostCutsTest, AFrozenPartWaitsForItsCoordinatorNoLongerThanTheFreezeBoundAllows) {
  snapshot_options_.freeze_bound = 2s;
  Open();
  auto g = MakeGroup(2);
  const auto before = Disks(g);
  const std::string id = NewGuid();
  const Clock::time_point prepared = Clock::now();
  ASSERT_TRUE(cuts()
                  .Prepare({.collection_id = g.collection_id,
                            .snapshot_id = id,
                            .consistency = catalog::Consistency::kApplication,
                            .step_timeout = 30s})
                  .ok());
  AwaitEnd(id);
  EXPECT_LT(Clock::now() - prepared, 10s) << "ended by the freeze bound, not the step timeout";
  const auto late = cuts().Pause(id, kLease);
  EXPECT_EQ(late.status().code(), Code::kTimeout) << late.status().ToString();
  EXPECT_NE(late.status().message().find("freeze bound"), std::string::npos)
      << late.status().ToString();
  for (const auto& vm : g.vm_ids) {
    EXPECT_FALSE(Fake(vm)->FilesystemsFrozen(Clock::now() + 1s).value_or(true)) << Vm(vm).name;
  }
  ExpectRunningOn(g, before);
  EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);
  ExpectConsistent();
}

// The coordinator's own members go through LocalCutHost: the protocol over
// this host's HostCuts leaves a Complete snapshot, its members' timings and
// the host's clock in the report.
TEST_F(HostCutsTest, TheCoordinatorsProtocolTakesThisHostsPartThroughLocalCutHost) {
  auto g = MakeGroup(2);
  LocalCutHost local(&cuts(), &engine_->snapshots().host_applies(),
                     &engine_->snapshots().backups());
  const SpanningCutRequest request{
      .snapshot_id = NewGuid(), .collection_id = g.collection_id, .lease = kLease};
  auto report = TakeSpanningCut(Env::Default(), {&local}, request);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->hosts.size(), 1u);
  const SpannedHost& h = report->hosts[0];
  EXPECT_EQ(h.name, "this host");
  EXPECT_EQ(h.resume.answer.vm_ids, g.vm_ids);
  EXPECT_EQ(h.resume.answer.lease_state, "resumed");
  EXPECT_GE(h.resume.answer.host_time_us, h.resume.sent_us);
  EXPECT_LE(h.resume.answer.host_time_us, h.resume.answered_us);
  EXPECT_EQ(engine_->catalog().GetSnapshot(request.snapshot_id)->state,
            catalog::SnapshotState::kComplete);
  ExpectConsistent();
}

// The host dies with its part cut and resumed, before the commit: its next
// start undoes the part, as it does a snapshot on one host.
TEST_F(HostCutsTest, APartTheHostDiedWithIsUndoneAtItsNextStart) {
  auto g = MakeGroup(2);
  const auto before = Disks(g);
  const std::string id = NewGuid();
  ASSERT_TRUE(CrashAt(fault::kCutDone, [&](Engine& e) {
    HostCuts& c = e.snapshots().host_cuts();
    if (!c.Prepare({.collection_id = g.collection_id, .snapshot_id = id}).ok()) return;
    if (!c.Pause(id, kLease).ok() || !c.Cut(id).ok()) return;
    (void)c.Resume(id);
  }));
  EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);
  ExpectRunningOn(g, before);
  ExpectConsistent();
}

}  // namespace
}  // namespace vmgroup::engine
