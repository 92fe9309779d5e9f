// One host's part of a cut across hosts, on real QEMU (the rules themselves
// are unit-tested in engine/leased_pause_test): two tiny VMs paused under a
// lease run again by themselves when nobody says "cut" in time, and a late
// cut changes none of their disks; in time, the cut makes the overlays their
// active images.
#include "engine/leased_pause.h"

#include <thread>

#include "group_fixture.h"
#include "hypervisor/qemu/qemu_driver.h"

namespace vmgroup::integration {
namespace {

using namespace std::chrono_literals;
using hypervisor::RunState;

class LeasedPauseQemuTest : public GroupFixture {
 protected:
  // Two running VMs, each with an overlay on each disk opened in its QEMU,
  // as a host's prepare phase leaves them.
  void SetUp() override {
    GroupFixture::SetUp();
    g_ = MakeGroup("l", 2);
    ASSERT_EQ(g_.vm_ids.size(), 2u);
    for (const auto& id : g_.vm_ids) {
      catalog::VmRecord vm = Vm(id);
      std::vector<hypervisor::Overlay> overlays;
      for (size_t d = 0; d < vm.disks.size(); ++d) {
        const std::string path =
            engine_->vms().RunDir(id) + "/lease-d" + std::to_string(d) + ".qcow2";
        ASSERT_TRUE(img_.CreateOverlay(vm.disks[d], path).ok());
        overlays.push_back({static_cast<int>(d), path, "lease", vm.disks[d]});
      }
      auto live = engine_->vms().Live(id);
      ASSERT_TRUE(live);
      Status opened = live->OpenOverlays(overlays, Clock::now() + 30s);
      ASSERT_TRUE(opened.ok()) << opened.ToString();
      members_.push_back({vm.name, live, true, overlays});
    }
    auto driver = hypervisor::qemu::QemuDriver::Create(Env::Default(), testing::TestQemu());
    ASSERT_TRUE(driver.ok()) << driver.status().ToString();
    driver_ = std::move(driver).value();
  }

  // The QEMU driver's resume guard, as vmgroupd arms it.
  engine::ArmResumeGuard Arm() {
    return [this](const std::vector<std::shared_ptr<hypervisor::Vm>>& vms, Duration within) {
      return driver_->GuardResume(vms, within);
    };
  }

  std::vector<std::string> Active(size_t i) {
    auto images = members_[i].vm->ActiveImages(Clock::now() + 10s);
    EXPECT_TRUE(images.ok()) << images.status().ToString();
    return images.ok() ? *images : std::vector<std::string>{};
  }
  std::vector<std::string> OverlayPaths(size_t i) {
    std::vector<std::string> paths;
    for (const auto& o : members_[i].overlays) paths.push_back(o.path);
    return paths;
  }
  RunState State(size_t i) {
    auto s = members_[i].vm->State(Clock::now() + 10s);
    return s.ok() ? *s : RunState::kOther;
  }

  testing::TinyGroup g_;
  std::vector<engine::LeasedMember> members_;
  std::unique_ptr<hypervisor::qemu::QemuDriver> driver_;
};

TEST_F(LeasedPauseQemuTest, WithoutACutTheMembersRunAgainWhenTheLeaseEndsAndALateCutIsRefused) {
  const std::vector<std::string> before[] = {Active(0), Active(1)};
  auto lease = engine::LeasedPause::Pause(Env::Default(), members_, "", 300ms, Arm());
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  // Nobody calls: the host resumes them by itself, well within this margin.
  const auto until = Clock::now() + 300ms + 10s;
  while (Clock::now() < until && (State(0) != RunState::kRunning || State(1) != RunState::kRunning))
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(State(0), RunState::kRunning);
  EXPECT_EQ(State(1), RunState::kRunning);

  Status cut = (*lease)->Cut();
  EXPECT_EQ(cut.code(), Code::kTimeout) << cut.ToString();
  EXPECT_NE(cut.message().find("members were resumed"), std::string::npos) << cut.message();
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(Active(i), before[i]);
    EXPECT_EQ(State(i), RunState::kRunning);
  }
  EXPECT_EQ((*lease)->report().state, engine::LeaseState::kRanOut);
}

TEST_F(LeasedPauseQemuTest, PauseCutResumeMakesTheOverlaysTheActiveImages) {
  auto lease = engine::LeasedPause::Pause(Env::Default(), members_, "", 60s, Arm());
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  Status cut = (*lease)->Cut();
  ASSERT_TRUE(cut.ok()) << cut.ToString();
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(State(i), RunState::kPaused);  // until resume
    EXPECT_EQ(Active(i), OverlayPaths(i));
  }
  auto report = (*lease)->Resume();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->state, engine::LeaseState::kResumed);
  EXPECT_TRUE(report->cut_kept);
  EXPECT_EQ(report->unguarded, "") << "every QEMU of ours has its guard monitor";
  // Disarmed: its connections are gone, and the next guard gets the monitors.
  std::vector<std::shared_ptr<hypervisor::Vm>> vms = {members_[0].vm, members_[1].vm};
  EXPECT_TRUE(driver_->GuardResume(vms, 1min).ok());
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(State(i), RunState::kRunning);
    EXPECT_EQ(Active(i), OverlayPaths(i));
    EXPECT_GT(report->members[i].pause_us, 0);
    EXPECT_TRUE(members_[i].vm->FinishSwitch(Clock::now() + 30s).ok());
  }
}

}  // namespace
}  // namespace vmgroup::integration
