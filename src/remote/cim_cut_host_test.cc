// CimCutHost's export and conversion steps against a scripted host: a
// dispatcher whose
// Vmgroup_HostCutService answers as a test says and whose one
// Msvm_ConcreteJob goes through the states a test lists, served on a unix
// socket as vmgroupd serves. What is checked is what crosses the wire (the
// arguments, the job followed to its end, the answers turned into Status
// values); the real services' ExportPart and ConvertPart are tested in
// services/providers_test (ProvidersTest.ExportPart*, .ConvertPart*),
// where remote/ may not reach.
#include "remote/cim_cut_host.h"

#include <gtest/gtest.h>

#include <deque>
#include <mutex>

#include "base/return_codes.h"
#include "cim/dispatcher.h"
#include "cim/http_server.h"
#include "schema/classes.h"
#include "schema/values.h"
#include "testing/temp_dir.h"

namespace vmgroup::remote {
namespace {

using HC = schema::HostCutService;
using Job = schema::ConcreteJob;
using namespace std::chrono_literals;

cim::ParamSpec In(const char* name, const char* type) { return {.name = name, .type = type}; }
// The Job a method answers with 4096.
cim::ParamSpec JobOut() {
  return {.name = schema::MethodOut::kJob,
          .type = "reference",
          .in = false,
          .out = true,
          .reference_class = Job::kClass};
}

// What the scripted host's job shows at one look; `fails` instead answers
// the look with that error.
struct Look {
  int state = schema::JobState::kRunning;
  int percent = 0;
  int error_code = 0;
  std::string error;
  Status fails;
};

// The host's side, shared by its two classes.
struct Script {
  std::mutex mu;
  cim::MethodResult answer;                                       // to every method
  std::map<std::string, std::map<std::string, std::string>> got;  // by method: its arguments
  std::deque<Look> looks;  // the job at each look; the last one stays
  int looked = 0;
};

cim::ClassSpec ServiceSpec() {
  const std::vector<cim::ParamSpec> prepare = {
      In(HC::kSnapshotID, "string"),
      {.name = HC::PrepareCut::kCollection,
       .type = "reference",
       .reference_class = "Msvm_VirtualSystemCollection"},
      In(HC::PrepareCut::kSnapshotType, "uint16"),
      In(HC::PrepareCut::kElementName, "string"),
      In(HC::PrepareCut::kStepTimeout, "uint32"),
      In(HC::PrepareCut::kConsistencyLevel, "uint16"),
      In(HC::PrepareCut::kAllowCrashConsistentFallback, "boolean")};
  return {
      .name = HC::kClass,
      .superclass = "CIM_Service",
      .properties = {{.name = "Name", .type = "string", .key = true}},
      .methods = {
          {.name = HC::PrepareCut::kMethod, .params = prepare},
          {.name = HC::ExportPart::kMethod,
           .params = {In(HC::kSnapshotID, "string"), In(HC::ExportPart::kExportDirectory, "string"),
                      In(HC::ExportPart::kCopyStorage, "boolean"),
                      In(HC::ExportPart::kBaseReferencePointID, "string"), JobOut()}},
          {.name = HC::RemoveExportPart::kMethod,
           .params = {In(HC::kSnapshotID, "string"),
                      In(HC::RemoveExportPart::kExportDirectory, "string")}},
          {.name = HC::ValidateConvertPart::kMethod, .params = {In(HC::kSnapshotID, "string")}},
          {.name = HC::ConvertPart::kMethod,
           .params = {In(HC::kSnapshotID, "string"), In(HC::kReferencePointID, "string"),
                      JobOut()}},
          {.name = HC::DestroyReferencePointPart::kMethod,
           .params = {In(HC::kReferencePointID, "string")}}}};
}

// Vmgroup_HostCutService: records each call's arguments, answers the script's.
class ScriptedService final : public cim::Provider {
 public:
  explicit ScriptedService(Script* s) : script_(s) {}
  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override {
    return std::vector<cim::Instance>{cim::InstanceBuilder(spec_).Str("Name", "hcs").Build()};
  }
  Result<cim::MethodResult> Invoke(const cim::MethodSpec& method, const cim::ObjectPath&,
                                   const std::map<std::string, cim::Value>& args) override {
    std::lock_guard l(script_->mu);
    auto& got = script_->got[method.name];
    for (const auto& [name, value] : args) got[name] = value.scalar;
    return script_->answer;
  }

