// The services check what clients send where it enters: names, numbers and
// required arguments, each refused with the method's Invalid parameter code
// and the reason, with nothing made. Driven as a client drives them, through
// the dispatcher, over a real engine on a fresh state directory (no VM is
// started: every call here is refused or only recorded). Our own XML writer
// cannot put a control character or a byte that is not UTF-8 into a request;
// a careless or hostile client can, and kRaw stands in for such bytes.
#include "services/providers.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "base/validate.h"
#include "cim/dispatcher.h"
#include "cim/xml_reader.h"
#include "engine/export_layout.h"
#include "engine/export_manifest.h"
#include "services/common.h"
#include "testing/huge_pages_env.h"
#include "testing/temp_dir.h"

namespace vmgroup::services {
namespace {

// Where a request carries the bytes Call's `raw` gives, written as they are.
constexpr std::string_view kRaw = "@RAW@";

cim::OutParam Str(const std::string& name, std::string value) {
  return {name, "string", cim::Value::Scalar(std::move(value))};
}

cim::OutParam Ref(const std::string& name, cim::ObjectPath p) {
  return {name, "reference", cim::Value::Reference(std::move(p))};
}

// An embedded instance of `cls` with string properties, as clients send settings.
std::string Embedded(const std::string& cls,
                     const std::vector<std::pair<std::string, std::string>>& props) {
  cim::Instance inst{cls, {}};
  for (const auto& [name, value] : props) {
    inst.properties.push_back({name, "string", false, cim::Value::Scalar(value)});
  }
  return cim::InstanceXml(inst);
}

class ProvidersTest : public ::testing::Test {
 protected:
  ProvidersTest() {
    // TCG named: these tests start no QEMU, and auto would probe KVM (accel_probe.h).
    // The host's huge page pool is the test's (env_); all else is the host's.
    engine_ = std::move(engine::Engine::Open({.state_dir = dir_ / "state",
                                              .env = &env_,
                                              .qemu = {.accel = hypervisor::qemu::Accel::kTcg}}))
                  .value();
    jobs_ = std::make_unique<JobManager>(Env::Default(), &engine_->catalog());
    Register(dispatcher_, {engine_.get(), jobs_.get(), "testhost", "tcg"});
  }

  // Sends a CIM-XML request as a client would; the answer, parsed, a CIM
  // error included. `object`: "" for an intrinsic call, ":<class>" for a
  // method of a class.
  cim::Response Ask(const std::string& method, const std::string& object, std::string body,
                    const std::string& raw = "") {
    for (size_t at; (at = body.find(kRaw)) != std::string::npos;)
      body.replace(at, kRaw.size(), raw);
    cim::HttpRequest r{"POST",
                       "/cimom",
                       {{"CIMOperation", "MethodCall"},
                        {"CIMMethod", method},
                        {"CIMObject", std::string(kNamespace) + object}},
                       body,
                       {"test", cim::Role::kAdmin, "", ""}};
    auto parsed = cim::ParseResponse(dispatcher_.Handle(r).body);
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
    return parsed.ok() ? *parsed : cim::Response{};
  }
  // Ask, expecting no CIM error.
  cim::Response Send(const std::string& method, const std::string& object, std::string body,
                     const std::string& raw = "") {
    cim::Response r = Ask(method, object, std::move(body), raw);
    EXPECT_FALSE(r.error) << r.description;
    return r;
  }
  // EnumerateInstances of class `cls`, expecting no CIM error.
  cim::Response Enumerate(const std::string& cls) {
    return Send("EnumerateInstances", "",
                cim::IMethodCall("1", "EnumerateInstances", NamespaceParts(),
                                 {{"ClassName", "", cim::Value::Reference({"", {}, cls, {}})}}));
  }
  // An intrinsic operation with one object path argument, e.g.
  // ("GetInstance", "InstanceName", path).
  cim::Response AskAbout(const std::string& op, const std::string& param,
                         const cim::ObjectPath& path, std::vector<cim::OutParam> more = {}) {
    more.insert(more.begin(), {param, "", cim::Value::Reference(path)});
    return Ask(op, "", cim::IMethodCall("1", op, NamespaceParts(), more));
  }

  // Invokes `method` of the singleton service `cls`, with `raw` for kRaw.
  cim::Response Call(const std::string& cls, const std::string& method,
                     const std::vector<cim::OutParam>& args, const std::string& raw = "") {
    cim::Response names =
        Send("EnumerateInstanceNames", "",
             cim::IMethodCall("1", "EnumerateInstanceNames", NamespaceParts(),
                              {{"ClassName", "", cim::Value::Reference({"", {}, cls, {}})}}));
    if (names.paths.empty()) {
      ADD_FAILURE() << "no " << cls;
      return {};
    }
    cim::ObjectPath target = names.paths[0];
    target.namespace_ = NamespaceParts();
    return Send(method, ":" + cls, cim::MethodCall("1", target, method, args), raw);
  }
  static std::string Why(const cim::Response& r) {
    const cim::Param* p = r.Out("Vmgroup_ErrorDescription");
    return p ? p->value.scalar : "";
  }

