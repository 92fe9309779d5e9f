#include "services/job_method.h"

#include <gtest/gtest.h>

#include "services/common.h"
#include "testing/temp_dir.h"

namespace vmgroup::services {
namespace {

using catalog::JobState;

class JobMethodTest : public ::testing::Test {
 protected:
  JobMethodTest() {
    catalog_ = std::move(catalog::Catalog::Open(dir_ / "catalog.db")).value();
    jobs_ = std::make_unique<JobManager>(Env::Default(), catalog_.get());
  }
  // The job whose reference `r` answers with, once it has ended: the
  // JobManager waits for its jobs when it goes, and the catalog keeps them.
  catalog::JobRecord EndedJobOf(const cim::MethodResult& r) {
    EXPECT_FALSE(r.out.empty());
    if (r.out.empty()) return {};
    EXPECT_EQ(r.out[0].name, schema::MethodOut::kJob);
    jobs_.reset();
    auto job = catalog_->GetJob(IdOf(r.out[0].value.refs.at(0), schema::ConcreteJob::kInstanceID));
    EXPECT_TRUE(job.ok()) << job.status().ToString();
    return job.ok() ? *job : catalog::JobRecord{};
  }
  size_t JobCount() { return jobs_->List().value().size(); }

  testing::TempDir dir_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<JobManager> jobs_;
};

// Work that answers what it was given and counts that it ran.
JobWork Answers(std::vector<std::string> affected, int* runs) {
  return [affected, runs](JobControl&) -> Result<std::vector<std::string>> {
    ++*runs;
    return affected;
  };
}

TEST_F(JobMethodTest, ARefusedCheckAnswersTheFamilysCodeWithItsMessageAndStartsNothing) {
  int described = 0, runs = 0;
  auto describe = [&]() -> Result<JobMethod> {
    ++described;
    return JobMethod{.type = 198, .description = "Snapshot of web"};
  };
  auto a = StartJob(jobs_.get(), ReturnCodeA, Status::InvalidState("group web is busy"), describe,
                    Answers({}, &runs));
  auto b = StartJob(jobs_.get(), ReturnCodeB, Status::NotFound("no group web"), describe,
                    Answers({}, &runs));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->return_value, kRcInvalidState);
  EXPECT_EQ(b->return_value, kRcBInvalidParameter);
  ASSERT_EQ(a->out.size(), 1u);
  EXPECT_EQ(a->out[0].name, schema::MethodOut::kErrorDescription);
  EXPECT_EQ(a->out[0].value.scalar, "group web is busy");
  ASSERT_EQ(b->out.size(), 1u);
  EXPECT_EQ(b->out[0].value.scalar, "no group web");
  EXPECT_EQ(described, 0);
  EXPECT_EQ(JobCount(), 0u);
  EXPECT_EQ(runs, 0);
}

TEST_F(JobMethodTest, AnAcceptedCheckAnswers4096WithTheJobWhoseEndCarriesTheWorksResult) {
  int runs = 0;
  const cim::OutParam made{"ResultingSnapshotCollection", "reference",
                           cim::Value::Reference(SnapshotCollectionPath("s1"))};
  auto r = StartJob(
      jobs_.get(), ReturnCodeA, Status::Ok(),
      [&]() -> Result<JobMethod> {
        return JobMethod{.type = 198,
                         .description = "Snapshot of VM group web",
                         .cancellable = true,
                         .subject = "Msvm_SnapshotCollection:s1",
                         .out = {made}};
      },
      Answers({"Msvm_SnapshotCollection:s1", "Msvm_VirtualSystemSettingData:m1"}, &runs));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->return_value, kRcJobStarted);
  ASSERT_EQ(r->out.size(), 2u);
  EXPECT_EQ(r->out[1].name, made.name);
  EXPECT_EQ(r->out[1].value.refs.at(0).class_name, schema::SnapshotCollection::kClass);
  auto job = EndedJobOf(*r);
  EXPECT_EQ(job.state, JobState::kCompleted);
  EXPECT_EQ(job.type, 198);
  EXPECT_EQ(job.description, "Snapshot of VM group web");
  EXPECT_TRUE(job.cancellable);
  EXPECT_EQ(job.affected, (std::vector<std::string>{"Msvm_SnapshotCollection:s1",
                                                    "Msvm_VirtualSystemSettingData:m1"}));
  EXPECT_EQ(runs, 1);
}

TEST_F(JobMethodTest, WorkThatFailsEndsTheJobWithTheFamilysCode) {
  auto r = StartJob(
      jobs_.get(), ReturnCodeB, Status::Ok(),
      [] { return Result<JobMethod>(JobMethod{.type = 10, .description = "Start web"}); },
      [](JobControl&) -> Result<std::vector<std::string>> {
        return Status::InvalidState("web is running");
      });
  ASSERT_TRUE(r.ok());
  auto job = EndedJobOf(*r);
  EXPECT_EQ(job.state, JobState::kException);
  EXPECT_EQ(job.error_code, static_cast<int>(kRcBInvalidState));
  EXPECT_FALSE(job.cancellable);
}

TEST_F(JobMethodTest, AFailedDescriptionIsTheCallsErrorAndStartsNothing) {
  int runs = 0;
  auto r = StartJob(
      jobs_.get(), ReturnCodeA, Status::Ok(),
      []() -> Result<JobMethod> { return Status::IoError("catalog unreadable"); },
      Answers({}, &runs));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "catalog unreadable");
  EXPECT_EQ(JobCount(), 0u);
  EXPECT_EQ(runs, 0);
}

}  // namespace
}  // namespace vmgroup::services
