// Responses are checked by reading them back with the same reader a client
// would use (pugixml), not by comparing strings.
#include "cim/xml_writer.h"

#include <gtest/gtest.h>

#include <pugixml.hpp>
#include <sstream>

#include "cim/xml_reader.h"

namespace vmgroup::cim {
namespace {

pugi::xml_document Load(const std::string& xml) {
  pugi::xml_document doc;
  auto r = doc.load_string(xml.c_str());
  EXPECT_TRUE(r) << r.description() << "\n" << xml;
  return doc;
}

ObjectPath JobPath() {
  return {"localhost",
          {"root", "virtualization", "v2"},
          "Msvm_ConcreteJob",
          {{"InstanceID", KeyBinding::Kind::kString, "job-7", {}}}};
}

TEST(XmlWriterTest, MethodResponseWithJobReference) {
  auto doc = Load(MethodResponse("4711", "CreateSnapshot", 4096,
                                 {{"Job", "reference", Value::Reference(JobPath())}}));
  auto rsp = doc.child("CIM").child("MESSAGE");
  EXPECT_STREQ(rsp.attribute("ID").value(), "4711");
  auto m = rsp.child("SIMPLERSP").child("METHODRESPONSE");
  EXPECT_STREQ(m.attribute("NAME").value(), "CreateSnapshot");
  EXPECT_STREQ(m.child("RETURNVALUE").child_value("VALUE"), "4096");
  auto path = m.child("PARAMVALUE").child("VALUE.REFERENCE").child("INSTANCEPATH");
  EXPECT_STREQ(path.child("NAMESPACEPATH").child_value("HOST"), "localhost");
  auto key = path.child("INSTANCENAME").child("KEYBINDING");
  EXPECT_STREQ(key.attribute("NAME").value(), "InstanceID");
  EXPECT_STREQ(key.child_value("KEYVALUE"), "job-7");
}

TEST(XmlWriterTest, EverythingIsEscaped) {
  Instance inst{"Msvm_VirtualSystemCollection",
                {{"ElementName", "string", false, Value::Scalar("<a&b> \"q\"")},
                 {"Members", "string", true, Value::Array({"x<y", "z"})}}};
  ObjectPath p{"",
               {},
               "Msvm_VirtualSystemCollection",
               {{"CollectionID", KeyBinding::Kind::kString, "id&1", {}}}};
  std::string xml = IMethodResponse("1", "EnumerateInstances", ValueNamedInstanceXml(p, inst));
  auto doc = Load(xml);
  auto named = doc.select_node("//VALUE.NAMEDINSTANCE").node();
  EXPECT_STREQ(named.child("INSTANCENAME").child("KEYBINDING").child_value("KEYVALUE"), "id&1");
  // The instance reads back through the reader as it was written.
  std::ostringstream inst_xml;
  named.child("INSTANCE").print(inst_xml);
  auto back = ParseEmbeddedInstance(inst_xml.str());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->Find("ElementName")->value.scalar, "<a&b> \"q\"");
  EXPECT_EQ(back->Find("Members")->value.array, (std::vector<std::string>{"x<y", "z"}));
}

TEST(XmlWriterTest, PathFormsFollowWhatThePathHolds) {
  ObjectPath p = JobPath();
  EXPECT_EQ(PathXml(p).rfind("<INSTANCEPATH>", 0), 0u);
  p.host.clear();
  EXPECT_EQ(PathXml(p).rfind("<LOCALINSTANCEPATH>", 0), 0u);
  p.namespace_.clear();
  EXPECT_EQ(PathXml(p).rfind("<INSTANCENAME", 0), 0u);
  // A reference key round-trips.
  ObjectPath assoc{"",
                   {},
                   "Msvm_AffectedJobElement",
                   {{"AffectingElement", KeyBinding::Kind::kReference, "", {JobPath()}}}};
  std::string body = R"(<CIM><MESSAGE ID="1"><SIMPLEREQ><IMETHODCALL NAME="GetInstance">)"
                     R"(<IPARAMVALUE NAME="InstanceName">)" +
                     InstanceNameXml(assoc) +
                     "</IPARAMVALUE></IMETHODCALL></SIMPLEREQ></MESSAGE></CIM>";
  auto r = ParseRequest(body);
  ASSERT_TRUE(std::holds_alternative<Request>(r));
  const KeyBinding* k =
      std::get<Request>(r).Find("InstanceName")->value.refs[0].Key("AffectingElement");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->kind, KeyBinding::Kind::kReference);
  EXPECT_EQ(k->ref.at(0).Key("InstanceID")->value, "job-7");
}

TEST(XmlWriterTest, ErrorsForBothKindsOfCall) {
  auto i =
      Load(ErrorResponse("5", "GetInstance", true, 6, "CIM_ERR_NOT_FOUND: no such <instance>"));
  auto err = i.select_node("//IMETHODRESPONSE/ERROR").node();
  EXPECT_STREQ(err.attribute("CODE").value(), "6");
  EXPECT_STREQ(err.attribute("DESCRIPTION").value(), "CIM_ERR_NOT_FOUND: no such <instance>");
  auto m = Load(ErrorResponse("5", "CreateSnapshot", false, 17, "no such method"));
  EXPECT_STREQ(m.select_node("//METHODRESPONSE/ERROR").node().attribute("CODE").value(), "17");
}

}  // namespace
}  // namespace vmgroup::cim