  // DefineSystem of a VM without disks: `system` settings, `resources` as sent.
  cim::Response DefineSystem(const std::vector<std::pair<std::string, std::string>>& system,
                             const std::vector<std::string>& resources = {},
                             const std::string& raw = "") {
    std::vector<cim::OutParam> args = {
        Str("SystemSettings", Embedded("Msvm_VirtualSystemSettingData", system))};
    if (!resources.empty()) {
      args.push_back({"ResourceSettings", "string", cim::Value::Array(resources)});
    }
    return Call("Msvm_VirtualSystemManagementService", "DefineSystem", args, raw);
  }

  // A coordinator's snapshot `id` of a group of VM "db-a" (off: no QEMU
  // starts), taken on this host step by step as its part (`prepare`: more
  // arguments of PrepareCut): the VM's id.
  std::string CommittedPart(const std::string& id, const std::vector<cim::OutParam>& prepare = {}) {
    auto vm = engine_->vms().Define({.name = "db-a", .disks = {engine::DiskSpec::New(1 << 20)}});
    EXPECT_TRUE(vm.ok()) << vm.status().ToString();
    cim::Response made = Call("Msvm_CollectionManagementService", "DefineCollection", {});
    EXPECT_EQ(made.return_value, 0u) << Why(made);
    if (!vm.ok() || made.return_value != 0) return "";
    const cim::ObjectPath group = made.Out("DefinedCollection")->value.refs.at(0);
    cim::Response added = Call("Msvm_CollectionManagementService", "AddMember",
                               {Ref("Member", VmPath(*vm)), Ref("Collection", group)});
    EXPECT_EQ(added.return_value, 0u) << Why(added);
    std::vector<cim::OutParam> prepare_args = prepare;
    prepare_args.push_back(Ref("Collection", group));
    for (const auto& [method, more] :
         std::vector<std::pair<const char*, std::vector<cim::OutParam>>>{
             {"PrepareCut", prepare_args},
             {"PauseCut",
              {{"Lease", "uint32", cim::Value::Scalar("5000")},
               {"CutAtOnce", "boolean", cim::Value::Scalar("true")}}},
             {"ResumeCut", {}},
             {"CommitCut", {}}}) {
      std::vector<cim::OutParam> args = more;
      args.insert(args.begin(), Str("SnapshotID", id));
      cim::Response r = Call("Vmgroup_HostCutService", method, args);
      EXPECT_EQ(r.return_value, 0u) << method << ": " << Why(r);
    }
    return *vm;
  }
  // The job `started` answered with (4096), once it ended (10 s at most).
  catalog::JobRecord Ended(const cim::Response& started) {
    EXPECT_EQ(started.return_value, kRcJobStarted) << Why(started);
    const cim::Param* job = started.Out("Job");
    if (!job || job->value.refs.empty() || !job->value.refs[0].Key("InstanceID")) return {};
    const std::string job_id = job->value.refs[0].Key("InstanceID")->value;
    for (int i = 0; i < 1000 && jobs_->Get(job_id)->state == catalog::JobState::kRunning; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return jobs_->Get(job_id).value();
  }

  testing::TempDir dir_;
  testing::HugePagesEnv env_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<JobManager> jobs_;
  cim::Dispatcher dispatcher_{kNamespace, "testhost"};
};

// The daemon's resolved accelerator, read-only on the management service.
TEST_F(ProvidersTest, TheManagementServiceSaysWhichAcceleratorRunsVms) {
  using VSMS = schema::VirtualSystemManagementService;
  cim::Response r = Enumerate(VSMS::kClass);
  ASSERT_EQ(r.instances.size(), 1u);
  const cim::Property* accel = r.instances[0].instance.Find(VSMS::kVmgroupAccelerator);
  ASSERT_NE(accel, nullptr);
  EXPECT_EQ(accel->value.scalar, "tcg");
}

TEST_F(ProvidersTest, DefineSystemRefusesBadNamesAndNumbersAndMakesNothing) {
  const std::string too_long(kMaxNameBytes + 1, 'x');
  for (const std::string& name :
       {std::string(""), std::string("db\n1"), std::string("\x1b[2Jdb"), std::string("db\xff"),
        std::string("db\xC2\x9B"), std::string("db\x7f"), std::string(" db"), too_long}) {
    cim::Response r = DefineSystem({{"ElementName", std::string(kRaw)}}, {}, name);
    EXPECT_EQ(r.return_value, kRcBInvalidParameter) << Printable(name);
    EXPECT_NE(Why(r).find("VM name (ElementName)"), std::string::npos) << Why(r);
    EXPECT_TRUE(IsValidUtf8(Why(r)) && Why(r).find('\x1b') == std::string::npos) << Why(r);
  }
  auto memory = [](const std::string& mib) {
    return Embedded("Msvm_MemorySettingData", {{"VirtualQuantity", mib}});
  };
  auto cpus = [](const std::string& n) {
    return Embedded("Msvm_ProcessorSettingData", {{"VirtualQuantity", n}});
  };
  // Beyond what a definition holds: refused, never cut to fit.
  for (const std::string& bad : {memory("4294967296"), memory("64abc"), memory("-5"),
                                 memory("99999999999999999999"), cpus("2147483648"), cpus("")}) {
    cim::Response r = DefineSystem({{"ElementName", "db"}}, {bad});
    EXPECT_EQ(r.return_value, kRcBInvalidParameter) << bad;
    EXPECT_NE(Why(r).find("must be a positive number"), std::string::npos) << Why(r);
  }
  cim::Response both = DefineSystem(
      {{"ElementName", "db"}},
      {Embedded("Msvm_StorageAllocationSettingData",
                {{"HostResource", "/srv/db.qcow2"}, {"Vmgroup_NewSizeBytes", "16777216"}})});
  EXPECT_EQ(both.return_value, kRcBInvalidParameter);
  EXPECT_NE(Why(both).find("either one HostResource"), std::string::npos) << Why(both);
  cim::Response size = DefineSystem(
      {{"ElementName", "db"}},
      {Embedded("Msvm_StorageAllocationSettingData", {{"Vmgroup_NewSizeBytes", "16m"}})});
  EXPECT_EQ(size.return_value, kRcBInvalidParameter);
  EXPECT_NE(Why(size).find("disk 0: Vmgroup_NewSizeBytes"), std::string::npos) << Why(size);
  cim::Response append = DefineSystem(
      {{"ElementName", "db"}, {"Vmgroup_KernelCommandLine", std::string(kRaw)}}, {}, "quiet\x1b");
  EXPECT_EQ(append.return_value, kRcBInvalidParameter);
  EXPECT_NE(Why(append).find("Vmgroup_KernelCommandLine"), std::string::npos) << Why(append);
  EXPECT_TRUE(engine_->catalog().ListVms()->empty()) << "nothing half-made";

  cim::Response good =
      DefineSystem({{"ElementName", "db (prod) \xC3\xA4"}}, {memory("64"), cpus("2")});
  EXPECT_EQ(good.return_value, 0u) << Why(good);
  auto vms = engine_->catalog().ListVms();
  ASSERT_EQ(vms->size(), 1u);
  EXPECT_EQ((*vms)[0].name, "db (prod) \xC3\xA4");
  EXPECT_EQ((*vms)[0].config.memory_mib, 64);
  EXPECT_EQ((*vms)[0].config.vcpus, 2);
}

// Vmgroup_HugePages on the memory settings: kept with the VM and shown on
// its settings; refused, with nothing made, when the host lacks the pages.
TEST_F(ProvidersTest, DefineSystemPutsRamOnHugePagesOnlyWhenTheHostHasThem) {
  auto memory = [](const std::string& mib, const std::string& huge) {
    return Embedded("Msvm_MemorySettingData",
                    {{"VirtualQuantity", mib}, {"Vmgroup_HugePages", huge}});
  };
  env_.Set(/*pool=*/10, /*free=*/10);
  cim::Response few = DefineSystem({{"ElementName", "db"}}, {memory("128", "true")});
  EXPECT_EQ(few.return_value, kRcBNotAvailable);
  EXPECT_NE(Why(few).find("needs 64 free 2 MiB pages and the host has 10 free"), std::string::npos)
      << Why(few);
  EXPECT_NE(Why(few).find("sysctl vm.nr_hugepages=64"), std::string::npos) << Why(few);
  cim::Response odd = DefineSystem({{"ElementName", "db"}}, {memory("127", "true")});
  EXPECT_EQ(odd.return_value, kRcBInvalidParameter);
  EXPECT_NE(Why(odd).find("multiple of 2 MiB"), std::string::npos) << Why(odd);
  cim::Response word = DefineSystem({{"ElementName", "db"}}, {memory("128", "yes")});
  EXPECT_EQ(word.return_value, kRcBInvalidParameter);
  EXPECT_NE(Why(word).find("Vmgroup_HugePages must be true or false"), std::string::npos)
      << Why(word);
  EXPECT_TRUE(engine_->catalog().ListVms()->empty()) << "nothing half-made";

  env_.Set(/*pool=*/64, /*free=*/64);
  cim::Response good = DefineSystem({{"ElementName", "db"}}, {memory("128", "true")});
  EXPECT_EQ(good.return_value, 0u) << Why(good);
  cim::Response plain = DefineSystem({{"ElementName", "web"}}, {memory("128", "false")});
  EXPECT_EQ(plain.return_value, 0u) << Why(plain);
  // VM name -> its Vmgroup_HugePages, as CIM-XML writes it.
  std::map<std::string, std::string> shown;
  using VSSD = schema::VirtualSystemSettingData;
  cim::Response settings = Enumerate(VSSD::kClass);
  for (const auto& i : settings.instances) {
    const cim::Property* name = i.instance.Find(VSSD::kElementName);
    const cim::Property* huge = i.instance.Find(VSSD::kVmgroupHugePages);
    if (name && huge) shown[name->value.scalar] = huge->value.scalar;
  }
  EXPECT_EQ(shown, (std::map<std::string, std::string>{{"db", "TRUE"}, {"web", "FALSE"}}));
}

TEST_F(ProvidersTest, GroupNamesAndReferencesAreChecked) {
  const char* cms = "Msvm_CollectionManagementService";
  cim::Response bad =
      Call(cms, "DefineCollection", {Str("Name", std::string(kRaw))}, "web\x1b]0;owned\x07");
  EXPECT_EQ(bad.return_value, kRcBInvalidParameter);
  EXPECT_NE(Why(bad).find("group name (Name)"), std::string::npos) << Why(bad);
  EXPECT_EQ(Why(bad).find('\x1b'), std::string::npos) << "the reason is printable";
  EXPECT_EQ(Call(cms, "DefineCollection", {Str("Name", "")}).return_value, kRcBInvalidParameter);
  EXPECT_TRUE(engine_->catalog().ListCollections()->empty());

  // Left out, the name is Hyper-V's default.
  cim::Response made = Call(cms, "DefineCollection", {});
  ASSERT_EQ(made.return_value, 0u) << Why(made);
  const cim::ObjectPath group = made.Out("DefinedCollection")->value.refs.at(0);
  for (const std::string& name : {std::string("\xC0\xAF"), std::string("a\tb"), std::string("")}) {
    cim::Response r = Call(cms, "RenameCollection",
                           {Ref("Collection", group), Str("NewName", std::string(kRaw))}, name);
    EXPECT_EQ(r.return_value, kRcBInvalidParameter) << Printable(name);
  }
  cim::Response no_name = Call(cms, "RenameCollection", {Ref("Collection", group)});
  EXPECT_EQ(no_name.return_value, kRcBInvalidParameter);
  EXPECT_NE(Why(no_name).find("NewName is required"), std::string::npos) << Why(no_name);
  EXPECT_EQ(engine_->catalog().ListCollections()->at(0).name, "New VM Group");

  for (const char* method : {"DestroyCollection", "RenameCollection", "AddMember"}) {
    cim::Response r = Call(cms, method, {});
    EXPECT_EQ(r.return_value, kRcBInvalidParameter) << method;
    EXPECT_NE(Why(r).find(std::string(method) == "AddMember" ? "Member" : "Collection"),
              std::string::npos)
        << method << ": " << Why(r);
  }
  cim::Response by_id = Call(
      cms, "RemoveMemberById",
      {Ref("Member", VmPath("00000000-0000-0000-0000-000000000001")), Str("CollectionId", "")});
  EXPECT_EQ(by_id.return_value, kRcBInvalidParameter);
  EXPECT_NE(Why(by_id).find("CollectionId must not be empty"), std::string::npos) << Why(by_id);
  cim::Response import = Call(cms, "Vmgroup_ImportCollection", {Str("ImportDirectory", "")});
  EXPECT_EQ(import.return_value, kRcBInvalidParameter);
  EXPECT_NE(Why(import).find("ImportDirectory"), std::string::npos) << Why(import);
}

// A host's part of a snapshot across hosts: each step's arguments checked
// where they enter; the steps themselves are tested in engine/host_cuts_test
// and, on QEMU, tests/integration/host_cut_test.
TEST_F(ProvidersTest, HostCutStepsCheckTheirArguments) {
  const char* hcs = "Vmgroup_HostCutService";
  for (const char* method :
       {"PrepareCut", "PauseCut", "Cut", "ResumeCut", "CommitCut", "AbortCut", "ExportPart",
        "RemoveExportPart", "ValidateConvertPart", "ConvertPart", "ValidateApplyPart",
        "PrepareApplyPart", "CommitApplyPart", "AbortApplyPart"}) {
    cim::Response r = Call(hcs, method, {});
    EXPECT_EQ(r.return_value, kRcInvalidParameter) << method;
    EXPECT_NE(Why(r).find("SnapshotID is required"), std::string::npos) << method << ": " << Why(r);
  }
  const std::string id = "6f1c3f4e-0a5b-4c7d-9e8f-112233445566";
  const auto lease = [](const std::string& ms) {
    return cim::OutParam{"Lease", "uint32", cim::Value::Scalar(ms)};
  };
  for (const auto& [args, why] : std::vector<std::pair<std::vector<cim::OutParam>, std::string>>{
           {{Str("SnapshotID", id)}, "Lease is required"},
           {{Str("SnapshotID", id), lease("0")}, "Lease must be from 1 to 60000 milliseconds"},
           {{Str("SnapshotID", id), lease("60001")}, "not 60001"}}) {
    cim::Response r = Call(hcs, "PauseCut", args);
    EXPECT_EQ(r.return_value, kRcInvalidParameter) << why;
    EXPECT_NE(Why(r).find(why), std::string::npos) << Why(r);
  }
  cim::Response unknown = Call(hcs, "Cut", {Str("SnapshotID", id)});
  EXPECT_NE(unknown.return_value, 0u);
  EXPECT_NE(Why(unknown).find("no part of snapshot " + id), std::string::npos) << Why(unknown);
  EXPECT_EQ(Call(hcs, "AbortCut", {Str("SnapshotID", id)}).return_value, 0u)
      << "nothing to take back";

  cim::Response no_group = Call(hcs, "PrepareCut", {Str("SnapshotID", id)});
  EXPECT_EQ(no_group.return_value, kRcInvalidParameter);
  EXPECT_NE(Why(no_group).find("Collection"), std::string::npos) << Why(no_group);
  cim::Response made = Call("Msvm_CollectionManagementService", "DefineCollection", {});
  ASSERT_EQ(made.return_value, 0u) << Why(made);
  const cim::ObjectPath group = made.Out("DefinedCollection")->value.refs.at(0);
  const auto prepare = [&](std::vector<cim::OutParam> more) {
    more.insert(more.begin(), {Str("SnapshotID", id), Ref("Collection", group)});
    return Call(hcs, "PrepareCut", more);
  };
  cim::Response standard = prepare({{"SnapshotType", "uint16", cim::Value::Scalar("1")}});
  EXPECT_EQ(standard.return_value, kRcNotSupported);
  EXPECT_NE(Why(standard).find("cannot span hosts"), std::string::npos) << Why(standard);
  cim::Response level = prepare({{"ConsistencyLevel", "uint16", cim::Value::Scalar("3")}});
  EXPECT_EQ(level.return_value, kRcInvalidParameter);
  EXPECT_NE(Why(level).find("ConsistencyLevel must be 0, 1 or 2"), std::string::npos) << Why(level);
  cim::Response step = prepare({{"StepTimeout", "uint32", cim::Value::Scalar("0")}});
  EXPECT_EQ(step.return_value, kRcInvalidParameter);
  EXPECT_NE(Why(step).find("StepTimeout must be from 1 to 600000"), std::string::npos) << Why(step);
  cim::Response empty = prepare({});
  EXPECT_EQ(empty.return_value, kRcInvalidState);
  EXPECT_NE(Why(empty).find("has no VMs"), std::string::npos) << Why(empty);
  EXPECT_TRUE(engine_->catalog().ListSnapshots()->empty());
}

// PrepareCut's ConsistencyLevel 1 asks for the part application
// consistent (its VM is off here: at rest, nothing to freeze).
TEST_F(ProvidersTest, PrepareCutAsksThePartForTheConsistencyLevelItNames) {
  const std::string id = "6f1c3f4e-0a5b-4c7d-9e8f-112233445566";
  ASSERT_FALSE(
      CommittedPart(id, {{"ConsistencyLevel", "uint16", cim::Value::Scalar("1")},
                         {"AllowCrashConsistentFallback", "boolean", cim::Value::Scalar("true")}})
          .empty());
  auto s = engine_->catalog().GetSnapshot(id);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->consistency, catalog::Consistency::kApplication);
  EXPECT_TRUE(s->coordinated);
}

// ExportPart checks where it enters what it can, so that a part it cannot
// export starts no job: SnapshotID, and an absolute ExportDirectory (the
// coordinator's DIR/<host>); RemoveExportPart the same, and answers at once.
TEST_F(ProvidersTest, ExportPartRefusesARelativeDirectoryAndStartsNoJob) {
  const char* hcs = "Vmgroup_HostCutService";
  const std::string id = "6f1c3f4e-0a5b-4c7d-9e8f-112233445566";
  for (const char* method : {"ExportPart", "RemoveExportPart"}) {
    cim::Response none = Call(hcs, method, {Str("SnapshotID", id)});
    EXPECT_EQ(none.return_value, kRcInvalidParameter) << method;
    EXPECT_NE(Why(none).find("ExportDirectory is required"), std::string::npos)
        << method << ": " << Why(none);
    cim::Response relative =
        Call(hcs, method, {Str("SnapshotID", id), Str("ExportDirectory", "exports/db1")});
    EXPECT_EQ(relative.return_value, kRcInvalidParameter) << method;
    EXPECT_NE(Why(relative).find("ExportDirectory must be an absolute path, not 'exports/db1'"),
              std::string::npos)
        << method << ": " << Why(relative);
    cim::Response control =
        Call(hcs, method, {Str("SnapshotID", id), Str("ExportDirectory", "/tmp/vmg-never\n")});
    EXPECT_EQ(control.return_value, kRcInvalidParameter) << method;
  }
  cim::Response base = Call(hcs, "ExportPart",
                            {Str("SnapshotID", id), Str("ExportDirectory", dir_ / "exports/db1"),
                             Str("BaseReferencePointID", "monday")});
  EXPECT_EQ(base.return_value, kRcInvalidParameter);
  EXPECT_NE(Why(base).find("BaseReferencePointID 'monday' is not a GUID"), std::string::npos)
      << Why(base);
  EXPECT_TRUE(jobs_->List()->empty()) << "no job was started";
  EXPECT_FALSE(std::filesystem::exists(dir_ / "exports"));
  EXPECT_EQ(
      Call(hcs, "RemoveExportPart", {Str("SnapshotID", id), Str("ExportDirectory", dir_ / "x")})
          .return_value,
      0u)
      << "no export there: nothing to remove";
}

// A coordinator's export of this host's part, as it drives it: the part
// taken step by step (its VM off: no QEMU starts), ExportPart a job that
// writes the export and names the part and its VM as affected, and
// RemoveExportPart taking that export back.
TEST_F(ProvidersTest, ExportPartExportsACommittedPartInAJobAndRemoveExportPartTakesItBack) {
  const char* hcs = "Vmgroup_HostCutService";
  const std::string id = "6f1c3f4e-0a5b-4c7d-9e8f-112233445566";
  const cim::OutParam snapshot = Str("SnapshotID", id);
  const std::string vm = CommittedPart(id);
  ASSERT_FALSE(vm.empty());

  // ExportPart into `dir`, `more` added; its job once it ended.
  const auto export_part = [&](const std::string& dir,
                               std::vector<cim::OutParam> more) -> catalog::JobRecord {
    more.insert(more.begin(), {snapshot, Str("ExportDirectory", dir)});
    return Ended(Call(hcs, "ExportPart", more));
  };
  const std::string dir = dir_ / "exports/db1";
  const std::string disk = dir + "/" + engine::ExportDiskFile(vm, 0);
  catalog::JobRecord job = export_part(dir, {});
  ASSERT_EQ(job.state, catalog::JobState::kCompleted) << job.error_description;
  EXPECT_EQ(job.type, 62);
  EXPECT_EQ(job.description, "Export this host's part of snapshot " + id + " to " + dir);
  EXPECT_EQ(job.percent, 100);
  EXPECT_EQ(job.affected, (std::vector<std::string>{"Msvm_SnapshotCollection:" + id,
                                                    "Msvm_ComputerSystem:" + vm}));
  EXPECT_TRUE(std::filesystem::exists(dir + "/" + engine::kManifestFile));
  EXPECT_TRUE(std::filesystem::exists(disk));

  cim::Response removed = Call(hcs, "RemoveExportPart", {snapshot, Str("ExportDirectory", dir)});
  ASSERT_EQ(removed.return_value, 0u) << Why(removed);
  EXPECT_FALSE(std::filesystem::exists(dir)) << "nothing else was in it";

  job = export_part(dir, {{"CopyStorage", "boolean", cim::Value::Scalar("false")}});
  ASSERT_EQ(job.state, catalog::JobState::kCompleted) << job.error_description;
  EXPECT_TRUE(std::filesystem::exists(dir + "/" + engine::kManifestFile));
  EXPECT_FALSE(std::filesystem::exists(disk)) << "CopyStorage false: without the disks";
}

// A coordinator's conversion of this host's part into a reference point of
// its snapshot across hosts: checked alone first, then a job (asked again,
// as after a lost answer, it answers the same reference point), and
// DestroyReferencePointPart taking it away.
TEST_F(ProvidersTest, ConvertPartMakesTheReferencePointTheCoordinatorNamesInAJob) {
  const char* hcs = "Vmgroup_HostCutService";
  const std::string id = "6f1c3f4e-0a5b-4c7d-9e8f-112233445566";
  const std::string rp = "0d9c8b7a-6f5e-4d3c-8b2a-192837465564";
  const cim::OutParam snapshot = Str("SnapshotID", id), point = Str("ReferencePointID", rp);
  cim::Response none = Call(hcs, "ValidateConvertPart", {snapshot});
  EXPECT_NE(none.return_value, 0u);
  EXPECT_NE(Why(none).find(id), std::string::npos) << Why(none);
  ASSERT_FALSE(CommittedPart(id).empty());
  cim::Response checked = Call(hcs, "ValidateConvertPart", {snapshot});
  ASSERT_EQ(checked.return_value, 0u) << Why(checked);
  for (const auto& [args, why] : std::vector<std::pair<std::vector<cim::OutParam>, std::string>>{
           {{snapshot}, "ReferencePointID is required"},
           {{snapshot, Str("ReferencePointID", "rp-1")}, "'rp-1' is not a GUID"}}) {
    cim::Response r = Call(hcs, "ConvertPart", args);
    EXPECT_EQ(r.return_value, kRcInvalidParameter) << why;
    EXPECT_NE(Why(r).find(why), std::string::npos) << Why(r);
  }
  EXPECT_TRUE(jobs_->List()->empty()) << "no job was started";

  for (int asked = 0; asked < 2; ++asked) {
    catalog::JobRecord job = Ended(Call(hcs, "ConvertPart", {snapshot, point}));
    ASSERT_EQ(job.state, catalog::JobState::kCompleted) << job.error_description;
    EXPECT_EQ(job.type, 200);
    EXPECT_EQ(job.affected.at(0), "Msvm_ReferencePointCollection:" + rp);
    auto made_rp = engine_->catalog().GetReferencePoint(rp);
    ASSERT_TRUE(made_rp.ok()) << made_rp.status().ToString();
    EXPECT_EQ(made_rp->snapshot_id, id);
    EXPECT_EQ(engine_->catalog().GetSnapshot(id).status().code(), Code::kNotFound);
  }
  EXPECT_EQ(Call(hcs, "DestroyReferencePointPart", {}).return_value, kRcInvalidParameter);
  for (int asked = 0; asked < 2; ++asked) {
    cim::Response gone = Call(hcs, "DestroyReferencePointPart", {point});
    ASSERT_EQ(gone.return_value, 0u) << Why(gone);
  }
  EXPECT_TRUE(engine_->catalog().ListReferencePoints()->empty());
}

// An apply's part, step by step as a coordinator sends it: held once
// prepared (its VM's start refused, naming the way out), then committed;
// each step answered again after a lost answer.
TEST_F(ProvidersTest, ApplyPartStepsHoldThePartUntilItIsCommitted) {
  const char* hcs = "Vmgroup_HostCutService";
  const std::string id = "6f1c3f4e-0a5b-4c7d-9e8f-112233445566";
  const cim::OutParam snapshot = Str("SnapshotID", id);
  cim::Response none = Call(hcs, "ValidateApplyPart", {snapshot});
  EXPECT_EQ(none.return_value, kRcInvalidParameter) << Why(none);
  const std::string vm = CommittedPart(id);
  ASSERT_FALSE(vm.empty());
  for (const char* method : {"ValidateApplyPart", "PrepareApplyPart", "PrepareApplyPart"}) {
    cim::Response r = Call(hcs, method, {snapshot});
    ASSERT_EQ(r.return_value, 0u) << method << ": " << Why(r);
  }
  cim::Response start = Call("Msvm_ComputerSystem", "RequestStateChange",
                             {{"RequestedState", "uint16", cim::Value::Scalar("2")}});
  EXPECT_EQ(start.return_value, kRcBInvalidState) << Why(start);
  EXPECT_NE(Why(start).find("vmgroup snapshot release " + id), std::string::npos) << Why(start);
  // Listed off, and why: held, naming the way out.
  const auto listed = [&] {
    const cim::Response vms = Enumerate("Msvm_ComputerSystem");
    EXPECT_EQ(vms.instances.size(), 1u);
    const cim::Property* p =
        vms.instances.size() == 1u ? vms.instances[0].instance.Find("StatusDescriptions") : nullptr;
    return p && !p->value.array.empty() ? p->value.array[0] : std::string();
  };
  EXPECT_EQ(listed().rfind(std::string(schema::kHeldForApply) + "held stopped by", 0), 0u)
      << listed();
  EXPECT_NE(listed().find("vmgroup snapshot release " + id), std::string::npos) << listed();
  for (int asked = 0; asked < 2; ++asked) {
    cim::Response committed = Call(hcs, "CommitApplyPart", {snapshot});
    ASSERT_EQ(committed.return_value, 0u) << Why(committed);
  }
  EXPECT_EQ(engine_->catalog().GetVm(vm)->last_applied,
            engine_->catalog().GetSnapshot(id)->members.at(0).id);
  EXPECT_EQ(listed(), "Operating normally") << "no longer held";
  EXPECT_EQ(Call(hcs, "AbortApplyPart", {snapshot}).return_value, 0u) << "nothing held";
  EXPECT_TRUE(engine_->catalog().ListApplyIntents()->empty());
}

TEST_F(ProvidersTest, AShutdownTakesATimeoutPeriodThatATurnOffDoesNot) {
  ASSERT_EQ(DefineSystem({{"ElementName", "db"}}).return_value, 0u);
  const auto state = [&](const char* requested, std::vector<cim::OutParam> more) {
    more.push_back({"RequestedState", "uint16", cim::Value::Scalar(requested)});
    return Call("Msvm_ComputerSystem", "RequestStateChange", more);
  };
  const auto timeout = [](const char* interval) -> cim::OutParam {
    return {"TimeoutPeriod", "datetime", cim::Value::Scalar(interval)};
  };
  // A timestamp is no interval.
  cim::Response stamp = state("4", {timeout("20261124210455.123456+000")});
  EXPECT_EQ(stamp.return_value, kRcBInvalidParameter);
  EXPECT_NE(Why(stamp).find("not a CIM interval"), std::string::npos) << Why(stamp);
  // 3 pulls the plug at once, as on Hyper-V: no timeout to give.
  cim::Response off = state("3", {timeout("00000000000005.000000:000")});
  EXPECT_EQ(off.return_value, kRcBNotSupported);
  EXPECT_NE(Why(off).find("with 4 (shut down) only"), std::string::npos) << Why(off);
  // A well-formed shutdown of a VM that is off: refused for its state.
  cim::Response down = state("4", {timeout("00000000000130.000000:000"),
                                   {"Vmgroup_Force", "boolean", cim::Value::Scalar("TRUE")}});
  EXPECT_EQ(down.return_value, kRcBInvalidState);
  EXPECT_NE(Why(down).find("is off"), std::string::npos) << Why(down);
}

TEST(CimInterval, ParsesEveryFieldAndRefusesTimestamps) {
  auto us = ParseCimInterval("00000001020304.500000:000");
  ASSERT_TRUE(us.ok()) << us.status().ToString();
  EXPECT_EQ(*us, (((1 * 24 + 2) * 60 + 3) * 60 + 4) * int64_t{1'000'000} + 500'000);
  EXPECT_EQ(*ParseCimInterval(CimInterval(90'250'000)), 90'250'000);
  for (const char* bad : {"20261124210455.123456+000", "0000000000000*.000000:000", "60", ""}) {
    EXPECT_EQ(ParseCimInterval(bad).status().code(), Code::kInvalidArgument) << bad;
  }
}

TEST_F(ProvidersTest, SnapshotAndReferencePointArgumentsAreChecked) {
  const char* css = "Msvm_CollectionSnapshotService";
  const cim::ObjectPath group = KeyPath("Msvm_VirtualSystemCollection", "CollectionID",
                                        "00000000-0000-0000-0000-00000000000a");
  const cim::ObjectPath snapshot = SnapshotCollectionPath("00000000-0000-0000-0000-00000000000b");
  cim::Response label = Call(
      css, "CreateSnapshot",
      {Ref("Collection", group),
       Str("SnapshotSettings",
           Embedded("Msvm_VirtualSystemSnapshotSettingData", {{"ElementName", "nightly\r\n"}}))});
  // (Newlines travel in well-formed XML; escape sequences only from careless clients.)
  EXPECT_EQ(label.return_value, kRcInvalidParameter);
  EXPECT_NE(Why(label).find("snapshot name (ElementName)"), std::string::npos) << Why(label);

  cim::Response no_group = Call(css, "CreateSnapshot", {});
  EXPECT_EQ(no_group.return_value, kRcInvalidParameter);
  cim::Response empty_key =
      Call(css, "ApplySnapshot",
           {Ref("SnapshotCollection", KeyPath("Msvm_SnapshotCollection", "CollectionID", ""))});
  EXPECT_EQ(empty_key.return_value, kRcInvalidParameter);
  EXPECT_NE(Why(empty_key).find("SnapshotCollection must name a group snapshot"), std::string::npos)
      << Why(empty_key);

  for (const std::vector<cim::OutParam>& args :
       {std::vector<cim::OutParam>{Ref("SnapshotCollection", snapshot)},
        std::vector<cim::OutParam>{Ref("SnapshotCollection", snapshot), Str("ExportDirectory", "")},
        std::vector<cim::OutParam>{Ref("SnapshotCollection", snapshot),
                                   Str("ExportDirectory", "/tmp/vmg-never\n")}}) {
    cim::Response r = Call(css, "ExportSnapshot", args);
    EXPECT_EQ(r.return_value, kRcInvalidParameter);
    EXPECT_NE(Why(r).find("ExportDirectory"), std::string::npos) << Why(r);
  }

  cim::Response rp_label =
      Call("Msvm_CollectionReferencePointService", "CreateReferencePoint",
           {Ref("Collection", group),
            Str("ReferencePointSettings", Embedded("Msvm_CollectionReferencePointSettingData",
                                                   {{"ElementName", "weekly\xC2\x9B"}}))});
  EXPECT_EQ(rp_label.return_value, kRcInvalidParameter);
  EXPECT_NE(Why(rp_label).find("reference point name (ElementName)"), std::string::npos)
      << Why(rp_label);
  cim::Response no_point =
      Call("Msvm_CollectionReferencePointService", "DestroyReferencePoint", {});
  EXPECT_EQ(no_point.return_value, kRcInvalidParameter);
  EXPECT_TRUE(jobs_->List()->empty()) << "no job was started";
}

// Objects read one by one (GetInstance, and the associations that get
// each: a VM to its snapshots, a job to what it made) are the instances the
// listing shows: a VM's configuration, a complete snapshot with its parent
// and whether it is current, and its members. A snapshot still being taken,
// or an id without Hyper-V's prefix, is found by neither.
TEST_F(ProvidersTest, ObjectsReadOneByOneAreThoseListed) {
  catalog::Catalog& c = engine_->catalog();
  ASSERT_TRUE(c.InsertVm({.id = "vm-a", .name = "alpha", .disks = {"/img/a"}}).ok());
  auto snapshot = [](const std::string& id, const std::string& parent) {
    catalog::SnapshotRecord s{.id = id, .collection_id = "g", .name = "snap " + id, .tag = id};
    const std::string frozen = parent.empty() ? "/img/a" : "/img/a+" + parent;
    s.members.push_back({.id = id + "-a",
                         .vm_id = "vm-a",
                         .parent_id = parent.empty() ? "" : parent + "-a",
                         .disks = {{0, frozen, "/img/a+" + id}}});
    return s;
  };
  const catalog::SnapshotRecord s1 = snapshot("s1", ""), s2 = snapshot("s2", "s1"),
                                taking = snapshot("s3", "s2");
  for (const auto& s : {s1, s2}) {
    ASSERT_TRUE(c.InsertSnapshot(s).ok());
    ASSERT_TRUE(c.CompleteSnapshot(s).ok());
  }
  ASSERT_TRUE(c.InsertSnapshot(taking).ok());

  const cim::Response settings = Enumerate(schema::VirtualSystemSettingData::kClass);
  const cim::Response snapshots = Enumerate(schema::SnapshotCollection::kClass);
  ASSERT_EQ(settings.instances.size(), 3u) << "the configuration, s1's and s2's members";
  ASSERT_EQ(snapshots.instances.size(), 2u);
  for (const cim::Response* listed : {&settings, &snapshots}) {
    for (const auto& named : listed->instances) {
      cim::Response got = AskAbout("GetInstance", "InstanceName", named.path);
      ASSERT_FALSE(got.error) << got.description;
      ASSERT_EQ(got.instances.size(), 1u);
      EXPECT_EQ(cim::InstanceXml(got.instances[0].instance), cim::InstanceXml(named.instance));
    }
  }
  const cim::Instance& newest = snapshots.instances[1].instance;
  EXPECT_EQ(
      newest.Find(schema::SnapshotCollection::kVmgroupParentSnapshotCollectionID)->value.scalar,
      "s1");
  EXPECT_EQ(newest.Find(schema::SnapshotCollection::kVmgroupIsCurrent)->value.scalar, "TRUE");
  for (const cim::ObjectPath& none :
       {SettingsPath("s3-a"),
        KeyPath(schema::VirtualSystemSettingData::kClass, "InstanceID", "s1-a"),
        SettingsPath("s9-a"), SnapshotCollectionPath("s3"), SnapshotCollectionPath("s9")}) {
    cim::Response got = AskAbout("GetInstance", "InstanceName", none);
    EXPECT_TRUE(got.error && got.cim_status == static_cast<int>(cim::CimStatus::kNotFound))
        << none.keys[0].value;
  }
  cim::Response of_vm = AskAbout(
      "Associators", "ObjectName", VmPath("vm-a"),
      {{"AssocClass", "", cim::Value::Reference({"", {}, "Msvm_SnapshotOfVirtualSystem", {}})}});
  ASSERT_FALSE(of_vm.error) << of_vm.description;
  ASSERT_EQ(of_vm.instances.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(cim::InstanceXml(of_vm.instances[i].instance),
              cim::InstanceXml(settings.instances[i + 1].instance));
  }
}

}  // namespace
}  // namespace vmgroup::services
