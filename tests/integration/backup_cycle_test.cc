// The backup cycle a backup product runs, on real guests that keep writing
// (tests/guest_kit, writer=raw): recovery snapshot -> full export ->
// convert to reference point -> writes -> recovery snapshot -> incremental
// export -> convert; then a restore of full + incremental compared, byte for
// byte, with each disk as it was at the second cut. And change tracking that
// was tampered with outside vmgroup: the incremental export refuses, saying
// to take a full one.
#include <filesystem>
#include <tuple>

#include "base/ids.h"
#include "engine/export_manifest.h"
#include "engine/fault_points.h"
#include "engine/snapshot_plan.h"
#include "guest_fixture.h"
#include "testing/guest_io.h"

namespace vmgroup::integration {
namespace {

namespace fs = std::filesystem;
constexpr int kGuests = 3;

class BackupCycleTest : public GuestFixture {
 protected:
  catalog::SnapshotRecord Recovery(const testing::TinyGroup& g) {
    auto s = engine_->snapshots().Create(
        {.collection_id = g.collection_id, .type = engine::kSnapshotRecovery});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : catalog::SnapshotRecord{};
  }
  // Each member's disk as it was at snapshot `s`, kept aside to compare with.
  std::vector<std::string> CopiesAt(const catalog::SnapshotRecord& s) {
    std::vector<std::string> out;
    for (const auto& m : s.members) {
      out.push_back(dir_ / ("at-" + s.tag + "-" + m.vm_id + ".qcow2"));
      EXPECT_TRUE(
          img_.Convert(m.disks.at(0).frozen_image, out.back(), std::chrono::minutes(1)).ok());
    }
    return out;
  }
};

TEST_F(BackupCycleTest, FullAndIncrementalRestoreEveryDiskAsAtTheSecondCut) {
  auto g = WritingGroup("bk", kGuests);
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
  const std::vector<std::string> at_cut = CopiesAt(s2);

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
    // The copies of both exports' images, rebased onto each other: nothing
    // the restored VM opens lies outside its own directory.
    const std::string run = engine_->vms().RunDir(vm.id);
    auto chain = img_.Chain(vm.disks[0]);
    ASSERT_TRUE(chain.ok()) << chain.status().ToString();
    ASSERT_EQ(chain->size(), 2u);
    EXPECT_EQ((*chain)[0].filename, run + "/restored-d0.qcow2");
    EXPECT_EQ((*chain)[0].backing_filename, run + "/restored-d0.1.qcow2");
    EXPECT_EQ((*chain)[1].backing_filename, "");
    EXPECT_EQ(vm.config.kernel, run + "/kernel");
    EXPECT_EQ(vm.config.initrd, run + "/initrd");
    EXPECT_TRUE(vm.config.extra_args.empty()) << "no QEMU arguments come from an export";
  }
  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 20);  // the originals never stopped
  for (const auto& id : g.vm_ids) ExpectCatalogMatchesDisk(id);
}

TEST_F(BackupCycleTest, TrackingChangedOutsideVmgroupRefusesTheIncrementalNotTheFull) {
  auto g = WritingGroup("bk", kGuests);
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

TEST_F(BackupCycleTest, ASnapshotAsBaseExportsWhatCameAfterIt) {
  auto g = WritingGroup("bk", kGuests);
  ASSERT_EQ(g.vm_ids.size(), size_t{kGuests});
  auto& snaps = engine_->snapshots();
  const auto s1 = Recovery(g);
  const std::string full = dir_ / "backups/full", inc = dir_ / "backups/inc";
  ASSERT_TRUE(snaps.Export({.snapshot_id = s1.id, .directory = full}).ok());
  WaitForWrites(g.vm_ids, AcknowledgedAll(g.vm_ids), 50);
  const auto s2 = Recovery(g);
  const std::vector<std::string> at_cut = CopiesAt(s2);
  const auto s3 = Recovery(g);
  // A member that is off: the layer is read from its image file, not its QEMU.
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[0]).ok());

  auto m = snaps.Export({.snapshot_id = s2.id, .directory = inc, .base = s1.id});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->base.reference_point_id, "");
  EXPECT_EQ(m->base.snapshot_id, s1.id);
  for (const auto& vm : m->vms) {
    const auto& d = vm.disks.at(0);
    EXPECT_EQ(d.base_file, "../full/" + vm.id + "/disk0.qcow2");
    EXPECT_GT(OwnData(inc + "/" + d.file), 0u);
    EXPECT_LT(OwnData(inc + "/" + d.file), uint64_t{1} << 20) << "only what came after s1";
  }
  // Two snapshots apart, the layer between would be missing: refused.
  Status skipped =
      snaps.Export({.snapshot_id = s3.id, .directory = dir_ / "skip", .base = s1.id}).status();
  EXPECT_EQ(skipped.code(), Code::kFailed);
  EXPECT_NE(skipped.message().find("not the one right before"), std::string::npos)
      << skipped.message();
  EXPECT_NE(skipped.message().find("export in full"), std::string::npos) << skipped.message();
  EXPECT_FALSE(fs::exists(dir_ / "skip"));

  auto r = engine_->restorer().Restore({.directory = inc, .as_new = true});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (int i = 0; i < kGuests; ++i) {
    EXPECT_TRUE(SameContent(Vm(r->vm_ids[i]).disks[0], at_cut[i])) << "restored disk " << i;
  }
}

