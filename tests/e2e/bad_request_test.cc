// Each kind of bad request DSP0200 names, sent to a running vmgroupd: each
// gets its HTTP status and CIMError header, or a CIM ERROR with the right
// status code, and the daemon keeps serving.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/return_codes.h"
#include "base/unique_fd.h"
#include "cim/http_client.h"
#include "cim/xml_reader.h"
#include "cim/xml_writer.h"
#include "daemon_fixture.h"
#include "testing/raw_http.h"

namespace vmgroup::e2e {
namespace {

const std::vector<std::string> kNs = {"root", "virtualization", "v2"};

class BadRequestTest : public DaemonFixture {
 protected:
  cim::HttpResponse Post(const std::string& method, const std::string& object,
                         const std::string& body, cim::Headers extra = {}) {
    auto http = cim::HttpClient::Create("unix:" + Socket());
    cim::Headers h = {{"CIMOperation", "MethodCall"},
                      {"CIMMethod", method},
                      {"CIMObject", object},
                      {"Content-Type", "application/xml; charset=\"utf-8\""}};
    h.insert(h.end(), extra.begin(), extra.end());
    auto r = (*http)->Post("/cimom", h, body, std::chrono::seconds(30));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : cim::HttpResponse{};
  }
  std::string CimError(const cim::HttpResponse& r) {
    const std::string* h = r.Header("CIMError");
    return h ? *h : "";
  }
  int CimStatus(const cim::HttpResponse& r) {
    EXPECT_EQ(r.status, 200) << r.body;
    auto parsed = cim::ParseResponse(r.body);
    EXPECT_TRUE(parsed.ok()) << r.body;
    return parsed.ok() && parsed->error ? parsed->cim_status : 0;
  }
  cim::HttpResponse Intrinsic(const std::string& op, const std::vector<cim::OutParam>& params) {
    return Post(op, "root/virtualization/v2", cim::IMethodCall("1", op, kNs, params));
  }
  cim::HttpResponse Extrinsic(cim::ObjectPath target, const std::string& method,
                              const std::vector<cim::OutParam>& params) {
    target.namespace_ = kNs;
    return Post(method, "root/virtualization/v2:" + target.class_name,
                cim::MethodCall("1", target, method, params));
  }
  static cim::OutParam Class(const std::string& name, const std::string& cls) {
    return {name, "", cim::Value::Reference({"", {}, cls, {}})};
  }
  static cim::OutParam Instance(const std::string& name, const cim::ObjectPath& p) {
    return {name, "", cim::Value::Reference(p)};
  }
  // A service's path, as the daemon names it.
  cim::ObjectPath Service(const std::string& cls = "Msvm_CollectionSnapshotService") {
    auto r =
        cim::ParseResponse(Intrinsic("EnumerateInstanceNames", {Class("ClassName", cls)}).body);
    return r.ok() && !r->paths.empty() ? r->paths[0] : cim::ObjectPath{};
  }
  cim::ObjectPath SnapshotService() { return Service(); }
  // An embedded instance of `cls` with properties `props` (Prop), as
  // parameter `param`.
  static cim::OutParam Settings(const std::string& param, const std::string& cls,
                                const std::string& props) {
    return {param, "",
            cim::Value::Scalar("<INSTANCE CLASSNAME=\"" + cls + "\">" + props + "</INSTANCE>")};
  }
  static std::string Prop(const std::string& name, const std::string& type, const std::string& v) {
    return "<PROPERTY NAME=\"" + name + "\" TYPE=\"" + type + "\"><VALUE>" + v +
           "</VALUE></PROPERTY>";
  }
  // A method's answer: the code, and the reason in Vmgroup_ErrorDescription.
  std::pair<uint32_t, std::string> Refusal(const cim::ObjectPath& service,
                                           const std::string& method,
                                           const std::vector<cim::OutParam>& params) {
    auto r = cim::ParseResponse(Extrinsic(service, method, params).body);
    EXPECT_TRUE(r.ok() && !r->error);
    const cim::Param* why = r.ok() ? r->Out("Vmgroup_ErrorDescription") : nullptr;
    return std::make_pair(r.ok() ? r->return_value : 0u, why ? why->value.scalar : "");
  }
};

TEST_F(BadRequestTest, EveryBadRequestIsAnsweredAndTheDaemonServesOn) {
  const std::string good = cim::IMethodCall("1", "EnumerateInstances", kNs,
                                            {Class("ClassName", "Msvm_VirtualSystemCollection")});

  // Transport and envelope: HTTP status + CIMError.
  cim::HttpResponse junk = Post("EnumerateInstances", "root/virtualization/v2",
                                "<CIM><MESSAGE><SIMPLEREQ><VALUE><a&b></VALUE>");
  EXPECT_EQ(junk.status, 400);
  EXPECT_EQ(CimError(junk), "request-not-well-formed");
  cim::HttpResponse invalid =
      Post("EnumerateInstances", "root/virtualization/v2", "<CIM><MESSAGE ID=\"1\"/></CIM>");
  EXPECT_EQ(CimError(invalid), "request-not-valid");
  auto http = cim::HttpClient::Create("unix:" + Socket());
  auto bare = (*http)->Post("/cimom", {{"CIMMethod", "EnumerateInstances"}}, good,
                            std::chrono::seconds(10));
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->status, 400);
  EXPECT_EQ(CimError(*bare), "unsupported-operation");
  cim::HttpResponse mismatch = Post("GetInstance", "root/virtualization/v2", good);
  EXPECT_EQ(CimError(mismatch), "header-mismatch");
  cim::HttpResponse version =
      Post("EnumerateInstances", "root/virtualization/v2", good, {{"CIMProtocolVersion", "2.0"}});
  EXPECT_EQ(version.status, 501);
  EXPECT_EQ(CimError(version), "unsupported-protocol-version");
  cim::HttpResponse huge =
      Post("EnumerateInstances", "root/virtualization/v2", std::string(5 << 20, ' '));
  EXPECT_EQ(huge.status, 413);

