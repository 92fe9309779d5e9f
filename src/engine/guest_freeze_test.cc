// GuestFreeze's logic over fake VMs: who is asked, who is thawed, what the
// guard is told. Real guests and a real guard: tests/integration.
#include "engine/guest_freeze.h"

#include <gtest/gtest.h>

#include "hypervisor/fake/fake_vm.h"

namespace vmgroup::engine {
namespace {

using hypervisor::fake::FakeVm;

// Records what the guard was told; the real one is a process.
class FakeGuard : public hypervisor::ThawGuard {
 public:
  explicit FakeGuard(std::string* told) : told_(told) {}
  void Disarm() override { *told_ += "disarm "; }
  void ThawNow() override { *told_ += "thaw-now "; }

 private:
  std::string* told_;
};

struct Group {
  std::vector<std::shared_ptr<FakeVm>> vms;
  std::vector<FreezeMember> members;
  std::string guard_told;
  size_t guarded = 0;  // how many VMs the guard was armed over
  // Arms a FakeGuard, as the engine arms the real one.
  ArmGuard Arm() {
    return [this](const std::vector<std::shared_ptr<hypervisor::Vm>>& open)
               -> Result<std::unique_ptr<hypervisor::ThawGuard>> {
      guarded = open.size();
      return std::unique_ptr<hypervisor::ThawGuard>(new FakeGuard(&guard_told));
    };
  }
};

void Make(Group& g, int n) {
  for (int i = 0; i < n; ++i) {
    g.vms.push_back(std::make_shared<FakeVm>(std::vector<std::string>{"d"}));
    g.members.push_back({"vm" + std::to_string(i), g.vms.back(), true});
  }
}

Deadline Soon() { return Clock::now() + std::chrono::seconds(5); }

TEST(GuestFreezeTest, FreezesEveryMemberThenThawsThemAndDisarmsTheGuard) {
  Group g;
  Make(g, 3);
  GuestFreeze freeze(Env::Default(), g.members, g.Arm(), Soon());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(freeze.Frozen(i));
    EXPECT_TRUE(*g.vms[i]->FilesystemsFrozen(Soon()));
  }
  EXPECT_TRUE(freeze.Thaw(Soon()).empty());
  for (auto& vm : g.vms) {
    EXPECT_FALSE(*vm->FilesystemsFrozen(Soon()));
    EXPECT_EQ(vm->calls(), (std::vector<std::string>{"open-agent", "freeze", "thaw"}));
  }
  EXPECT_EQ(g.guard_told, "disarm ");
  EXPECT_GT(freeze.window_us(), 0);
  EXPECT_TRUE(freeze.Thaw(Soon()).empty()) << "once";
  EXPECT_EQ(g.vms[0]->calls().size(), 3u);
  EXPECT_EQ(g.guarded, 3u);
}

TEST(GuestFreezeTest, FreezesRunInParallel) {
  Group g;
  Make(g, 4);
  for (auto& vm : g.vms) vm->DelayOn("freeze", std::chrono::milliseconds(200));
  const auto t0 = Clock::now();
  GuestFreeze freeze(Env::Default(), g.members, g.Arm(), Soon());
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(700)) << "not 4 x 200 ms";
}

TEST(GuestFreezeTest, AMemberThatCannotFreezeIsNamedAndNotThawed) {
  Group g;
  Make(g, 3);
  g.vms[1]->FailOn("freeze", Status::Unavailable("no guest agent answers"));
  g.members[2].running = false;
  GuestFreeze freeze(Env::Default(), g.members, g.Arm(), Soon());
  EXPECT_TRUE(freeze.Frozen(0));
  EXPECT_EQ(freeze.results()[1].code(), Code::kUnavailable);
  EXPECT_NE(freeze.results()[1].message().find("VM vm1"), std::string::npos);
  EXPECT_NE(freeze.results()[1].message().find("no guest agent answers"), std::string::npos);
  EXPECT_NE(freeze.results()[2].message().find("paused"), std::string::npos);
  EXPECT_TRUE(g.vms[2]->calls().empty()) << "a paused guest is not asked";
  EXPECT_TRUE(freeze.Thaw(Soon()).empty());
  EXPECT_EQ(g.vms[1]->calls(), (std::vector<std::string>{"open-agent", "freeze"}))
      << "nothing to thaw";
  EXPECT_EQ(g.guarded, 2u) << "the paused one has no channel to guard";
  EXPECT_EQ(g.guard_told, "disarm ");
}

