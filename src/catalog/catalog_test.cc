#include "catalog/catalog.h"

#include <gtest/gtest.h>

#include "catalog/schema.h"
#include "testing/temp_dir.h"

namespace vmgroup::catalog {
namespace {

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    catalog_.reset();
    auto c = Catalog::Open(dir_ / "catalog.db");
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    catalog_ = std::move(c).value();
  }
  VmRecord Vm(const std::string& id, int disks = 2) {
    VmRecord vm;
    vm.id = id;
    vm.name = "vm-" + id;
    vm.config.extra_args = {"-device", "x,a=b"};
    for (int i = 0; i < disks; ++i) vm.disks.push_back("/img/" + id + "-d" + std::to_string(i));
    return vm;
  }
  SnapshotRecord Snapshot(const std::string& id, const std::vector<std::string>& vms) {
    SnapshotRecord s{.id = id, .collection_id = "g1", .name = "snap " + id, .tag = "t" + id};
    for (const auto& vm : vms) {
      MemberSnapshot m{.id = id + "-" + vm, .vm_id = vm, .power_at_cut = Power::kRunning};
      for (int i = 0; i < 2; ++i) {
        m.disks.push_back({i, "/img/" + vm + "-d" + std::to_string(i),
                           "/img/" + vm + "-d" + std::to_string(i) + "-" + id});
      }
      s.members.push_back(m);
    }
    return s;
  }

  testing::TempDir dir_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(CatalogTest, MigratesOnceAndRefusesANewerSchema) {
  EXPECT_EQ(*catalog_->SchemaVersion(), static_cast<int>(Migrations().size()));
  ASSERT_TRUE(catalog_->InsertVm(Vm("a")).ok());
  Reopen();  // migrations already applied: data kept
  EXPECT_TRUE(catalog_->GetVm("a").ok());
  {
    auto db = Db::Open(dir_ / "catalog.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA user_version=99").ok());
  }
  auto c = Catalog::Open(dir_ / "catalog.db");
  EXPECT_EQ(c.status().code(), Code::kInvalidState);
}

TEST_F(CatalogTest, VmRoundTripsAndDuplicatesAreRefused) {
  VmRecord vm = Vm("a");
  vm.config.kernel = "/k";
  vm.config.append = "console=ttyS0";
  ASSERT_TRUE(catalog_->InsertVm(vm).ok());
  EXPECT_EQ(catalog_->InsertVm(vm).code(), Code::kAlreadyExists);
  auto got = catalog_->GetVm("a");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->disks, vm.disks);
  EXPECT_EQ(got->config.extra_args, vm.config.extra_args);
  EXPECT_EQ(got->config.append, "console=ttyS0");
  ASSERT_TRUE(catalog_->SetVmPower("a", Power::kRunning, 1234).ok());
  EXPECT_EQ(catalog_->GetVm("a")->pid, 1234);
  EXPECT_EQ(catalog_->SetVmPower("zz", Power::kOff, 0).code(), Code::kNotFound);
  EXPECT_EQ(catalog_->GetVm("zz").status().code(), Code::kNotFound);
  ASSERT_TRUE(catalog_->DeleteVm("a").ok());
  EXPECT_EQ(catalog_->DeleteVm("a").code(), Code::kNotFound);
}

TEST_F(CatalogTest, HugePagesAreKeptWithTheVm) {
  VmRecord huge = Vm("huge");
  huge.config.hugepages = true;
  ASSERT_TRUE(catalog_->InsertVm(huge).ok());
  ASSERT_TRUE(catalog_->InsertVm(Vm("plain")).ok());
  Reopen();
  EXPECT_TRUE(catalog_->GetVm("huge")->config.hugepages);
  EXPECT_FALSE(catalog_->GetVm("plain")->config.hugepages);
}

TEST_F(CatalogTest, ADomainsRecordFollowsLibvirtAndKeepsItsSnapshots) {
  VmRecord d = Vm("d", 2);
  d.libvirt_uri = "qemu:///system";
  d.current_snapshot = "s1";
  ASSERT_TRUE(catalog_->InsertVm(d).ok());
  EXPECT_EQ(catalog_->GetVm("d")->libvirt_uri, "qemu:///system");
  d.name = "renamed";
  d.config.memory_mib = 2048;
  d.power = Power::kPaused;
  d.disks = {"/img/only"};  // a disk detached in libvirt
  d.current_snapshot = "";  // not the sync's to change
  ASSERT_TRUE(catalog_->UpdateDomain(d).ok());
  auto got = catalog_->GetVm("d");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "renamed");
  EXPECT_EQ(got->config.memory_mib, 2048);
  EXPECT_EQ(got->power, Power::kPaused);
  EXPECT_EQ(got->disks, std::vector<std::string>{"/img/only"});
  EXPECT_EQ(got->current_snapshot, "s1");
  // Only a domain of that connection: never one of vmgroupd's own VMs.
  ASSERT_TRUE(catalog_->InsertVm(Vm("own")).ok());
  VmRecord other = Vm("own");
  other.libvirt_uri = "qemu:///system";
  EXPECT_EQ(catalog_->UpdateDomain(other).code(), Code::kNotFound);
  EXPECT_EQ(catalog_->GetVm("own")->libvirt_uri, "");
}

