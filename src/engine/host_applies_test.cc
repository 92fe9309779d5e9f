// One host's part of an apply across hosts over the fake driver: prepared
// and held (members stopped, claimed, not startable) until Commit or Abort,
// also across a restart of the host; a part cut short before it was held is
// undone at the next start as any apply. The coordinator's side:
// spanning_snapshots_test; over real daemons: tests/integration/net_hosts_test.
#include "engine/host_applies.h"

#include "engine/fake_group_test.h"
#include "engine/fault_points.h"

namespace vmgroup::engine {
namespace {

class HostAppliesTest : public FakeGroupTest {
 protected:
  HostApplies& applies() { return engine_->snapshots().host_applies(); }
  // Every VM of `g` is `power`, with a fake QEMU exactly when not off.
  void ExpectPower(const FakeGroup& g, catalog::Power power) {
    for (const auto& id : g.vm_ids) {
      EXPECT_EQ(Vm(id).power, power) << id;
      EXPECT_EQ(Fake(id) != nullptr, power != catalog::Power::kOff) << id;
    }
  }
  // Every VM of `g` is on a new overlay of its member's frozen image in `s`.
  void ExpectApplied(const FakeGroup& g, const catalog::SnapshotRecord& s,
                     const std::map<std::string, std::vector<std::string>>& before) {
    const auto now = Disks(g);
    for (const auto& m : s.members) {
      EXPECT_EQ(Vm(m.vm_id).last_applied, m.id);
      ASSERT_EQ(now.at(m.vm_id).size(), 1u);
      EXPECT_NE(now.at(m.vm_id), before.at(m.vm_id)) << "a new overlay";
      auto backing = img_.Info(now.at(m.vm_id)[0]);
      ASSERT_TRUE(backing.ok()) << backing.status().ToString();
      EXPECT_EQ(backing->backing_filename, m.disks[0].frozen_image);
    }
  }
  bool Recorded(const std::string& snapshot_id) {
    auto intents = engine_->catalog().ListApplyIntents();
    if (!intents.ok()) return true;
    for (const auto& i : *intents) {
      if (i.snapshot_id == snapshot_id) return true;
    }
    return false;
  }
};

TEST_F(HostAppliesTest, APreparedPartHoldsItsMembersStoppedUntilItIsCommitted) {
  auto g = MakeGroup(2);
  const catalog::SnapshotRecord s = Snapshot(g);
  const auto before = Disks(g);
  ASSERT_TRUE(applies().Validate(s.id).ok());
  ASSERT_TRUE(applies().Prepare(s.id).ok());
  EXPECT_TRUE(applies().Prepare(s.id).ok()) << "asked again after a lost answer";
  EXPECT_TRUE(applies().Validate(s.id).ok());
  EXPECT_EQ(applies().Held(), std::vector<std::string>{s.id});
  ExpectPower(g, catalog::Power::kOff);
  EXPECT_EQ(Disks(g), before) << "not committed: the catalog names the old images";
  Status start = applies().CheckNotHeld(g.vm_ids[0], "starting it");
  EXPECT_EQ(start.code(), Code::kInvalidState);
  EXPECT_NE(start.message().find("vmgroup snapshot release " + s.id), std::string::npos)
      << start.ToString();
  EXPECT_EQ(engine_->snapshots().Validate({.collection_id = g.collection_id}).code(), Code::kBusy)
      << "its members are claimed";

  ASSERT_TRUE(applies().Commit(s.id).ok());
  ExpectPower(g, catalog::Power::kOff);
  ExpectApplied(g, s, before);
  EXPECT_TRUE(applies().Held().empty());
  EXPECT_FALSE(Recorded(s.id));
  EXPECT_TRUE(applies().CheckNotHeld(g.vm_ids[0], "starting it").ok());
  EXPECT_TRUE(applies().Commit(s.id).ok()) << "a commit whose answer was lost";
  EXPECT_TRUE(applies().Abort(s.id).ok()) << "nothing held";
  ExpectConsistent();
}

TEST_F(HostAppliesTest, AnAbortedPartRunsItsMembersOnTheirImagesAgain) {
  auto g = MakeGroup(2);
  const catalog::SnapshotRecord s = Snapshot(g);
  const auto before = Disks(g);
  ASSERT_TRUE(applies().Prepare(s.id).ok());
  ASSERT_TRUE(applies().Abort(s.id).ok());
  ExpectPower(g, catalog::Power::kRunning);
  EXPECT_EQ(Disks(g), before);
  EXPECT_FALSE(Recorded(s.id));
  EXPECT_TRUE(applies().Held().empty());
  EXPECT_EQ(applies().Commit(s.id).code(), Code::kInvalidState) << "nothing to commit";
  EXPECT_TRUE(applies().Abort(s.id).ok());
  EXPECT_EQ(applies().Prepare(s.id).code(), Code::kCancelled) << "a prepare after its abort";
  ExpectPower(g, catalog::Power::kRunning);
  ASSERT_TRUE(applies().Validate(s.id).ok()) << "a new apply of it begins";
  ASSERT_TRUE(applies().Prepare(s.id).ok());
  ASSERT_TRUE(applies().Abort(s.id).ok());
  ExpectConsistent();
}

TEST_F(HostAppliesTest, WhatCannotBeAppliedIsRefusedAndChangesNothing) {
  auto g = MakeGroup(1);
  const catalog::SnapshotRecord s = Snapshot(g);
  const auto before = Disks(g);
  EXPECT_EQ(applies().Validate("no-such-snapshot").code(), Code::kNotFound);
  EXPECT_EQ(applies().Prepare("no-such-snapshot").code(), Code::kNotFound);
  auto other = engine_->vms().Define({.name = "late", .disks = {DiskSpec::New(1 << 20)}});
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(engine_->collections().AddMember(*other, g.collection_id).ok());
  EXPECT_EQ(applies().Prepare(s.id).code(), Code::kInvalidState) << "the members changed since";
  ExpectPower(g, catalog::Power::kRunning);
  EXPECT_EQ(Disks(g), before);
  EXPECT_TRUE(applies().Held().empty());
  EXPECT_FALSE(Recorded(s.id));
}

// The host restarts with its part held: recovery leaves it as it is, and
// the part is held again, for the coordinator's word either way.
TEST_F(HostAppliesTest, AHeldPartOutlivesARestartOfItsHost) {
  for (const bool commit : {true, false}) {
    SCOPED_TRACE(commit ? "committed" : "aborted");
    auto g = MakeGroup(2, commit ? "c" : "a");
    const catalog::SnapshotRecord s = Snapshot(g);
    const auto before = Disks(g);
    ASSERT_TRUE(applies().Prepare(s.id).ok());
    Open();
    EXPECT_EQ(engine_->recovery().applies_held, std::vector<std::string>{s.id});
    EXPECT_EQ(applies().Held(), std::vector<std::string>{s.id});
    ExpectPower(g, catalog::Power::kOff);
    EXPECT_EQ(applies().CheckNotHeld(g.vm_ids[1], "starting it").code(), Code::kInvalidState);
    if (commit) {
      ASSERT_TRUE(applies().Commit(s.id).ok());
      ExpectPower(g, catalog::Power::kOff);
      ExpectApplied(g, s, before);
    } else {
      ASSERT_TRUE(applies().Abort(s.id).ok());
      ExpectPower(g, catalog::Power::kRunning);
      EXPECT_EQ(Disks(g), before);
    }
    EXPECT_FALSE(Recorded(s.id));
    ExpectConsistent();
  }
}

// A part cut short before it was held had said yes to no coordinator: the
// next start undoes it as it undoes any apply.
TEST_F(HostAppliesTest, APartCutShortBeforeItWasHeldIsUndoneAtTheNextStart) {
  auto g = MakeGroup(2);
  const catalog::SnapshotRecord s = Snapshot(g);
  const auto before = Disks(g);
  ASSERT_TRUE(CrashAt(fault::kApplyPrepared,
                      [&](Engine& e) { (void)e.snapshots().host_applies().Prepare(s.id); }));
  EXPECT_EQ(engine_->recovery().applies_undone, std::vector<std::string>{s.id});
  EXPECT_TRUE(applies().Held().empty());
  ExpectPower(g, catalog::Power::kRunning);
  EXPECT_EQ(Disks(g), before);
  ExpectConsistent();
}

}  // namespace
}  // namespace vmgroup::engine