TEST(GuestFreezeTest, AMemberWithoutAnAgentIsLeftOutOfTheGuard) {
  Group g;
  Make(g, 2);
  g.vms[0]->FailOn("open-agent", Status::Unavailable("no guest agent answers"));
  GuestFreeze freeze(Env::Default(), g.members, g.Arm(), Soon());
  EXPECT_EQ(freeze.results()[0].code(), Code::kUnavailable);
  EXPECT_NE(freeze.results()[0].message().find("VM vm0: cannot freeze"), std::string::npos);
  EXPECT_EQ(g.vms[0]->calls(), std::vector<std::string>{"open-agent"}) << "not asked twice";
  EXPECT_TRUE(freeze.Frozen(1));
  EXPECT_EQ(g.guarded, 1u);
}

TEST(GuestFreezeTest, NoGuardNoFreeze) {
  Group g;
  Make(g, 2);
  auto arm = [](const std::vector<std::shared_ptr<hypervisor::Vm>>&)
      -> Result<std::unique_ptr<hypervisor::ThawGuard>> {
    return Status::IoError("thaw guard: fork: out of memory");
  };
  GuestFreeze freeze(Env::Default(), g.members, arm, Soon());
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(freeze.results()[i].code(), Code::kIoError);
    EXPECT_NE(freeze.results()[i].message().find("fork"), std::string::npos);
    EXPECT_EQ(g.vms[i]->calls(), (std::vector<std::string>{"open-agent", "thaw"}))
        << "its channel closed, nothing frozen";
  }
}

TEST(GuestFreezeTest, NoWindowWhenNoMemberFroze) {
  Group g;
  Make(g, 1);
  g.vms[0]->FailOn("freeze", Status::Unavailable("no guest agent answers"));
  GuestFreeze freeze(Env::Default(), g.members, g.Arm(), Soon());
  EXPECT_TRUE(freeze.Thaw(Soon()).empty());
  EXPECT_EQ(freeze.window_us(), 0);
}

TEST(GuestFreezeTest, TimesEachMembersFreezeAndThaw) {
  Group g;
  Make(g, 2);
  g.members[1].running = false;  // not asked: no times
  g.vms[0]->DelayOn("freeze", std::chrono::milliseconds(40));
  g.vms[0]->DelayOn("thaw", std::chrono::milliseconds(20));
  GuestFreeze freeze(Env::Default(), g.members, g.Arm(), Soon());
  const FreezeTiming before = freeze.timings()[0];
  EXPECT_EQ(before.thaw_sent_us, 0) << "not thawed yet";
  EXPECT_TRUE(freeze.Thaw(Soon()).empty());
  const FreezeTiming t = freeze.timings()[0];
  EXPECT_GT(t.freeze_sent_us, 0);
  EXPECT_GE(t.freeze_answered_us - t.freeze_sent_us, 40'000);
  EXPECT_GE(t.thaw_sent_us, t.freeze_answered_us);
  EXPECT_GE(t.thaw_answered_us - t.thaw_sent_us, 20'000);
  const FreezeTiming none = freeze.timings()[1];
  EXPECT_EQ(
      none.freeze_sent_us + none.freeze_answered_us + none.thaw_sent_us + none.thaw_answered_us, 0);
}

TEST(GuestFreezeTest, AFailedThawIsReportedAndTheGuardThawsAgain) {
  Group g;
  Make(g, 2);
  g.vms[0]->FailOn("thaw", Status::Timeout("the agent did not answer"));
  GuestFreeze freeze(Env::Default(), g.members, g.Arm(), Soon());
  auto failed = freeze.Thaw(Soon());
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].find("VM vm0"), std::string::npos) << failed[0];
  EXPECT_NE(failed[0].find("the agent did not answer"), std::string::npos) << failed[0];
  EXPECT_EQ(g.guard_told, "thaw-now ");
}

TEST(GuestFreezeTest, GoingOutOfScopeThawsWhatItFroze) {
  Group g;
  Make(g, 2);
  { GuestFreeze freeze(Env::Default(), g.members, g.Arm(), Soon()); }
  for (auto& vm : g.vms) EXPECT_FALSE(*vm->FilesystemsFrozen(Soon()));
  EXPECT_EQ(g.guard_told, "disarm ");
}

}  // namespace
}  // namespace vmgroup::engine
