// The pause lease's rules over fake VMs, on a clock the test moves: the
// lease ends only when the test says so. The same on real QEMU is covered by
// tests/integration/leased_pause_test.
#include "engine/leased_pause.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "hypervisor/fake/fake_vm.h"
#include "testing/fake_clock_env.h"

namespace vmgroup::engine {
namespace {

using hypervisor::RunState;
using hypervisor::fake::FakeVm;
using Calls = std::vector<std::string>;
using namespace std::chrono_literals;

constexpr Duration kLease = 300ms;
const std::vector<std::string> kBase = {"base0", "base1"};

// Members "vm0", "vm1"... in `states`, each with two disks and an overlay
// for each; members already paused are left as they are.
struct Members {
  explicit Members(std::vector<RunState> states) {
    for (size_t i = 0; i < states.size(); ++i) {
      vms.push_back(std::make_shared<FakeVm>(kBase, states[i]));
      const std::string n = std::to_string(i);
      list.push_back({"vm" + n,
                      vms.back(),
                      states[i] == RunState::kRunning,
                      {{0, "ov0-" + n, "t"}, {1, "ov1-" + n, "t"}}});
    }
  }
  std::vector<std::string> Overlays(int i) {
    return {"ov0-" + std::to_string(i), "ov1-" + std::to_string(i)};
  }
  std::vector<std::shared_ptr<FakeVm>> vms;
  std::vector<LeasedMember> list;
};

// Every member was asked `calls`, and runs on its images from before.
void ExpectAsBefore(Members& m, const Calls& calls) {
  for (auto& vm : m.vms) {
    EXPECT_EQ(vm->calls(), calls);
    EXPECT_EQ(vm->active(), kBase);
    EXPECT_EQ(vm->state(), RunState::kRunning);
  }
}

// A resume guard that writes what it is told into `told`, with the state
// of its VMs at that moment ("disarm running running").
class RecordingGuard : public hypervisor::ResumeGuard {
 public:
  RecordingGuard(std::vector<std::shared_ptr<hypervisor::Vm>> vms, std::vector<std::string>* told)
      : vms_(std::move(vms)), told_(told) {}
  void Disarm() override { told_->push_back("disarm" + States()); }
  void ResumeNow() override { told_->push_back("resume now" + States()); }

 private:
  std::string States() {
    std::string out;
    for (const auto& vm : vms_) {
      auto s = vm->State(Clock::now());
      out += s.ok() && *s == RunState::kRunning ? " running" : " paused";
    }
    return out;
  }
  std::vector<std::shared_ptr<hypervisor::Vm>> vms_;
  std::vector<std::string>* told_;
};

class LeasedPauseTest : public ::testing::Test {
 protected:
  // Arms a RecordingGuard over `guard_told_`, recording the VMs it is armed
  // over, their states and `within` ("arm paused running 2300 ms"), or
  // fails with `arm_error_`.
  ArmResumeGuard Arm() {
    return [this](const std::vector<std::shared_ptr<hypervisor::Vm>>& vms,
                  Duration within) -> Result<std::unique_ptr<hypervisor::ResumeGuard>> {
      if (!arm_error_.ok()) return arm_error_;
      std::string armed = "arm";
      for (const auto& vm : vms) {
        armed += vm->State(Clock::now()).value_or(RunState::kOther) == RunState::kRunning
                     ? " running"
                     : " paused";
      }
      guard_told_.push_back(
          armed + " " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(within).count()) +
          " ms");
      return std::unique_ptr<hypervisor::ResumeGuard>(new RecordingGuard(vms, &guard_told_));
    };
  }

  std::unique_ptr<LeasedPause> Pause(Members& m, Duration lease = kLease) {
    auto p = LeasedPause::Pause(&env_, m.list, "bm", lease, Arm());
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? std::move(p).value() : nullptr;
  }

  // Real time for `done` to come true: the lease's thread acts on its own.
  static bool Eventually(const std::function<bool()>& done) {
    for (auto until = Clock::now() + 5s; Clock::now() < until; std::this_thread::sleep_for(1ms)) {
      if (done()) return true;
    }
    return done();
  }