TEST_F(CatalogTest, ProcessesAreNamedByPidAndStartTime) {
  ASSERT_TRUE(catalog_->InsertProcess({"vm-b", 300, 7}).ok());
  ASSERT_TRUE(catalog_->InsertProcess({"vm-a", 300, 5}).ok());  // the pid again, later
  EXPECT_EQ(catalog_->InsertProcess({"vm-a", 300, 5}).code(), Code::kAlreadyExists);
  EXPECT_EQ(*catalog_->ListProcesses(),
            (std::vector<ProcessRecord>{{"vm-a", 300, 5}, {"vm-b", 300, 7}}));
  ASSERT_TRUE(catalog_->DeleteProcess({"vm-b", 300, 7}).ok());
  ASSERT_TRUE(catalog_->DeleteProcess({"vm-b", 300, 7}).ok()) << "forgetting it twice is OK";
  EXPECT_EQ(*catalog_->ListProcesses(), (std::vector<ProcessRecord>{{"vm-a", 300, 5}}));
}

TEST_F(CatalogTest, MembersKeepTheirOrderAndAreUniquePerCollection) {
  ASSERT_TRUE(
      catalog_->InsertCollection({"g1", "web", CollectionType::kVirtualSystems, 1, {}}).ok());
  EXPECT_EQ(
      catalog_->InsertCollection({"g1", "other", CollectionType::kVirtualSystems, 2, {}}).code(),
      Code::kAlreadyExists);
  for (const char* m : {"c", "a", "b"}) ASSERT_TRUE(catalog_->AddMember("g1", m).ok());
  EXPECT_EQ(catalog_->AddMember("g1", "a").code(), Code::kAlreadyExists);
  EXPECT_EQ(catalog_->GetCollection("g1")->members, (std::vector<std::string>{"c", "a", "b"}));
  EXPECT_EQ(*catalog_->CollectionsOf("a"), std::vector<std::string>{"g1"});
  bool removed = false;
  ASSERT_TRUE(catalog_->RemoveMember("g1", "a", &removed).ok());
  EXPECT_TRUE(removed);
  ASSERT_TRUE(catalog_->RemoveMember("g1", "a", &removed).ok());
  EXPECT_FALSE(removed);
  ASSERT_TRUE(catalog_->RenameCollection("g1", "frontend").ok());
  EXPECT_EQ(catalog_->GetCollection("g1")->name, "frontend");
  ASSERT_TRUE(catalog_->DeleteCollection("g1").ok());
  EXPECT_TRUE(catalog_->CollectionsOf("c")->empty()) << "membership goes with the collection";
}

TEST_F(CatalogTest, CompletingASnapshotMovesEveryDiskInOneStep) {
  ASSERT_TRUE(catalog_->InsertVm(Vm("a")).ok());
  ASSERT_TRUE(catalog_->InsertVm(Vm("b")).ok());
  SnapshotRecord s = Snapshot("s1", {"a", "b"});
  s.consistency = Consistency::kApplication;
  s.coordinated = true;
  ASSERT_TRUE(catalog_->InsertSnapshot(s).ok());
  EXPECT_TRUE(catalog_->GetSnapshot("s1")->coordinated);
  EXPECT_EQ(catalog_->GetSnapshot("s1")->state, SnapshotState::kIncomplete);
  EXPECT_EQ(catalog_->GetSnapshot("s1")->consistency, Consistency::kApplication) << "as asked";
  EXPECT_EQ(catalog_->GetSnapshot("s1")->members[0].consistency, Consistency::kCrash)
      << "no member is application consistent until the commit says so";
  EXPECT_EQ(catalog_->GetVm("a")->disks[0], "/img/a-d0") << "intent changes no disk";

  s.pause_window_us = 1500;
  s.freeze_window_us = 4200;
  s.members[1].pause_us = 900;
  s.members[0].consistency = Consistency::kApplication;
  ASSERT_TRUE(catalog_->CompleteSnapshot(s).ok());
  Reopen();
  auto got = catalog_->GetSnapshot("s1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, SnapshotState::kComplete);
  EXPECT_EQ(got->pause_window_us, 1500);
  ASSERT_EQ(got->members.size(), 2u);
  EXPECT_EQ(got->members[1].pause_us, 900);
  EXPECT_EQ(got->freeze_window_us, 4200);
  EXPECT_EQ(got->members[0].consistency, Consistency::kApplication);
  EXPECT_EQ(got->members[1].consistency, Consistency::kCrash);
  EXPECT_EQ(got->members[1].disks[1].overlay, "/img/b-d1-s1");
  EXPECT_EQ(catalog_->GetVm("b")->disks[1], "/img/b-d1-s1");
  EXPECT_EQ(catalog_->GetVm("b")->current_snapshot, "s1-b");
}

TEST_F(CatalogTest, AFailedCompletionChangesNothing) {
  ASSERT_TRUE(catalog_->InsertVm(Vm("a")).ok());
  ASSERT_TRUE(catalog_->InsertVm(Vm("b", /*disks=*/1)).ok());  // b has no disk 1
  SnapshotRecord s = Snapshot("s1", {"a", "b"});
  ASSERT_TRUE(catalog_->InsertSnapshot(s).ok());
  EXPECT_EQ(catalog_->CompleteSnapshot(s).code(), Code::kNotFound);
  EXPECT_EQ(catalog_->GetSnapshot("s1")->state, SnapshotState::kIncomplete);
  EXPECT_EQ(catalog_->GetVm("a")->disks[0], "/img/a-d0");
  EXPECT_EQ(catalog_->GetVm("a")->current_snapshot, "");
}

TEST_F(CatalogTest, DeletingASnapshotRemovesItsMembers) {
  ASSERT_TRUE(catalog_->InsertSnapshot(Snapshot("s1", {"a"})).ok());
  ASSERT_TRUE(catalog_->InsertSnapshot(Snapshot("s2", {"a"})).ok());
  EXPECT_EQ(catalog_->ListSnapshots("g1")->size(), 2u);
  EXPECT_TRUE(catalog_->ListSnapshots("other")->empty());
  ASSERT_TRUE(catalog_->DeleteSnapshot("s1").ok());
  EXPECT_EQ(catalog_->GetSnapshot("s1").status().code(), Code::kNotFound);
  auto all = catalog_->ListSnapshots();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].members[0].disks.size(), 2u);
}

