// Requests exactly as sblim-wbemcli 1.6.3 sent them (tests/data/cim/, captured
// in shared/reference/feasibility-on-these-machines.md §8), and bad ones.
#include "cim/xml_reader.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace vmgroup::cim {
namespace {

std::string Fixture(const std::string& name) {
  std::ifstream f(std::string(CIM_TESTDATA) + "/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << "missing fixture " << name;
  return ss.str();
}

Request Parse(std::string_view body) {
  auto r = ParseRequest(body);
  if (auto* e = std::get_if<RequestError>(&r)) {
    ADD_FAILURE() << e->cim_error << ": " << e->detail;
    return {};
  }
  return std::get<Request>(std::move(r));
}

const std::vector<std::string> kV2 = {"root", "virtualization", "v2"};

TEST(XmlReaderTest, EnumerateInstancesFromWbemcli) {
  Request r = Parse(Fixture("wbemcli-EnumerateInstances.xml"));
  EXPECT_EQ(r.message_id, "4711");
  EXPECT_TRUE(r.intrinsic);
  EXPECT_EQ(r.method, "EnumerateInstances");
  EXPECT_EQ(r.target.namespace_, kV2);
  const Param* cls = r.Find("classname");
  ASSERT_NE(cls, nullptr);
  ASSERT_EQ(cls->value.kind, Value::Kind::kReference);
  EXPECT_EQ(cls->value.refs[0].class_name, "Msvm_VirtualSystemCollection");
  EXPECT_TRUE(cls->value.refs[0].keys.empty());
  EXPECT_EQ(r.Find("DeepInheritance")->value.scalar, "TRUE");
  EXPECT_EQ(r.Find("LocalOnly")->value.scalar, "FALSE");
}

TEST(XmlReaderTest, GetInstanceCarriesTheInstanceName) {
  Request r = Parse(Fixture("wbemcli-GetInstance.xml"));
  EXPECT_EQ(r.method, "GetInstance");
  const Param* name = r.Find("InstanceName");
  ASSERT_NE(name, nullptr);
  const ObjectPath& p = name->value.refs.at(0);
  EXPECT_EQ(p.class_name, "Msvm_VirtualSystemCollection");
  ASSERT_NE(p.Key("instanceid"), nullptr);
  EXPECT_EQ(p.Key("InstanceID")->value, "grp-1");
  EXPECT_EQ(p.Key("InstanceID")->kind, KeyBinding::Kind::kString);
}

TEST(XmlReaderTest, GetClassAndEnumerateInstanceNames) {
  Request gc = Parse(Fixture("wbemcli-GetClass.xml"));
  EXPECT_EQ(gc.method, "GetClass");
  EXPECT_EQ(gc.Find("ClassName")->value.refs.at(0).class_name, "Msvm_VirtualSystemSnapshotService");
  EXPECT_EQ(gc.Find("IncludeQualifiers")->value.scalar, "TRUE");
  Request ein = Parse(Fixture("wbemcli-EnumerateInstanceNames.xml"));
  EXPECT_EQ(ein.method, "EnumerateInstanceNames");
  EXPECT_EQ(ein.params.size(), 1u);
}

TEST(XmlReaderTest, ExtrinsicCallOnAnInstance) {
  Request r = Parse(Fixture("wbemcli-CreateSnapshot.xml"));
  EXPECT_FALSE(r.intrinsic);
  EXPECT_EQ(r.method, "CreateSnapshot");
  EXPECT_EQ(r.target.namespace_, kV2);
  EXPECT_EQ(r.target.class_name, "Msvm_VirtualSystemSnapshotService");
  ASSERT_EQ(r.target.keys.size(), 4u);
  EXPECT_EQ(r.target.Key("SystemName")->value, "host1");
  EXPECT_EQ(r.Find("SnapshotType")->value.scalar, "2");
  EXPECT_EQ(r.Find("SnapshotType")->paramtype, "") << "wbemcli sends no PARAMTYPE";
  EXPECT_EQ(r.Find("SnapshotSettings")->value.scalar, "a b");
}

TEST(XmlReaderTest, ExtrinsicCallOnAClass) {
  Request r = Parse(Fixture("wbemcli-CreateSnapshot-class.xml"));
  EXPECT_FALSE(r.intrinsic);
  EXPECT_EQ(r.target.class_name, "Msvm_VirtualSystemSnapshotService");
  EXPECT_TRUE(r.target.keys.empty());
  EXPECT_EQ(r.target.namespace_, kV2);
}

TEST(XmlReaderTest, ReferenceParameterAsAFullInstancePath) {
  Request r = Parse(Fixture("wbemcli-CreateSnapshot-ref.xml"));
  const Param* ref = r.Find("AffectedSystem");
  ASSERT_NE(ref, nullptr);
  ASSERT_EQ(ref->value.kind, Value::Kind::kReference);
  const ObjectPath& p = ref->value.refs[0];
  EXPECT_EQ(p.host, "127.0.0.1");
  EXPECT_EQ(p.namespace_, kV2);
  EXPECT_EQ(p.class_name, "Msvm_ComputerSystem");
  EXPECT_EQ(p.Key("Name")->value, "vm1");
}

TEST(XmlReaderTest, EveryReferenceFormIsAccepted) {
  const std::string name =
      R"(<INSTANCENAME CLASSNAME="C"><KEYBINDING NAME="K"><KEYVALUE>v</KEYVALUE></KEYBINDING></INSTANCENAME>)";
  const std::string ns = R"(<LOCALNAMESPACEPATH><NAMESPACE NAME="root"/></LOCALNAMESPACEPATH>)";
  for (const std::string& ref : {name, "<LOCALINSTANCEPATH>" + ns + name + "</LOCALINSTANCEPATH>",
                                 "<INSTANCEPATH><NAMESPACEPATH><HOST>h</HOST>" + ns +
                                     "</NAMESPACEPATH>" + name + "</INSTANCEPATH>"}) {
    const std::string body =
        R"(<CIM><MESSAGE ID="1"><SIMPLEREQ><METHODCALL NAME="M"><LOCALCLASSPATH>)" + ns +
        R"(<CLASSNAME NAME="S"/></LOCALCLASSPATH><PARAMVALUE NAME="R"><VALUE.REFERENCE>)" + ref +
        "</VALUE.REFERENCE></PARAMVALUE></METHODCALL></SIMPLEREQ></MESSAGE></CIM>";
    Request r = Parse(body);
    ASSERT_EQ(r.params.size(), 1u) << ref;
    EXPECT_EQ(r.params[0].value.refs.at(0).Key("K")->value, "v") << ref;
  }
}

TEST(XmlReaderTest, ArraysAndReferenceArrays) {
  Request r = Parse(
      R"(<CIM><MESSAGE ID="9"><SIMPLEREQ><METHODCALL NAME="M"><LOCALCLASSPATH><LOCALNAMESPACEPATH>)"
      R"(<NAMESPACE NAME="root"/></LOCALNAMESPACEPATH><CLASSNAME NAME="S"/></LOCALCLASSPATH>)"
      R"(<PARAMVALUE NAME="Tags"><VALUE.ARRAY><VALUE>x</VALUE><VALUE>y</VALUE></VALUE.ARRAY></PARAMVALUE>)"
      R"(<PARAMVALUE NAME="Vms"><VALUE.REFARRAY><VALUE.REFERENCE><INSTANCENAME CLASSNAME="A"/>)"
      R"(</VALUE.REFERENCE><VALUE.REFERENCE><INSTANCENAME CLASSNAME="B"/></VALUE.REFERENCE>)"
      R"(</VALUE.REFARRAY></PARAMVALUE><PARAMVALUE NAME="Empty"/></METHODCALL></SIMPLEREQ></MESSAGE></CIM>)");
  EXPECT_EQ(r.Find("Tags")->value.array, (std::vector<std::string>{"x", "y"}));
  ASSERT_EQ(r.Find("Vms")->value.refs.size(), 2u);
  EXPECT_EQ(r.Find("Vms")->value.refs[1].class_name, "B");
  EXPECT_EQ(r.Find("Empty")->value.kind, Value::Kind::kNull);
}

TEST(XmlReaderTest, BadRequestsSayWhatIsWrong) {
  // wbemcli sends parameter text unescaped: SnapshotSettings="<a&b>".
  auto r =
      ParseRequest(R"(<CIM><MESSAGE ID="1"><SIMPLEREQ><METHODCALL NAME="M"><VALUE><a&b></VALUE>)");
  ASSERT_TRUE(std::holds_alternative<RequestError>(r));
  EXPECT_EQ(std::get<RequestError>(r).cim_error, "request-not-well-formed");

  for (
      std::string_view body :
      {R"(<NOTCIM/>)", R"(<CIM><MESSAGE ID="1"/></CIM>)",
       R"(<CIM><MESSAGE ID="1"><SIMPLEREQ/></MESSAGE></CIM>)",
       R"(<CIM><MESSAGE ID="1"><SIMPLEREQ><METHODCALL NAME="M"/></SIMPLEREQ></MESSAGE></CIM>)",
       R"(<CIM><MESSAGE ID="1"><SIMPLEREQ><IMETHODCALL/></SIMPLEREQ></MESSAGE></CIM>)",
       R"(<CIM><MESSAGE ID="1"><SIMPLEREQ><IMETHODCALL NAME="GetInstance"><IPARAMVALUE NAME="InstanceName"><BOGUS/></IPARAMVALUE></IMETHODCALL></SIMPLEREQ></MESSAGE></CIM>)"}) {
    auto e = ParseRequest(body);
    ASSERT_TRUE(std::holds_alternative<RequestError>(e)) << body;
    EXPECT_EQ(std::get<RequestError>(e).cim_error, "request-not-valid") << body;
    EXPECT_FALSE(std::get<RequestError>(e).detail.empty());
  }
  auto multi = ParseRequest(R"(<CIM><MESSAGE ID="1"><MULTIREQ/></MESSAGE></CIM>)");
  EXPECT_EQ(std::get<RequestError>(multi).cim_error, "multiple-requests-unsupported");
}

// A reference whose key is a reference whose key is ... `levels` deep.
std::string NestedReference(int levels) {
  std::string open, close;
  for (int i = 0; i < levels; ++i) {
    open += R"(<VALUE.REFERENCE><INSTANCENAME CLASSNAME="C"><KEYBINDING NAME="K">)";
    close += "</KEYBINDING></INSTANCENAME></VALUE.REFERENCE>";
  }
  return open + "<KEYVALUE>v</KEYVALUE>" + close;
}

std::string MethodCallWith(const std::string& ref) {
  return R"(<CIM><MESSAGE ID="1"><SIMPLEREQ><METHODCALL NAME="M"><LOCALCLASSPATH>)"
         R"(<LOCALNAMESPACEPATH><NAMESPACE NAME="root"/></LOCALNAMESPACEPATH><CLASSNAME NAME="S"/>)"
         R"(</LOCALCLASSPATH><PARAMVALUE NAME="R">)" +
         ref + "</PARAMVALUE></METHODCALL></SIMPLEREQ></MESSAGE></CIM>";
}

TEST(XmlReaderTest, ReferencesNestedInKeysAreFollowedOnlySoDeep) {
  // 35,000 levels fit in a 4 MiB request body; followed, they overran the
  // stack of the thread reading them and ended the daemon.
  const std::string deep = NestedReference(35000);
  auto request = ParseRequest(MethodCallWith(deep));
  ASSERT_TRUE(std::holds_alternative<RequestError>(request));
  EXPECT_EQ(std::get<RequestError>(request).cim_error, "request-not-valid");
  EXPECT_NE(std::get<RequestError>(request).detail.find("nested"), std::string::npos)
      << std::get<RequestError>(request).detail;

  auto response = ParseResponse(
      R"(<CIM><MESSAGE ID="1"><SIMPLERSP><METHODRESPONSE NAME="M"><PARAMVALUE NAME="R">)" + deep +
      "</PARAMVALUE></METHODRESPONSE></SIMPLERSP></MESSAGE></CIM>");
  EXPECT_EQ(response.status().code(), Code::kInvalidArgument);
  auto embedded = ParseEmbeddedInstance(R"(<INSTANCE CLASSNAME="I"><PROPERTY.REFERENCE NAME="R">)" +
                                        deep + "</PROPERTY.REFERENCE></INSTANCE>");
  EXPECT_EQ(embedded.status().code(), Code::kInvalidArgument);

  // Up to the limit they are read whole.
  Request r = Parse(MethodCallWith(NestedReference(kMaxReferenceNesting)));
  const ObjectPath* p = &r.Find("R")->value.refs.at(0);
  for (int level = 1; level < kMaxReferenceNesting; ++level) p = &p->Key("K")->ref.at(0);
  EXPECT_EQ(p->Key("K")->value, "v");
  EXPECT_TRUE(std::holds_alternative<RequestError>(
      ParseRequest(MethodCallWith(NestedReference(kMaxReferenceNesting + 1)))));
}

TEST(XmlReaderTest, EmbeddedInstance) {
  auto inst = ParseEmbeddedInstance(
      R"(<INSTANCE CLASSNAME="Msvm_VirtualSystemSnapshotSettingData">)"
      R"(<PROPERTY NAME="ConsistencyLevel" TYPE="uint16"><VALUE>2</VALUE></PROPERTY>)"
      R"(<PROPERTY.ARRAY NAME="Tags" TYPE="string"><VALUE.ARRAY><VALUE>a</VALUE></VALUE.ARRAY></PROPERTY.ARRAY>)"
      R"(<PROPERTY NAME="ElementName" TYPE="string"/></INSTANCE>)");
  ASSERT_TRUE(inst.ok()) << inst.status().ToString();
  EXPECT_EQ(inst->class_name, "Msvm_VirtualSystemSnapshotSettingData");
  EXPECT_EQ(inst->Find("consistencylevel")->value.scalar, "2");
  EXPECT_EQ(inst->Find("consistencylevel")->type, "uint16");
  EXPECT_TRUE(inst->Find("Tags")->is_array);
  EXPECT_EQ(inst->Find("ElementName")->value.kind, Value::Kind::kNull);
  EXPECT_EQ(ParseEmbeddedInstance("a b").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseEmbeddedInstance("<CLASS NAME='x'/>").status().code(), Code::kInvalidArgument);
}

TEST(XmlReaderTest, CimObjectHeaderAsWbemcliSendsIt) {
  auto ns = ParseCimObjectHeader(Fixture("wbemcli-GetInstance.cimobject"));
  ASSERT_TRUE(ns.ok());
  EXPECT_EQ(ns->namespace_, kV2);
  EXPECT_TRUE(ns->class_name.empty());

  auto p = ParseCimObjectHeader(Fixture("wbemcli-CreateSnapshot.cimobject"));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->Namespace(), "root/virtualization/v2");
  EXPECT_EQ(p->class_name, "Msvm_VirtualSystemSnapshotService");
  ASSERT_EQ(p->keys.size(), 4u);
  EXPECT_EQ(p->Key("Name")->value, "vssnapsvc");

  auto mixed = ParseCimObjectHeader(R"(root/cimv2:C.A=5,B=TRUE,S="x\"y,z")");
  ASSERT_TRUE(mixed.ok()) << mixed.status().ToString();
  EXPECT_EQ(mixed->Key("A")->kind, KeyBinding::Kind::kNumeric);
  EXPECT_EQ(mixed->Key("B")->kind, KeyBinding::Kind::kBoolean);
  EXPECT_EQ(mixed->Key("S")->value, "x\"y,z");
  EXPECT_FALSE(ParseCimObjectHeader(R"(root:C.S="open)").ok());
  EXPECT_FALSE(ParseCimObjectHeader("root:").ok());
  EXPECT_EQ(PercentDecode("a%2Fb%3a%zz%"), "a/b:%zz%");
}

}  // namespace
}  // namespace vmgroup::cim
