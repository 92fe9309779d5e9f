// The backup cycle a backup product runs, on real guests that keep writing
// (tests/guest_kit, writer=raw): recovery snapshot -> full export ->
// convert to reference point -> writes -> recovery snapshot -> incremental
// export -> convert; then a restore of full + incremental compared, byte for
// byte, with each disk as it was at the second cut. And change tracking that
// was tampered with outside vmgroup: the incremental export refuses, saying
// to take a full one.
#include <filesystem>

#include "engine/export_manifest.h"
#include "engine/snapshot_plan.h"
#include "guest_fixture.h"

namespace vmgroup::integration {
namespace {

namespace fs = std::filesystem;
constexpr int kGuests = 3;

class BackupCycleTest : public GuestFixture {
 protected:
  // Guests whose disks hold 16 MiB of data (away from the sectors they
  // write) and that keep writing.
  testing::TinyGroup WritingGroup() {
    auto g = testing::MakeTinyGroup(*engine_, dir_ / "images", "bk", kGuests, Guest("writer=raw"),
                                    /*start=*/false);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    if (!g.ok()) return {};
    for (const auto& id : g->vm_ids) {
      auto r = Env::Default()->Run({"qemu-io", "-c", "write -P 0x5a 32M 16M", Vm(id).disks[0]});
      EXPECT_TRUE(r.ok() && r->exit_code == 0);
      EXPECT_TRUE(engine_->vms().Start(id).ok());
    }
    WaitForWrites(g->vm_ids, std::vector<int64_t>(kGuests, 0), 50);
    return *g;
  }
  catalog::SnapshotRecord Recovery(const testing::TinyGroup& g) {
    auto s = engine_->snapshots().Create(
        {.collection_id = g.collection_id, .type = engine::kSnapshotRecovery});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : catalog::SnapshotRecord{};
  }
  uint64_t OwnData(const std::string& image) { return *img_.OwnDataBytes(image); }
};

TEST_F(BackupCycleTest, FullAndIncrementalRestoreEveryDiskAsAtTheSecondCut) {
  auto g = WritingGroup();
  ASSERT_EQ(g.vm_ids.size(), size_t{kGuests});
  auto& snaps = engine_->snapshots();

  const auto s1 = Recovery(g);
  const std::string full = dir_ / "backups/full", inc = dir_ / "backups/inc";
  ASSERT_TRUE(snaps.Export({.snapshot_id = s1.id, .directory = full}).ok());
  auto rp1 = snaps.ConvertToReferencePoint(s1.id);
  ASSERT_TRUE(rp1.ok()) << rp1.status().ToString();
  EXPECT_EQ(engine_->catalog().GetSnapshot(s1.id).status().code(), Code::kNotFound)
      << "the snapshot is gone, its reference point stays";
  EXPECT_EQ(engine_->catalog().ListReferencePoints(g.collection_id)->size(), 1u);

  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 50);  // the guests write on
  const auto s2 = Recovery(g);
  // The disks as they were at the second cut, kept aside to compare with.
  std::vector<std::string> at_cut;
  for (int i = 0; i < kGuests; ++i) {
    at_cut.push_back(dir_ / ("cut2-" + std::to_string(i) + ".qcow2"));
    ASSERT_TRUE(
        img_.Convert(s2.members[i].disks[0].frozen_image, at_cut[i], std::chrono::minutes(1)).ok());
  }

  auto m = snaps.Export({.snapshot_id = s2.id, .directory = inc, .base = rp1->id});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->base.reference_point_id, rp1->id);
  EXPECT_EQ(m->base.snapshot_id, s1.id);
  EXPECT_EQ(m->base.directory, "../full");
  for (const auto& vm : m->vms) {
    const auto& d = vm.disks.at(0);
    EXPECT_EQ(d.base_file, "../full/" + vm.id + "/disk0.qcow2");
    // Only what the guest wrote between the cuts: a few clusters, where the
    // full export holds the 16 MiB too.
    EXPECT_GT(OwnData(inc + "/" + d.file), 0u);
    EXPECT_LT(OwnData(inc + "/" + d.file), uint64_t{1} << 20);
    EXPECT_GT(OwnData(full + "/" + vm.id + "/disk0.qcow2"), uint64_t{16} << 20);
    EXPECT_EQ(fs::path(img_.Info(inc + "/" + d.file)->backing_filename).lexically_normal(),
              fs::path(full + "/" + vm.id + "/disk0.qcow2"));
  }
  auto rp2 = snaps.ConvertToReferencePoint(s2.id);
  ASSERT_TRUE(rp2.ok()) << rp2.status().ToString();
  for (const auto& id : g.vm_ids) {
    EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
  }

  // The chain, moved elsewhere as a backup product would, still restores.
  const std::string moved = dir_ / "vault";
  fs::rename(dir_ / "backups", moved);
  auto r = engine_->restorer().Restore({.directory = moved + "/inc", .as_new = true});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (int i = 0; i < kGuests; ++i) {
    const auto vm = Vm(r->vm_ids[i]);
    EXPECT_TRUE(SameContent(vm.disks[0], at_cut[i])) << "restored disk " << i;
    EXPECT_EQ(img_.Info(vm.disks[0])->backing_filename, "") << "a restored disk stands alone";
  }
  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 20);  // the originals never stopped
  for (const auto& id : g.vm_ids) ExpectCatalogMatchesDisk(id);
}

TEST_F(BackupCycleTest, TrackingChangedOutsideVmgroupRefusesTheIncrementalNotTheFull) {
  auto g = WritingGroup();
  ASSERT_EQ(g.vm_ids.size(), size_t{kGuests});
  auto& snaps = engine_->snapshots();
  const auto s1 = Recovery(g);
  ASSERT_TRUE(snaps.Export({.snapshot_id = s1.id, .directory = dir_ / "full"}).ok());
  auto rp = snaps.ConvertToReferencePoint(s1.id);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();

  // Someone removes the bitmap of one disk with qemu-img while its VM is off.
  const std::string victim = g.vm_ids[1];
  ASSERT_TRUE(engine_->vms().Stop(victim).ok());
  const std::string image = Vm(victim).disks[0];
  auto removed = Env::Default()->Run({"qemu-img", "bitmap", "--remove", image, rp->bitmap});
  ASSERT_TRUE(removed.ok() && removed->exit_code == 0) << (removed.ok() ? removed->err : "");
  ASSERT_TRUE(engine_->vms().Start(victim).ok());

  const auto s2 = Recovery(g);
  Status refused =
      snaps.Export({.snapshot_id = s2.id, .directory = dir_ / "inc", .base = rp->id}).status();
  EXPECT_EQ(refused.code(), Code::kFailed);
  EXPECT_NE(refused.message().find("export in full"), std::string::npos) << refused.message();
  EXPECT_FALSE(fs::exists(dir_ / "inc")) << "nothing of the refused export stays";
  // A full export of the same snapshot is what the message asks for, and works.
  EXPECT_TRUE(snaps.Export({.snapshot_id = s2.id, .directory = dir_ / "full2"}).ok());
}

}  // namespace
}  // namespace vmgroup::integration
