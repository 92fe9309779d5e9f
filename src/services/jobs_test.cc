#include "services/jobs.h"

#include <gtest/gtest.h>

#include <future>

#include "cim/dispatcher.h"
#include "cim/xml_reader.h"
#include "services/providers.h"
#include "testing/temp_dir.h"

namespace vmgroup::services {
namespace {

using catalog::JobState;

// The wall clock stands still unless a test moves it; the next
// `failing_writes` writes of a job's state fail as a full disk would.
class ClockEnv : public EnvWrapper {
 public:
  ClockEnv() : EnvWrapper(Env::Default()) {}
  int64_t NowMicros() override { return now_us.load(); }
  Status Hit(std::string_view point, std::string_view subject) override {
    if (point == kJobStateWrite && failing_writes.fetch_sub(1) > 0) {
      return Status::IoError("disk I/O error writing job " + std::string(subject));
    }
    return EnvWrapper::Hit(point, subject);
  }
  std::atomic<int64_t> now_us{1'000'000'000};
  std::atomic<int> failing_writes{0};
};

class JobsTest : public ::testing::Test {
 protected:
  JobsTest() {
    catalog_ = std::move(catalog::Catalog::Open(dir_ / "catalog.db")).value();
    jobs_ = std::make_unique<JobManager>(&env_, catalog_.get());
  }
  // Waits for a job to end and returns its record, as clients see it.
  catalog::JobRecord Ended(const std::string& id) {
    for (int i = 0; i < 500; ++i) {
      auto j = jobs_->Get(id);
      if (j.ok() && j->ended_us != 0) return *j;
      Env::Default()->SleepFor(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "job " << id << " did not end";
    return {};
  }

  testing::TempDir dir_;
  ClockEnv env_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<JobManager> jobs_;
};

TEST_F(JobsTest, AJobIsRunningBeforeStartReturnsAndEndsCompletedWithWhatItMade) {
  std::promise<void> go;
  auto gate = go.get_future().share();
  auto id = jobs_->Start(198, "Snapshot of web", false, ReturnCodeA,
                         [gate](JobControl& c) -> Result<std::vector<std::string>> {
                           gate.wait();
                           c.Progress(40);
                           return std::vector<std::string>{"Msvm_SnapshotCollection:s1"};
                         });
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(jobs_->Get(*id)->state, JobState::kRunning);
  go.set_value();
  auto j = Ended(*id);
  EXPECT_EQ(j.state, JobState::kCompleted);
  EXPECT_EQ(j.percent, 100);
  EXPECT_EQ(j.error_code, 0);
  EXPECT_EQ(j.affected, std::vector<std::string>{"Msvm_SnapshotCollection:s1"});
}

TEST_F(JobsTest, FailuresEndInExceptionWithTheMethodsCode) {
  auto id = jobs_->Start(198, "x", false, ReturnCodeA,
                         [](JobControl&) -> Result<std::vector<std::string>> {
                           return Status::Timeout("the cut took longer than 2 s");
                         });
  auto j = Ended(*id);
  EXPECT_EQ(j.state, JobState::kException);
  EXPECT_EQ(j.error_code, 3);
  EXPECT_EQ(j.error_description, "the cut took longer than 2 s");
}

// A job whose end the catalog refuses once ends in Exception, recorded,
// saying what the work reached and why its end was not recorded.
TEST_F(JobsTest, AnEndTheCatalogRefusesEndsTheJobInExceptionSayingWhy) {
  env_.failing_writes = 1;
  ::testing::internal::CaptureStderr();
  auto id = jobs_->Start(198, "Snapshot of web", false, ReturnCodeA,
                         [](JobControl&) -> Result<std::vector<std::string>> {
                           return std::vector<std::string>{"Msvm_SnapshotCollection:s1"};
                         });
  ASSERT_TRUE(id.ok());
  auto j = Ended(*id);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(j.state, JobState::kException);
  EXPECT_EQ(j.error_code, 2);  // Failed, in the method's family
  EXPECT_EQ(j.error_description,
            "the job's work completed, but vmgroupd could not record its end: disk I/O error "
            "writing job " +
                *id);
  EXPECT_EQ(catalog_->GetJob(*id)->state, JobState::kException) << "recorded on the retry";
  EXPECT_NE(log.find("WARN job " + *id + " (Snapshot of web) failed: the job's work completed"),
            std::string::npos)
      << log;
}

// When the catalog refuses even the Exception record, clients still see
// the job end, from memory, and the daemon's log says so as an error.
TEST_F(JobsTest, AnEndTheCatalogNeverTakesIsKeptInMemoryAndLogged) {
  env_.failing_writes = 2;
  ::testing::internal::CaptureStderr();
  auto id = jobs_->Start(198, "Snapshot of \x1b[2Jweb", false, ReturnCodeA,
                         [](JobControl&) -> Result<std::vector<std::string>> {
                           return Status::Timeout("the cut took longer than 2 s");
                         });
  ASSERT_TRUE(id.ok());
  auto j = Ended(*id);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(j.state, JobState::kException);
  EXPECT_EQ(j.error_description,
            "the job's work failed (the cut took longer than 2 s), but vmgroupd could not record "
            "its end: disk I/O error writing job " +
                *id);
  EXPECT_EQ(catalog_->GetJob(*id)->state, JobState::kRunning) << "the catalog took no write";
  EXPECT_NE(log.find("ERROR job " + *id + " (Snapshot of \\x1b[2Jweb): its end is kept in memory"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find('\x1b'), std::string::npos) << "a log line carries no escape sequence";
  // Enumeration answers the end too, and records it now that the catalog takes writes.
  auto listed = jobs_->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].state, JobState::kException);
  EXPECT_EQ(catalog_->GetJob(*id)->state, JobState::kException);
  // Forgotten after its retention like any other ended job.
  env_.now_us += std::chrono::microseconds(JobManager::kRetention).count() + 1;
  EXPECT_EQ(jobs_->Get(*id).status().code(), Code::kNotFound);
  EXPECT_TRUE(jobs_->List()->empty());
}

TEST_F(JobsTest, WorkThatWarnsEndsCompletedWithWarningsSayingThem) {
  auto id = jobs_->Start(198, "x", false, ReturnCodeA,
                         [](JobControl& c) -> Result<std::vector<std::string>> {
                           c.Warn("VM db: no guest agent; cut crash consistent");
                           c.Warn("VM web: thaw failed");
                           return std::vector<std::string>{"Msvm_SnapshotCollection:s1"};
                         });
  auto j = Ended(*id);
  EXPECT_EQ(static_cast<int>(j.state), 32768);
  EXPECT_EQ(j.percent, 100);
  EXPECT_EQ(j.error_code, 0);
  EXPECT_EQ(j.error_description,
            "VM db: no guest agent; cut crash consistent; VM web: thaw failed");
  EXPECT_EQ(j.affected, std::vector<std::string>{"Msvm_SnapshotCollection:s1"});
}

TEST_F(JobsTest, OnlyCancellableRunningJobsStop) {
  std::promise<void> release;
  auto held = release.get_future().share();
  auto cancellable = jobs_->Start(198, "c", true, ReturnCodeA,
                                  [](JobControl& c) -> Result<std::vector<std::string>> {
                                    while (!c.StopRequested()) {
                                      Env::Default()->SleepFor(std::chrono::milliseconds(1));
                                    }
                                    return Status::Cancelled("stopped before the cut");
                                  });
  auto fixed = jobs_->Start(10, "f", false, ReturnCodeB,
                            [held](JobControl&) -> Result<std::vector<std::string>> {
                              held.wait();
                              return std::vector<std::string>{};
                            });
  EXPECT_EQ(jobs_->RequestStop(*fixed).code(), Code::kNotSupported);
  ASSERT_TRUE(jobs_->RequestStop(*cancellable).ok());
  EXPECT_EQ(Ended(*cancellable).state, JobState::kTerminated);
  EXPECT_EQ(jobs_->RequestStop(*cancellable).code(), Code::kInvalidState);
  EXPECT_EQ(jobs_->RequestStop("nope").code(), Code::kNotFound);
  release.set_value();
  EXPECT_EQ(Ended(*fixed).state, JobState::kCompleted);
}

TEST_F(JobsTest, EndedJobsAreKeptForTheRetentionThenForgotten) {
  auto id = jobs_->Start(
      198, "x", false, ReturnCodeA,
      [](JobControl&) -> Result<std::vector<std::string>> { return std::vector<std::string>{}; });
  Ended(*id);
  env_.now_us += std::chrono::microseconds(JobManager::kRetention).count() - 1;
  EXPECT_TRUE(jobs_->Get(*id).ok());
  EXPECT_EQ(jobs_->List()->size(), 1u);
  env_.now_us += 2;
  EXPECT_EQ(jobs_->Get(*id).status().code(), Code::kNotFound);
  EXPECT_TRUE(jobs_->List()->empty());
}

TEST_F(JobsTest, AJobADeadDaemonLeftRunningIsEndedByWhatRecoveryDid) {
  const auto running = [&](const std::string& id, std::vector<std::string> affected) {
    ASSERT_TRUE(catalog_
                    ->InsertJob({.id = id,
                                 .type = 198,
                                 .state = JobState::kRunning,
                                 .created_us = 1,
                                 .started_us = 1,
                                 .affected = std::move(affected)})
                    .ok());
  };
  running("made", {"Msvm_SnapshotCollection:s1"});
  running("undone", {"Msvm_SnapshotCollection:s2"});
  running("export", {"Msvm_SnapshotCollection:s3"});
  running("other", {});
  engine::RecoveryReport report;
  report.completed = {"s1"};
  report.rolled_back = {"s2"};
  report.exports_taken_back = {{.directory = "/backup/x", .snapshot_id = "s3"}};
  report.resumed = {"vm"};
  ASSERT_TRUE(jobs_->EndInterrupted(report).ok());

  const auto ended = [&](const std::string& id) {
    auto j = jobs_->Get(id);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    return j.ok() ? *j : catalog::JobRecord{};
  };
  const std::string by = "ended by recovery after a daemon restart: ";
  auto made = ended("made");
  EXPECT_EQ(made.state, JobState::kCompletedWithWarnings);
  EXPECT_EQ(made.percent, 100);
  EXPECT_EQ(made.error_description,
            by + "the cut had happened on every VM; the snapshot was completed");
  EXPECT_EQ(made.affected, std::vector<std::string>{"Msvm_SnapshotCollection:s1"});
  auto undone = ended("undone");
  EXPECT_EQ(undone.state, JobState::kKilled);
  EXPECT_EQ(undone.error_description, by + "the snapshot was rolled back; nothing of it is left");
  EXPECT_TRUE(undone.affected.empty());
  auto exported = ended("export");
  EXPECT_EQ(exported.state, JobState::kKilled);
  EXPECT_EQ(exported.error_description,
            by + "the partial export in /backup/x was removed; run the export again");
  auto other = ended("other");
  EXPECT_EQ(other.state, JobState::kKilled);
  EXPECT_EQ(other.error_description, by + report.Summary());
  for (const auto& j : {made, undone, exported, other}) EXPECT_GT(j.ended_us, 0);
}

// The same jobs as clients see them: Msvm_ConcreteJob over the dispatcher.
TEST_F(JobsTest, ClientsCancelThroughRequestStateChangeAndReadGetError) {
  cim::Dispatcher d(kNamespace, "testhost");
  for (auto& p : JobProviders({nullptr, jobs_.get(), "testhost"})) d.Register(std::move(p));
  auto invoke = [&](const std::string& id, const std::string& method,
                    std::vector<cim::OutParam> args) {
    cim::ObjectPath target = JobPath(id);
    cim::HttpRequest r{"POST",
                       "/cimom",
                       {{"CIMOperation", "MethodCall"},
                        {"CIMMethod", method},
                        {"CIMObject", "root/virtualization/v2:Msvm_ConcreteJob"}},
                       cim::MethodCall("1", target, method, args),
                       {"test", cim::Role::kAdmin, "", ""}};
    return *cim::ParseResponse(d.Handle(r).body);
  };
  auto id = jobs_->Start(198, "c", true, ReturnCodeA,
                         [](JobControl& c) -> Result<std::vector<std::string>> {
                           while (!c.StopRequested()) {
                             Env::Default()->SleepFor(std::chrono::milliseconds(1));
                           }
                           return Status::Cancelled("cancelled before the cut; nothing was kept");
                         });
  cim::Response none = invoke(*id, "GetError", {});
  EXPECT_EQ(none.return_value, 0u);
  EXPECT_EQ(none.Out("Error"), nullptr) << "a running job has no error";
  cim::Response bad =
      invoke(*id, "RequestStateChange", {{"RequestedState", "", cim::Value::Scalar("7")}});
  EXPECT_EQ(bad.return_value, 5u);
  cim::Response stop =
      invoke(*id, "RequestStateChange", {{"RequestedState", "", cim::Value::Scalar("4")}});
  EXPECT_EQ(stop.return_value, 4096u);
  EXPECT_EQ(Ended(*id).state, JobState::kTerminated);
  cim::Response again =
      invoke(*id, "RequestStateChange", {{"RequestedState", "", cim::Value::Scalar("4")}});
  EXPECT_EQ(again.return_value, 4097u);
  cim::Response err = invoke(*id, "GetError", {});
  ASSERT_NE(err.Out("Error"), nullptr);
  auto inst = cim::ParseEmbeddedInstance(err.Out("Error")->value.scalar);
  ASSERT_TRUE(inst.ok()) << inst.status().ToString();
  EXPECT_EQ(inst->class_name, "Msvm_Error");
  EXPECT_EQ(inst->Find("Message")->value.scalar, "cancelled before the cut; nothing was kept");
  cim::Response errs = invoke(*id, "GetErrorEx", {});
  ASSERT_NE(errs.Out("Errors"), nullptr);
  EXPECT_EQ(errs.Out("Errors")->value.array.size(), 1u);
}

}  // namespace
}  // namespace vmgroup::services
