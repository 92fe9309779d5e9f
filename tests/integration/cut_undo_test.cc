// Undoing a cut on real QEMU merges the overlay the cut added into the image
// right below it and nowhere else. The VM's disk is an overlay of a shared
// template, and it has an earlier snapshot, so its chain is
//   template <- frozen (snapshot 1) <- active
// with its own pattern in each layer. A second snapshot then fails after its
// switch took effect and a write landed in its new overlay, on each path that
// undoes a cut: a later step of the cut (the memory state cannot be
// written), a missed pause deadline, and recovery after a crash mid-cut.
// After each, the VM runs on the image it ran on before, which holds every
// write, and the frozen image and the template are byte for byte as before.
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <thread>

#include "engine/fault_points.h"
#include "engine/snapshot_plan.h"
#include "group_fixture.h"
#include "storage/checksum.h"
#include "testing/guest_io.h"

namespace vmgroup::integration {
namespace {

constexpr uint64_t kChunk = 256 << 10;
// Where each layer's pattern lies: the template's, the frozen image's, the
// active image's before the failed snapshot, and the write made after its
// switch (into the overlay the undo takes away).
constexpr int kTemplate = 0x11, kFrozen = 0x22, kActive = 0x33, kAfterCut = 0x44;
uint64_t OffsetOf(int pattern) { return static_cast<uint64_t>(pattern >> 4) << 20; }

class CutUndoTest : public GroupFixture {
 protected:
  // The VM on its template, snapshotted once, each layer written.
  void SetUp() override {
    GroupFixture::SetUp();
    const std::string images = dir_ / "images";
    ASSERT_TRUE(testing::MakeQemuWritableDir(images).ok());
    template_ = images + "/template.qcow2";
    frozen_ = images + "/u0-d0.qcow2";
    ASSERT_TRUE(img_.Create(template_, 16 << 20).ok());
    WriteOffline(template_, kTemplate);
    // Writable by QEMU, as under a daemon that runs as the template's
    // owner: only where the undo aims keeps it unchanged.
    if (::geteuid() == 0) {
      const passwd* qemu = ::getpwnam(testing::kQemuUser);
      ASSERT_NE(qemu, nullptr);
      ASSERT_EQ(::chown(template_.c_str(), qemu->pw_uid, qemu->pw_gid), 0);
    }
    ASSERT_TRUE(img_.CreateOverlay(template_, frozen_).ok());
    WriteOffline(frozen_, kFrozen);
    monitor_ = testing::GuestMonitorPath(images, "u0");
    auto vm = engine_->vms().Define(
        {.name = "u0",
         .config = {.memory_mib = 64, .extra_args = testing::GuestMonitorArgs(monitor_)},
         .disks = {frozen_}});
    ASSERT_TRUE(vm.ok()) << vm.status().ToString();
    vm_ = *vm;
    auto group =
        engine_->collections().DefineCollection("u", "", catalog::CollectionType::kVirtualSystems);
    ASSERT_TRUE(group.ok()) << group.status().ToString();
    group_ = *group;
    ASSERT_TRUE(engine_->collections().AddMember(vm_, group_).ok());
    ASSERT_TRUE(engine_->vms().Start(vm_).ok());
    auto first = engine_->snapshots().Create({.collection_id = group_});
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    active_ = Vm(vm_).disks[0];
    ASSERT_NE(active_, frozen_);
    ASSERT_TRUE(WriteAsGuest(kActive).ok());
    template_digest_ = Digest(template_);
    frozen_digest_ = Digest(frozen_);
  }

  void WriteOffline(const std::string& image, int pattern) {
    auto r =
        Env::Default()->Run({"qemu-io", "-c",
                             "write -P " + std::to_string(pattern) + " " +
                                 std::to_string(OffsetOf(pattern)) + " " + std::to_string(kChunk),
                             image});
    ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
  }
  Status WriteAsGuest(int pattern) {
    return testing::WriteAsGuest(monitor_, 0, pattern, OffsetOf(pattern), kChunk);
  }
  // True if `pattern` reads back at its place through the chain of `image`.
  bool Reads(const std::string& image, int pattern) {
    auto r =
        Env::Default()->Run({"qemu-io", "-r", "-U", "-c",
                             "read -P " + std::to_string(pattern) + " " +
                                 std::to_string(OffsetOf(pattern)) + " " + std::to_string(kChunk),
                             image});
    return r.ok() && r->exit_code == 0 &&
           r->out.find("Pattern verification failed") == std::string::npos;
  }
  std::string Digest(const std::string& file) {
    auto d = storage::DigestFile(Env::Default(), file);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? d->checksum : "";
  }

