// The coordinator's rules over scripted hosts: every host takes a step only
// once all took the one before, any host's failure at any step aborts every
// host, and the report bounds each host's cuts on the coordinator's clock
// whatever the host's clock says. Over real daemons in network namespaces:
// tests/integration/net_hosts_test.
#include "engine/spanning_cut.h"

#include <gtest/gtest.h>

#include <mutex>

#include "base/ids.h"

namespace vmgroup::engine {
namespace {

using namespace std::chrono_literals;

// A host that does each step at once, logs it, and fails the step
// `fail_at` if set. Its clock is ours plus `offset_us`.
class ScriptedHost final : public CutHost {
 public:
  ScriptedHost(std::string name, std::vector<std::string>* log, std::mutex* mu,
               int64_t offset_us = 0)
      : name_(std::move(name)), log_(log), mu_(mu), offset_us_(offset_us) {}

  std::string name() const override { return name_; }
  Status Prepare(const HostCutRequest& request) override {
    request_ = request;
    return Step("prepare");
  }
  Result<HostLease> Pause(const std::string&, Duration lease, bool cut) override {
    lease_ = lease;
    VMG_RETURN_IF_ERROR(Step("pause"));
    if (cut) cut_at_us_ = Now();  // the true instant, on the coordinator's clock
    return Lease();
  }
  Status Cut(const std::string&) override {
    cut_at_us_ = Now();  // the true instant, on the coordinator's clock
    return Step("cut");
  }
  Result<HostLease> Resume(const std::string&) override {
    VMG_RETURN_IF_ERROR(Step("resume"));
    HostLease l = Lease();
    l.lease_state = ran_out_ ? "lease ran out" : "resumed";
    return l;
  }
  Status Commit(const std::string&) override { return Step("commit"); }
  Status Abort(const std::string&) override {
    Log("abort");
    return abort_fails_ ? Status::Failed("the disk is gone") : Status::Ok();
  }
  // The cut exports nothing (spanning_snapshots_test exports).
  Status Export(const std::string&, const std::string&, bool, const std::string&) override {
    return Step("export");
  }
  Status ValidateConvert(const std::string&) override { return Step("validate-convert"); }
  Status Convert(const std::string&, const std::string&) override { return Step("convert"); }
  Status DestroyReferencePoint(const std::string&) override { return Step("destroy-rp"); }
  Status RemoveExport(const std::string&, const std::string&) override {
    return Step("remove-export");
  }
  // Backup sessions are not the cut's (spanning_snapshots_test serves them).
  Result<BackupSession> BeginBackup(const HostBackupRequest&) override {
    return Status::NotSupported("a scripted host serves no backup");
  }
  Result<bool> BackupServing(const std::string&) override { return false; }
  Status EndBackup(const std::string&) override { return Status::Ok(); }
  Result<storage::MarkedRanges> BackupChanges(const std::string&, const std::string&, int, uint64_t,
                                              uint64_t) override {
    return Status::NotSupported("a scripted host serves no backup");
  }
  // Applies are not the cut's (spanning_snapshots_test applies).
  Status ValidateApply(const std::string&) override { return Step("validate-apply"); }
  Status PrepareApply(const std::string&) override { return Step("prepare-apply"); }
  Status CommitApply(const std::string&) override { return Step("commit-apply"); }
  Status AbortApply(const std::string&) override { return Step("abort-apply"); }

  std::string fail_at;
  bool abort_fails_ = false;
  bool ran_out_ = false;  // its lease runs out before Resume comes
  HostCutRequest request_;
  Duration lease_{};
  int64_t cut_at_us_ = 0;

 private:
  static int64_t Now() { return Env::Default()->NowMicros(); }
  void Log(const std::string& step) {
    std::lock_guard l(*mu_);
    log_->push_back(step + " " + name_);
  }
  Status Step(const std::string& step) {
    Log(step);
    if (step == fail_at) return Status::Failed(step + " refused");
    return Status::Ok();
  }
  // Two members, cut at the instant Cut came, stamped on the host's clock.
  HostLease Lease() {
    HostLease l{.vm_ids = {name_ + "-a", name_ + "-b"}, .lease_state = "paused"};
    for (int i = 0; i < 2; ++i) {
      l.members.push_back({.paused_at_us = 1 + offset_us_,
                           .pause_us = 0,
                           .cut_time_us = cut_at_us_ ? cut_at_us_ + offset_us_ : 0});
    }
    l.host_time_us = Now() + offset_us_;
    return l;
  }

  std::string name_;
  std::vector<std::string>* log_;
  std::mutex* mu_;
  int64_t offset_us_;
};

class SpanningCutTest : public ::testing::Test {
 protected:
  // Three hosts whose clocks are off ours by -2 s, 0 and +3 s.
  SpanningCutTest() {
    const int64_t offsets[] = {-2'000'000, 0, 3'000'000};
    for (int i = 0; i < 3; ++i) {
      hosts_.push_back(
          std::make_unique<ScriptedHost>("host" + std::to_string(i), &log_, &mu_, offsets[i]));
      raw_.push_back(hosts_.back().get());
    }
  }
  // `cut_with_pause` false: the design's stricter order, a Cut step once
  // every host has paused.
  Result<SpanningCutReport> Take(bool cut_with_pause = true) {
    return TakeSpanningCut(Env::Default(), raw_,
                           {.snapshot_id = id_,
                            .collection_id = "g",
                            .lease = 400ms,
                            .cut_with_pause = cut_with_pause});
  }
  // The log's steps in order, each host's name dropped.
  std::vector<std::string> Steps() {
    std::vector<std::string> out;
    for (const auto& line : log_) out.push_back(line.substr(0, line.find(' ')));
    return out;
  }