  // Readable requests that cannot be satisfied: CIM status codes.
  EXPECT_EQ(CimStatus(Post("EnumerateInstances", "root/cimv2",
                           cim::IMethodCall("1", "EnumerateInstances", {"root", "cimv2"},
                                            {Class("ClassName", "CIM_Thing")}))),
            3);  // INVALID_NAMESPACE
  EXPECT_EQ(CimStatus(Intrinsic("EnumerateInstances", {Class("ClassName", "Msvm_Nope")})), 5);
  EXPECT_EQ(CimStatus(Intrinsic("GetClass", {Class("ClassName", "Msvm_Nope")})), 6);
  EXPECT_EQ(
      CimStatus(Intrinsic(
          "GetInstance", {Instance("InstanceName", {"", {}, "Msvm_VirtualSystemCollection", {}})})),
      4);  // missing key
  EXPECT_EQ(CimStatus(Intrinsic(
                "GetInstance",
                {Instance("InstanceName",
                          {"",
                           {},
                           "Msvm_VirtualSystemCollection",
                           {{"CollectionID", cim::KeyBinding::Kind::kString, "nope", {}}}})})),
            6);  // no such instance
  const cim::ObjectPath service = SnapshotService();
  ASSERT_FALSE(service.keys.empty());
  EXPECT_EQ(CimStatus(Intrinsic("GetProperty", {Instance("InstanceName", service),
                                                {"PropertyName", "", cim::Value::Scalar("Nope")}})),
            12);                                                   // NO_SUCH_PROPERTY
  EXPECT_EQ(CimStatus(Extrinsic(service, "Frobnicate", {})), 17);  // METHOD_NOT_FOUND
  EXPECT_EQ(CimStatus(Extrinsic(service, "CreateSnapshot",
                                {{"SnapshotType", "", cim::Value::Scalar("sixty")}})),
            13);  // TYPE_MISMATCH
  EXPECT_EQ(
      CimStatus(Extrinsic(service, "CreateSnapshot", {{"Bogus", "", cim::Value::Scalar("1")}})),
      4);                                               // unknown parameter
  EXPECT_EQ(CimStatus(Intrinsic("ExecQuery", {})), 7);  // NOT_SUPPORTED