  // What every undo must leave: the VM on the image it ran on before the
  // failed snapshot, holding every write; the snapshot gone; the frozen
  // image and the template unchanged.
  void ExpectUndoneInPlace() {
    EXPECT_EQ(LiveImages(vm_), std::vector<std::string>{active_})
        << "the undo must make the image active before the cut active again";
    EXPECT_EQ(Vm(vm_).disks, std::vector<std::string>{active_});
    EXPECT_EQ(engine_->catalog().ListSnapshots(group_)->size(), 1u) << "only the first snapshot";
    EXPECT_EQ(LiveState(vm_), hypervisor::RunState::kRunning);
    ASSERT_TRUE(engine_->vms().Stop(vm_).ok());  // the images at rest
    EXPECT_EQ(Digest(template_), template_digest_) << "the shared template changed";
    EXPECT_EQ(Digest(frozen_), frozen_digest_) << "the first snapshot's frozen image changed";
    for (int pattern : {kTemplate, kFrozen, kActive, kAfterCut}) {
      EXPECT_TRUE(Reads(active_, pattern)) << "pattern " << pattern;
    }
    EXPECT_GT(OwnData(active_), 0u);
    EXPECT_TRUE(img_.Check(active_).ok());
    ExpectCatalogMatchesDisk(vm_);
  }

  std::string template_, frozen_, active_, monitor_, vm_, group_;
  std::string template_digest_, frozen_digest_;
};

TEST_F(CutUndoTest, AMemoryStateThatCannotBeWrittenUndoesTheCutIntoTheImageBelow) {
  // The cut happened and the VM runs on its new overlay; the guest writes,
  // then the memory state turns out lost (as on a full disk: the file is
  // removed, AwaitStateSaved reports it).
  OpenEngine({}, std::make_unique<OnPointEnv>(engine::fault::kCutDone, [&](auto) {
               VMG_RETURN_IF_ERROR(WriteAsGuest(kAfterCut));
               const std::string run = engine_->vms().RunDir(vm_);
               for (const auto& name : *Env::Default()->ListDir(run)) {
                 if (name.starts_with("memory-")) {
                   VMG_RETURN_IF_ERROR(Env::Default()->RemoveFile(run + "/" + name));
                 }
               }
               return Status::Ok();
             }));
  auto second =
      engine_->snapshots().Create({.collection_id = group_, .type = engine::kSnapshotStandard});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kIoError) << second.status().ToString();
  ExpectUndoneInPlace();
}

TEST_F(CutUndoTest, AMissedPauseDeadlineUndoesTheCutIntoTheImageBelow) {
  constexpr auto kDeadline = std::chrono::seconds(1);
  // Switched and paused; the guest's disk takes a write, and the pause
  // outlasts its deadline.
  OpenEngine({.pause_deadline = kDeadline},
             std::make_unique<OnPointEnv>(engine::fault::kMemberSwitched, [&](auto) {
               VMG_RETURN_IF_ERROR(WriteAsGuest(kAfterCut));
               std::this_thread::sleep_for(kDeadline + std::chrono::milliseconds(50));
               return Status::Ok();
             }));
  auto second = engine_->snapshots().Create({.collection_id = group_});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kTimeout) << second.status().ToString();
  ExpectUndoneInPlace();
}

TEST_F(CutUndoTest, RecoveryAfterACrashMidCutUndoesTheCutIntoTheImageBelow) {
  engine_.reset();  // the helper needs the VM's monitor
  // Killed with the VM paused and switched, its memory state never started:
  // the cut cannot be kept.
  auto crashed = Env::Default()->Run(
      {CRASH_HELPER, dir_ / "state", "snapshot", group_,
       std::string(engine::fault::kMemberSwitched), std::to_string(engine::kSnapshotStandard)},
      std::chrono::minutes(2));
  ASSERT_TRUE(crashed.ok()) << crashed.status().ToString();
  ASSERT_EQ(crashed->exit_code, -1) << "the helper should have been killed: " << crashed->err;
  ASSERT_TRUE(WriteAsGuest(kAfterCut).ok());  // into the new overlay, paused or not
  OpenEngine();
  const auto& report = engine_->recovery();
  EXPECT_TRUE(report.problems.ok()) << report.problems.ToString();
  EXPECT_EQ(report.rolled_back.size(), 1u);
  ExpectUndoneInPlace();
}

}  // namespace
}  // namespace vmgroup::integration
