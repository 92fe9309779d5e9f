// The QEMU driver's resume guard on two tiny VMs, paused: armed and never
// disarmed it resumes both when its time is up, and at once when its caller
// is killed; disarmed it resumes nothing; a QEMU without its guard monitor
// is refused by name. Every wait polls the VMs' state with a generous
// deadline.
#include <thread>

#include "group_fixture.h"
#include "hypervisor/qemu/qemu_driver.h"

namespace vmgroup::integration {
namespace {

using namespace std::chrono_literals;
using hypervisor::RunState;
using hypervisor::qemu::QemuDriver;

Deadline Soon() { return Clock::now() + 30s; }

class ResumeGuardTest : public GroupFixture {
 protected:
  void SetUp() override {
    GroupFixture::SetUp();
    g_ = MakeGroup("r", 2);
    ASSERT_EQ(g_.vm_ids.size(), 2u);
    for (const auto& id : g_.vm_ids) {
      vms_.push_back(engine_->vms().Live(id));
      ASSERT_TRUE(vms_.back());
    }
    auto driver = QemuDriver::Create(Env::Default(), testing::TestQemu());
    ASSERT_TRUE(driver.ok()) << driver.status().ToString();
    driver_ = std::move(driver).value();
  }

  void PauseBoth() {
    for (auto& vm : vms_) ASSERT_TRUE(vm->Pause(Soon()).ok());
  }
  bool Both(RunState want) {
    for (auto& vm : vms_) {
      auto s = vm->State(Soon());
      if (!s.ok() || *s != want) return false;
    }
    return true;
  }
  // True once both run, polled until `until`.
  bool BothRunBy(Clock::time_point until) {
    while (!Both(RunState::kRunning) && Clock::now() < until) std::this_thread::sleep_for(10ms);
    return Both(RunState::kRunning);
  }
  std::string GuardMonitor(size_t i) {
    return QemuDriver::GuardMonitorPath(engine_->vms().SpecOf(Vm(g_.vm_ids[i])));
  }

  testing::TinyGroup g_;
  std::vector<std::shared_ptr<hypervisor::Vm>> vms_;
  std::unique_ptr<QemuDriver> driver_;
};

TEST_F(ResumeGuardTest, NeverDisarmedItResumesThePausedVmsWhenItsTimeIsUp) {
  PauseBoth();
  auto guard = driver_->GuardResume(vms_, 1s);
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  EXPECT_TRUE(BothRunBy(Clock::now() + 30s)) << "the guard resumed them";
  (*guard)->Disarm();  // already done: harmless
}

TEST_F(ResumeGuardTest, DisarmedItResumesNothingAndFreesTheMonitorsForTheNext) {
  auto guard = driver_->GuardResume(vms_, 1s);
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  PauseBoth();
  (*guard)->Disarm();
  std::this_thread::sleep_for(2s);  // past its time
  EXPECT_TRUE(Both(RunState::kPaused)) << "a disarmed guard resumes nothing";

  // Its connections went with it (a monitor serves one client): the next
  // guard connects, and told to resume now, has both run when ResumeNow
  // returns, not at the end of its minute.
  guard = driver_->GuardResume(vms_, 1min);
  ASSERT_TRUE(guard.ok()) << guard.status().ToString();
  (*guard)->ResumeNow();
  EXPECT_TRUE(Both(RunState::kRunning));
}

TEST_F(ResumeGuardTest, WhenItsCallerIsKilledItResumesTheVmsAtOnce) {
  PauseBoth();
  // The helper arms a one-minute guard over both, then SIGKILLs itself.
  const auto killed_at = Clock::now();
  auto helper =
      Env::Default()->Run({CRASH_HELPER, "resume-guard", GuardMonitor(0), GuardMonitor(1)});
  ASSERT_TRUE(helper.ok()) << helper.status().ToString();
  ASSERT_EQ(helper->exit_code, -1) << "armed, then was killed: " << helper->err;
  EXPECT_TRUE(BothRunBy(killed_at + 30s)) << "resumed on its caller's death, not after its minute";
}

// A QEMU started by an older vmgroupd has no guard monitor: refused by name,
// so that the caller pauses it unguarded or not at all.
TEST_F(ResumeGuardTest, AQemuWithoutAGuardMonitorIsUnavailableByName) {
  ASSERT_TRUE(Env::Default()->RemoveFile(GuardMonitor(1)).ok());
  auto guard = driver_->GuardResume(vms_, 1min);
  ASSERT_EQ(guard.status().code(), Code::kUnavailable) << guard.status().ToString();
  EXPECT_NE(guard.status().message().find("no resume guard monitor"), std::string::npos)
      << guard.status().message();
  EXPECT_NE(guard.status().message().find(Vm(g_.vm_ids[1]).name), std::string::npos)
      << guard.status().message();
}

}  // namespace
}  // namespace vmgroup::integration
