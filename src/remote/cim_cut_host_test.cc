// CimCutHost's export, conversion, backup and apply steps against a
// scripted host: a
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
#include <functional>
#include <mutex>
#include <set>

#include "base/return_codes.h"
#include "cim/dispatcher.h"
#include "cim/http_server.h"
#include "schema/classes.h"
#include "schema/values.h"
#include "testing/temp_dir.h"

namespace vmgroup::remote {
namespace {

using HC = schema::HostCutService;
using BS = schema::BackupService;
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
  // Its backup service's sessions serving, and the disks it lists.
  std::set<std::string> serving;
  std::vector<cim::Instance> disks;
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
           .params = {In(HC::kReferencePointID, "string")}},
          {.name = HC::ValidateApplyPart::kMethod, .params = {In(HC::kSnapshotID, "string")}},
          {.name = HC::PrepareApplyPart::kMethod, .params = {In(HC::kSnapshotID, "string")}},
          {.name = HC::CommitApplyPart::kMethod, .params = {In(HC::kSnapshotID, "string")}},
          {.name = HC::AbortApplyPart::kMethod, .params = {In(HC::kSnapshotID, "string")}}}};
}

cim::ClassSpec BackupServiceSpec() {
  const cim::ParamSpec session = {.name = BS::BeginBackup::kResultingBackupSession,
                                  .type = "reference",
                                  .in = false,
                                  .out = true,
                                  .reference_class = schema::BackupSession::kClass};
  return {
      .name = BS::kClass,
      .superclass = "CIM_Service",
      .properties = {{.name = "Name", .type = "string", .key = true}},
      .methods = {
          {.name = BS::BeginBackup::kMethod,
           .params = {{.name = BS::BeginBackup::kCollection, .type = "reference"},
                      {.name = BS::BeginBackup::kSnapshotCollection, .type = "reference"},
                      {.name = BS::BeginBackup::kBaseReferencePointCollection, .type = "reference"},
                      In(BS::BeginBackup::kIdleTimeout, "uint32"),
                      In(BS::BeginBackup::kTransport, "uint16"),
                      session,
                      JobOut()}},
          {.name = BS::EndBackup::kMethod,
           .params = {{.name = BS::EndBackup::kBackupSession, .type = "reference"}, JobOut()}},
          {.name = BS::GetVirtualDiskChanges::kMethod,
           .params = {{.name = BS::GetVirtualDiskChanges::kBackupSession, .type = "reference"},
                      In(BS::GetVirtualDiskChanges::kVirtualSystemIdentifier, "string"),
                      In(BS::GetVirtualDiskChanges::kDiskIndex, "uint32"),
                      In(BS::GetVirtualDiskChanges::kByteOffset, "uint64"),
                      In(BS::GetVirtualDiskChanges::kByteLength, "uint64")}}}};
}

// Vmgroup_HostCutService, or with `spec` another service: records each
// call's arguments (a reference's key values), answers the script's.
class ScriptedService final : public cim::Provider {
 public:
  explicit ScriptedService(Script* s, cim::ClassSpec spec = ServiceSpec())
      : script_(s), spec_(std::move(spec)) {}
  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override {
    return std::vector<cim::Instance>{cim::InstanceBuilder(spec_).Str("Name", "hcs").Build()};
  }
  Result<cim::MethodResult> Invoke(const cim::MethodSpec& method, const cim::ObjectPath&,
                                   const std::map<std::string, cim::Value>& args) override {
    std::lock_guard l(script_->mu);
    auto& got = script_->got[method.name];
    for (const auto& [name, value] : args) {
      got[name] = value.refs.empty() || value.refs[0].keys.empty() ? value.scalar
                                                                   : value.refs[0].keys[0].value;
    }
    return script_->answer;
  }

 private:
  Script* script_;
  cim::ClassSpec spec_;
};

// Vmgroup_BackupSession (those serving) and Vmgroup_BackupDisk (the
// script's disks).
class ScriptedSessions final : public cim::Provider {
 public:
  explicit ScriptedSessions(Script* s) : script_(s) {}
  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override {
    std::lock_guard l(script_->mu);
    std::vector<cim::Instance> out;
    for (const auto& id : script_->serving) {
      out.push_back(
          cim::InstanceBuilder(spec_).Str(schema::BackupSession::kInstanceID, id).Build());
    }
    return out;
  }

 private:
  Script* script_;
  cim::ClassSpec spec_{
      .name = schema::BackupSession::kClass,
      .properties = {{.name = schema::BackupSession::kInstanceID, .type = "string", .key = true}}};
};

