// VmRegistry::Stop over the fake driver: a turn-off pulls the plug, a
// shutdown asks the guest and waits, and a guest that ignores the button
// leaves the VM as it was (Timeout) unless the stop is forced. What the
// catalog records after each, and that nothing is left half-stopped.
#include <algorithm>

#include "engine/fake_group_test.h"

namespace vmgroup::engine {
namespace {

using catalog::Power;
using hypervisor::RunState;

bool Called(hypervisor::fake::FakeVm& vm, const std::string& op) {
  auto calls = vm.calls();
  return std::find(calls.begin(), calls.end(), op) != calls.end();
}

class VmStop : public FakeGroupTest {
 protected:
  // VM `id` is off as after any stop: recorded off, no live handle, its
  // fake QEMU gone, and nothing else out of place.
  void ExpectOff(const std::string& id) {
    EXPECT_EQ(Vm(id).power, Power::kOff);
    EXPECT_EQ(Vm(id).pid, 0);
    EXPECT_EQ(engine_->vms().Live(id), nullptr);
    EXPECT_EQ(Fake(id), nullptr);
    ExpectConsistent();
  }
};

TEST_F(VmStop, ATurnOffPullsThePlugWithoutAskingTheGuest) {
  auto g = MakeGroup(1);
  auto fake = Fake(g.vm_ids[0]);
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[0]).ok());
  EXPECT_TRUE(Called(*fake, "poweroff"));
  EXPECT_FALSE(Called(*fake, "shutdown"));
  ExpectOff(g.vm_ids[0]);
}

TEST_F(VmStop, AGuestThatHonoursTheButtonShutsDownAndTheVmIsRecordedOff) {
  auto g = MakeGroup(1);
  auto fake = Fake(g.vm_ids[0]);
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[0], {.shutdown = true}).ok());
  EXPECT_TRUE(Called(*fake, "shutdown"));
  EXPECT_FALSE(Called(*fake, "poweroff"));
  ExpectOff(g.vm_ids[0]);
  // Off as after any stop: it starts again.
  ASSERT_TRUE(engine_->vms().Start(g.vm_ids[0]).ok());
  EXPECT_EQ(Vm(g.vm_ids[0]).power, Power::kRunning);
}

TEST_F(VmStop, AGuestThatIgnoresTheButtonTimesOutAndTheVmRunsOnAsItWas) {
  auto g = MakeGroup(1);
  auto fake = Fake(g.vm_ids[0]);
  fake->IgnoreShutdown();
  const catalog::VmRecord before = Vm(g.vm_ids[0]);
  Status s =
      engine_->vms().Stop(g.vm_ids[0], {.shutdown = true, .timeout = std::chrono::seconds(7)});
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  EXPECT_NE(s.message().find("did not shut down within 7 s"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("vmgroup vm turn-off"), std::string::npos) << s.ToString();
  EXPECT_FALSE(Called(*fake, "poweroff"));
  // Nothing changed: recorded running with the same QEMU, which runs.
  EXPECT_EQ(Vm(g.vm_ids[0]).power, Power::kRunning);
  EXPECT_EQ(Vm(g.vm_ids[0]).pid, before.pid);
  EXPECT_NE(engine_->vms().Live(g.vm_ids[0]), nullptr);
  ASSERT_NE(Fake(g.vm_ids[0]), nullptr);
  EXPECT_EQ(fake->state(), RunState::kRunning);
  ExpectConsistent();
  // The turn-off the message names then stops it.
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[0]).ok());
  ExpectOff(g.vm_ids[0]);
}

TEST_F(VmStop, AForcedShutdownTurnsOffAGuestThatIgnoresTheButton) {
  auto g = MakeGroup(1);
  auto fake = Fake(g.vm_ids[0]);
  fake->IgnoreShutdown();
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[0], {.shutdown = true, .force = true}).ok());
  EXPECT_EQ(fake->calls().back(), "poweroff");
  EXPECT_TRUE(Called(*fake, "shutdown"));
  ExpectOff(g.vm_ids[0]);
}

TEST_F(VmStop, APausedGuestCannotShutDownAndStaysPausedUnlessForced) {
  auto g = MakeGroup(1);
  auto fake = Fake(g.vm_ids[0]);
  ASSERT_TRUE(engine_->vms().Pause(g.vm_ids[0]).ok());
  Status s = engine_->vms().Stop(g.vm_ids[0], {.shutdown = true});
  EXPECT_EQ(s.code(), Code::kInvalidState) << s.ToString();
  EXPECT_FALSE(Called(*fake, "shutdown"));
  EXPECT_EQ(Vm(g.vm_ids[0]).power, Power::kPaused);
  EXPECT_EQ(fake->state(), RunState::kPaused);
  ASSERT_TRUE(engine_->vms().Stop(g.vm_ids[0], {.shutdown = true, .force = true}).ok());
  EXPECT_TRUE(Called(*fake, "poweroff"));
  ExpectOff(g.vm_ids[0]);
}

TEST_F(VmStop, AShutdownThatFailsOtherwiseLeavesTheVmRunning) {
  auto g = MakeGroup(1);
  auto fake = Fake(g.vm_ids[0]);
  fake->FailOn("shutdown", Status::Unavailable("monitor gone"));
  Status s = engine_->vms().Stop(g.vm_ids[0], {.shutdown = true, .force = true});
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_EQ(Vm(g.vm_ids[0]).power, Power::kRunning);
  EXPECT_FALSE(Called(*fake, "poweroff"));
}

}  // namespace
}  // namespace vmgroup::engine
