// Group snapshots of real QEMU VMs (firmware only, 2 disks each): the cut,
// its rollback on failure, offline and paused members, and bad input.
#include <signal.h>

#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "base/return_codes.h"
#include "engine/fault_points.h"
#include "group_fixture.h"

namespace vmgroup::integration {
namespace {

using catalog::Power;
using hypervisor::RunState;

class GroupSnapshotTest : public GroupFixture {};

TEST_F(GroupSnapshotTest, SnapshotOfRunningGroupSwitchesEveryDiskAtOnce) {
  auto g = MakeGroup("web", 3);
  std::map<std::string, std::vector<std::string>> before;
  for (const auto& id : g.vm_ids) before[id] = Vm(id).disks;

  auto snap = engine_->snapshots().Create({.collection_id = g.collection_id, .type = 2});
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->state, catalog::SnapshotState::kComplete);
  EXPECT_EQ(snap->name.rfind("web - 20", 0), 0u) << snap->name;
  EXPECT_GT(snap->pause_window_us, 0);
  ASSERT_EQ(snap->members.size(), 3u);
  int64_t first_cut = INT64_MAX, last_cut = 0;
  for (size_t i = 0; i < 3; ++i) {
    const auto& m = snap->members[i];
    const std::string& id = g.vm_ids[i];
    EXPECT_EQ(m.vm_id, id);
    EXPECT_GT(m.pause_us, 0);
    EXPECT_LE(m.pause_us, snap->pause_window_us);
    first_cut = std::min(first_cut, m.cut_time_us);
    last_cut = std::max(last_cut, m.cut_time_us);
    ASSERT_EQ(m.disks.size(), 2u);
    // QEMU, the catalog and the files agree: the overlays are on top.
    std::vector<std::string> overlays = {m.disks[0].overlay, m.disks[1].overlay};
    EXPECT_EQ(LiveImages(id), overlays);
    EXPECT_EQ(Vm(id).disks, overlays);
    EXPECT_EQ(Chains(id), (std::vector<std::vector<std::string>>{{overlays[0], before[id][0]},
                                                                 {overlays[1], before[id][1]}}));
    EXPECT_EQ(m.disks[0].frozen_image, before[id][0]);
    EXPECT_EQ(LiveState(id), RunState::kRunning);
    EXPECT_TRUE(SchedulingIsNormal(id));
    ExpectCatalogMatchesDisk(id);
  }
  // Every member's switch happened while the whole group was paused.
  EXPECT_LE(last_cut - first_cut, snap->pause_window_us);
}

TEST_F(GroupSnapshotTest, WhileTheGroupIsPausedItsQemuRunsFirstAndItsVcpusAtTopTimeSharing) {
  bool privileged = false;
  std::thread([&] {
    privileged = Env::Default()->SetScheduling(0, {true, 1}).ok();
    (void)Env::Default()->SetScheduling(0, {false, 0});
  }).join();
  if (!privileged) GTEST_SKIP() << "needs CAP_SYS_NICE";
  auto g = MakeGroup("rt", 2);
  std::vector<std::string> seen;
  OpenEngine({}, std::make_unique<OnPointEnv>(engine::fault::kMemberSwitched, [&](auto subject) {
               for (const auto& id : g.vm_ids) {
                 for (const auto& t : *Env::Default()->Threads(engine_->vms().Live(id)->pid())) {
                   auto s = Env::Default()->GetScheduling(t.tid);
                   seen.push_back(std::string(subject) + " " + t.name.substr(0, 4) + " " +
                                  (s->realtime ? "rt" : "nice" + std::to_string(s->level)));
                 }
               }
               return Status::Ok();
             }));
  ASSERT_TRUE(engine_->snapshots().Create({.collection_id = g.collection_id}).ok());
  ASSERT_FALSE(seen.empty());
  for (const auto& line : seen) {
    const bool vcpu = line.find(" CPU ") != std::string::npos;
    EXPECT_TRUE(vcpu ? line.ends_with(" nice-20") : line.ends_with(" rt")) << line;
  }
  for (const auto& id : g.vm_ids) EXPECT_TRUE(SchedulingIsNormal(id));
}

// Records which files are synced, and which of them were by the time the
// cut begins.
class SyncRecordingEnv : public EnvWrapper {
 public:
  SyncRecordingEnv() : EnvWrapper(Env::Default()) {}
  Status SyncFile(const std::string& path) override {
    std::lock_guard lock(mu_);
    synced_.insert(path);
    return EnvWrapper::SyncFile(path);
  }
  Status Hit(std::string_view point, std::string_view) override {
    std::lock_guard lock(mu_);
    if (point == engine::fault::kPrepared) before_cut_ = synced_;
    return Status::Ok();
  }
  std::set<std::string> before_cut() {
    std::lock_guard lock(mu_);
    return before_cut_;
  }