 private:
  Script* script_;
  cim::ClassSpec spec_ = ServiceSpec();
};

// Msvm_ConcreteJob: one job, each look taking the script's next state.
class ScriptedJob final : public cim::Provider {
 public:
  explicit ScriptedJob(Script* s) : script_(s) {}
  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override {
    return Status::NotSupported("look at the job by its path");
  }
  Result<cim::Instance> Get(const cim::ObjectPath& path) override {
    std::lock_guard l(script_->mu);
    ++script_->looked;
    const Look look = script_->looks.front();
    if (script_->looks.size() > 1) script_->looks.pop_front();
    if (!look.fails.ok()) return look.fails;
    return cim::InstanceBuilder(spec_)
        .Str(Job::kInstanceID, path.Key(Job::kInstanceID)->value)
        .Int(Job::kJobState, look.state)
        .Int(Job::kPercentComplete, look.percent)
        .Int(Job::kErrorCode, look.error_code)
        .Str(Job::kErrorDescription, look.error)
        .Build();
  }

 private:
  Script* script_;
  cim::ClassSpec spec_{.name = Job::kClass,
                       .properties = {{.name = Job::kInstanceID, .type = "string", .key = true},
                                      {.name = Job::kJobState, .type = "uint16"},
                                      {.name = Job::kPercentComplete, .type = "uint16"},
                                      {.name = Job::kErrorCode, .type = "uint16"},
                                      {.name = Job::kErrorDescription, .type = "string"}}};
};

class CimCutHostTest : public ::testing::Test {
 protected:
  CimCutHostTest() {
    dispatcher_.Register(std::make_unique<ScriptedService>(&script_));
    dispatcher_.Register(std::make_unique<ScriptedJob>(&script_));
    Status s = server_.ListenUnix({.path = dir_ / "db1.sock", .who = [](uid_t, gid_t) {
                                     return cim::Peer{"coordinator", cim::Role::kAdmin, "", ""};
                                   }});
    EXPECT_TRUE(s.ok()) << s.ToString();
    host_ = CimCutHost::Create("unix:" + dir_ / "db1.sock", {}, "host db1").value();
  }
  ~CimCutHostTest() override { server_.Stop(); }

  // The host answers every method with `code`, and `job` as its Job.
  void Answer(uint32_t code, const std::string& job = "", const std::string& why = "") {
    std::lock_guard l(script_.mu);
    script_.answer = {code, {}};
    if (!job.empty()) {
      script_.answer.out.push_back(
          {schema::MethodOut::kJob, "reference",
           cim::Value::Reference({"",
                                  {},
                                  Job::kClass,
                                  {{Job::kInstanceID, cim::KeyBinding::Kind::kString, job, {}}}})});
    }
    if (!why.empty()) {
      script_.answer.out.push_back(
          {schema::MethodOut::kErrorDescription, "string", cim::Value::Scalar(why)});
    }
  }
  void Looks(std::deque<Look> looks) {
    std::lock_guard l(script_.mu);
    script_.looks = std::move(looks);
  }
  std::map<std::string, std::string> Got(const char* method) {
    std::lock_guard l(script_.mu);
    return script_.got[method];
  }
  int Looked() {
    std::lock_guard l(script_.mu);
    return script_.looked;
  }

