// SnapshotEngine's operations over the fake driver: create and its undo,
// apply, destroy, export and reference points, with failures injected at
// their fault points. What QEMU does with the images is tested on QEMU
// (tests/integration/); here, what the engine asks and what it records.
#include "engine/snapshot_engine.h"

#include <algorithm>

#include "engine/export_manifest.h"
#include "engine/fake_group_test.h"
#include "engine/fault_points.h"
#include "engine/snapshot_plan.h"

namespace vmgroup::engine {
namespace {

using catalog::Power;
using catalog::SnapshotState;
using hypervisor::RunState;

// The calls among `ops` in the order `vm` had them.
std::vector<std::string> CallsOf(hypervisor::fake::FakeVm& vm, std::set<std::string> ops) {
  std::vector<std::string> out;
  for (const auto& c : vm.calls()) {
    if (ops.count(c)) out.push_back(c);
  }
  return out;
}

using FakeDriverOperations = FakeGroupTest;

TEST_F(FakeDriverOperations, CreateSwitchesEveryMemberInOneCutAndTheyRunOn) {
  auto g = MakeGroup(3);
  auto s = Snapshot(g);
  EXPECT_EQ(s.state, SnapshotState::kComplete);
  for (size_t i = 0; i < g.vm_ids.size(); ++i) {
    auto fake = Fake(g.vm_ids[i]);
    ASSERT_NE(fake, nullptr);
    EXPECT_EQ(CallsOf(*fake, {"open", "pause", "switch", "resume"}),
              (std::vector<std::string>{"open", "pause", "switch", "resume"}));
    EXPECT_EQ(fake->active(), std::vector<std::string>{s.members[i].disks[0].overlay});
    EXPECT_EQ(fake->trackings().count(BitmapFor(s.type, s.tag)), 1u) << "the cut starts tracking";
  }
  ExpectConsistent();
}

TEST_F(FakeDriverOperations, AMemberThatFailsToPrepareUndoesTheSnapshotOnEveryMember) {
  auto g = MakeGroup(3);
  const auto before = Disks(g);
  FailAt(std::string(fault::kMemberPrepared), "vm1");
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
  EXPECT_EQ(s.status().code(), Code::kFailed) << s.status().ToString();
  EXPECT_NE(s.status().message().find("vm1"), std::string::npos) << s.status().message();
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(Vm(id).disks, before.at(id));
    EXPECT_EQ(CallsOf(*Fake(id), {"open", "switch", "revert"}),
              (std::vector<std::string>{"open", "revert"}))
        << "opened overlays are closed again; nothing was switched";
  }
  ExpectConsistent();
}

TEST_F(FakeDriverOperations, AFailedSwitchRevertsEveryMemberAndResumesIt) {
  auto g = MakeGroup(3);
  const auto before = Disks(g);
  FailAt(std::string(hypervisor::fake::kFakePointPrefix) + "switch", "vm2");
  auto s = engine_->snapshots().Create({.collection_id = g.collection_id});
  EXPECT_EQ(s.status().code(), Code::kFailed) << s.status().ToString();
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(Fake(id)->active(), before.at(id));
    EXPECT_EQ(Fake(id)->state(), RunState::kRunning);
    EXPECT_EQ(CallsOf(*Fake(id), {"revert"}).size(), 2u) << "by the cut, then by the undo";
  }
  ExpectConsistent();
  EXPECT_TRUE(engine_->snapshots().Create({.collection_id = g.collection_id}).ok());
}

// What a driver keeps out of the pause (QEMU: storing trackings) is done
// once the members run again and before the commit; if it fails, the
// snapshot is undone like any other failure after the cut.
TEST_F(FakeDriverOperations, WhatTheSwitchLeftForAfterThePauseIsDoneBeforeTheCommit) {
  auto g = MakeGroup(3);
  auto s = Snapshot(g);
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(CallsOf(*Fake(id), {"switch", "resume", "finish-switch"}),
              (std::vector<std::string>{"switch", "resume", "finish-switch"}));
  }
  const auto before = Disks(g);
  FailAt(std::string(hypervisor::fake::kFakePointPrefix) + "finish-switch", "vm1");
  auto failed = engine_->snapshots().Create({.collection_id = g.collection_id, .type = 2});
  EXPECT_EQ(failed.status().code(), Code::kFailed) << failed.status().ToString();
  EXPECT_NE(failed.status().message().find("vm1"), std::string::npos) << failed.status().message();
  EXPECT_EQ(engine_->catalog().ListSnapshots()->size(), 1u) << "only the first snapshot";
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(Fake(id)->active(), before.at(id));
    EXPECT_EQ(Fake(id)->state(), RunState::kRunning);
  }
  ExpectConsistent();
}