 private:
  std::mutex mu_;
  std::set<std::string> synced_, before_cut_;
};

TEST_F(GroupSnapshotTest, OverlaysAreOnStableStorageBeforeTheCutMakesThemTheDisks) {
  auto owned = std::make_unique<SyncRecordingEnv>();
  SyncRecordingEnv* env = owned.get();
  OpenEngine({}, std::move(owned));
  auto g = MakeGroup("durable", 2);
  auto snap = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  const std::set<std::string> synced = env->before_cut();
  for (const auto& m : snap->members) {
    EXPECT_TRUE(synced.count(engine_->vms().RunDir(m.vm_id))) << "the directory entries";
    for (const auto& d : m.disks) EXPECT_TRUE(synced.count(d.overlay)) << d.overlay;
  }
}

TEST_F(GroupSnapshotTest, SnapshotsStackIntoAChainWithParents) {
  auto g = MakeGroup("db", 2);
  auto s1 = engine_->snapshots().Create({.collection_id = g.collection_id, .type = 32768});
  ASSERT_TRUE(s1.ok()) << s1.status().ToString();
  auto s2 = engine_->snapshots().Create({.collection_id = g.collection_id, .type = 2});
  ASSERT_TRUE(s2.ok()) << s2.status().ToString();
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(s2->members[i].parent_id, s1->members[i].id);
    EXPECT_EQ(s2->members[i].disks[1].frozen_image, s1->members[i].disks[1].overlay);
    EXPECT_EQ(Chains(g.vm_ids[i])[1].size(), 3u);
    ExpectCatalogMatchesDisk(g.vm_ids[i]);
  }
}

TEST_F(GroupSnapshotTest, RecoverySnapshotLeavesAPersistentBitmapOnEachOverlay) {
  auto g = MakeGroup("bk", 1);
  auto snap = engine_->snapshots().Create({.collection_id = g.collection_id, .type = 2});
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[0]).ok());  // bitmaps are written when QEMU closes
  for (const auto& d : snap->members[0].disks) {
    auto chain = img_.Chain(d.overlay);
    ASSERT_TRUE(chain.ok());
    EXPECT_EQ((*chain)[0].bitmaps, std::vector<std::string>{"vmgroup-" + snap->tag});
  }
}

class InjectedFailureTest : public GroupSnapshotTest,
                            public ::testing::WithParamInterface<std::string_view> {};

TEST_P(InjectedFailureTest, OneFailingMemberLeavesEveryChainExactlyAsBefore) {
  auto g = MakeGroup("app", 3);
  // Fails the step of member app1, as a QEMU error would.
  OpenEngine({}, std::make_unique<OnPointEnv>(GetParam(), [](std::string_view member) {
               return member == "app1" ? Status::Failed("injected failure") : Status::Ok();
             }));
  std::map<std::string, std::vector<std::vector<std::string>>> chains;
  std::map<std::string, std::set<std::string>> files;
  for (const auto& id : g.vm_ids) {
    chains[id] = Chains(id);
    files[id] = RunFiles(id);
  }

  auto snap = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_FALSE(snap.ok());
  EXPECT_NE(snap.status().message().find("app1"), std::string::npos) << snap.status().message();
  EXPECT_NE(snap.status().message().find("injected failure"), std::string::npos);
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(LiveImages(id), Vm(id).disks);
    EXPECT_EQ(Chains(id), chains[id]);
    EXPECT_EQ(RunFiles(id), files[id]) << "no stray file";
    EXPECT_EQ(LiveState(id), RunState::kRunning);
  }
  // And the group can be snapshotted once the fault is gone.
  OpenEngine();
  EXPECT_TRUE(engine_->snapshots().Create({.collection_id = g.collection_id}).ok());
}