  testing::TempDir dir_;
  Script script_;
  cim::Dispatcher dispatcher_{schema::kNamespace, "db1"};
  cim::HttpServer server_{[this](const cim::HttpRequest& r) { return dispatcher_.Handle(r); }, {}};
  std::unique_ptr<CimCutHost> host_;
};

constexpr char kId[] = "6f1c3f4e-0a5b-4c7d-9e8f-112233445566";

TEST_F(CimCutHostTest, ExportFollowsTheHostsJobUntilItCompletes) {
  Answer(kRcJobStarted, "job-1");
  Looks(
      {{.percent = 10}, {.percent = 60}, {.state = schema::JobState::kCompleted, .percent = 100}});
  Status s = host_->Export(kId, "/exports/db1", false, "");
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Looked(), 3) << "until it ended, and no longer";
  const auto got = Got(HC::ExportPart::kMethod);
  EXPECT_EQ(got.at(HC::kSnapshotID), kId);
  EXPECT_EQ(got.at(HC::ExportPart::kExportDirectory), "/exports/db1");
  EXPECT_EQ(got.at(HC::ExportPart::kCopyStorage), "false");
  EXPECT_EQ(got.count(HC::ExportPart::kBaseReferencePointID), 0u) << "in full";

  Looks({{.state = schema::JobState::kCompletedWithWarnings}});
  const std::string rp = "0d9c8b7a-6f5e-4d3c-8b2a-192837465564";
  EXPECT_TRUE(host_->Export(kId, "/exports/db1", true, rp).ok()) << "warnings are no failure";
  EXPECT_EQ(Got(HC::ExportPart::kMethod).at(HC::ExportPart::kCopyStorage), "true");
  EXPECT_EQ(Got(HC::ExportPart::kMethod).at(HC::ExportPart::kBaseReferencePointID), rp);
}

TEST_F(CimCutHostTest, AJobThatFailsIsTheStatusTheHostAnswered) {
  Answer(kRcJobStarted, "job-1");
  Looks({{},
         {.state = schema::JobState::kException,
          .error_code = kRcInvalidState,
          .error = "member db-a is in another snapshot operation"}});
  Status busy = host_->Export(kId, "/exports/db1", true, "");
  EXPECT_EQ(busy.code(), Code::kInvalidState) << busy.ToString();
  EXPECT_EQ(busy.message(), "member db-a is in another snapshot operation");

  // Ended by recovery or a cancel: its state says what the missing reason does not.
  Looks({{.state = schema::JobState::kKilled, .error_code = 32768}});
  Status killed = host_->Export(kId, "/exports/db1", true, "");
  EXPECT_EQ(killed.code(), Code::kFailed) << killed.ToString();
  EXPECT_EQ(killed.message(), "its job ended in state 9");
}

TEST_F(CimCutHostTest, ARefusalOrAnExportDoneAtOnceStartsNoWait) {
  Answer(kRcInvalidParameter, "", "ExportDirectory must be an absolute path, not 'db1'");
  Status refused = host_->Export(kId, "db1", true, "");
  EXPECT_EQ(refused.code(), Code::kInvalidArgument) << refused.ToString();
  EXPECT_EQ(refused.message(), "ExportDirectory must be an absolute path, not 'db1'");

  Answer(kRcCompleted);
  EXPECT_TRUE(host_->Export(kId, "/exports/db1", true, "").ok());
  Answer(kRcJobStarted);
  Status no_job = host_->Export(kId, "/exports/db1", true, "");
  EXPECT_EQ(no_job.code(), Code::kFailed) << no_job.ToString();
  EXPECT_NE(no_job.message().find("without its Job"), std::string::npos) << no_job.message();
  EXPECT_EQ(Looked(), 0);
}

// A look that fails is tried again; a host that answers none for longer
// than the step timeout fails the export, well before the job would end.
TEST_F(CimCutHostTest, TheJobIsFollowedThroughAFailedLookButNotPastTheStepTimeout) {
  Answer(kRcCompleted);
  ASSERT_TRUE(
      host_->Prepare({.collection_id = "c", .snapshot_id = kId, .step_timeout = 300ms}).ok());
  EXPECT_EQ(Got(HC::PrepareCut::kMethod).at(HC::PrepareCut::kStepTimeout), "300");
  EXPECT_EQ(Got(HC::PrepareCut::kMethod).at(HC::PrepareCut::kConsistencyLevel), "2");
  ASSERT_TRUE(host_
                  ->Prepare({.collection_id = "c",
                             .snapshot_id = kId,
                             .consistency = catalog::Consistency::kApplication,
                             .fallback = true,
                             .step_timeout = 300ms})
                  .ok());
  EXPECT_EQ(Got(HC::PrepareCut::kMethod).at(HC::PrepareCut::kConsistencyLevel), "1");
  EXPECT_EQ(Got(HC::PrepareCut::kMethod).at(HC::PrepareCut::kAllowCrashConsistentFallback), "true");

  Answer(kRcJobStarted, "job-1");
  Looks(
      {{}, {.fails = Status::Unavailable("restarting")}, {.state = schema::JobState::kCompleted}});
  Status through = host_->Export(kId, "/exports/db1", true, "");
  EXPECT_TRUE(through.ok()) << through.ToString();
  EXPECT_EQ(Looked(), 3);

  Looks({{}, {.fails = Status::Unavailable("gone")}});
  const auto start = Clock::now();
  Status gone = host_->Export(kId, "/exports/db1", true, "");
  EXPECT_FALSE(gone.ok());
  EXPECT_NE(gone.message().find("following its job job-1"), std::string::npos) << gone.message();
  EXPECT_NE(gone.message().find("gone"), std::string::npos) << gone.message();
  EXPECT_GE(Clock::now() - start, 300ms) << "it gave up only once the host was silent that long";
}

TEST_F(CimCutHostTest, RemoveExportAsksTheHostAndKeepsItsRefusal) {
  Answer(kRcCompleted);
  EXPECT_TRUE(host_->RemoveExport(kId, "/exports/db1").ok());
  const auto got = Got(HC::RemoveExportPart::kMethod);
  EXPECT_EQ(got.at(HC::kSnapshotID), kId);
  EXPECT_EQ(got.at(HC::RemoveExportPart::kExportDirectory), "/exports/db1");

  Answer(kRcInvalidState, "", "/exports/db1 holds the export of another snapshot");
  Status other = host_->RemoveExport(kId, "/exports/db1");
  EXPECT_EQ(other.code(), Code::kInvalidState) << other.ToString();
  EXPECT_EQ(other.message(), "/exports/db1 holds the export of another snapshot");
}

// A conversion is a job followed as an export's; its check and the
// reference point's destruction answer at once, the latter naming the
// reference point alone.
TEST_F(CimCutHostTest, AConversionFollowsTheHostsJobAndItsChecksAnswerAtOnce) {
  const std::string rp = "0d9c8b7a-6f5e-4d3c-8b2a-192837465564";
  Answer(kRcCompleted);
  EXPECT_TRUE(host_->ValidateConvert(kId).ok());
  EXPECT_EQ(Got(HC::ValidateConvertPart::kMethod).at(HC::kSnapshotID), kId);

  Answer(kRcJobStarted, "job-1");
  Looks({{}, {.state = schema::JobState::kCompleted, .percent = 100}});
  Status converted = host_->Convert(kId, rp);
  EXPECT_TRUE(converted.ok()) << converted.ToString();
  EXPECT_EQ(Looked(), 2);
  EXPECT_EQ(
      Got(HC::ConvertPart::kMethod),
      (std::map<std::string, std::string>{{HC::kSnapshotID, kId}, {HC::kReferencePointID, rp}}));

  Answer(kRcInvalidState, "", "snapshot s is not the newest of VM db-a");
  Status refused = host_->ValidateConvert(kId);
  EXPECT_EQ(refused.code(), Code::kInvalidState) << refused.ToString();
  EXPECT_EQ(refused.message(), "snapshot s is not the newest of VM db-a");

  Answer(kRcCompleted);
  EXPECT_TRUE(host_->DestroyReferencePoint(rp).ok());
  EXPECT_EQ(Got(HC::DestroyReferencePointPart::kMethod),
            (std::map<std::string, std::string>{{HC::kReferencePointID, rp}}));
}

}  // namespace
}  // namespace vmgroup::remote
