// Exporting a group snapshot on real QEMU: every member disk copied out as
// of the cut while the VMs run, described by a manifest whose sizes and
// checksums match the files; bad requests and full or read-only targets
// leave nothing behind. Restoring an export: the group back, byte for
// byte, beside the original or in its place; a damaged export refused.
#include <sys/mount.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "base/ids.h"
#include "engine/export_manifest.h"
#include "engine/fault_points.h"
#include "engine/snapshot_plan.h"
#include "group_fixture.h"
#include "services/jobs.h"
#include "storage/checksum.h"

namespace vmgroup::integration {
namespace {

namespace fs = std::filesystem;
using catalog::Power;

class SnapshotExportTest : public GroupFixture {
 protected:
  void TearDown() override {
    for (const auto& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
    GroupFixture::TearDown();
  }

  // A running group of `n` whose disks hold 0x11 (3 MiB of it) at a
  // recovery snapshot and 0x22 after it, in the active overlays.
  testing::TinyGroup Prepared(int n, std::string* snapshot_id) {
    return SnapshotBetween(
        "exp", n, engine::kSnapshotRecovery, [this](const std::string& d) { Fill(d, 0x11); },
        [this](const std::string& d) { Stamp(d, 0x22); }, snapshot_id);
  }

  void Fill(const std::string& image, int pattern) {
    auto r = Env::Default()->Run(
        {"qemu-io", "-c", "write -P " + std::to_string(pattern) + " 1M 3M", image});
    ASSERT_TRUE(r.ok() && r->exit_code == 0);
  }

  // A tmpfs of `size` at a new directory, or empty when this process may
  // not mount (the test then skips: it needs CAP_SYS_ADMIN, as CI has).
  std::string Mount(const std::string& name, const std::string& options) {
    const std::string at = dir_ / name;
    fs::create_directories(at);
    if (::mount("tmpfs", at.c_str(), "tmpfs", 0, options.c_str()) != 0) return "";
    mounts_.push_back(at);
    return at;
  }

  void ExpectRunningOnTheSameImages(const testing::TinyGroup& g,
                                    const std::map<std::string, std::vector<std::string>>& before) {
    for (const auto& id : g.vm_ids) {
      EXPECT_EQ(Vm(id).power, Power::kRunning);
      EXPECT_EQ(LiveState(id), hypervisor::RunState::kRunning);
      EXPECT_EQ(LiveImages(id), before.at(id));
      ExpectCatalogMatchesDisk(id);
    }
  }

  std::map<std::string, std::vector<std::string>> Images(const testing::TinyGroup& g) {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& id : g.vm_ids) out[id] = LiveImages(id);
    return out;
  }

  // The VMs' run directories under the state directory.
  std::set<std::string> RunDirs() {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_ / "state/vms")) {
      out.insert(e.path().filename());
    }
    return out;
  }

  std::vector<std::string> mounts_;
};

// Fails the `n`th creation of a directory under `under` (a restore makes
// each VM's run directory before it copies the VM's files there).
class FailNthDirEnv : public EnvWrapper {
 public:
  FailNthDirEnv(std::string under, int n)
      : EnvWrapper(Env::Default()), under_(std::move(under)), n_(n) {}
  Status CreateDirs(const std::string& path) override {
    if (path.rfind(under_, 0) == 0 && ++seen_ == n_) return Status::IoError("injected failure");
    return EnvWrapper::CreateDirs(path);
  }

 private:
  std::string under_;
  int n_, seen_ = 0;
};