  // Still serving, on both listeners.
  auto after = cim::ParseResponse(Post("EnumerateInstances", "root/virtualization/v2", good).body);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->error);
  EXPECT_EQ(Wbem("ein", "Msvm_CollectionSnapshotService").exit_code, 0);
  EXPECT_TRUE(Env::Default()->IsAlive(pid_));
}

TEST_F(BadRequestTest, ExportRefusalsCarryTheCodeAndTheReason) {
  const cim::ObjectPath service = SnapshotService();
  ASSERT_FALSE(service.keys.empty());
  const cim::OutParam snapshot =
      Instance("SnapshotCollection", {"",
                                      {},
                                      "Msvm_SnapshotCollection",
                                      {{"CollectionID",
                                        cim::KeyBinding::Kind::kString,
                                        "00000000-0000-0000-0000-000000000001",
                                        {}}}});
  auto settings = [](const std::string& cls, const std::string& props) {
    return Settings("ExportSettingData", cls, props);
  };
  const auto prop = Prop;
  const cim::OutParam dir = {"ExportDirectory", "", cim::Value::Scalar("/tmp/vmg-never")};
  auto refusal = [&](const std::vector<cim::OutParam>& params) {
    return Refusal(service, "ExportSnapshot", params);
  };
  auto [code, why] = refusal({dir});
  EXPECT_EQ(code, kRcInvalidParameter);
  EXPECT_NE(why.find("SnapshotCollection"), std::string::npos) << why;
  std::tie(code, why) =
      refusal({snapshot, dir, settings("Msvm_VirtualSystemSnapshotSettingData", "")});
  EXPECT_EQ(code, kRcInvalidParameter);
  EXPECT_NE(why.find("Msvm_CollectionSnapshotExportSettingData"), std::string::npos) << why;
  std::tie(code, why) = refusal(
      {snapshot, dir,
       settings("Msvm_CollectionSnapshotExportSettingData", prop("BackupIntent", "uint16", "7"))});
  EXPECT_EQ(code, kRcInvalidParameter);
  EXPECT_NE(why.find("BackupIntent"), std::string::npos) << why;
  std::tie(code, why) =
      refusal({snapshot, dir,
               settings("Msvm_CollectionSnapshotExportSettingData",
                        prop("DifferentialBackupBase", "string",
                             "root/virtualization/"
                             "v2:Msvm_ReferencePointCollection.CollectionID=&quot;x&quot;"))});
  EXPECT_EQ(code, kRcInvalidParameter);
  EXPECT_NE(why.find("does not exist"), std::string::npos) << why;
  std::tie(code, why) = refusal({snapshot, dir});
  EXPECT_EQ(code, kRcInvalidParameter) << "no such snapshot";
  EXPECT_FALSE(Env::Default()->FileExists("/tmp/vmg-never"));
}