  const std::string id_ = NewGuid();
  std::mutex mu_;
  std::vector<std::string> log_;
  std::vector<std::unique_ptr<ScriptedHost>> hosts_;
  std::vector<CutHost*> raw_;
};

TEST_F(SpanningCutTest, EveryHostTakesAStepOnlyOnceEveryHostTookTheOneBefore) {
  for (const bool cut_with_pause : {true, false}) {
    SCOPED_TRACE(cut_with_pause ? "cut with the pause" : "a Cut step");
    log_.clear();
    auto r = Take(cut_with_pause);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> expected;
    for (const char* step : {"prepare", "pause", "cut", "resume", "commit"}) {
      if (cut_with_pause && std::string(step) == "cut") continue;  // Pause cut
      for (int i = 0; i < 3; ++i) expected.push_back(step);
    }
    EXPECT_EQ(Steps(), expected);
    for (const auto& h : hosts_) {
      EXPECT_EQ(h->request_.snapshot_id, id_);
      EXPECT_EQ(h->request_.collection_id, "g");
      EXPECT_EQ(h->lease_, 400ms);
    }
    ASSERT_EQ(r->hosts.size(), 3u);
    EXPECT_EQ(r->hosts[2].resume.answer.vm_ids, (std::vector<std::string>{"host2-a", "host2-b"}));
    EXPECT_GT(r->window_us, 0);
  }
}

// A host whose lease ran out resumed by itself, perhaps before another cut:
// the snapshot is not kept anywhere.
TEST_F(SpanningCutTest, AHostWhoseLeaseRanOutFailsTheSnapshotEverywhere) {
  hosts_[2]->ran_out_ = true;
  auto r = Take();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_NE(r.status().message().find("resuming on host2: its pause lease ran out"),
            std::string::npos)
      << r.status().ToString();
  const auto done = Steps();
  EXPECT_EQ(std::count(done.begin(), done.end(), "abort"), 3);
  EXPECT_EQ(std::count(done.begin(), done.end(), "commit"), 0);
}

// The hosts' clocks are seconds apart; the report still puts each host's
// cut where it happened on ours, within the round trip.
TEST_F(SpanningCutTest, EachHostsCutIsBoundedOnTheCoordinatorsClockWhateverItsOwnSays) {
  auto r = Take();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (size_t i = 0; i < 3; ++i) {
    const SpannedHost& h = r->hosts[i];
    EXPECT_LE(h.earliest_cut_us, hosts_[i]->cut_at_us_) << h.name;
    EXPECT_GE(h.latest_cut_us, hosts_[i]->cut_at_us_) << h.name;
    EXPECT_LE(h.latest_cut_us - h.earliest_cut_us, h.resume.answered_us - h.resume.sent_us)
        << h.name << ": no wider than the round trip";
  }
  EXPECT_LT(r->cut_spread_us, 1'000'000) << "not the seconds the clocks are apart";
  EXPECT_LE(r->cut_spread_us, r->window_us);
}

TEST_F(SpanningCutTest, AnyHostFailingAnyStepAbortsEveryHostAndNoneGoesFurther) {
  const std::vector<std::string> steps = {"prepare", "pause", "cut", "resume", "commit"};
  for (size_t s = 0; s < steps.size(); ++s) {
    SCOPED_TRACE(steps[s]);
    log_.clear();
    hosts_[1]->fail_at = steps[s];
    auto r = Take(/*cut_with_pause=*/false);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kFailed);
    EXPECT_NE(r.status().message().find("on host1: " + steps[s] + " refused"), std::string::npos)
        << r.status().ToString();
    const auto done = Steps();
    EXPECT_EQ(std::count(done.begin(), done.end(), "abort"), 3) << "every host, once";
    // Nobody took a step past the failed one.
    if (s + 1 < steps.size()) {
      EXPECT_EQ(std::count(done.begin(), done.end(), steps[s + 1]), 0);
    }
  }
}

TEST_F(SpanningCutTest, AnAbortThatFailsIsSaidWithTheFailure) {
  hosts_[0]->fail_at = "cut";
  hosts_[2]->abort_fails_ = true;
  auto r = Take(/*cut_with_pause=*/false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cutting on host0: cut refused"), std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find("aborting its part on host2 failed too: the disk is gone"),
            std::string::npos)
      << r.status().ToString();
}

TEST_F(SpanningCutTest, NoHostsIsRefused) {
  EXPECT_EQ(TakeSpanningCut(Env::Default(), {}, {.snapshot_id = id_}).status().code(),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace vmgroup::engine