TEST_F(SnapshotExportTest, EveryMemberDiskIsCopiedAsOfTheSnapshotWhileTheVmsRun) {
  std::string snap_id;
  auto g = Prepared(3, &snap_id);
  const auto snap = *engine_->catalog().GetSnapshot(snap_id);
  const auto before = Images(g);
  const std::string out = dir_ / "backups/monday";  // parents made too

  std::vector<int> progress;
  auto m = engine_->snapshots().Export({.snapshot_id = snap_id,
                                        .directory = out,
                                        .progress = [&](int p) { progress.push_back(p); }});
  ASSERT_TRUE(m.ok()) << m.status().ToString();

  ExpectRunningOnTheSameImages(g, before);
  ASSERT_FALSE(progress.empty());
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
  EXPECT_EQ(progress.back(), 100);

  // The manifest on disk is the one returned, and describes every file.
  auto text = Env::Default()->ReadFile(out + "/" + engine::kManifestFile);
  ASSERT_TRUE(text.ok());
  auto read = engine::ParseManifest(*text);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(engine::ManifestToJson(*read), engine::ManifestToJson(*m));
  EXPECT_EQ(read->snapshot_id, snap_id);
  EXPECT_EQ(read->collection_id, g.collection_id);
  EXPECT_EQ(read->snapshot_type, 2);
  ASSERT_EQ(read->vms.size(), 3u);
  std::set<std::string> files = {engine::kManifestFile};
  for (size_t i = 0; i < read->vms.size(); ++i) {
    const auto& vm = read->vms[i];
    const auto record = Vm(g.vm_ids[i]);
    EXPECT_EQ(vm.id, record.id);
    EXPECT_EQ(vm.member_snapshot_id, snap.members[i].id);
    auto config = engine::ParseConfig(*Env::Default()->ReadFile(out + "/" + vm.config_file));
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    EXPECT_EQ(config->name, record.name);
    EXPECT_EQ(config->config.memory_mib, record.config.memory_mib);
    EXPECT_EQ(config->disks, 2);
    EXPECT_EQ(storage::DigestFile(Env::Default(), out + "/" + vm.config_file)->checksum,
              vm.config_checksum);
    files.insert(vm.config_file);
    ASSERT_EQ(vm.disks.size(), 2u);
    for (const auto& d : vm.disks) {
      const std::string path = out + "/" + d.file;
      files.insert(d.file);
      // The content at the cut: what was written before, not after.
      EXPECT_TRUE(SameContent(path, snap.members[i].disks[d.index].frozen_image));
      EXPECT_TRUE(StampReadable(path, 0x11));
      EXPECT_FALSE(StampReadable(path, 0x22));
      EXPECT_EQ(img_.Info(path)->backing_filename, "") << "an export stands alone";
      EXPECT_EQ(d.virtual_size, uint64_t{16} << 20);
      auto digest = storage::DigestFile(Env::Default(), path);
      EXPECT_EQ(digest->bytes, d.file_size);
      EXPECT_EQ(digest->checksum, d.checksum);
      EXPECT_TRUE(img_.Check(path).ok());
      EXPECT_EQ(d.base_file, "");
    }
  }
  std::set<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    if (e.is_regular_file()) found.insert(fs::relative(e.path(), out).string());
  }
  EXPECT_EQ(found, files) << "nothing but what the manifest lists";

  // The snapshot is untouched: it still applies, and exports again.
  EXPECT_TRUE(engine_->snapshots().Export({.snapshot_id = snap_id, .directory = out + "2"}).ok());
  EXPECT_TRUE(engine_->snapshots().Apply({.snapshot_id = snap_id}).ok());
}

TEST_F(SnapshotExportTest, WithoutStorageOnlyConfigurationsAndTheManifest) {
  std::string snap_id;
  auto g = Prepared(2, &snap_id);
  const std::string out = dir_ / "meta";
  auto m = engine_->snapshots().Export(
      {.snapshot_id = snap_id, .directory = out, .copy_storage = false});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_FALSE(m->storage);
  for (const auto& vm : m->vms) {
    EXPECT_TRUE(fs::exists(out + "/" + vm.config_file));
    for (const auto& d : vm.disks) {
      EXPECT_EQ(d.file, "");
      EXPECT_EQ(d.virtual_size, uint64_t{16} << 20);
    }
    EXPECT_EQ(std::distance(fs::directory_iterator(out + "/" + vm.id), fs::directory_iterator()),
              1);
  }
}