TEST_F(CatalogTest, AMemberNamesItsGroupSnapshot) {
  ASSERT_TRUE(catalog_->InsertSnapshot(Snapshot("s1", {"a", "b"})).ok());
  ASSERT_TRUE(catalog_->InsertSnapshot(Snapshot("s2", {"a", "b"})).ok());
  auto got = catalog_->SnapshotOfMember("s2-b");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, "s2");
  ASSERT_EQ(got->members.size(), 2u) << "the whole snapshot, every member";
  EXPECT_EQ(got->members[1].id, "s2-b");
  EXPECT_EQ(catalog_->SnapshotOfMember("s3-a").status().code(), Code::kNotFound);
  ASSERT_TRUE(catalog_->DeleteSnapshot("s2").ok());
  EXPECT_EQ(catalog_->SnapshotOfMember("s2-b").status().code(), Code::kNotFound)
      << "members go with their snapshot";
}

TEST_F(CatalogTest, FinishingADestroyHandsTheSnapshotsPlaceToItsNeighbours) {
  // s1 froze /img/a-d<i>; s2 froze s1's overlays and runs on its own.
  ASSERT_TRUE(catalog_->InsertVm(Vm("a")).ok());
  SnapshotRecord s1 = Snapshot("s1", {"a"});
  ASSERT_TRUE(catalog_->InsertSnapshot(s1).ok());
  ASSERT_TRUE(catalog_->CompleteSnapshot(s1).ok());
  SnapshotRecord s2 = Snapshot("s2", {"a"});
  s2.members[0].parent_id = "s1-a";
  for (auto& d : s2.members[0].disks) d.frozen_image = s1.members[0].disks[d.index].overlay;
  ASSERT_TRUE(catalog_->InsertSnapshot(s2).ok());
  ASSERT_TRUE(catalog_->CompleteSnapshot(s2).ok());

  std::vector<DiskMerge> merges;
  for (const auto& d : s1.members[0].disks)
    merges.push_back({"a", d.index, d.frozen_image, d.overlay, {}});
  EXPECT_EQ(catalog_->FinishDestroy("s1").code(), Code::kInvalidState) << "not begun";
  ASSERT_TRUE(catalog_->BeginDestroy("s1", merges).ok());
  EXPECT_EQ(catalog_->BeginDestroy("s1", merges).code(), Code::kInvalidState);
  ASSERT_TRUE(catalog_->CancelDestroy("s1").ok());
  EXPECT_EQ(catalog_->GetSnapshot("s1")->state, SnapshotState::kComplete);
  EXPECT_TRUE(catalog_->DiskMerges("s1")->empty());

  // A reference point on s1's overlay (merged away) goes; one on the active
  // image stays.
  auto rp_on = [](const std::string& id, const std::string& image) {
    return ReferencePointRecord{.id = id, .collection_id = "g1", .members = {{id, "a", {image}}}};
  };
  ASSERT_TRUE(catalog_->InsertReferencePoint(rp_on("rp-merged", "/img/a-d0-s1")).ok());
  ASSERT_TRUE(catalog_->InsertReferencePoint(rp_on("rp-active", "/img/a-d0-s2")).ok());
  ASSERT_TRUE(catalog_->BeginDestroy("s1", merges).ok());
  Reopen();
  EXPECT_EQ(catalog_->GetSnapshot("s1")->state, SnapshotState::kDestroying);
  EXPECT_EQ(catalog_->DiskMerges("s1")->size(), 2u);
  ASSERT_TRUE(catalog_->FinishDestroy("s1").ok());
  EXPECT_EQ(catalog_->GetSnapshot("s1").status().code(), Code::kNotFound);
  auto s2_now = catalog_->GetSnapshot("s2");
  EXPECT_EQ(s2_now->members[0].parent_id, "") << "s1's child now hangs from s1's parent";
  EXPECT_EQ(s2_now->members[0].disks[0].frozen_image, "/img/a-d0")
      << "the merged image holds s2's state under s1's old file";
  EXPECT_EQ(catalog_->GetVm("a")->current_snapshot, "s2-a");
  EXPECT_EQ(catalog_->GetVm("a")->disks[1], "/img/a-d1-s2");
  EXPECT_EQ(catalog_->GetReferencePoint("rp-merged").status().code(), Code::kNotFound)
      << "its bitmap went with the merged image";
  EXPECT_TRUE(catalog_->GetReferencePoint("rp-active").ok());
}