// What each export of the written group must hold is known exactly.
class ReferencePointExportTest : public WrittenGroupFixture {
 protected:
  ReferencePointExportTest() : WrittenGroupFixture("rp") {}
  // A fresh image of the disks' size with `writes` (pattern, at, length).
  std::string Expected(const std::string& name,
                       const std::vector<std::tuple<int, uint64_t, uint64_t>>& writes) {
    const std::string path = dir_ / (name + ".qcow2");
    EXPECT_TRUE(img_.Create(path, 8 << 20).ok());
    for (const auto& [pattern, at, length] : writes) {
      auto r = Env::Default()->Run({"qemu-io", "-c",
                                    "write -P " + std::to_string(pattern) + " " +
                                        std::to_string(at) + " " + std::to_string(length),
                                    path});
      EXPECT_TRUE(r.ok() && r->exit_code == 0);
    }
    return path;
  }
  // Restores the export chain ending in `dir` as new VMs and checks each
  // disk reads as `expected`.
  void ExpectRestoresAs(const std::string& dir, const std::string& expected) {
    auto r = engine_->restorer().Restore({.directory = dir, .as_new = true});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (const auto& id : r->vm_ids) {
      EXPECT_TRUE(SameContent(Vm(id).disks[0], expected)) << dir;
    }
  }
  size_t SnapshotsLeft() { return engine_->catalog().ListSnapshots(g_.collection_id)->size(); }
};

TEST_F(ReferencePointExportTest, ExportsWhatChangedSinceThePointAndKeepsItWhole) {
  auto& snaps = engine_->snapshots();
  auto s1 = snaps.Create({.collection_id = g_.collection_id, .type = engine::kSnapshotRecovery});
  ASSERT_TRUE(s1.ok()) << s1.status().ToString();
  const std::string full = dir_ / "bk/full";
  ASSERT_TRUE(snaps.Export({.snapshot_id = s1->id, .directory = full}).ok());
  auto rp = snaps.ConvertToReferencePoint(s1->id);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();

  Write(0x22, 1 << 20, 1 << 20);
  auto m = snaps.ExportReferencePoint(rp->id, {.directory = dir_ / "bk/mon"});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->base.reference_point_id, rp->id);
  EXPECT_EQ(m->base.snapshot_id, s1->id);
  for (const auto& vm : m->vms) {
    EXPECT_EQ(OwnData(dir_ / ("bk/mon/" + vm.disks.at(0).file)), uint64_t{1} << 20)
        << "exactly the megabyte written since the point";
  }
  EXPECT_EQ(SnapshotsLeft(), 0u) << "the cut taken for the export is gone again";
  for (const auto& id : g_.vm_ids) EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);

  Write(0x33, 2 << 20, 1 << 20);  // after that export: only in the next
  ExpectRestoresAs(dir_ / "bk/mon",
                   Expected("monday", {{0x11, 0, 4 << 20}, {0x22, 1 << 20, 1 << 20}}));
  // The point still tracks everything since its cut: a second export is the
  // longer differential, on the same full export.
  auto tue = snaps.ExportReferencePoint(rp->id, {.directory = dir_ / "bk/tue"});
  ASSERT_TRUE(tue.ok()) << tue.status().ToString();
  EXPECT_EQ(tue->base.directory, "../full");
  ExpectRestoresAs(dir_ / "bk/tue", Expected("tuesday", {{0x11, 0, 4 << 20},
                                                         {0x22, 1 << 20, 1 << 20},
                                                         {0x33, 2 << 20, 1 << 20}}));
  for (const auto& id : g_.vm_ids) ExpectCatalogMatchesDisk(id);
}