  testing::FakeClockEnv env_;
  std::vector<std::string> guard_told_;
  Status arm_error_;
};

TEST_F(LeasedPauseTest, WhenTheLeaseRunsOutTheHostResumesTheMembersByItself) {
  Members m({RunState::kRunning, RunState::kRunning});
  auto lease = Pause(m);
  ASSERT_TRUE(lease);
  // Real time passes, the Env's clock does not: the lease holds.
  std::this_thread::sleep_for(50ms);
  for (auto& vm : m.vms) EXPECT_EQ(vm->state(), RunState::kPaused);
  EXPECT_EQ(lease->report().state, LeaseState::kPaused);

  env_.Advance(kLease);  // nobody calls anything any more
  ASSERT_TRUE(Eventually([&] {
    return std::all_of(m.vms.begin(), m.vms.end(),
                       [](auto& vm) { return vm->state() == RunState::kRunning; });
  }));
  EXPECT_EQ(lease->report().state, LeaseState::kRanOut);
  EXPECT_FALSE(lease->report().cut_kept);
  for (auto& vm : m.vms) EXPECT_EQ(vm->calls(), (Calls{"pause", "resume"}));
}

TEST_F(LeasedPauseTest, ACutAfterTheLeaseIsRefusedAndChangesNothing) {
  Members m({RunState::kRunning, RunState::kRunning});
  auto lease = Pause(m);
  ASSERT_TRUE(lease);
  env_.Advance(kLease + 150ms);
  Status cut = lease->Cut();
  EXPECT_EQ(cut.code(), Code::kTimeout);
  EXPECT_EQ(cut.message(), "the pause lease ran out 150 ms ago; members were resumed");
  ExpectAsBefore(m, Calls{"pause", "resume"});
  auto report = lease->Resume();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->state, LeaseState::kRanOut);
  EXPECT_FALSE(report->cut_kept);
}

TEST_F(LeasedPauseTest, CutThenResumeSwitchesWhilePausedAndDisarmsTheLease) {
  Members m({RunState::kRunning, RunState::kRunning});
  auto lease = Pause(m);
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->Cut().ok());
  EXPECT_EQ(lease->report().state, LeaseState::kCut);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(m.vms[i]->state(), RunState::kPaused);  // until the coordinator says resume
    EXPECT_EQ(m.vms[i]->active(), m.Overlays(i));
    EXPECT_EQ(m.vms[i]->trackings().count("bm"), 1u);
  }
  auto report = lease->Resume();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->state, LeaseState::kResumed);
  EXPECT_TRUE(report->cut_kept);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(m.vms[i]->calls(), (Calls{"pause", "switch", "resume"}));
    EXPECT_EQ(m.vms[i]->state(), RunState::kRunning);
    EXPECT_GT(report->members[i].paused_at_us, 0);
    EXPECT_GT(report->members[i].cut_time_us, 0);
  }
  // Disarmed: the lease's end does nothing any more.
  env_.Advance(kLease);
  std::this_thread::sleep_for(30ms);
  for (auto& vm : m.vms) EXPECT_EQ(vm->calls(), (Calls{"pause", "switch", "resume"}));
  EXPECT_EQ(lease->report().state, LeaseState::kResumed);
}

TEST_F(LeasedPauseTest, TheLeaseRunningOutMidSwitchWaitsForTheRevertBeforeResuming) {
  Members m({RunState::kRunning, RunState::kRunning});
  m.vms[1]->DelayOn("switch", 200ms);
  auto lease = Pause(m);
  ASSERT_TRUE(lease);
  Status cut;
  std::thread cutting([&] { cut = lease->Cut(); });
  // vm0 is switched, vm1's switch is under way: now the lease runs out.
  ASSERT_TRUE(Eventually([&] { return m.vms[1]->calls().size() == 2; }));
  env_.Advance(kLease + 50ms);
  cutting.join();
  EXPECT_EQ(cut.code(), Code::kTimeout) << cut.ToString();
  EXPECT_NE(cut.message().find("the pause lease ran out during the cut"), std::string::npos)
      << cut.message();
  // Neither member ran on half a switch: each reverted, then resumed once.
  ExpectAsBefore(m, Calls{"pause", "switch", "revert", "resume"});
  EXPECT_EQ(lease->report().state, LeaseState::kUndone);
  EXPECT_FALSE(lease->report().cut_kept);
}

TEST_F(LeasedPauseTest, AFailingMemberHasEveryMemberRevertedThenResumed) {
  Members m({RunState::kRunning, RunState::kRunning, RunState::kRunning});
  m.vms[1]->FailOn("switch", Status::Failed("transaction: Bitmap already exists: bm"));
  auto lease = Pause(m);
  ASSERT_TRUE(lease);
  Status cut = lease->Cut();
  EXPECT_EQ(cut.code(), Code::kFailed);
  EXPECT_NE(cut.message().find("member vm1"), std::string::npos) << cut.message();
  ExpectAsBefore(m, Calls{"pause", "switch", "revert", "resume"});
  EXPECT_EQ(lease->report().state, LeaseState::kUndone);
  EXPECT_EQ(lease->Cut().code(), Code::kInvalidState);
}

