// The cut's logic (ordering, rollback, deadline) over fake VMs. The same
// behaviour on real QEMU is covered by tests/integration/group_snapshot_test.
#include "engine/cut_executor.h"

#include <gtest/gtest.h>

#include "engine/fault_points.h"
#include "hypervisor/fake/fake_vm.h"

namespace vmgroup::engine {
namespace {

using hypervisor::RunState;
using hypervisor::fake::FakeVm;

struct Group {
  std::vector<std::shared_ptr<FakeVm>> vms;
  std::vector<CutMember> members;
};

Group MakeGroup(int n, RunState state = RunState::kRunning) {
  Group g;
  for (int i = 0; i < n; ++i) {
    auto vm = std::make_shared<FakeVm>(std::vector<std::string>{"base0", "base1"}, state);
    g.vms.push_back(vm);
    g.members.push_back(
        {"vm" + std::to_string(i),
         vm,
         state == RunState::kRunning,
         {{0, "ov0-" + std::to_string(i), "t"}, {1, "ov1-" + std::to_string(i), "t"}}});
  }
  return g;
}

TEST(CutExecutorTest, SwitchesEveryMemberAndResumesThem) {
  Group g = MakeGroup(4);
  CutOutcome out = ExecuteCut(Env::Default(), g.members, "bm", std::chrono::seconds(2));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(g.vms[i]->calls(), (std::vector<std::string>{"pause", "switch", "resume"}));
    EXPECT_EQ(g.vms[i]->active()[1], "ov1-" + std::to_string(i));
    EXPECT_EQ(g.vms[i]->state(), RunState::kRunning);
    EXPECT_GT(out.timings[i].cut_time_us, 0);
  }
}

TEST(CutExecutorTest, NoMemberResumesBeforeEveryMemberIsPaused) {
  Group g = MakeGroup(3);
  g.vms[2]->DelayOn("pause", std::chrono::milliseconds(100));
  auto t0 = Clock::now();
  CutOutcome out = ExecuteCut(Env::Default(), g.members, "", std::chrono::seconds(2));
  ASSERT_TRUE(out.status.ok());
  // vm0 paused at once but must have stayed paused until vm2 was paused too.
  EXPECT_GE(out.timings[0].pause_us, 100'000);
  EXPECT_GE(out.window_us, 100'000);
  EXPECT_LE(out.window_us,
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
}

TEST(CutExecutorTest, TimingsSayWhatEachPauseIsMadeOf) {
  Group g = MakeGroup(2);
  // The fake pauses and switches inside SendSwitch: every member's replies
  // are read after vm1's slow switch went out, and vm0's resume is slow.
  g.vms[1]->DelayOn("switch", std::chrono::milliseconds(20));
  g.vms[0]->DelayOn("resume", std::chrono::milliseconds(10));
  CutOutcome out = ExecuteCut(Env::Default(), g.members, "", std::chrono::seconds(2));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  for (const CutTiming& t : out.timings) {
    EXPECT_GE(t.stopped_us, 20'000);
    EXPECT_LE(t.stopped_us, t.switched_us);
    EXPECT_LE(t.switched_us, t.resume_sent_us);
    EXPECT_LE(t.resume_sent_us, t.pause_us);
  }
  EXPECT_GE(out.timings[0].pause_us - out.timings[0].resume_sent_us, 10'000);
}

TEST(CutExecutorTest, OneFailedSwitchRevertsTheOthersBeforeAnyoneResumes) {
  Group g = MakeGroup(3);
  g.vms[1]->FailOn("switch", Status::Failed("transaction: Bitmap already exists: bm"));
  CutOutcome out = ExecuteCut(Env::Default(), g.members, "bm", std::chrono::seconds(2));
  EXPECT_EQ(out.status.code(), Code::kFailed);
  EXPECT_NE(out.status.message().find("member vm1"), std::string::npos) << out.status.message();
  EXPECT_NE(out.status.message().find("Bitmap already exists"), std::string::npos);
  EXPECT_TRUE(out.revert_status.ok());
  for (int i : {0, 2}) {
    EXPECT_EQ(g.vms[i]->calls(), (std::vector<std::string>{"pause", "switch", "revert", "resume"}));
  }
  // Its own failed switch is checked too: revert undoes only what took effect.
  EXPECT_EQ(g.vms[1]->calls(), (std::vector<std::string>{"pause", "switch", "revert", "resume"}));
  for (auto& vm : g.vms) {
    EXPECT_EQ(vm->active(), (std::vector<std::string>{"base0", "base1"}));
    EXPECT_EQ(vm->state(), RunState::kRunning);
  }
}

TEST(CutExecutorTest, AFailedPauseRevertsEveryoneBeforeResuming) {
  Group g = MakeGroup(2);
  g.vms[0]->FailOn("pause", Status::Unavailable("QMP connection closed"));
  CutOutcome out = ExecuteCut(Env::Default(), g.members, "", std::chrono::seconds(2));
  EXPECT_EQ(out.status.code(), Code::kUnavailable);
  // The switch was sent with the pause, so it is reverted even there.
  EXPECT_EQ(g.vms[0]->calls(), (std::vector<std::string>{"pause", "switch", "revert"}));
  EXPECT_EQ(g.vms[1]->calls(), (std::vector<std::string>{"pause", "switch", "revert", "resume"}));
  for (auto& vm : g.vms) EXPECT_EQ(vm->active(), (std::vector<std::string>{"base0", "base1"}));
}

TEST(CutExecutorTest, PastTheDeadlineEveryoneIsReverted) {
  Group g = MakeGroup(2);
  g.vms[1]->DelayOn("switch", std::chrono::milliseconds(60));
  CutOutcome out = ExecuteCut(Env::Default(), g.members, "", std::chrono::milliseconds(20));
  EXPECT_EQ(out.status.code(), Code::kTimeout);
  for (auto& vm : g.vms) {
    EXPECT_EQ(vm->active(), (std::vector<std::string>{"base0", "base1"}));
    EXPECT_EQ(vm->calls().back(), "resume");
  }
}

TEST(CutExecutorTest, OperatorPausedMembersAreSwitchedButNotResumed) {
  Group g = MakeGroup(2, RunState::kPaused);
  CutOutcome out = ExecuteCut(Env::Default(), g.members, "", std::chrono::seconds(2));
  ASSERT_TRUE(out.status.ok());
  for (auto& vm : g.vms) {
    EXPECT_EQ(vm->calls(), std::vector<std::string>{"switch"});
    EXPECT_EQ(vm->state(), RunState::kPaused);
  }
  EXPECT_EQ(out.window_us, 0);
  for (const CutTiming& t : out.timings) EXPECT_EQ(t.switched_us, 0);  // not paused by the cut
}

class FailAtEnv : public EnvWrapper {
 public:
  FailAtEnv(std::string_view point, std::string_view subject)
      : EnvWrapper(Env::Default()), point_(point), subject_(subject) {}
  Status Hit(std::string_view point, std::string_view subject) override {
    if (point == point_ && subject == subject_) return Status::Failed("injected at " + point_);
    return Status::Ok();
  }

 private:
  std::string point_, subject_;
};

TEST(CutExecutorTest, AFaultAfterASwitchRevertsThatMemberToo) {
  Group g = MakeGroup(2);
  FailAtEnv env(fault::kMemberSwitched, "vm0");
  CutOutcome out = ExecuteCut(&env, g.members, "", std::chrono::seconds(2));
  EXPECT_EQ(out.status.code(), Code::kFailed);
  for (auto& vm : g.vms) {
    EXPECT_EQ(vm->calls(), (std::vector<std::string>{"pause", "switch", "revert", "resume"}));
  }
}

TEST(CutExecutorTest, AFailedRevertIsReported) {
  Group g = MakeGroup(2);
  g.vms[0]->FailOn("switch", Status::Failed("no"));
  g.vms[1]->FailOn("revert", Status::Unavailable("QEMU died"));
  CutOutcome out = ExecuteCut(Env::Default(), g.members, "", std::chrono::seconds(2));
  EXPECT_FALSE(out.status.ok());
  EXPECT_EQ(out.revert_status.code(), Code::kUnavailable);
  EXPECT_NE(out.revert_status.message().find("member vm1: revert"), std::string::npos);
}

// Records the scheduling changes and the switches, in order. Each fake
// QEMU (pid p) has a main thread p, a vCPU thread p+1 and a worker p+2.
class SchedEnv : public EnvWrapper {
 public:
  explicit SchedEnv(bool allowed) : EnvWrapper(Env::Default()), allowed_(allowed) {}
  Result<std::vector<ThreadInfo>> Threads(int pid) override {
    if (pid >= 300)
      return std::vector<ThreadInfo>{{pid, "qemu-system-x86"}, {pid + 1, "qemu-system-x86"}};
    return std::vector<ThreadInfo>{
        {pid, "qemu-system-x86"}, {pid + 1, "CPU 0/TCG"}, {pid + 2, "worker"}};
  }
  Result<Scheduling> GetScheduling(int tid) override { return Scheduling{false, tid % 10}; }
  Status SetScheduling(int tid, const Scheduling& s) override {
    if (!allowed_) return Status::IoError("sched_setscheduler: Operation not permitted");
    events.push_back(std::to_string(tid) + (s.realtime ? " rt " : " nice ") +
                     std::to_string(s.level));
    return Status::Ok();
  }
  Status Hit(std::string_view point, std::string_view subject) override {
    if (point == fault::kMemberSwitch) events.push_back("switch " + std::string(subject));
    return Status::Ok();
  }
  std::vector<std::string> events;

 private:
  bool allowed_;
};

TEST(CutExecutorTest, TheCutAndItsMembersQemuRunFirstWhileTheGroupIsPaused) {
  Group g = MakeGroup(3);
  g.vms[0]->set_pid(101);
  g.vms[1]->set_pid(201);
  g.vms[2]->set_pid(301);  // unnamed threads: its vCPUs cannot be told apart
  SchedEnv env(true);
  CutOutcome out = ExecuteCut(&env, g.members, "", std::chrono::seconds(2));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  // The cut above its members, vCPU threads first among time-shared ones,
  // all restored after.
  EXPECT_EQ(env.events,
            (std::vector<std::string>{"0 rt 2", "101 rt 1", "102 nice -20", "103 rt 1", "201 rt 1",
                                      "202 nice -20", "203 rt 1", "switch vm0", "switch vm1",
                                      "switch vm2", "203 nice 3", "202 nice 2", "201 nice 1",
                                      "103 nice 3", "102 nice 2", "101 nice 1", "0 nice 0"}));
}

TEST(CutExecutorTest, WithoutThePrivilegeTheCutRunsAsItWas) {
  Group g = MakeGroup(2);
  g.vms[0]->set_pid(101);
  SchedEnv env(false);
  CutOutcome out = ExecuteCut(&env, g.members, "", std::chrono::seconds(2));
  EXPECT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(env.events, (std::vector<std::string>{"switch vm0", "switch vm1"}));
}

}  // namespace
}  // namespace vmgroup::engine