// The service killed part-way through a conversion. Before its snapshot's
// destroy began, recovery takes the record back and a retry converts the
// same snapshot (keeping the tracking the first attempt left on the frozen
// images); after, recovery finishes the destroy and the point stands.
// Either way the point then exports exactly what changed since its cut.
TEST_F(ReferencePointExportTest, AConversionCutShortIsTakenBackOrFinished) {
  const std::string_view points[] = {engine::fault::kRefpointRecorded,
                                     engine::fault::kDestroyMemberDetached,
                                     engine::fault::kDestroyMemberMerged};
  for (size_t i = 0; i < std::size(points); ++i) {
    const std::string_view point = points[i];
    SCOPED_TRACE(std::string(point));
    const std::string n = std::to_string(i);
    auto s = engine_->snapshots().Create(
        {.collection_id = g_.collection_id, .type = engine::kSnapshotRecovery});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE(engine_->snapshots().Export({.snapshot_id = s->id, .directory = dir_ / n}).ok());
    engine_.reset();  // the helper is the daemon now
    auto r =
        Env::Default()->Run({CRASH_HELPER, dir_ / "state", "convert", s->id, std::string(point)},
                            std::chrono::minutes(2));
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->exit_code, -1) << "killed at " << point << ": " << r->err;
    OpenEngine();
    const auto& report = engine_->recovery();
    EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
    std::string rp_id;
    if (point == engine::fault::kRefpointRecorded) {
      EXPECT_EQ(report.conversions_taken_back.size(), 1u);
      EXPECT_EQ(engine_->catalog().GetSnapshot(s->id)->state, catalog::SnapshotState::kComplete);
      auto again = engine_->snapshots().ConvertToReferencePoint(s->id);
      ASSERT_TRUE(again.ok()) << "a retry: " << again.status().ToString();
      rp_id = again->id;
    } else {
      EXPECT_EQ(report.destroyed, std::vector<std::string>{s->id});
      EXPECT_EQ(engine_->catalog().GetSnapshot(s->id).status().code(), Code::kNotFound);
    }
    for (const auto& rp : *engine_->catalog().ListReferencePoints(g_.collection_id)) {
      if (rp.snapshot_id == s->id) rp_id = rp.id;
    }
    ASSERT_FALSE(rp_id.empty()) << "the snapshot became a reference point";
    EXPECT_EQ(SnapshotsLeft(), 0u);

    Write(0x40 + static_cast<int>(i), (4 + i) << 20, 1 << 20);
    auto m = engine_->snapshots().ExportReferencePoint(rp_id, {.directory = dir_ / (n + "-inc")});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    for (const auto& vm : m->vms) {
      EXPECT_EQ(OwnData(dir_ / (n + "-inc/" + vm.disks.at(0).file)), uint64_t{1} << 20)
          << "exactly the megabyte written since the point";
    }
    for (const auto& id : g_.vm_ids) {
      EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
      ExpectCatalogMatchesDisk(id);
    }
  }
}

TEST_F(ReferencePointExportTest, APointThatCannotServeIsRefusedBeforeAnyCut) {
  auto& snaps = engine_->snapshots();
  // Created, not converted from an exported snapshot: no data to build on.
  auto created = snaps.CreateReferencePoint(g_.collection_id, "tracking");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->name, "tracking");
  EXPECT_EQ(created->members.size(), g_.vm_ids.size());
  for (const auto& m : created->members) EXPECT_EQ(m.images, Vm(m.vm_id).disks);
  EXPECT_EQ(SnapshotsLeft(), 0u) << "its cut was converted at once";

  Status none = snaps.ExportReferencePoint(created->id, {.directory = dir_ / "x"}).status();
  EXPECT_EQ(none.code(), Code::kFailed);
  EXPECT_NE(none.message().find("never exported"), std::string::npos) << none.message();
  EXPECT_EQ(SnapshotsLeft(), 0u);

  auto later = snaps.Create({.collection_id = g_.collection_id, .type = engine::kSnapshotRecovery});
  ASSERT_TRUE(later.ok());
  Status stale = snaps.ExportReferencePoint(created->id, {.directory = dir_ / "x"}).status();
  EXPECT_EQ(stale.code(), Code::kFailed);
  EXPECT_NE(stale.message().find("a snapshot came after it"), std::string::npos) << stale.message();
  EXPECT_EQ(SnapshotsLeft(), 1u) << "refused before any cut";
  EXPECT_EQ(snaps.ExportReferencePoint(NewGuid(), {.directory = dir_ / "x"}).status().code(),
            Code::kNotFound);
  EXPECT_EQ(snaps.ExportReferencePoint(created->id, {.directory = "rel"}).status().code(),
            Code::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ / "x"));

  // A member that is off: a point is made (its tracking kept offline), but
  // its export reads through the running QEMUs: refused, nothing made.
  ASSERT_TRUE(engine_->vms().Stop(g_.vm_ids[1]).ok());
  auto off_point = snaps.CreateReferencePoint(g_.collection_id, "");
  ASSERT_TRUE(off_point.ok()) << off_point.status().ToString();
  Status off = snaps.ExportReferencePoint(off_point->id, {.directory = dir_ / "y"}).status();
  EXPECT_EQ(off.code(), Code::kNotSupported) << off.ToString();
  EXPECT_NE(off.message().find("is off"), std::string::npos) << off.message();
  EXPECT_EQ(SnapshotsLeft(), 1u) << "refused before any cut";
  EXPECT_FALSE(fs::exists(dir_ / "y"));
}

}  // namespace
}  // namespace vmgroup::integration