INSTANTIATE_TEST_SUITE_P(AtEachMemberStep, InjectedFailureTest,
                         ::testing::Values(engine::fault::kMemberPrepared,
                                           engine::fault::kMemberSwitch,
                                           engine::fault::kMemberSwitched),
                         [](const auto& param_info) {
                           std::string n(param_info.param);
                           for (auto& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

TEST_F(GroupSnapshotTest, AMemberWhoseQemuDiesMidSnapshotFailsItCleanly) {
  auto g = MakeGroup("dies", 3);
  const int victim = Vm(g.vm_ids[1]).pid;
  // Kill member 1's QEMU once every overlay is prepared: its pause fails.
  OpenEngine({}, std::make_unique<OnPointEnv>(engine::fault::kPrepared, [victim](auto) {
               (void)Env::Default()->Kill(victim, SIGKILL);
               return Env::Default()->WaitGone(victim, std::chrono::seconds(10));
             }));
  auto chains0 = Chains(g.vm_ids[0]);

  auto snap = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.status().code(), Code::kUnavailable) << snap.status().ToString();
  EXPECT_NE(snap.status().message().find("dies1"), std::string::npos) << snap.status().message();
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  EXPECT_EQ(Chains(g.vm_ids[0]), chains0);
  EXPECT_EQ(LiveState(g.vm_ids[0]), RunState::kRunning);
  EXPECT_EQ(LiveState(g.vm_ids[2]), RunState::kRunning);
  for (const auto& name : RunFiles(g.vm_ids[1])) EXPECT_EQ(name.find("disk"), std::string::npos);
  // After a restart the dead VM is known to be off.
  OpenEngine();
  EXPECT_EQ(engine_->recovery().gone_vms, std::vector<std::string>{g.vm_ids[1]});
  EXPECT_EQ(Vm(g.vm_ids[1]).power, Power::kOff);
}

TEST_F(GroupSnapshotTest, PastThePauseDeadlineEverythingIsRolledBack) {
  auto g = MakeGroup("slow", 2);
  OpenEngine({.pause_deadline = std::chrono::microseconds(1)});
  auto chains = Chains(g.vm_ids[0]);
  auto snap = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.status().code(), Code::kTimeout) << snap.status().ToString();
  EXPECT_EQ(ReturnCodeA(snap.status()), kRcTimeout);
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(LiveImages(id), Vm(id).disks);
    EXPECT_EQ(LiveState(id), RunState::kRunning);
  }
  EXPECT_EQ(Chains(g.vm_ids[0]), chains);
}

TEST_F(GroupSnapshotTest, ACancelBeforeTheCutLeavesNothing) {
  auto g = MakeGroup("cancel", 2);
  auto chains = Chains(g.vm_ids[0]);
  std::vector<int> progress;
  auto snap = engine_->snapshots().Create({.collection_id = g.collection_id,
                                           .cancelled = [] { return true; },
                                           .progress = [&](int p) { progress.push_back(p); }});
  EXPECT_EQ(snap.status().code(), Code::kCancelled) << snap.status().ToString();
  EXPECT_TRUE(progress.empty()) << "no progress is reported past a cancel";
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  EXPECT_EQ(Chains(g.vm_ids[0]), chains);
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(LiveState(id), RunState::kRunning);
    ExpectCatalogMatchesDisk(id);
  }
  auto again = engine_->snapshots().Create(
      {.collection_id = g.collection_id, .progress = [&](int p) { progress.push_back(p); }});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(progress, std::vector<int>{50});
}

TEST_F(GroupSnapshotTest, ValidateReportsWhatCreateWouldRefuseAndChangesNothing) {
  auto g = MakeGroup("valid", 1);
  EXPECT_TRUE(engine_->snapshots().Validate({.collection_id = g.collection_id}).ok());
  EXPECT_EQ(engine_->snapshots().Validate({.collection_id = g.collection_id, .type = 7}).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(engine_->snapshots().Validate({.collection_id = "nope"}).code(), Code::kNotFound);
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
}

TEST_F(GroupSnapshotTest, StoppedMembersAreSnapshottedOfflineAndPausedOnesStayPaused) {
  auto g = MakeGroup("mix", 3);
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[1]).ok());
  ASSERT_TRUE(engine_->vms().Pause(g.vm_ids[2]).ok());
  auto base1 = Vm(g.vm_ids[1]).disks;

  auto snap = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->members[1].power_at_cut, Power::kOff);
  EXPECT_EQ(snap->members[1].pause_us, 0);
  EXPECT_EQ(snap->members[2].pause_us, 0) << "the cut did not pause it, so it did not resume it";
  EXPECT_EQ(LiveState(g.vm_ids[0]), RunState::kRunning);
  EXPECT_EQ(LiveState(g.vm_ids[2]), RunState::kPaused);
  EXPECT_EQ(LiveImages(g.vm_ids[2])[0], snap->members[2].disks[0].overlay);
  EXPECT_EQ(Chains(g.vm_ids[1])[0],
            (std::vector<std::string>{snap->members[1].disks[0].overlay, base1[0]}));
  for (const auto& id : g.vm_ids) ExpectCatalogMatchesDisk(id);

  // The stopped VM starts on its new overlays.
  ASSERT_TRUE(engine_->vms().Start(g.vm_ids[1]).ok());
  EXPECT_EQ(LiveImages(g.vm_ids[1]), Vm(g.vm_ids[1]).disks);
}