TEST_F(FakeDriverOperations, ApplyStartsEveryMemberOverOnTheSnapshotsImages) {
  auto g = MakeGroup(2);
  auto s1 = Snapshot(g);
  Snapshot(g);
  const auto discarded = Disks(g);
  auto applied = engine_->snapshots().Apply({.snapshot_id = s1.id});
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  for (size_t i = 0; i < g.vm_ids.size(); ++i) {
    const auto vm = Vm(g.vm_ids[i]);
    EXPECT_EQ(vm.power, Power::kOff) << "vmgroupd's own VMs are left off";
    EXPECT_EQ(vm.current_snapshot, s1.members[i].id);
    auto info = img_.Info(vm.disks[0]);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->backing_filename, s1.members[i].disks[0].frozen_image);
    EXPECT_FALSE(Env::Default()->FileExists(discarded.at(vm.id)[0])) << "the state it had goes";
  }
  ExpectConsistent();
  for (const auto& id : g.vm_ids) ASSERT_TRUE(engine_->vms().Start(id).ok());
  ExpectConsistent();
}

TEST_F(FakeDriverOperations, ApplyOfAStandardSnapshotRunsEveryMemberFromItsMemoryState) {
  auto g = MakeGroup(2);
  auto s = Snapshot(g, kSnapshotStandard);
  ASSERT_TRUE(engine_->snapshots().Apply({.snapshot_id = s.id}).ok());
  const auto started = driver_.calls();
  for (size_t i = 0; i < g.vm_ids.size(); ++i) {
    EXPECT_EQ(Vm(g.vm_ids[i]).power, Power::kRunning);
    EXPECT_NE(std::find(started.begin(), started.end(),
                        "start vm" + std::to_string(i) + " from " + s.members[i].memory_state),
              started.end());
  }
  ExpectConsistent();
}

TEST_F(FakeDriverOperations, AFailedApplyLeavesEveryMemberAsItWas) {
  auto g = MakeGroup(3);
  auto s = Snapshot(g);
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[2]).ok());  // one was off: it stays off
  const auto before = Disks(g);
  FailAt(std::string(fault::kApplyPrepared));
  EXPECT_EQ(engine_->snapshots().Apply({.snapshot_id = s.id}).status().code(), Code::kFailed);
  for (const auto& id : g.vm_ids) EXPECT_EQ(Vm(id).disks, before.at(id));
  EXPECT_EQ(Vm(g.vm_ids[0]).power, Power::kRunning);
  EXPECT_EQ(Vm(g.vm_ids[2]).power, Power::kOff);
  EXPECT_TRUE(engine_->catalog().ListApplyIntents()->empty());
  ExpectConsistent();
}

TEST_F(FakeDriverOperations, DestroyMergesTheSnapshotAwayThroughTheRunningVms) {
  auto g = MakeGroup(2);
  auto s1 = Snapshot(g);
  auto s2 = Snapshot(g);
  ASSERT_TRUE(engine_->snapshots().Destroy({.snapshot_id = s1.id}).ok());
  EXPECT_EQ(engine_->catalog().GetSnapshot(s1.id).status().code(), Code::kNotFound);
  for (size_t i = 0; i < g.vm_ids.size(); ++i) {
    EXPECT_EQ(CallsOf(*Fake(g.vm_ids[i]), {"commit"}).size(), 1u);
    EXPECT_FALSE(Env::Default()->FileExists(s1.members[i].disks[0].overlay));
    EXPECT_EQ(engine_->catalog().GetSnapshot(s2.id)->members[i].disks[0].frozen_image,
              s1.members[i].disks[0].frozen_image)
        << "the merged image takes its child's place";
    const auto trackings = Fake(g.vm_ids[i])->trackings();
    EXPECT_EQ(trackings.count(BitmapFor(s1.type, s1.tag)), 0u) << "no record names it any more";
    EXPECT_EQ(trackings.count(BitmapFor(s2.type, s2.tag)), 1u);
  }
  ExpectConsistent();
}

