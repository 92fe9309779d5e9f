// FakeVm's serving (ServeImages, StopServing) on a FakeDriver's VM: the
// engine's backup tests rely on it answering as the Vm contract says and on
// its socket file showing whether a serving is left.
#include "hypervisor/fake/fake_vm.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "hypervisor/fake/fake_driver.h"
#include "storage/qemu_img.h"
#include "testing/temp_dir.h"

namespace vmgroup::hypervisor::fake {
namespace {

Deadline Soon() { return Clock::now() + std::chrono::seconds(10); }

class FakeVmServingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.uuid = "5c2f3c8e-2222-4a4a-8b8b-000000000001";
    spec_.name = "f1";
    spec_.run_dir = dir_.path();
    for (int i = 0; i < 2; ++i) {
      spec_.disks.push_back(dir_ / ("d" + std::to_string(i) + ".qcow2"));
      ASSERT_TRUE(img_.Create(spec_.disks.back(), (i + 1) << 20).ok());
    }
    auto vm = driver_.Start(spec_, {});
    ASSERT_TRUE(vm.ok()) << vm.status().ToString();
    vm_ = std::move(vm).value();
    fake_ = driver_.Running(spec_.name);
    ASSERT_TRUE(fake_);
  }
  // Freezes disk 0's image below a new overlay, tracked as `tracking` since
  // the cut and kept on the frozen image.
  void FreezeDisk0(const std::string& tracking) {
    const std::string overlay = dir_ / "d0-s1.qcow2";
    ASSERT_TRUE(img_.CreateOverlay(spec_.disks[0], overlay).ok());
    const std::vector<Overlay> overlays = {{0, overlay, "s1", spec_.disks[0]}};
    ASSERT_TRUE(vm_->OpenOverlays(overlays, Soon()).ok());
    bool paused = false;
    ASSERT_TRUE(vm_->SendSwitch(overlays, tracking, false, Soon()).ok());
    ASSERT_TRUE(vm_->AwaitSwitch(Soon(), &paused).ok());
    ASSERT_TRUE(vm_->KeepTracking(0, spec_.disks[0], tracking, Soon()).ok());
  }

  testing::TempDir dir_;
  storage::QemuImg img_{Env::Default()};
  FakeDriver driver_{Env::Default()};
  VmSpec spec_;
  std::unique_ptr<Vm> vm_;
  std::shared_ptr<FakeVm> fake_;
  const std::string socket_ = dir_ / "b.sock";
};

TEST_F(FakeVmServingTest, ServesFrozenImagesUntilStoppedAndOneServingAtATime) {
  FreezeDisk0("vmgroup-rp");
  auto served = vm_->ServeImages(
      {socket_}, {{0, spec_.disks[0], "d0", "vmgroup-rp"}, {1, spec_.disks[1], "d1", ""}}, Soon());
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  ASSERT_EQ(served->size(), 2u);
  EXPECT_EQ((*served)[0].size, uint64_t{1} << 20);
  EXPECT_EQ((*served)[0].context, "qemu:dirty-bitmap:vmgroup-rp");
  EXPECT_EQ((*served)[1].size, uint64_t{2} << 20);
  EXPECT_EQ((*served)[1].context, "");
  EXPECT_TRUE(Env::Default()->FileExists(socket_));
  EXPECT_EQ(fake_->serving(), socket_);

  const std::string other = dir_ / "c.sock";
  EXPECT_EQ(vm_->ServeImages({other}, {{1, spec_.disks[1], "d1", ""}}, Soon()).status().code(),
            Code::kAlreadyExists);
  EXPECT_FALSE(Env::Default()->FileExists(other));

  ASSERT_TRUE(vm_->StopServing(socket_, Soon()).ok());
  EXPECT_FALSE(Env::Default()->FileExists(socket_));
  EXPECT_EQ(fake_->serving(), "");
  EXPECT_TRUE(vm_->StopServing(socket_, Soon()).ok()) << "nothing served";
  auto calls = fake_->calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "serve"), 2);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "stop-serving"), 2);
}

TEST_F(FakeVmServingTest, RefusesAMissingTrackingOrImageOrAFaultAndLeavesNoSocket) {
  FreezeDisk0("vmgroup-rp");
  EXPECT_EQ(
      vm_->ServeImages({socket_}, {{0, spec_.disks[0], "d0", "vmgroup-x"}}, Soon()).status().code(),
      Code::kNotFound);
  EXPECT_EQ(vm_->ServeImages({socket_}, {{1, spec_.disks[1], "d1", "vmgroup-rp"}}, Soon())
                .status()
                .code(),
            Code::kNotFound)
      << "the tracking is on disk 0's image only";
  EXPECT_EQ(vm_->ServeImages({socket_}, {{1, spec_.disks[0], "d1", ""}}, Soon()).status().code(),
            Code::kNotFound)
      << "not in disk 1's chain";
  fake_->FailOn("serve", Status::Unavailable("injected"));
  EXPECT_EQ(vm_->ServeImages({socket_}, {{1, spec_.disks[1], "d1", ""}}, Soon()).status().code(),
            Code::kUnavailable);
  EXPECT_FALSE(Env::Default()->FileExists(socket_));
  EXPECT_EQ(fake_->serving(), "");
  // Something at the path is never replaced.
  ASSERT_TRUE(Env::Default()->WriteFile(socket_, "not ours").ok());
  EXPECT_EQ(vm_->ServeImages({socket_}, {{1, spec_.disks[1], "d1", ""}}, Soon()).status().code(),
            Code::kAlreadyExists);
  EXPECT_EQ(*Env::Default()->ReadFile(socket_), "not ours");
}

}  // namespace
}  // namespace vmgroup::hypervisor::fake