TEST_F(GroupSnapshotTest, BadInputGetsAClearErrorAndChangesNothing) {
  auto g = MakeGroup("bad", 2, /*start=*/false);
  auto& snaps = engine_->snapshots();

  auto unknown = snaps.Create({.collection_id = "6f1e0c3a-2b4d-4c5e-8f90-0a1b2c3d4e5f"});
  EXPECT_EQ(ReturnCodeA(unknown.status()), kRcInvalidParameter);
  EXPECT_NE(unknown.status().message().find("does not exist"), std::string::npos);

  auto empty_id = engine_->collections().DefineCollection("empty", "",
                                                          catalog::CollectionType::kVirtualSystems);
  auto empty = snaps.Create({.collection_id = *empty_id});
  EXPECT_EQ(ReturnCodeA(empty.status()), kRcInvalidState);
  EXPECT_NE(empty.status().message().find("has no VMs"), std::string::npos);

  EXPECT_EQ(ReturnCodeA(snaps.Create({.collection_id = g.collection_id, .type = 0}).status()),
            kRcInvalidParameter);
  EXPECT_EQ(ReturnCodeA(snaps.Create({.collection_id = g.collection_id, .type = 40000}).status()),
            kRcInvalidType);

  const std::string disk = Vm(g.vm_ids[1]).disks[1];
  ASSERT_EQ(std::rename(disk.c_str(), (disk + ".moved").c_str()), 0);
  auto missing = snaps.Create({.collection_id = g.collection_id});
  EXPECT_EQ(missing.status().code(), Code::kFileNotFound);
  EXPECT_NE(missing.status().message().find(disk), std::string::npos) << missing.status().message();
  ASSERT_EQ(std::rename((disk + ".moved").c_str(), disk.c_str()), 0);

  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  for (const auto& id : g.vm_ids) EXPECT_TRUE(RunFiles(id).empty()) << "nothing was prepared";
}

TEST_F(GroupSnapshotTest, DefiningAVmChecksItsDisks) {
  engine::VmDefinition def{.name = "x", .disks = {dir_ / "missing.qcow2"}};
  auto missing = engine_->vms().Define(def);
  EXPECT_EQ(missing.status().code(), Code::kFileNotFound);
  def.disks = {"relative.qcow2"};
  EXPECT_EQ(engine_->vms().Define(def).status().code(), Code::kInvalidArgument);
  ASSERT_EQ(std::system(("qemu-img create -q -f raw " + (dir_ / "raw.img") + " 1M").c_str()), 0);
  def.disks = {dir_ / "raw.img"};
  auto raw = engine_->vms().Define(def);
  EXPECT_EQ(raw.status().code(), Code::kInvalidArgument);
  EXPECT_NE(raw.status().message().find("not qcow2"), std::string::npos);
  EXPECT_TRUE(engine_->catalog().ListVms()->empty());
}

TEST_F(GroupSnapshotTest, NewDisksAreCreatedAndUndefineRemovesOnlyWhatTheRegistryMade) {
  auto given = MakeGroup("keep", 1, /*start=*/false);
  // An image of nobody's (another VM's disk would be refused: managed_images.h).
  const std::string kept = dir_ / "kept.qcow2";
  ASSERT_EQ(std::system(("qemu-img create -q -f qcow2 " + kept + " 8M").c_str()), 0);
  engine::VmDefinition def{.name = "mixed", .disks = {engine::DiskSpec::New(8 << 20), kept}};
  auto id = engine_->vms().Define(def);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  const auto disks = Vm(*id).disks;
  ASSERT_EQ(disks.size(), 2u);
  EXPECT_EQ(disks[0], engine_->vms().RunDir(*id) + "/base0.qcow2");
  EXPECT_TRUE(storage::QemuImg(Env::Default()).Check(disks[0]).ok());
  ASSERT_TRUE(engine_->collections().AddMember(*id, given.collection_id).ok());

  ASSERT_TRUE(engine_->vms().Start(*id).ok());
  EXPECT_EQ(engine_->vms().Undefine(*id).code(), Code::kInvalidState);
  ASSERT_TRUE(engine_->vms().Stop(*id).ok());
  ASSERT_TRUE(engine_->vms().Undefine(*id).ok());
  EXPECT_FALSE(Env::Default()->FileExists(disks[0]));
  EXPECT_TRUE(Env::Default()->FileExists(kept));
  EXPECT_EQ(engine_->catalog().GetCollection(given.collection_id)->members, given.vm_ids);
  EXPECT_EQ(engine_->vms().Undefine(*id).code(), Code::kNotFound);

  // A VM in a snapshot stays until the snapshot goes.
  ASSERT_TRUE(engine_->snapshots().Create({.collection_id = given.collection_id}).ok());
  EXPECT_EQ(engine_->vms().Undefine(given.vm_ids[0]).code(), Code::kInvalidState);
}