TEST_F(FakeDriverOperations, ADestroyFailingBeforeAnyMergeKeepsTheSnapshot) {
  auto g = MakeGroup(2);
  auto s = Snapshot(g);
  FailAt(std::string(fault::kDestroyMemberDetached), "vm1");
  EXPECT_EQ(engine_->snapshots().Destroy({.snapshot_id = s.id}).code(), Code::kFailed);
  EXPECT_EQ(engine_->catalog().GetSnapshot(s.id)->state, SnapshotState::kComplete);
  ExpectConsistent();
  EXPECT_TRUE(engine_->snapshots().Apply({.snapshot_id = s.id}).ok());
}

TEST_F(FakeDriverOperations, ADestroyFailingAfterAMergeIsFinishedByTheNextOne) {
  auto g = MakeGroup(2);
  auto s = Snapshot(g);
  FailAt(std::string(fault::kDestroyMemberMerged), "vm1");
  Status failed = engine_->snapshots().Destroy({.snapshot_id = s.id});
  EXPECT_EQ(failed.code(), Code::kFailed);
  EXPECT_NE(failed.message().find("destroy it again"), std::string::npos) << failed.message();
  EXPECT_EQ(engine_->catalog().GetSnapshot(s.id)->state, SnapshotState::kDestroying);
  EXPECT_EQ(engine_->snapshots().Apply({.snapshot_id = s.id}).status().code(), Code::kInvalidState)
      << "a partly merged snapshot is never applied";
  ASSERT_TRUE(engine_->snapshots().Destroy({.snapshot_id = s.id}).ok());
  EXPECT_EQ(engine_->catalog().GetSnapshot(s.id).status().code(), Code::kNotFound);
  ExpectConsistent();
}

TEST_F(FakeDriverOperations, ExportWritesEveryMembersDisksThenTheManifest) {
  auto g = MakeGroup(2);
  auto s = Snapshot(g);
  const std::string out = Path("export");
  auto m = engine_->snapshots().Export({.snapshot_id = s.id, .directory = out});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->vms.size(), 2u);
  for (const auto& vm : m->vms) {
    ASSERT_EQ(vm.disks.size(), 1u);
    EXPECT_TRUE(img_.Check(out + "/" + vm.disks[0].file).ok()) << vm.disks[0].file;
  }
  EXPECT_TRUE(Env::Default()->FileExists(out + "/" + kManifestFile));
  EXPECT_EQ(*engine_->catalog().ExportsOf(s.id), std::vector<std::string>{out});
  EXPECT_TRUE(engine_->catalog().ListExportIntents()->empty());
  ExpectConsistent();
}

TEST_F(FakeDriverOperations, AnExportThatFailsRemovesWhatItWrote) {
  auto g = MakeGroup(2);
  auto s = Snapshot(g);
  const std::string out = Path("export");
  FailAt(std::string(fault::kExportDiskCopied), "vm1");
  EXPECT_EQ(engine_->snapshots().Export({.snapshot_id = s.id, .directory = out}).status().code(),
            Code::kFailed);
  EXPECT_FALSE(Env::Default()->FileExists(out));
  EXPECT_TRUE(engine_->catalog().ListExportIntents()->empty());
  EXPECT_TRUE(engine_->catalog().ExportsOf(s.id)->empty());
}

TEST_F(FakeDriverOperations, AReferencePointKeepsTheCutsTrackingOnTheFrozenImages) {
  auto g = MakeGroup(2);
  auto s = Snapshot(g);
  auto rp = engine_->snapshots().ConvertToReferencePoint(s.id);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  EXPECT_EQ(rp->bitmap, BitmapFor(s.type, s.tag));
  EXPECT_EQ(engine_->catalog().GetSnapshot(s.id).status().code(), Code::kNotFound);
  for (size_t i = 0; i < g.vm_ids.size(); ++i) {
    auto fake = Fake(g.vm_ids[i]);
    EXPECT_EQ(CallsOf(*fake, {"keep", "commit"}), (std::vector<std::string>{"keep", "commit"}))
        << "kept before the merge";
    EXPECT_EQ(fake->trackings()[rp->bitmap][0], s.members[i].disks[0].frozen_image);
  }
  ExpectConsistent();
  ASSERT_TRUE(engine_->snapshots().DestroyReferencePoint(rp->id).ok());
  for (const auto& id : g.vm_ids) EXPECT_TRUE(Fake(id)->trackings().empty());
}