TEST_F(SnapshotExportTest, BadRequestsAreRefusedAndChangeNothing) {
  std::string snap_id;
  auto g = Prepared(2, &snap_id);
  auto& snaps = engine_->snapshots();
  const std::string used = dir_ / "used";
  fs::create_directories(used);
  ASSERT_TRUE(Env::Default()->WriteFile(used + "/keep", "mine").ok());

  EXPECT_EQ(snaps.Export({.snapshot_id = snap_id, .directory = "relative/dir"}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(snaps.Export({.snapshot_id = snap_id, .directory = ""}).status().code(),
            Code::kInvalidArgument);
  Status not_empty = snaps.Export({.snapshot_id = snap_id, .directory = used}).status();
  EXPECT_EQ(not_empty.code(), Code::kAlreadyExists);
  EXPECT_NE(not_empty.message().find("not empty"), std::string::npos) << not_empty.message();
  EXPECT_EQ(*Env::Default()->ReadFile(used + "/keep"), "mine");
  EXPECT_EQ(snaps.Export({.snapshot_id = snap_id, .directory = used + "/keep"}).status().code(),
            Code::kInvalidArgument)
      << "a file is no directory";
  EXPECT_EQ(snaps.Export({.snapshot_id = NewGuid(), .directory = dir_ / "x"}).status().code(),
            Code::kNotFound);
  EXPECT_EQ(snaps.Export({.snapshot_id = snap_id, .directory = dir_ / "x", .base = snap_id})
                .status()
                .code(),
            Code::kInvalidArgument)
      << "a snapshot is not its own base";
  EXPECT_EQ(snaps.Export({.snapshot_id = snap_id, .directory = dir_ / "x", .base = NewGuid()})
                .status()
                .code(),
            Code::kInvalidArgument);
  // Targets a client must not be able to pick: inside the state directory
  // (directly or through a link), a link itself, a name with a newline.
  const std::string real = dir_ / "real";
  fs::create_directories(real);
  fs::create_directory_symlink(real, dir_ / "link");
  fs::create_directory_symlink(engine_->state_dir(), dir_ / "state-link");
  for (const std::string& target : {engine_->state_dir(), engine_->state_dir() + "/vms/x",
                                    dir_ / "state-link/y", dir_ / "link", dir_ / "a\nb"}) {
    Status s = snaps.Export({.snapshot_id = snap_id, .directory = target}).status();
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << target << ": " << s.ToString();
    EXPECT_EQ(snaps.ValidateExport({.snapshot_id = snap_id, .directory = target}).code(),
              Code::kInvalidArgument);
  }
  EXPECT_FALSE(fs::exists(engine_->state_dir() + "/vms/x"));
  EXPECT_FALSE(fs::exists(engine_->state_dir() + "/y"));
  EXPECT_TRUE(fs::is_empty(real));
  EXPECT_EQ(snaps.ValidateExport({.snapshot_id = snap_id, .directory = used}).code(),
            Code::kAlreadyExists);
  EXPECT_TRUE(snaps.ValidateExport({.snapshot_id = snap_id, .directory = dir_ / "x"}).ok());
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

TEST_F(SnapshotExportTest, AFullTargetFailsCleanlyAndTheSnapshotStaysWhole) {
  const std::string small = Mount("small", "size=2m");
  if (small.empty()) GTEST_SKIP() << "cannot mount a tmpfs here (needs CAP_SYS_ADMIN)";
  std::string snap_id;
  auto g = Prepared(2, &snap_id);  // 4 disks of 3 MiB each: far over 2 MiB
  const auto before = Images(g);

  Status s =
      engine_->snapshots().Export({.snapshot_id = snap_id, .directory = small + "/b"}).status();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("No space left"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("partial export was removed"), std::string::npos) << s.message();
  EXPECT_TRUE(fs::is_empty(small)) << "nothing of the export is left";
  ExpectRunningOnTheSameImages(g, before);

  // The snapshot and its members are free again and whole.
  auto again = engine_->snapshots().Export({.snapshot_id = snap_id, .directory = dir_ / "ok"});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(engine_->snapshots().Apply({.snapshot_id = snap_id}).ok());
}

TEST_F(SnapshotExportTest, AReadOnlyTargetFailsCleanly) {
  const std::string ro = Mount("ro", "size=1m");
  if (ro.empty()) GTEST_SKIP() << "cannot mount a tmpfs here (needs CAP_SYS_ADMIN)";
  ASSERT_EQ(::mount("tmpfs", ro.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=1m"), 0);
  std::string snap_id;
  auto g = Prepared(2, &snap_id);
  const auto before = Images(g);

  Status s = engine_->snapshots().Export({.snapshot_id = snap_id, .directory = ro + "/b"}).status();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Read-only file system"), std::string::npos) << s.message();
  EXPECT_TRUE(fs::is_empty(ro));
  ExpectRunningOnTheSameImages(g, before);
}

// vmgroupd killed in the middle of an export (crash_helper runs it as the
// daemon's job and dies at the fault point): recovery removes what the
// export made — and only that — the job says so, and the same export runs
// again into the same directory.
TEST_F(SnapshotExportTest, AnExportCutShortByACrashIsTakenBackAndCanRunAgain) {
  std::string snap_id;
  auto g = Prepared(2, &snap_id);
  const auto before = Images(g);
  const fs::path parent = dir_ / "backups";  // the operator's, with a file of theirs
  fs::create_directories(parent);
  std::ofstream(parent / "keep.txt") << "the operator's";
  const std::string target = parent / "nightly" / "monday";
  engine_.reset();  // the helper needs the VMs' monitors

  auto crashed = Env::Default()->Run({CRASH_HELPER, dir_ / "state", "export", snap_id,
                                      std::string(engine::fault::kExportDiskCopied), target},
                                     std::chrono::minutes(2));
  ASSERT_TRUE(crashed.ok()) << crashed.status().ToString();
  ASSERT_EQ(crashed->exit_code, -1) << "the helper should have been killed: " << crashed->err;
  ASSERT_TRUE(fs::exists(target)) << "the crash left a partial export";
  ASSERT_FALSE(fs::exists(fs::path(target) / engine::kManifestFile));

  OpenEngine();
  const auto& report = engine_->recovery();
  EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
  ASSERT_EQ(report.exports_taken_back.size(), 1u);
  EXPECT_EQ(report.exports_taken_back[0].directory, target);
  EXPECT_FALSE(fs::exists(parent / "nightly")) << "the directories the export made are gone";
  EXPECT_TRUE(fs::exists(parent / "keep.txt")) << "the operator's file stays";
  ExpectRunningOnTheSameImages(g, before);

  // The daemon's next start ends the job by what recovery did.
  services::JobManager jobs(Env::Default(), &engine_->catalog());
  ASSERT_TRUE(jobs.EndInterrupted(report).ok());
  auto listed = jobs.List();
  ASSERT_TRUE(listed.ok() && listed->size() == 1u);
  const catalog::JobRecord& job = (*listed)[0];
  EXPECT_EQ(job.state, catalog::JobState::kKilled);
  EXPECT_EQ(job.error_description,
            "ended by recovery after a daemon restart: the partial export in " + target +
                " was removed; run the export again");

  auto again = engine_->snapshots().Export({.snapshot_id = snap_id, .directory = target});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(fs::exists(fs::path(target) / engine::kManifestFile));
}

// vmgroupd killed in the middle of a restore, before any VM is defined and
// after the first one is: recovery takes back the VMs, the group and the
// copied files, and the same restore then runs.
class RestoreCrashTest : public SnapshotExportTest,
                         public ::testing::WithParamInterface<std::string_view> {};

TEST_P(RestoreCrashTest, ARestoreCutShortByACrashIsTakenBackAndCanRunAgain) {
  std::string snap_id;
  auto g = Prepared(2, &snap_id);
  const std::string out = dir_ / "bk";
  ASSERT_TRUE(engine_->snapshots().Export({.snapshot_id = snap_id, .directory = out}).ok());
  const auto run_dirs = RunDirs();
  engine_.reset();  // the helper needs the VMs' monitors

  auto crashed =
      Env::Default()->Run({CRASH_HELPER, dir_ / "state", "restore", out, std::string(GetParam())},
                          std::chrono::minutes(2));
  ASSERT_TRUE(crashed.ok()) << crashed.status().ToString();
  ASSERT_EQ(crashed->exit_code, -1) << "the helper should have been killed: " << crashed->err;
  ASSERT_NE(RunDirs(), run_dirs) << "the crash left copies behind";

  OpenEngine();
  const auto& report = engine_->recovery();
  EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
  EXPECT_EQ(report.restores_taken_back.size(), 1u);
  EXPECT_NE(report.Summary().find("1 interrupted restores taken back"), std::string::npos)
      << report.Summary();
  EXPECT_EQ(engine_->catalog().ListVms()->size(), 2u) << "only the originals";
  EXPECT_EQ(engine_->catalog().ListCollections()->size(), 1u);
  EXPECT_TRUE(engine_->catalog().ListRestoreIntents()->empty());
  EXPECT_EQ(RunDirs(), run_dirs) << "every copied file and directory is gone";

  auto again = engine_->restorer().Restore({.directory = out, .as_new = true});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->vm_ids.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(AtEachPoint, RestoreCrashTest,
                         ::testing::Values(engine::fault::kRestoreFileCopied,
                                           engine::fault::kRestoreVmDefined),
                         [](const auto& point) {
                           std::string name(point.param);
                           std::replace(name.begin(), name.end(), '.', '_');
                           return name;
                         });

TEST_F(SnapshotExportTest, RestoreAsNewBringsTheGroupBackBesideTheOriginal) {
  std::string snap_id;
  auto g = Prepared(3, &snap_id);
  const auto snap = *engine_->catalog().GetSnapshot(snap_id);
  const std::string out = dir_ / "bk";
  ASSERT_TRUE(engine_->snapshots().Export({.snapshot_id = snap_id, .directory = out}).ok());

  std::vector<int> progress;
  auto r = engine_->restorer().Restore(
      {.directory = out, .as_new = true, .progress = [&](int p) { progress.push_back(p); }});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(r->collection_id, g.collection_id);
  EXPECT_EQ(engine_->catalog().GetCollection(r->collection_id)->name, "exp-restored");
  EXPECT_EQ(*engine_->collections().MemberVms(r->collection_id), r->vm_ids);
  EXPECT_EQ(progress.back(), 100);
  ASSERT_EQ(r->vm_ids.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto restored = Vm(r->vm_ids[i]), original = Vm(g.vm_ids[i]);
    EXPECT_NE(restored.id, original.id);
    EXPECT_EQ(restored.name, original.name + "-restored");
    EXPECT_EQ(restored.config.memory_mib, original.config.memory_mib);
    EXPECT_EQ(restored.power, Power::kOff);
    ASSERT_EQ(restored.disks.size(), 2u);
    for (size_t d = 0; d < 2; ++d) {
      EXPECT_TRUE(SameContent(restored.disks[d], snap.members[i].disks[d].frozen_image));
      EXPECT_TRUE(StampReadable(restored.disks[d], 0x11));
      EXPECT_FALSE(StampReadable(restored.disks[d], 0x22));
    }
    ExpectCatalogMatchesDisk(restored.id);
    EXPECT_EQ(Vm(g.vm_ids[i]).power, Power::kRunning) << "the original runs on";
  }
  // The restored group works like any other: it runs and is snapshotted.
  for (const auto& id : r->vm_ids) ASSERT_TRUE(engine_->vms().Start(id).ok());
  EXPECT_TRUE(engine_->snapshots().Create({.collection_id = r->collection_id}).ok());

  // In place, over the originals: refused, nothing made.
  Status taken = engine_->restorer().Restore({.directory = out}).status();
  EXPECT_EQ(taken.code(), Code::kAlreadyExists);
  EXPECT_NE(taken.message().find("restore as new"), std::string::npos) << taken.message();
  EXPECT_EQ(engine_->catalog().ListCollections()->size(), 2u);
}

TEST_F(SnapshotExportTest, RestoreInPlaceRecreatesLostVmsWithTheirIds) {
  std::string snap_id;
  auto g = Prepared(2, &snap_id);
  const std::string out = dir_ / "bk";
  ASSERT_TRUE(engine_->snapshots().Export({.snapshot_id = snap_id, .directory = out}).ok());
  std::map<std::string, std::string> names;
  for (const auto& id : g.vm_ids) names[id] = Vm(id).name;
  // The group is lost: snapshot, VMs and group deleted.
  ASSERT_TRUE(engine_->snapshots().Destroy({.snapshot_id = snap_id}).ok());
  for (const auto& id : g.vm_ids) {
    ASSERT_TRUE(engine_->vms().Stop(id).ok());
    ASSERT_TRUE(engine_->collections().RemoveMember(id, g.collection_id).ok());
    ASSERT_TRUE(engine_->vms().Undefine(id).ok());
  }
  ASSERT_TRUE(engine_->collections().DestroyCollection(g.collection_id).ok());

  auto r = engine_->restorer().Restore({.directory = out});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->collection_id, g.collection_id);
  EXPECT_EQ(r->vm_ids, g.vm_ids);
  auto manifest = engine::ParseManifest(*Env::Default()->ReadFile(out + "/manifest.json"));
  for (size_t i = 0; i < g.vm_ids.size(); ++i) {
    const auto vm = Vm(g.vm_ids[i]);
    EXPECT_EQ(vm.name, names[vm.id]);
    for (size_t d = 0; d < vm.disks.size(); ++d) {
      EXPECT_TRUE(SameContent(vm.disks[d], out + "/" + manifest->vms[i].disks[d].file));
      EXPECT_TRUE(StampReadable(vm.disks[d], 0x11));
    }
    ExpectCatalogMatchesDisk(vm.id);
  }
}

TEST_F(SnapshotExportTest, ADamagedExportIsRefusedAndNothingIsMade) {
  std::string snap_id;
  auto g = Prepared(2, &snap_id);
  const std::string out = dir_ / "bk";
  auto m = engine_->snapshots().Export({.snapshot_id = snap_id, .directory = out});
  ASSERT_TRUE(m.ok());
  // One byte of the second VM's second disk changes, deep in its data.
  const std::string victim = out + "/" + m->vms[1].disks[1].file;
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    f.put('\x42');
  }
  const auto vms_before = engine_->catalog().ListVms()->size();
  const auto run_dirs = RunDirs();
  Status damaged = engine_->restorer().Restore({.directory = out, .as_new = true}).status();
  EXPECT_EQ(damaged.code(), Code::kFailed);
  EXPECT_NE(damaged.message().find(m->vms[1].disks[1].file), std::string::npos)
      << damaged.message();
  EXPECT_NE(damaged.message().find("damaged"), std::string::npos) << damaged.message();
  EXPECT_EQ(engine_->catalog().ListVms()->size(), vms_before);
  EXPECT_EQ(engine_->catalog().ListCollections()->size(), 1u);
  EXPECT_EQ(RunDirs(), run_dirs);

  // Not an export at all, or one without its disks.
  EXPECT_EQ(engine_->restorer().Restore({.directory = dir_ / "images"}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(engine_->restorer().Restore({.directory = "bk"}).status().code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(
      engine_->snapshots()
          .Export({.snapshot_id = snap_id, .directory = dir_ / "meta", .copy_storage = false})
          .ok());
  EXPECT_EQ(engine_->restorer().Restore({.directory = dir_ / "meta"}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(engine_->catalog().ListVms()->size(), vms_before);
}

TEST_F(SnapshotExportTest, ARestoreThatFailsHalfWayTakesBackWhatItMade) {
  std::string snap_id;
  auto g = Prepared(2, &snap_id);
  const std::string out = dir_ / "bk";
  ASSERT_TRUE(engine_->snapshots().Export({.snapshot_id = snap_id, .directory = out}).ok());
  const auto run_dirs = RunDirs();
  ASSERT_TRUE(engine_->vms().StopAll().ok());
  // The first VM is copied and defined; the second VM's directory fails.
  const std::string vms_dir = engine_->state_dir() + "/vms/";
  OpenEngine({}, std::make_unique<FailNthDirEnv>(vms_dir, 2));
  Status s = engine_->restorer().Restore({.directory = out, .as_new = true}).status();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("injected failure"), std::string::npos) << s.message();
  EXPECT_EQ(engine_->catalog().ListVms()->size(), 2u) << "only the originals";
  EXPECT_EQ(engine_->catalog().ListCollections()->size(), 1u);
  EXPECT_EQ(RunDirs(), run_dirs) << "the first VM's directory went with it";
}

}  // namespace
}  // namespace vmgroup::integration