TEST_F(LeasedPauseTest, AFailedPauseResumesTheMembersItPaused) {
  Members m({RunState::kRunning, RunState::kRunning});
  m.vms[1]->FailOn("pause", Status::Unavailable("QMP connection closed"));
  auto lease = LeasedPause::Pause(&env_, m.list, "bm", kLease, Arm());
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), Code::kUnavailable);
  EXPECT_NE(lease.status().message().find("member vm1"), std::string::npos);
  for (auto& vm : m.vms) {
    EXPECT_EQ(vm->calls(), (Calls{"pause", "resume"}));
    EXPECT_EQ(vm->state(), RunState::kRunning);
  }
}

TEST_F(LeasedPauseTest, DestroyingItWithoutResumeResumesTheMembers) {
  Members m({RunState::kRunning, RunState::kRunning});
  auto lease = Pause(m, 1h);
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->Cut().ok());
  lease.reset();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(m.vms[i]->state(), RunState::kRunning);
    EXPECT_EQ(m.vms[i]->active(), m.Overlays(i));  // the cut is kept, as when the lease runs out
  }
}

TEST_F(LeasedPauseTest, MembersPausedByTheOperatorAreCutButNeverResumed) {
  Members m({RunState::kRunning, RunState::kPaused});
  auto lease = Pause(m);
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->Cut().ok());
  ASSERT_TRUE(lease->Resume().ok());
  EXPECT_EQ(m.vms[0]->calls(), (Calls{"pause", "switch", "resume"}));
  EXPECT_EQ(m.vms[1]->calls(), (Calls{"switch"}));
  EXPECT_EQ(m.vms[1]->state(), RunState::kPaused);
  EXPECT_EQ(m.vms[1]->active(), m.Overlays(1));
  EXPECT_EQ(lease->report().members[1].paused_at_us, 0);

  // Nor when the lease runs out.
  Members m2({RunState::kRunning, RunState::kPaused});
  auto lease2 = Pause(m2);
  ASSERT_TRUE(lease2);
  env_.Advance(kLease);
  ASSERT_TRUE(Eventually([&] { return m2.vms[0]->state() == RunState::kRunning; }));
  EXPECT_EQ(m2.vms[1]->calls(), Calls{});
  EXPECT_EQ(m2.vms[1]->state(), RunState::kPaused);
}

TEST_F(LeasedPauseTest, ALeaseRunningOutAfterACutKeepsItUntilAbortRevertsIt) {
  Members m({RunState::kRunning, RunState::kRunning});
  auto lease = Pause(m);
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->Cut().ok());
  env_.Advance(kLease);
  ASSERT_TRUE(Eventually([&] { return lease->report().state == LeaseState::kRanOut; }));
  EXPECT_TRUE(lease->report().cut_kept);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(m.vms[i]->state(), RunState::kRunning);
    EXPECT_EQ(m.vms[i]->active(), m.Overlays(i));
  }
  // The coordinator heard of a host whose cut failed: undone here too.
  ASSERT_TRUE(lease->Abort().ok());
  EXPECT_EQ(lease->report().state, LeaseState::kUndone);
  EXPECT_FALSE(lease->report().cut_kept);
  ExpectAsBefore(m, Calls{"pause", "switch", "resume", "revert"});
}

TEST_F(LeasedPauseTest, AbortWhileTheLeaseHoldsRevertsBeforeResuming) {
  Members m({RunState::kRunning, RunState::kRunning});
  auto lease = Pause(m);
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->Cut().ok());
  ASSERT_TRUE(lease->Abort().ok());
  ExpectAsBefore(m, Calls{"pause", "switch", "revert", "resume"});
}

// The resume guard: armed over the members we pause, before the first
// pause, for the lease plus its margin; disarmed once they run again.
TEST_F(LeasedPauseTest, AResumeGuardCoversTheMembersWePauseUntilResumeHasThemRunning) {
  Members m({RunState::kRunning, RunState::kPaused, RunState::kRunning});
  auto lease = Pause(m);
  ASSERT_TRUE(lease);
  const std::string armed =
      "arm running running " + std::to_string((kLease + kResumeGuardMargin) / 1ms) + " ms";
  EXPECT_EQ(guard_told_, (Calls{armed})) << "not the member the operator paused; none paused yet";
  EXPECT_TRUE(lease->report().unguarded.empty());
  ASSERT_TRUE(lease->Cut().ok());
  EXPECT_EQ(guard_told_, (Calls{armed})) << "armed while paused";
  auto report = lease->Resume();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(guard_told_, (Calls{armed, "disarm running running"}));
  lease.reset();
  EXPECT_EQ(guard_told_.size(), 2u) << "disarmed once";
}