TEST_F(FakeDriverOperations, AMemberThatIsOffKeepsTheCutsTrackingThroughItsDriver) {
  auto g = MakeGroup(2);
  auto s = Snapshot(g);
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[1]).ok());
  const std::string frozen = s.members[1].disks[0].frozen_image;
  FailAt(std::string(hypervisor::fake::kFakePointPrefix) + "keep-off", "vm1");
  EXPECT_EQ(engine_->snapshots().ConvertToReferencePoint(s.id).status().code(), Code::kFailed);
  EXPECT_EQ(engine_->catalog().GetSnapshot(s.id)->state, SnapshotState::kComplete);
  EXPECT_TRUE(engine_->catalog().ListReferencePoints()->empty());

  auto rp = engine_->snapshots().ConvertToReferencePoint(s.id);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  const auto calls = driver_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "keep-off vm1"), 2) << "failed, then kept";
  EXPECT_EQ(driver_.TrackingsOff(g.vm_ids[1])[rp->bitmap][0], frozen);
  EXPECT_EQ(Vm(g.vm_ids[1]).disks, std::vector<std::string>{frozen}) << "merged offline";
  EXPECT_EQ(Vm(g.vm_ids[1]).power, catalog::Power::kOff);
  EXPECT_EQ(Fake(g.vm_ids[0])->trackings()[rp->bitmap][0], s.members[0].disks[0].frozen_image);
  ExpectConsistent();
}

TEST_F(FakeDriverOperations, CreateReferencePointKeepsTheTrackingOfAMemberThatIsOff) {
  auto g = MakeGroup(2);
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[1]).ok());
  ASSERT_TRUE(engine_->snapshots().ValidateCreateReferencePoint(g.collection_id).ok());
  auto rp = engine_->snapshots().CreateReferencePoint(g.collection_id, "rp");
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty()) << "converted: the snapshot is gone";
  for (const auto& m : rp->members) EXPECT_EQ(m.images, Vm(m.vm_id).disks) << "it leads up to now";
  EXPECT_EQ(driver_.TrackingsOff(g.vm_ids[1])[rp->bitmap][0], Vm(g.vm_ids[1]).disks[0]);
  EXPECT_EQ(Fake(g.vm_ids[0])->trackings()[rp->bitmap][0], Vm(g.vm_ids[0]).disks[0]);
  ExpectConsistent();
  // What a tracking marks is still read through the running QEMU.
  EXPECT_EQ(engine_->snapshots()
                .ExportReferencePoint(rp->id, {.directory = Path("incremental")})
                .status()
                .code(),
            Code::kNotSupported);
}

TEST_F(FakeDriverOperations, AnExportOfAReferencePointCopiesWhatItsTrackingMarks) {
  auto g = MakeGroup(2);
  auto s = Snapshot(g);
  const std::string full = Path("full"), incremental = Path("incremental");
  ASSERT_TRUE(engine_->snapshots().Export({.snapshot_id = s.id, .directory = full}).ok());
  auto rp = engine_->snapshots().ConvertToReferencePoint(s.id);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  auto m = engine_->snapshots().ExportReferencePoint(rp->id, {.directory = incremental});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->base.reference_point_id, rp->id);
  for (const auto& vm : m->vms) {
    auto info = img_.Info(incremental + "/" + vm.disks[0].file);
    ASSERT_TRUE(info.ok());
    EXPECT_FALSE(info->backing_filename.empty()) << "an overlay of the full export's disk";
  }
  for (const auto& id : g.vm_ids) EXPECT_EQ(CallsOf(*Fake(id), {"copy"}).size(), 1u);
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty()) << "the cut taken for it is gone";
  ExpectConsistent();
}

}  // namespace
}  // namespace vmgroup::engine
