// OperationRunner and MemberClaims: the phases run in order, a failed Work
// is undone, a failed Finish is not, and the members are held exactly for
// the run.
#include "engine/group_operation.h"

#include <gtest/gtest.h>

namespace vmgroup::engine {
namespace {

catalog::VmRecord Vm(const std::string& id) { return {.id = id, .name = id}; }

// An operation that logs its phases and fails the one it is told to.
class ScriptedOperation : public GroupOperation {
 public:
  explicit ScriptedOperation(std::vector<catalog::VmRecord> vms) { members_ = std::move(vms); }

  std::string_view Name() const override { return "scripted"; }

  Status Check() override { return Step("check"); }
  Status RecordIntent() override { return Step("intent"); }
  Status Work() override {
    if (during_work) during_work();
    return Step("work");
  }
  Status Undo(const Status& cause) override {
    log.push_back("undo:" + cause.message());
    return Status(cause.code(), cause.message() + "; undone");
  }
  Status Finish() override { return Step("finish"); }

  std::string fail_at;
  std::function<void()> during_work;
  std::vector<std::string> log;

 private:
  Status Step(const std::string& phase) {
    log.push_back(phase);
    return phase == fail_at ? Status::Failed(phase + " failed") : Status::Ok();
  }
};

using Log = std::vector<std::string>;

class Runner : public ::testing::Test {
 protected:
  // Whether another operation could claim `vms` now.
  bool Free(const std::vector<catalog::VmRecord>& vms) { return claims_.CheckFree(vms).ok(); }