TEST_F(CatalogTest, DestroyingASnapshotNothingDescendsFromDropsTheReferencePointsOnItsImages) {
  // s1's frozen images have no child any more (an apply of an older
  // snapshot discarded its overlays): the destroy deletes them, and a
  // reference point kept on one of them goes with it.
  ASSERT_TRUE(catalog_->InsertVm(Vm("a")).ok());
  SnapshotRecord s1 = Snapshot("s1", {"a"});
  ASSERT_TRUE(catalog_->InsertSnapshot(s1).ok());
  ASSERT_TRUE(catalog_->CompleteSnapshot(s1).ok());
  ReferencePointRecord on_frozen{
      .id = "rp-1", .collection_id = "g1", .members = {{"m-1", "a", {"/img/a-d0"}}}};
  ReferencePointRecord elsewhere{
      .id = "rp-2", .collection_id = "g1", .members = {{"m-2", "a", {"/img/a-d0-s1"}}}};
  ASSERT_TRUE(catalog_->InsertReferencePoint(on_frozen).ok());
  ASSERT_TRUE(catalog_->InsertReferencePoint(elsewhere).ok());
  std::vector<DiskMerge> merges;
  for (const auto& d : s1.members[0].disks)
    merges.push_back({"a", d.index, d.frozen_image, "", {}});
  ASSERT_TRUE(catalog_->BeginDestroy("s1", merges).ok());
  ASSERT_TRUE(catalog_->FinishDestroy("s1").ok());
  EXPECT_EQ(catalog_->GetReferencePoint("rp-1").status().code(), Code::kNotFound)
      << "its image is deleted with the snapshot";
  EXPECT_TRUE(catalog_->GetReferencePoint("rp-2").ok());
}

TEST_F(CatalogTest, ApplyingDropsTheReferencePointsOnTheImagesItDiscards) {
  ASSERT_TRUE(catalog_->InsertVm(Vm("a", /*disks=*/1)).ok());
  ReferencePointRecord on_active{
      .id = "rp-1", .collection_id = "g1", .members = {{"m-1", "a", {"/img/a-d0"}}}};
  ReferencePointRecord elsewhere{
      .id = "rp-2", .collection_id = "g1", .members = {{"m-2", "a", {"/img/a-d0-old"}}}};
  ASSERT_TRUE(catalog_->InsertReferencePoint(on_active).ok());
  ASSERT_TRUE(catalog_->InsertReferencePoint(elsewhere).ok());
  ASSERT_TRUE(catalog_
                  ->ApplySnapshot("s1", {{.vm_id = "a",
                                          .member_id = "s1-a",
                                          .disks = {"/img/a-d0-new"},
                                          .discarded = {"/img/a-d0"}}})
                  .ok());
  EXPECT_EQ(catalog_->GetVm("a")->disks[0], "/img/a-d0-new");
  EXPECT_EQ(catalog_->GetReferencePoint("rp-1").status().code(), Code::kNotFound)
      << "its image was discarded";
  EXPECT_TRUE(catalog_->GetReferencePoint("rp-2").ok());
}

