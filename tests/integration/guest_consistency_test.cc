// Crash consistency with real guests. Each guest (Debian's cloud kernel and
// a busybox initramfs, tests/guest_kit) stamps record n into sector n of its
// disk with O_DIRECT + fsync, for n = 1, 2, ... A crash-consistent snapshot
// must freeze, on every member, exactly the records 1..k that were written
// before its cut: a gap-free prefix, nothing after it.
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "engine/fault_points.h"
#include "guest_fixture.h"

namespace vmgroup::integration {
namespace {

constexpr int kGuests = 4;

class GuestConsistencyTest : public GuestFixture {
 protected:
  // Two snapshots of kGuests writing guests: every frozen image holds a
  // gap-free prefix of its guest's writes, with all it acknowledged before
  // the cut and none after it.
  void ExpectGapFreePrefixes();
};

// The same under vmgroupd's default accelerator (--accel auto): where
// /dev/kvm opens but cannot run guests (this project's CI machines: nested
// KVM without the CPU's features) its probe falls back to TCG; where KVM
// works, the guests run on it.
class GuestConsistencyDefaultAccelTest : public GuestConsistencyTest {
 protected:
  void SetUp() override {
    qemu_.accel = hypervisor::qemu::Accel::kAuto;
    GuestConsistencyTest::SetUp();
  }
};

TEST_F(GuestConsistencyTest, EveryFrozenImageHoldsAGapFreePrefixOfItsWrites) {
  ExpectGapFreePrefixes();
}

TEST_F(GuestConsistencyDefaultAccelTest, EveryFrozenImageHoldsAGapFreePrefixOfItsWrites) {
  ExpectGapFreePrefixes();
}

void GuestConsistencyTest::ExpectGapFreePrefixes() {
  auto g = testing::MakeTinyGroup(*engine_, dir_ / "images", "w", kGuests, Guest("writer=raw"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_NO_FATAL_FAILURE(WaitForWrites(g->vm_ids, std::vector<int64_t>(kGuests, 0), 100));

  std::vector<int64_t> previous(kGuests, 0);
  std::vector<std::string> overlays;
  for (int round = 0; round < 2; ++round) {
    auto before = AcknowledgedAll(g->vm_ids);
    auto snap = engine_->snapshots().Create({.collection_id = g->collection_id});
    ASSERT_TRUE(snap.ok()) << snap.status().ToString();
    auto after = AcknowledgedAll(g->vm_ids);
    // The guests go on writing, into the overlays.
    ASSERT_NO_FATAL_FAILURE(WaitForWrites(g->vm_ids, after, 100));
    for (int i = 0; i < kGuests; ++i) {
      const auto& m = snap->members[i];
      auto k = GapFreePrefix(m.disks[0].frozen_image, dir_ / "scratch.raw");
      ASSERT_TRUE(k.ok()) << k.status().ToString();
      // Everything acknowledged before the cut is in; nothing after it.
      EXPECT_GE(*k, before[i]) << "member " << i << " lost acknowledged writes";
      EXPECT_GT(*k, previous[i]) << "member " << i << " froze no new writes";
      previous[i] = *k;
      auto live = GapFreePrefix(m.disks[0].overlay, dir_ / "scratch.raw");
      ASSERT_TRUE(live.ok()) << live.status().ToString();
      EXPECT_GT(*live, *k) << "the overlay continues the same sequence";
      overlays.push_back(m.disks[0].overlay);
    }
    std::printf("round %d: pause window %.2f ms, frozen records per guest:", round,
                static_cast<double>(snap->pause_window_us) / 1000.0);
    for (auto k : previous) std::printf(" %lld", static_cast<long long>(k));
    std::printf("\n");
  }
  // Every overlay is a sound qcow2 once its QEMU closed it (read while the
  // guest writes, its metadata may still sit in QEMU's cache).
  for (const auto& id : g->vm_ids) ASSERT_TRUE(engine_->vms().Stop(id).ok());
  for (const auto& overlay : overlays) {
    Status checked = img_.Check(overlay);
    EXPECT_TRUE(checked.ok()) << checked.ToString();
  }
}

TEST_F(GuestConsistencyTest, ACrashMidCutLosesNoAcknowledgedWrite) {
  const std::string state = dir_ / "state";
  auto opts = Guest("writer=raw");
  engine_.reset();
  auto setup = Env::Default()->Run({CRASH_HELPER, state, dir_ / "images", "setup", "3",
                                    opts.config.kernel, opts.config.initrd, opts.config.append});
  ASSERT_TRUE(setup.ok() && setup->exit_code == 0) << (setup.ok() ? setup->err : "");
  const std::string collection = setup->out.substr(0, setup->out.find('\n'));
  OpenEngine();
  std::vector<std::string> ids;
  for (const auto& vm : *engine_->catalog().ListVms()) ids.push_back(vm.id);
  ASSERT_NO_FATAL_FAILURE(WaitForWrites(ids, std::vector<int64_t>(ids.size(), 0), 100));
  engine_.reset();

  auto crashed = Env::Default()->Run(
      {CRASH_HELPER, state, "snapshot", collection, std::string(engine::fault::kMemberSwitched)});
  ASSERT_TRUE(crashed.ok());
  ASSERT_EQ(crashed->exit_code, -1) << crashed->err;
  OpenEngine();  // recovery: the switched members are merged back while the guests write
  auto acked = AcknowledgedAll(ids);
  ASSERT_NO_FATAL_FAILURE(WaitForWrites(ids, acked, 50));
  for (const auto& id : ids) {
    ASSERT_TRUE(engine_->vms().Stop(id).ok());
    ExpectCatalogMatchesDisk(id);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    auto k = GapFreePrefix(Vm(ids[i]).disks[0], dir_ / "scratch.raw");
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    EXPECT_GE(*k, acked[i] + 50) << "guest " << i << " lost acknowledged writes";
  }
}

}  // namespace
}  // namespace vmgroup::integration
