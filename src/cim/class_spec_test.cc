#include "cim/class_spec.h"

#include <gtest/gtest.h>

#include <fstream>
#include <pugixml.hpp>
#include <sstream>

namespace vmgroup::cim {
namespace {

// Shaped like the services' declarations (reference §6.1).
ClassSpec SnapshotService() {
  return {.name = "Msvm_CollectionSnapshotService",
          .superclass = "CIM_Service",
          .properties = {{.name = "CreationClassName", .type = "string", .key = true},
                         {.name = "Name", .type = "string", .key = true},
                         {.name = "ElementName", .type = "string"}},
          .methods = {{.name = "CreateSnapshot",
                       .params = {{.name = "Collection",
                                   .type = "reference",
                                   .reference_class = "CIM_CollectionOfMSEs"},
                                  {.name = "SnapshotSettings",
                                   .type = "string",
                                   .embedded_class = "Msvm_VirtualSystemSnapshotSettingData"},
                                  {.name = "SnapshotType", .type = "uint16"},
                                  {.name = "Tags", .type = "string", .is_array = true},
                                  {.name = "ResultingSnapshotCollection",
                                   .type = "reference",
                                   .out = true,
                                   .reference_class = "CIM_Collection"},
                                  {.name = "Job",
                                   .type = "reference",
                                   .in = false,
                                   .out = true,
                                   .reference_class = "CIM_ConcreteJob"}}}}};
}

TEST(ClassSpecTest, ClassXmlDeclaresKeysAndMethodParameters) {
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(ClassXml(SnapshotService()).c_str()));
  auto cls = doc.child("CLASS");
  EXPECT_STREQ(cls.attribute("NAME").value(), "Msvm_CollectionSnapshotService");
  EXPECT_STREQ(cls.attribute("SUPERCLASS").value(), "CIM_Service");
  int keys = 0;
  for (auto p : cls.children("PROPERTY")) {
    if (p.find_child_by_attribute("QUALIFIER", "NAME", "Key")) ++keys;
  }
  EXPECT_EQ(keys, 2);
  auto m = cls.find_child_by_attribute("METHOD", "NAME", "CreateSnapshot");
  ASSERT_TRUE(m);
  auto coll = m.find_child_by_attribute("PARAMETER.REFERENCE", "NAME", "Collection");
  EXPECT_STREQ(coll.attribute("REFERENCECLASS").value(), "CIM_CollectionOfMSEs");
  EXPECT_TRUE(coll.find_child_by_attribute("QUALIFIER", "NAME", "In"));
  auto job = m.find_child_by_attribute("PARAMETER.REFERENCE", "NAME", "Job");
  EXPECT_FALSE(job.find_child_by_attribute("QUALIFIER", "NAME", "In"));
  EXPECT_TRUE(job.find_child_by_attribute("QUALIFIER", "NAME", "Out"));
  auto settings = m.find_child_by_attribute("PARAMETER", "NAME", "SnapshotSettings");
  EXPECT_STREQ(settings.find_child_by_attribute("QUALIFIER", "NAME", "EmbeddedInstance")
                   .child_value("VALUE"),
               "Msvm_VirtualSystemSnapshotSettingData");
  EXPECT_TRUE(m.find_child_by_attribute("PARAMETER.ARRAY", "NAME", "Tags"));
}

TEST(ClassSpecTest, RegistryFindsClassesIgnoringCase) {
  ClassRegistry r;
  r.Add(SnapshotService());
  ASSERT_NE(r.Find("msvm_collectionsnapshotservice"), nullptr);
  EXPECT_EQ(r.Find("Msvm_Nothing"), nullptr);
  EXPECT_EQ(r.Names(), std::vector<std::string>{"Msvm_CollectionSnapshotService"});
  EXPECT_NE(r.Find("MSVM_COLLECTIONSNAPSHOTSERVICE")->Method("createsnapshot"), nullptr);
}

TEST(ClassSpecTest, PathOfTakesTheKeyProperties) {
  Instance inst{
      "Msvm_CollectionSnapshotService",
      {{"Name", "string", false, Value::Scalar("snap")},
       {"ElementName", "string", false, Value::Scalar("x")},
       {"CreationClassName", "string", false, Value::Scalar("Msvm_CollectionSnapshotService")}}};
  ObjectPath p = PathOf(SnapshotService(), inst, {"root", "virtualization", "v2"});
  EXPECT_EQ(p.Namespace(), "root/virtualization/v2");
  ASSERT_EQ(p.keys.size(), 2u);
  EXPECT_EQ(p.keys[0].name, "CreationClassName") << "in declaration order";
  EXPECT_EQ(p.Key("Name")->value, "snap");
  EXPECT_EQ(p.Key("ElementName"), nullptr);
}

TEST(ClassSpecTest, ScalarsAreCheckedAgainstTheirType) {
  EXPECT_TRUE(CheckScalar("uint16", "65535").ok());
  EXPECT_FALSE(CheckScalar("uint16", "65536").ok());
  EXPECT_FALSE(CheckScalar("uint16", "-1").ok());
  EXPECT_FALSE(CheckScalar("uint32", "12abc").ok());
  EXPECT_FALSE(CheckScalar("uint32", "").ok());
  EXPECT_TRUE(CheckScalar("sint8", "-128").ok());
  EXPECT_TRUE(CheckScalar("boolean", "True").ok());
  EXPECT_FALSE(CheckScalar("boolean", "yes").ok());
  EXPECT_TRUE(CheckScalar("datetime", "20261124200000.000000+000").ok());
  EXPECT_TRUE(CheckScalar("datetime", "00000001000000.000000:000").ok());
  EXPECT_FALSE(CheckScalar("datetime", "2026-11-24").ok());
  EXPECT_TRUE(CheckScalar("string", "<anything>").ok());
}

std::string Fixture(const std::string& name) {
  std::ifstream f(std::string(CIM_TESTDATA) + "/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(ClassSpecTest, ArgumentsOfARealCallAreChecked) {
  // wbemcli's call (with its AffectedSystem renamed to this method's Collection).
  std::string body = Fixture("wbemcli-CreateSnapshot-ref.xml");
  body.replace(body.find("AffectedSystem"), 14, "Collection");
  auto req = std::get<Request>(ParseRequest(body));
  const ClassSpec spec = SnapshotService();
  const MethodSpec& m = *spec.Method("CreateSnapshot");
  auto args = CheckArguments(m, req.params);
  ASSERT_TRUE((std::holds_alternative<std::map<std::string, Value>>(args)))
      << std::get<CimError>(args).description;
  auto& a = std::get<std::map<std::string, Value>>(args);
  EXPECT_EQ(a.at("SnapshotType").scalar, "2");
  EXPECT_EQ(a.at("Collection").refs.at(0).Key("Name")->value, "vm1");
}

TEST(ClassSpecTest, BadArgumentsGetTheDocumentedErrors) {
  const ClassSpec spec = SnapshotService();
  const MethodSpec& m = *spec.Method("CreateSnapshot");
  auto err = [&](std::vector<Param> params) {
    auto r = CheckArguments(m, params);
    EXPECT_TRUE(std::holds_alternative<CimError>(r));
    return std::holds_alternative<CimError>(r) ? std::get<CimError>(r) : CimError{};
  };
  EXPECT_EQ(err({{"Bogus", "", Value::Scalar("1")}}).status, CimStatus::kInvalidParameter);
  EXPECT_EQ(err({{"Job", "", Value::Scalar("1")}}).status, CimStatus::kInvalidParameter)
      << "Job is an out-parameter";
  CimError t = err({{"SnapshotType", "", Value::Scalar("two")}});
  EXPECT_EQ(t.status, CimStatus::kTypeMismatch);
  EXPECT_NE(t.description.find("SnapshotType"), std::string::npos);
  EXPECT_EQ(err({{"SnapshotType", "", Value::Scalar("70000")}}).status, CimStatus::kTypeMismatch);
  EXPECT_EQ(err({{"Collection", "", Value::Scalar("x")}}).status, CimStatus::kTypeMismatch);
  EXPECT_EQ(err({{"SnapshotType", "", Value::Reference({})}}).status, CimStatus::kTypeMismatch);
  EXPECT_EQ(err({{"Tags", "", Value::Scalar("x")}}).status, CimStatus::kTypeMismatch);
  EXPECT_EQ(err({{"SnapshotType", "", Value::Array({"1"})}}).status, CimStatus::kTypeMismatch);
  auto ok =
      CheckArguments(m, {{"Tags", "", Value::Array({"a", "b"})}, {"SnapshotSettings", "", {}}});
  EXPECT_TRUE((std::holds_alternative<std::map<std::string, Value>>(ok)));
}

}  // namespace
}  // namespace vmgroup::cim