TEST_F(CatalogTest, AnApplyIntentOutlivesItsCommitUntilDeleted) {
  ASSERT_TRUE(catalog_->InsertVm(Vm("a", /*disks=*/1)).ok());
  ASSERT_TRUE(
      catalog_->InsertApplyIntent({.snapshot_id = "s1", .restart = {"a", "b"}, .paused = {"b"}})
          .ok());
  EXPECT_EQ(catalog_->InsertApplyIntent({.snapshot_id = "s1"}).code(), Code::kBusy);
  auto before = catalog_->ListApplyIntents();
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->size(), 1u);
  EXPECT_EQ((*before)[0].restart, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ((*before)[0].paused, std::vector<std::string>{"b"});
  EXPECT_FALSE((*before)[0].committed);

  const AppliedMember applied{.vm_id = "a", .member_id = "s1-a", .disks = {"/img/a-d0-new"}};
  ASSERT_TRUE(catalog_->ApplySnapshot("s1", {applied}).ok());
  auto after = catalog_->ListApplyIntents();
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u) << "kept until the VMs are started again";
  EXPECT_TRUE((*after)[0].committed);
  EXPECT_EQ((*after)[0].paused, std::vector<std::string>{"b"});
  ASSERT_TRUE(catalog_->DeleteApplyIntent("s1").ok());
  EXPECT_TRUE(catalog_->ListApplyIntents()->empty());
}

TEST_F(CatalogTest, AnApplyIntentHeldOnceItIsPreparedKeepsItsTag) {
  ASSERT_TRUE(catalog_->InsertApplyIntent({.snapshot_id = "s1", .restart = {"a"}}).ok());
  ASSERT_TRUE(catalog_->InsertApplyIntent({.snapshot_id = "s2"}).ok());
  EXPECT_FALSE(catalog_->ListApplyIntents()->at(0).held) << "not held until prepared";
  ASSERT_TRUE(catalog_->HoldApplyIntent("s1", "a1b2c3d4").ok());
  EXPECT_EQ(catalog_->HoldApplyIntent("s3", "t").code(), Code::kNotFound);
  auto intents = catalog_->ListApplyIntents();
  ASSERT_TRUE(intents.ok());
  ASSERT_EQ(intents->size(), 2u);
  const auto& held = (*intents)[0].snapshot_id == "s1" ? (*intents)[0] : (*intents)[1];
  const auto& plain = (*intents)[0].snapshot_id == "s1" ? (*intents)[1] : (*intents)[0];
  EXPECT_TRUE(held.held);
  EXPECT_EQ(held.tag, "a1b2c3d4");
  EXPECT_EQ(held.restart, std::vector<std::string>{"a"});
  EXPECT_FALSE(plain.held);
  EXPECT_EQ(plain.tag, "");
  ASSERT_TRUE(catalog_->ApplySnapshot("s2", {}).ok());
  EXPECT_EQ(catalog_->HoldApplyIntent("s2", "t").code(), Code::kNotFound) << "committed";
}