TEST_F(LeasedPauseTest, TheResumeGuardIsDisarmedOnceTheLeaseResumesTheMembers) {
  Members m({RunState::kRunning, RunState::kRunning});
  auto lease = Pause(m);
  ASSERT_TRUE(lease);
  env_.Advance(kLease);
  // The lease's thread resumes and disarms under the lock report() takes.
  ASSERT_TRUE(Eventually([&] { return lease->report().state == LeaseState::kRanOut; }));
  ASSERT_EQ(guard_told_.size(), 2u);
  EXPECT_EQ(guard_told_.back(), "disarm running running");
}

TEST_F(LeasedPauseTest, TheResumeGuardIsDisarmedByAbortAndByTheDestructorOnceTheMembersRun) {
  Members m({RunState::kRunning, RunState::kRunning});
  auto lease = Pause(m, 1h);
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->Cut().ok());
  ASSERT_TRUE(lease->Abort().ok());
  EXPECT_EQ(guard_told_.back(), "disarm running running");

  guard_told_.clear();
  lease = Pause(m, 1h);
  ASSERT_TRUE(lease);
  lease.reset();
  EXPECT_EQ(guard_told_.back(), "disarm running running");
  EXPECT_EQ(guard_told_.size(), 2u);
}

TEST_F(LeasedPauseTest, AMemberThatDoesNotResumeKeepsTheGuardArmedAndTheDestructorFiresIt) {
  Members m({RunState::kRunning, RunState::kRunning});
  auto lease = Pause(m, 1h);
  ASSERT_TRUE(lease);
  m.vms[1]->FailOn("resume", Status::Timeout("QMP: no answer to cont"));
  EXPECT_EQ(lease->Resume().status().code(), Code::kTimeout);
  EXPECT_EQ(guard_told_.size(), 1u) << "still armed: a member is paused";
  m.vms[1]->FailOn("resume", Status::Timeout("QMP: no answer to cont"));  // the retry too
  lease.reset();
  EXPECT_EQ(guard_told_.back(), "resume now running paused");
}

TEST_F(LeasedPauseTest, AFailedPauseDisarmsTheGuardOnceTheMembersRunAgain) {
  Members m({RunState::kRunning, RunState::kRunning});
  m.vms[1]->FailOn("pause", Status::Unavailable("QMP connection closed"));
  ASSERT_FALSE(LeasedPause::Pause(&env_, m.list, "bm", kLease, Arm()).ok());
  ASSERT_EQ(guard_told_.size(), 2u);
  EXPECT_EQ(guard_told_.back(), "disarm running running");
}

// No resume guard to be had (a driver without one, a QEMU without its
// monitor): the pause goes on under the lease alone, and says so.
TEST_F(LeasedPauseTest, WithoutAResumeGuardThePauseGoesOnAndTheReportSaysWhy) {
  for (Status none : {Status::NotSupported("this hypervisor driver has no resume guard"),
                      Status::Unavailable("QEMU 42 of VM a has no resume guard monitor")}) {
    Members m({RunState::kRunning, RunState::kRunning});
    arm_error_ = none;
    auto lease = Pause(m);
    ASSERT_TRUE(lease);
    for (auto& vm : m.vms) EXPECT_EQ(vm->state(), RunState::kPaused);
    EXPECT_EQ(lease->report().unguarded, none.message());
    auto report = lease->Resume();
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->unguarded, none.message());
    ExpectAsBefore(m, Calls{"pause", "resume"});
  }
}

// Any other failure to arm it (no process could start) is the pause's:
// nothing is paused.
TEST_F(LeasedPauseTest, AGuardThatFailsToStartFailsThePauseBeforeAnyMemberIsPaused) {
  Members m({RunState::kRunning, RunState::kRunning});
  arm_error_ = Status::IoError("guard process: fork: Cannot allocate memory");
  auto lease = LeasedPause::Pause(&env_, m.list, "bm", kLease, Arm());
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), Code::kIoError);
  EXPECT_NE(lease.status().message().find("resume guard"), std::string::npos);
  ExpectAsBefore(m, Calls{});
}

}  // namespace
}  // namespace vmgroup::engine