TEST_F(GroupSnapshotTest, RecoveryRemovesOverlaysNoRecordKnowsAndNothingElse) {
  auto g = MakeGroup("orph", 1);
  ASSERT_TRUE(engine_->snapshots().Create({.collection_id = g.collection_id}).ok());
  const std::string dir = engine_->vms().RunDir(g.vm_ids[0]);
  const std::string stray = dir + "/disk0-sdeadbeef.qcow2";
  const std::string notes = dir + "/notes.txt";
  ASSERT_TRUE(img_.Create(stray, 1 << 20).ok());
  std::ofstream(notes) << "an operator's file\n";

  OpenEngine();
  EXPECT_EQ(engine_->recovery().removed_files, std::vector<std::string>{stray});
  EXPECT_FALSE(Env::Default()->FileExists(stray));
  EXPECT_TRUE(Env::Default()->FileExists(notes)) << "only overlay-named files are vmgroup's";
  ExpectCatalogMatchesDisk(g.vm_ids[0]);
}

TEST_F(GroupSnapshotTest, ASnapshotOverlappingOneInProgressIsRefusedAsBusy) {
  auto g = MakeGroup("busy", 2);
  auto other = engine_->collections().DefineCollection("other", "",
                                                       catalog::CollectionType::kVirtualSystems);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(engine_->collections().AddMember(g.vm_ids[1], *other).ok());
  // Holds the first snapshot once its overlays are prepared.
  std::promise<void> reached, release;
  std::shared_future<void> released = release.get_future().share();
  OpenEngine({}, std::make_unique<OnPointEnv>(engine::fault::kPrepared, [&](auto) {
               reached.set_value();
               released.wait();
               return Status::Ok();
             }));

  Result<catalog::SnapshotRecord> first = Status::Internal("not run");
  std::thread t([&] { first = engine_->snapshots().Create({.collection_id = g.collection_id}); });
  reached.get_future().wait();
  auto second = engine_->snapshots().Create({.collection_id = *other});
  release.set_value();
  t.join();
  EXPECT_EQ(second.status().code(), Code::kBusy) << second.status().ToString();
  EXPECT_NE(second.status().message().find("busy1"), std::string::npos);
  EXPECT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(engine_->catalog().ListSnapshots()->size(), 1u);
}

TEST_F(GroupSnapshotTest, AMemberStoppedDuringTheSnapshotFailsItCleanly) {
  auto g = MakeGroup("stop", 3);
  auto chains = Chains(g.vm_ids[0]);
  const std::string victim = g.vm_ids[1];
  // The operator powers member 1 off after the checks passed.
  OpenEngine({}, std::make_unique<OnPointEnv>(engine::fault::kIntentRecorded,
                                              [&](auto) { return engine_->vms().Stop(victim); }));
  auto snap = engine_->snapshots().Create({.collection_id = g.collection_id});
  ASSERT_FALSE(snap.ok());
  EXPECT_NE(snap.status().message().find("stop1"), std::string::npos) << snap.status().message();
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
  EXPECT_EQ(Chains(g.vm_ids[0]), chains);
  EXPECT_EQ(LiveState(g.vm_ids[0]), RunState::kRunning);
  EXPECT_EQ(LiveState(g.vm_ids[2]), RunState::kRunning);
  EXPECT_EQ(Vm(victim).power, Power::kOff);
  for (const auto& id : g.vm_ids) ExpectCatalogMatchesDisk(id);
}

}  // namespace
}  // namespace vmgroup::integration