cim::ClassSpec DiskSpec() {
  using D = schema::BackupDisk;
  return {.name = D::kClass,
          .properties = {{.name = D::kInstanceID, .type = "string", .key = true},
                         {.name = D::kSessionID, .type = "string"},
                         {.name = D::kVirtualSystemIdentifier, .type = "string"},
                         {.name = D::kVirtualSystemName, .type = "string"},
                         {.name = D::kDiskIndex, .type = "uint32"},
                         {.name = D::kURI, .type = "string"},
                         {.name = D::kSize, .type = "uint64"},
                         {.name = D::kMetadataContext, .type = "string"}}};
}

class ScriptedDisks final : public cim::Provider {
 public:
  explicit ScriptedDisks(Script* s) : script_(s) {}
  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override {
    std::lock_guard l(script_->mu);
    return script_->disks;
  }

 private:
  Script* script_;
  cim::ClassSpec spec_ = DiskSpec();
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
    dispatcher_.Register(std::make_unique<ScriptedService>(&script_, BackupServiceSpec()));
    dispatcher_.Register(std::make_unique<ScriptedSessions>(&script_));
    dispatcher_.Register(std::make_unique<ScriptedDisks>(&script_));
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
  // The answer also names backup session `id`, as BeginBackup's does.
  void AnswerSession(const std::string& id) {
    std::lock_guard l(script_.mu);
    script_.answer.out.push_back(
        {BS::BeginBackup::kResultingBackupSession, "reference",
         cim::Value::Reference(
             {"",
              {},
              schema::BackupSession::kClass,
              {{schema::BackupSession::kInstanceID, cim::KeyBinding::Kind::kString, id, {}}}})});
  }
  // Disk `index` of VM `vm`, served by session `session`.
  void Disk(const std::string& session, const std::string& vm, int index) {
    using D = schema::BackupDisk;
    std::lock_guard l(script_.mu);
    script_.disks.push_back(
        cim::InstanceBuilder(DiskSpec())
            .Str(D::kInstanceID, session + "/" + vm + "/" + std::to_string(index))
            .Str(D::kSessionID, session)
            .Str(D::kVirtualSystemIdentifier, vm)
            .Str(D::kVirtualSystemName, "name-" + vm)
            .Int(D::kDiskIndex, index)
            .Str(D::kURI, "nbd+unix:///disk" + std::to_string(index) + "?socket=/" + vm)
            .Int(D::kSize, 1 << 20)
            .Str(D::kMetadataContext, "qemu:dirty-bitmap:rp")
            .Build());
  }
  void Serving(std::set<std::string> ids) {
    std::lock_guard l(script_.mu);
    script_.serving = std::move(ids);
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

// Each step of an apply's part names the part and answers at once, the
// host's refusal kept.
TEST_F(CimCutHostTest, TheStepsOfAnApplysPartNameItAndKeepTheHostsRefusal) {
  const std::vector<std::pair<const char*, std::function<Status()>>> steps = {
      {HC::ValidateApplyPart::kMethod, [&] { return host_->ValidateApply(kId); }},
      {HC::PrepareApplyPart::kMethod, [&] { return host_->PrepareApply(kId); }},
      {HC::CommitApplyPart::kMethod, [&] { return host_->CommitApply(kId); }},
      {HC::AbortApplyPart::kMethod, [&] { return host_->AbortApply(kId); }}};
  for (const auto& [method, step] : steps) {
    SCOPED_TRACE(method);
    Answer(kRcCompleted);
    EXPECT_TRUE(step().ok());
    EXPECT_EQ(Got(method), (std::map<std::string, std::string>{{HC::kSnapshotID, kId}}));
    Answer(kRcInvalidState, "", "VM db-a has other disks than at snapshot s");
    Status refused = step();
    EXPECT_EQ(refused.code(), Code::kInvalidState) << refused.ToString();
    EXPECT_EQ(refused.message(), "VM db-a has other disks than at snapshot s");
  }
}

// A host's part of a backup session: the part named, the session awaited
// until the host lists it, its disks gathered by VM.
TEST_F(CimCutHostTest, BeginBackupNamesThePartAndAnswersOnceTheHostServesIt) {
  Answer(kRcJobStarted, "job-1");
  AnswerSession("hs-1");
  Looks({{}});  // the job runs on: it lasts as long as the session
  Disk("hs-1", "u1", 1);
  Disk("hs-1", "u1", 0);
  Disk("hs-1", "u2", 0);
  Disk("other", "u3", 0);
  Serving({"hs-1"});
  auto s = host_->BeginBackup({.collection_id = "c",
                               .snapshot_id = kId,
                               .incremental_from = "rp",
                               .transport = engine::BackupTransport::kTcp,
                               .idle_timeout = 90s});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->id, "hs-1");
  const auto got = Got(BS::BeginBackup::kMethod);
  EXPECT_EQ(got.at(BS::BeginBackup::kCollection), "c");
  EXPECT_EQ(got.at(BS::BeginBackup::kSnapshotCollection), kId);
  EXPECT_EQ(got.at(BS::BeginBackup::kBaseReferencePointCollection), "rp");
  EXPECT_EQ(got.at(BS::BeginBackup::kIdleTimeout), "90");
  EXPECT_EQ(got.at(BS::BeginBackup::kTransport), "2");
  ASSERT_EQ(s->members.size(), 2u) << "the other session's disk is not this one's";
  EXPECT_EQ(s->members[0].vm_id, "u1");
  EXPECT_EQ(s->members[0].vm_name, "name-u1");
  ASSERT_EQ(s->members[0].disks.size(), 2u);
  EXPECT_EQ(s->members[0].disks[1].index, 0);
  EXPECT_EQ(s->members[0].disks[1].uri, "nbd+unix:///disk0?socket=/u1");
  EXPECT_EQ(s->members[0].disks[1].size, uint64_t{1} << 20);
  EXPECT_EQ(s->members[0].disks[1].context, "qemu:dirty-bitmap:rp");
  EXPECT_TRUE(*host_->BackupServing("hs-1"));
  EXPECT_FALSE(*host_->BackupServing("hs-2"));
}

TEST_F(CimCutHostTest, ABackupWhoseJobFailsBeforeItServesIsTheHostsError) {
  Answer(kRcJobStarted, "job-1");
  AnswerSession("hs-1");
  Looks({{}, {.state = schema::JobState::kException, .error_code = 32768, .error = "no room"}});
  auto s = host_->BeginBackup({.collection_id = "c", .snapshot_id = kId});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("no room"), std::string::npos) << s.status().ToString();