TEST_F(CatalogTest, JobsRoundTrip) {
  JobRecord j{.id = "j1",
              .type = 198,
              .description = "Snapshot of web",
              .cancellable = true,
              .state = JobState::kRunning,
              .created_us = 5};
  ASSERT_TRUE(catalog_->InsertJob(j).ok());
  EXPECT_EQ(catalog_->InsertJob(j).code(), Code::kAlreadyExists);
  j.state = JobState::kException;
  j.error_code = 5;
  j.error_description = "member db1 is gone";
  j.affected = {"s1"};
  ASSERT_TRUE(catalog_->UpdateJob(j).ok());
  auto got = catalog_->GetJob("j1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kException);
  EXPECT_EQ(got->error_description, "member db1 is gone");
  EXPECT_EQ(got->affected, std::vector<std::string>{"s1"});
  EXPECT_EQ(got->description, "Snapshot of web");
  EXPECT_TRUE(got->cancellable);
  EXPECT_EQ(catalog_->ListJobs()->size(), 1u);
  EXPECT_EQ(catalog_->UpdateJob({.id = "nope"}).code(), Code::kNotFound);
}

TEST_F(CatalogTest, OnlyJobsThatEndedLongEnoughAgoAreForgotten) {
  ASSERT_TRUE(catalog_->InsertJob({.id = "running", .created_us = 1}).ok());
  ASSERT_TRUE(catalog_->InsertJob({.id = "old", .created_us = 1, .ended_us = 100}).ok());
  ASSERT_TRUE(catalog_->InsertJob({.id = "recent", .created_us = 1, .ended_us = 300}).ok());
  ASSERT_TRUE(catalog_->DeleteJobsEndedBefore(200).ok());
  std::vector<std::string> left;
  for (const auto& j : *catalog_->ListJobs()) left.push_back(j.id);
  EXPECT_EQ(left, (std::vector<std::string>{"recent", "running"}));
}

TEST_F(CatalogTest, ReferencePointsAndExportsRoundTrip) {
  ReferencePointRecord rp{.id = "rp-1",
                          .collection_id = "c-1",
                          .name = "monday",
                          .snapshot_id = "s-1",
                          .bitmap = "vmg-rp-ab12",
                          .cut_us = 10,
                          .created_us = 20,
                          .members = {{"m-1", "vm-1", {"/a/d0.qcow2", "/a/d1.qcow2"}},
                                      {"m-2", "vm-2", {"/b/d0.qcow2"}}}};
  ASSERT_TRUE(catalog_->InsertReferencePoint(rp).ok());
  EXPECT_FALSE(catalog_->InsertReferencePoint(rp).ok()) << "ids are unique";
  auto got = catalog_->GetReferencePoint("rp-1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->bitmap, "vmg-rp-ab12");
  ASSERT_EQ(got->members.size(), 2u);
  EXPECT_EQ(got->members[0].images, rp.members[0].images);
  EXPECT_EQ(got->members[1].vm_id, "vm-2");
  EXPECT_EQ(catalog_->ListReferencePoints("c-1")->size(), 1u);
  EXPECT_TRUE(catalog_->ListReferencePoints("c-2")->empty());
  EXPECT_EQ(catalog_->ListReferencePoints()->size(), 1u);
  ASSERT_TRUE(catalog_->DeleteReferencePoint("rp-1").ok());
  EXPECT_EQ(catalog_->GetReferencePoint("rp-1").status().code(), Code::kNotFound);
  EXPECT_EQ(catalog_->DeleteReferencePoint("rp-1").code(), Code::kNotFound);

  ASSERT_TRUE(catalog_->RecordExport("s-1", "/bk/mon", 100).ok());
  ASSERT_TRUE(catalog_->RecordExport("s-1", "/bk/mon2", 200).ok());
  EXPECT_EQ(*catalog_->ExportsOf("s-1"), (std::vector<std::string>{"/bk/mon2", "/bk/mon"}));
  EXPECT_TRUE(catalog_->ExportsOf("s-2")->empty());
}

TEST_F(CatalogTest, ExportIntentsAreOnePerDirectoryUntilDeleted) {
  ASSERT_TRUE(catalog_->InsertExportIntent({"/bk/a/mon", "s-1", "/bk/a"}).ok());
  ASSERT_TRUE(catalog_->InsertExportIntent({"/bk/tue", "s-2", ""}).ok());
  Status twice = catalog_->InsertExportIntent({"/bk/tue", "s-1", ""});
  EXPECT_EQ(twice.code(), Code::kAlreadyExists);
  EXPECT_NE(twice.message().find("an export into /bk/tue is in progress"), std::string::npos);
  auto listed = catalog_->ListExportIntents();
  ASSERT_TRUE(listed.ok() && listed->size() == 2u);
  EXPECT_EQ((*listed)[0].directory, "/bk/a/mon");
  EXPECT_EQ((*listed)[0].snapshot_id, "s-1");
  EXPECT_EQ((*listed)[0].made, "/bk/a");
  EXPECT_EQ((*listed)[1].made, "");
  ASSERT_TRUE(catalog_->DeleteExportIntent("/bk/a/mon").ok());
  ASSERT_TRUE(catalog_->DeleteExportIntent("/bk/none").ok()) << "OK when none was recorded";
  EXPECT_EQ(catalog_->ListExportIntents()->size(), 1u);
}

TEST_F(CatalogTest, BackupIntentsKeepTheirSessionUntilDeleted) {
  ASSERT_TRUE(catalog_
                  ->InsertBackupIntent({.id = "b-2",
                                        .collection_id = "g1",
                                        .snapshot_id = "s-1",
                                        .took_snapshot = true,
                                        .directory = "/state/backups/b-2",
                                        .vm_ids = {"vm-a", "vm-b"}})
                  .ok());
  ASSERT_TRUE(catalog_->InsertBackupIntent({.id = "b-1", .snapshot_id = "s-0"}).ok());
  EXPECT_EQ(catalog_->InsertBackupIntent({.id = "b-1"}).code(), Code::kAlreadyExists);
  auto listed = catalog_->ListBackupIntents();
  ASSERT_TRUE(listed.ok() && listed->size() == 2u);
  EXPECT_EQ((*listed)[0].id, "b-1");
  EXPECT_FALSE((*listed)[0].took_snapshot);
  const catalog::BackupIntent& b = (*listed)[1];
  EXPECT_EQ(b.collection_id, "g1");
  EXPECT_EQ(b.snapshot_id, "s-1");
  EXPECT_TRUE(b.took_snapshot);
  EXPECT_EQ(b.directory, "/state/backups/b-2");
  EXPECT_EQ(b.vm_ids, (std::vector<std::string>{"vm-a", "vm-b"}));
  ASSERT_TRUE(catalog_->DeleteBackupIntent("b-2").ok());
  ASSERT_TRUE(catalog_->DeleteBackupIntent("b-9").ok()) << "OK when none was recorded";
  EXPECT_EQ(catalog_->ListBackupIntents()->size(), 1u);
}

TEST_F(CatalogTest, ASpanningBackupKeepsEachHostsSessionUntilDeleted) {
  ASSERT_TRUE(
      catalog_
          ->InsertSpanningBackup(
              {.id = "b-1", .collection_id = "g1", .snapshot_id = "s-1", .took_snapshot = true})
          .ok());
  EXPECT_EQ(catalog_->InsertSpanningBackup({.id = "b-1"}).code(), Code::kAlreadyExists);
  EXPECT_EQ(catalog_->SetSpanningBackupSessions({.id = "b-9"}).code(), Code::kNotFound);
  ASSERT_TRUE(catalog_
                  ->SetSpanningBackupSessions(
                      {.id = "b-1", .hosts = {"", "db1"}, .sessions = {"local-s", "db1-s"}})
                  .ok());
  auto listed = catalog_->ListSpanningBackups();
  ASSERT_TRUE(listed.ok() && listed->size() == 1u);
  const catalog::SpanningBackupIntent& b = (*listed)[0];
  EXPECT_EQ(b.collection_id, "g1");
  EXPECT_EQ(b.snapshot_id, "s-1");
  EXPECT_TRUE(b.took_snapshot);
  EXPECT_EQ(b.hosts, (std::vector<std::string>{"", "db1"}));
  EXPECT_EQ(b.sessions, (std::vector<std::string>{"local-s", "db1-s"}));
  EXPECT_TRUE(catalog_->ListBackupIntents()->empty()) << "not a session of this host's";
  ASSERT_TRUE(catalog_->DeleteSpanningBackup("b-1").ok());
  ASSERT_TRUE(catalog_->DeleteSpanningBackup("b-1").ok()) << "OK when none was recorded";
  EXPECT_TRUE(catalog_->ListSpanningBackups()->empty());
}

TEST_F(CatalogTest, AReferencePointKeepsTheConsistencyOfItsCut) {
  ASSERT_TRUE(catalog_
                  ->InsertReferencePoint({.id = "rp-app",
                                          .collection_id = "g1",
                                          .consistency = catalog::Consistency::kApplication})
                  .ok());
  ASSERT_TRUE(catalog_->InsertReferencePoint({.id = "rp-crash", .collection_id = "g1"}).ok());
  EXPECT_EQ(catalog_->GetReferencePoint("rp-app")->consistency, catalog::Consistency::kApplication);
  EXPECT_EQ(catalog_->GetReferencePoint("rp-crash")->consistency, catalog::Consistency::kCrash);
}

TEST_F(CatalogTest, RestoreIntentsNameTheirGroupAndVmsUntilDeleted) {
  ASSERT_TRUE(catalog_->InsertRestoreIntent({"c-1", {"vm-a", "vm-b"}}).ok());
  Status twice = catalog_->InsertRestoreIntent({"c-1", {}});
  EXPECT_EQ(twice.code(), Code::kAlreadyExists);
  EXPECT_NE(twice.message().find("a restore of group c-1 is in progress"), std::string::npos);
  auto listed = catalog_->ListRestoreIntents();
  ASSERT_TRUE(listed.ok() && listed->size() == 1u);
  EXPECT_EQ((*listed)[0].collection_id, "c-1");
  EXPECT_EQ((*listed)[0].vm_ids, (std::vector<std::string>{"vm-a", "vm-b"}));
  ASSERT_TRUE(catalog_->DeleteRestoreIntent("c-1").ok());
  EXPECT_TRUE(catalog_->ListRestoreIntents()->empty());
}

TEST_F(CatalogTest, RestoreIntentsNameTheDomainsAndFilesTheyMake) {
  ASSERT_TRUE(catalog_
                  ->InsertRestoreIntent({.collection_id = "c-2",
                                         .vm_ids = {"vm-a", "vm-b"},
                                         .libvirt_uris = {"", "qemu:///system"},
                                         .files = {"/img/b-restored-d0.qcow2"}})
                  .ok());
  auto listed = catalog_->ListRestoreIntents();
  ASSERT_TRUE(listed.ok() && listed->size() == 1u);
  EXPECT_EQ((*listed)[0].libvirt_uris, (std::vector<std::string>{"", "qemu:///system"}));
  EXPECT_EQ((*listed)[0].files, (std::vector<std::string>{"/img/b-restored-d0.qcow2"}));
  ASSERT_TRUE(catalog_->DeleteRestoreIntent("c-2").ok());
  EXPECT_TRUE(catalog_->ListRestoreIntents()->empty());
}

TEST_F(CatalogTest, MembersOnOtherHostsAreNamedByHostAndUuid) {
  ASSERT_TRUE(
      catalog_->InsertCollection({"g1", "web", CollectionType::kVirtualSystems, 1, {}}).ok());
  const RemoteMember db{"db1", "u-1"}, app{"app1", "u-1"};
  EXPECT_EQ(catalog_->AddRemoteMember("g2", db).code(), Code::kNotFound);
  ASSERT_TRUE(catalog_->AddRemoteMember("g1", db).ok());
  ASSERT_TRUE(catalog_->AddRemoteMember("g1", app).ok()) << "the same UUID on another host";
  ASSERT_TRUE(catalog_->AddMember("g1", "local").ok());
  EXPECT_EQ(catalog_->AddRemoteMember("g1", db).code(), Code::kAlreadyExists);
  auto g = catalog_->GetCollection("g1");
  EXPECT_EQ(g->members, std::vector<std::string>{"local"});
  EXPECT_EQ(g->remote_members, (std::vector<RemoteMember>{db, app}));
  bool removed = false;
  ASSERT_TRUE(catalog_->RemoveRemoteMember("g1", db, &removed).ok());
  EXPECT_TRUE(removed);
  ASSERT_TRUE(catalog_->RemoveRemoteMember("g1", db, &removed).ok());
  EXPECT_FALSE(removed);
  EXPECT_EQ(catalog_->GetCollection("g1")->remote_members, std::vector<RemoteMember>{app});
}

TEST_F(CatalogTest, ASnapshotAcrossHostsKeepsEveryHostsPartThroughItsStates) {
  SpanningSnapshotRecord s{.id = "s1",
                           .collection_id = "g1",
                           .name = "across",
                           .type = 32768,
                           .consistency = Consistency::kApplication,
                           .created_us = 5,
                           .parts = {{.host = ""}, {.host = "db1"}}};
  ASSERT_TRUE(catalog_->InsertSpanning(s).ok());
  EXPECT_EQ(catalog_->InsertSpanning(s).code(), Code::kAlreadyExists);
  Reopen();
  auto got = catalog_->GetSpanning("s1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->state, SpanningState::kTaking);
  EXPECT_EQ(got->consistency, Consistency::kApplication);
  ASSERT_EQ(got->parts.size(), 2u);
  EXPECT_EQ(got->parts[1].host, "db1");
  s.window_us = 900;
  s.cut_spread_us = 40;
  s.parts[1].vm_ids = {"u-1", "u-2"};
  s.parts[1].earliest_cut_us = 100;
  s.parts[1].latest_cut_us = 140;
  s.parts[1].longest_pause_us = 800;
  ASSERT_TRUE(catalog_->CompleteSpanning(s).ok());
  got = catalog_->GetSpanning("s1");
  EXPECT_EQ(got->state, SpanningState::kComplete);
  EXPECT_EQ(got->window_us, 900);
  EXPECT_EQ(got->cut_spread_us, 40);
  EXPECT_EQ(got->parts[1].vm_ids, (std::vector<std::string>{"u-1", "u-2"}));
  EXPECT_EQ(got->parts[1].latest_cut_us, 140);
  EXPECT_EQ(got->parts[1].longest_pause_us, 800);
  ASSERT_TRUE(catalog_->SetSpanningState("s1", SpanningState::kUndoing).ok());
  EXPECT_EQ(catalog_->ListSpanning()->at(0).state, SpanningState::kUndoing);
  EXPECT_EQ(catalog_->SetSpanningState("s2", SpanningState::kUndoing).code(), Code::kNotFound);
  ASSERT_TRUE(catalog_->DeleteSpanning("s1").ok());
  EXPECT_TRUE(catalog_->ListSpanning()->empty());
  EXPECT_EQ(catalog_->GetSpanning("s1").status().code(), Code::kNotFound);
}

TEST_F(CatalogTest, ASnapshotAcrossHostsBecomesItsReferencePointOnlyFromComplete) {
  SpanningSnapshotRecord s{.id = "s1", .collection_id = "g1", .parts = {{.host = "db1"}}};
  ASSERT_TRUE(catalog_->InsertSpanning(s).ok());
  EXPECT_EQ(catalog_->ConvertSpanning("s1", "r1", 7).code(), Code::kInvalidState);  // kTaking
  EXPECT_EQ(catalog_->ConvertSpanning("s9", "r1", 7).code(), Code::kNotFound);
  ASSERT_TRUE(catalog_->CompleteSpanning(s).ok());
  ASSERT_TRUE(catalog_->ConvertSpanning("s1", "r1", 7).ok());
  EXPECT_EQ(catalog_->ConvertSpanning("s1", "r2", 8).code(), Code::kInvalidState);
  s.id = "s2";
  ASSERT_TRUE(catalog_->InsertSpanning(s).ok());
  ASSERT_TRUE(catalog_->CompleteSpanning(s).ok());
  EXPECT_EQ(catalog_->ConvertSpanning("s2", "r1", 8).code(), Code::kAlreadyExists);
  Reopen();
  auto got = catalog_->GetSpanningReferencePoint("r1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, "s1");
  EXPECT_EQ(got->state, SpanningState::kConverting);
  EXPECT_EQ(got->reference_point_id, "r1");
  EXPECT_EQ(got->converted_us, 7);
  EXPECT_EQ(got->parts.at(0).host, "db1");
  EXPECT_EQ(catalog_->GetSpanning("s2")->reference_point_id, "");
  EXPECT_EQ(catalog_->GetSpanningReferencePoint("").status().code(), Code::kNotFound);
  EXPECT_EQ(catalog_->GetSpanningReferencePoint("r2").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace vmgroup::catalog