  MemberClaims claims_;
  OperationRunner runner_{&claims_};
};

TEST_F(Runner, RunsEveryPhaseInOrderAndReleasesTheMembers) {
  ScriptedOperation op({Vm("a"), Vm("b")});
  op.during_work = [&] { EXPECT_FALSE(Free({Vm("b")})) << "held while it works"; };
  ASSERT_TRUE(runner_.Run(op).ok());
  EXPECT_EQ(op.log, (Log{"check", "intent", "work", "finish"}));
  EXPECT_TRUE(Free({Vm("a"), Vm("b")}));
}

TEST_F(Runner, AWorkThatFailsIsUndoneAndItsMembersReleased) {
  ScriptedOperation op({Vm("a")});
  op.fail_at = "work";
  Status s = runner_.Run(op);
  EXPECT_EQ(s.code(), Code::kFailed);
  EXPECT_EQ(s.message(), "work failed; undone") << "the answer is what Undo returns";
  EXPECT_EQ(op.log, (Log{"check", "intent", "work", "undo:work failed"}));
  EXPECT_TRUE(Free({Vm("a")}));
}

TEST_F(Runner, AFinishThatFailsIsNotUndone) {
  ScriptedOperation op({Vm("a")});
  op.fail_at = "finish";
  Status s = runner_.Run(op);
  EXPECT_EQ(s.message(), "finish failed");
  EXPECT_EQ(op.log, (Log{"check", "intent", "work", "finish"}));
  EXPECT_TRUE(Free({Vm("a")}));
}

TEST_F(Runner, AnIntentThatFailsStopsTheRunWithoutUndo) {
  ScriptedOperation op({Vm("a")});
  op.fail_at = "intent";
  EXPECT_EQ(runner_.Run(op).message(), "intent failed");
  EXPECT_EQ(op.log, (Log{"check", "intent"}));
  EXPECT_TRUE(Free({Vm("a")}));
}

TEST_F(Runner, ACheckThatFailsClaimsNothingAndChangesNothing) {
  ScriptedOperation op({Vm("a")});
  op.fail_at = "check";
  EXPECT_EQ(runner_.Run(op).message(), "check failed");
  EXPECT_EQ(runner_.Validate(op).message(), "check failed");
  EXPECT_EQ(op.log, (Log{"check", "check"}));
  EXPECT_TRUE(Free({Vm("a")}));
}

TEST_F(Runner, AnOperationOnAClaimedMemberIsBusyAndDoesNotStart) {
  ScriptedOperation first({Vm("a"), Vm("b")});
  ScriptedOperation second({Vm("c"), Vm("b")});
  ScriptedOperation disjoint({Vm("c")});
  Status busy, validated, other;
  bool ran_unclaimed = true;
  first.during_work = [&] {
    validated = runner_.Validate(second);
    busy = runner_.Run(second);
    other = runner_.Run(disjoint);
    ran_unclaimed = claims_.RunUnclaimed("a", claims_.Releases(), [] {});
  };
  ASSERT_TRUE(runner_.Run(first).ok());
  EXPECT_EQ(busy.code(), Code::kBusy);
  EXPECT_EQ(busy.message(), "VM b is in another snapshot operation; try again");
  EXPECT_EQ(validated.code(), Code::kBusy);
  EXPECT_EQ(second.log, (Log{"check", "check"})) << "checked, never started";
  EXPECT_TRUE(other.ok()) << "an operation on other VMs runs alongside";
  EXPECT_FALSE(ran_unclaimed);
  EXPECT_TRUE(Free({Vm("c")})) << "the refused operation claimed none of its members";
  EXPECT_TRUE(claims_.RunUnclaimed("a", claims_.Releases(), [] {}));
}

TEST_F(Runner, WhatWasReadOfAMemberDuringItsOperationIsNotActedOnAfterIt) {
  ScriptedOperation op({Vm("a")});
  std::vector<std::string> ended;
  claims_.OnRelease([&](const std::vector<std::string>& ids) { ended = ids; });
  const uint64_t before = claims_.Releases();
  ASSERT_TRUE(runner_.Run(op).ok());
  EXPECT_EQ(ended, std::vector<std::string>{"a"}) << "told of the operation's end";
  EXPECT_FALSE(claims_.RunUnclaimed("a", before, [] {})) << "read before the operation ended";
  EXPECT_TRUE(claims_.RunUnclaimed("b", before, [] {})) << "another VM's reading stands";
  EXPECT_TRUE(claims_.RunUnclaimed("a", claims_.Releases(), [] {})) << "read after it ended";
  claims_.OnRelease({});
}

TEST_F(Runner, RunClaimedSkipsTheCheckAndTheClaim) {
  ScriptedOperation outer({Vm("a")});
  ScriptedOperation inner({Vm("a")});
  inner.fail_at = "work";
  Status nested;
  outer.during_work = [&] { nested = OperationRunner::RunClaimed(inner); };
  ASSERT_TRUE(runner_.Run(outer).ok());
  EXPECT_EQ(nested.message(), "work failed; undone");
  EXPECT_EQ(inner.log, (Log{"intent", "work", "undo:work failed"}));
}

TEST_F(Runner, RecordsTheEndOfWhatRanNotOfWhatWasRefused) {
  MetricsRegistry registry;
  OperationMetrics metrics(&registry);
  OperationRunner runner(&claims_, &metrics);
  ScriptedOperation ok({Vm("a")}), undone({Vm("a")}), unfinished({Vm("a")}), refused({Vm("a")});
  undone.fail_at = "work";
  unfinished.fail_at = "finish";
  refused.fail_at = "check";
  ASSERT_TRUE(runner.Run(ok).ok());
  EXPECT_FALSE(runner.Run(undone).ok());
  EXPECT_FALSE(runner.Run(unfinished).ok());
  EXPECT_FALSE(runner.Run(refused).ok());
  const std::string text = registry.Render();
  EXPECT_NE(text.find("vmgroup_operations_total{operation=\"scripted\"} 3\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("vmgroup_operations_failed_total{operation=\"scripted\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("vmgroup_operations_rolled_back_total{operation=\"scripted\"} 1\n"),
            std::string::npos);
}

TEST(MemberClaimsTest, AMovedClaimReleasesOnce) {
  MemberClaims claims;
  {
    auto claim = claims.Claim({Vm("a")});
    ASSERT_TRUE(claim.ok());
    MemberClaim moved = std::move(claim).value();
    EXPECT_EQ(claims.Claim({Vm("a")}).status().code(), Code::kBusy);
  }
  EXPECT_TRUE(claims.CheckFree({Vm("a")}).ok());
}

}  // namespace
}  // namespace vmgroup::engine