  Answer(kRcInvalidState, "", "VM u1 is busy");
  EXPECT_EQ(host_->BeginBackup({.collection_id = "c", .snapshot_id = kId}).status().code(),
            Code::kInvalidState)
      << "a refusal, kept";
}

TEST_F(CimCutHostTest, EndBackupFollowsItsJobAndIsDoneForASessionGoneAlready) {
  Answer(kRcJobStarted, "job-1");
  Looks({{}, {.state = schema::JobState::kCompleted}});
  Serving({"hs-1"});
  EXPECT_TRUE(host_->EndBackup("hs-1").ok());
  EXPECT_EQ(Got(BS::EndBackup::kMethod).at(BS::EndBackup::kBackupSession), "hs-1");

  Answer(kRcInvalidParameter, "", "no backup session has id hs-1");
  EXPECT_EQ(host_->EndBackup("hs-1").code(), Code::kInvalidArgument) << "still listed: refused";
  Serving({});
  EXPECT_TRUE(host_->EndBackup("hs-1").ok()) << "ended by itself meanwhile";
}

TEST_F(CimCutHostTest, TheChangesOfADiskAreTheHostsRanges) {
  using C = BS::GetVirtualDiskChanges;
  {
    std::lock_guard l(script_.mu);
    script_.answer = {kRcCompleted,
                      {{C::kChangedByteOffsets, "uint64", cim::Value::Array({"0", "131072"})},
                       {C::kChangedByteLengths, "uint64", cim::Value::Array({"65536", "4096"})},
                       {C::kProcessedByteLength, "uint64", cim::Value::Scalar("1048576")}}};
  }
  auto c = host_->BackupChanges("hs-1", "u1", 1, 0, 0);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->ranges, (std::vector<storage::ByteRange>{{0, 65536}, {131072, 4096}}));
  EXPECT_EQ(c->processed, uint64_t{1} << 20);
  const auto got = Got(C::kMethod);
  EXPECT_EQ(got.at(C::kBackupSession), "hs-1");
  EXPECT_EQ(got.at(C::kVirtualSystemIdentifier), "u1");
  EXPECT_EQ(got.at(C::kDiskIndex), "1");
  Answer(kRcInvalidParameter, "", "backup session hs-1 serves no VM u9");
  EXPECT_EQ(host_->BackupChanges("hs-1", "u9", 0, 0, 0).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace vmgroup::remote