TEST_F(BadRequestTest, ReferencePointRefusalsCarryTheCodeAndTheReason) {
  NewVm("a");
  Ok({"group", "create", "web"});
  Ok({"group", "add", "web", "a"});
  const std::string rp = Ok({"refpoint", "create", "web"}).substr(0, 36);
  const cim::ObjectPath service = Service("Msvm_CollectionReferencePointService");
  ASSERT_FALSE(service.keys.empty());
  const cim::OutParam point = Instance(
      "ReferencePointCollection", {"",
                                   {},
                                   "Msvm_ReferencePointCollection",
                                   {{"CollectionID", cim::KeyBinding::Kind::kString, rp, {}}}});
  const cim::OutParam dir = {"ExportDirectory", "", cim::Value::Scalar("/tmp/vmg-never")};
  auto settings = [](const std::string& props) {
    return Settings("ExportSettingData", "Msvm_CollectionReferencePointExportSettingData", props);
  };

  auto [code, why] = Refusal(service, "ExportReferencePoint",
                             {point, dir,
                              settings("<PROPERTY.ARRAY NAME=\"VirtualMachinesToDisksToExport\" "
                                       "TYPE=\"string\"><VALUE.ARRAY><VALUE>x</VALUE></"
                                       "VALUE.ARRAY></PROPERTY.ARRAY>")});
  EXPECT_EQ(code, kRcNotSupported);
  EXPECT_NE(why.find("every disk of every member"), std::string::npos) << why;
  std::tie(code, why) =
      Refusal(service, "ExportReferencePoint",
              {point, dir, settings(Prop("BaseReferencePointCollection", "string", "nope"))});
  EXPECT_EQ(code, kRcInvalidParameter);
  EXPECT_NE(why.find("nope"), std::string::npos) << why;
  std::tie(code, why) = Refusal(service, "ExportReferencePoint", {point, dir});
  EXPECT_EQ(code, kRcFailed) << "created, not converted from an exported snapshot";
  EXPECT_NE(why.find("export in full"), std::string::npos) << why;
  std::tie(code, why) = Refusal(service, "ExportReferencePoint",
                                {point, {"ExportDirectory", "", cim::Value::Scalar("relative")}});
  EXPECT_EQ(code, kRcInvalidParameter);
  EXPECT_NE(why.find("absolute"), std::string::npos) << why;

  const cim::OutParam group = Instance(
      "Collection",
      {"",
       {},
       "Msvm_VirtualSystemCollection",
       {{"CollectionID",
         cim::KeyBinding::Kind::kString,
         nlohmann::json::parse(Ok({"group", "show", "web", "--json"}))["id"].get<std::string>(),
         {}}}});
  std::tie(code, why) =
      Refusal(service, "CreateReferencePoint",
              {group, Settings("ReferencePointSettings", "Msvm_CollectionReferencePointSettingData",
                               Prop("ConsistencyLevel", "uint8", "9"))});
  EXPECT_EQ(code, kRcInvalidParameter);
  EXPECT_NE(why.find("ConsistencyLevel"), std::string::npos) << why;
  std::tie(code, why) =
      Refusal(service, "CreateReferencePoint",
              {group, Settings("ReferencePointSettings", "Msvm_CollectionReferencePointSettingData",
                               Prop("ConsistencyLevel", "uint8", "1"))});
  EXPECT_EQ(code, kRcNotSupported);
  EXPECT_NE(why.find("ConvertToReferencePoint"), std::string::npos) << "the way there: " << why;
  // Application consistency is for recovery and disk-only snapshots.
  std::tie(code, why) =
      Refusal(SnapshotService(), "CreateSnapshot",
              {group,
               {"SnapshotType", "", cim::Value::Scalar("1")},
               Settings("SnapshotSettings", "Msvm_VirtualSystemSnapshotSettingData",
                        Prop("ConsistencyLevel", "uint8", "1"))});
  EXPECT_EQ(code, kRcInvalidParameter);
  EXPECT_NE(why.find("Standard"), std::string::npos) << why;
  // A point's export reads through the members' running QEMUs (a point is
  // made with a member off: its tracking is kept offline).
  Ok({"vm", "turn-off", "a"});
  std::tie(code, why) = Refusal(service, "ExportReferencePoint", {point, dir});
  EXPECT_EQ(code, kRcNotSupported);
  EXPECT_NE(why.find("is off"), std::string::npos) << why;
  EXPECT_EQ(nlohmann::json::parse(Ok({"refpoint", "list", "web", "--json"})).size(), 1u);
  EXPECT_FALSE(Env::Default()->FileExists("/tmp/vmg-never"));
}

TEST_F(BadRequestTest, BrokenConnectionsCostOnlyThemselves) {
  // A client that sends half a request and vanishes, one that sends bytes
  // that are not HTTP, and one that connects and says nothing.
  std::vector<UniqueFd> idle;
  for (const std::string& bytes :
       {std::string("POST /cimom HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc"),
        std::string("\x16\x03\x01\x02\x00garbage\r\n\r\n", 17), std::string()}) {
    UniqueFd fd = testing::ConnectUnix(Socket());
    ASSERT_TRUE(fd.valid());
    if (!bytes.empty()) {
      ASSERT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    }
    idle.push_back(std::move(fd));  // left open: the daemon must not wait on them
  }
  EXPECT_EQ(Ok({"vm", "list", "--json"}), "[]\n");
  idle.clear();
  EXPECT_EQ(Ok({"group", "list", "--json"}), "[]\n");
}

}  // namespace
}  // namespace vmgroup::e2e
