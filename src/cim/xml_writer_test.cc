// Responses are checked by reading them back with the same reader a client
// would use (pugixml), not by comparing strings.
#include "cim/xml_writer.h"

#include <gtest/gtest.h>

#include <pugixml.hpp>
#include <regex>
#include <sstream>

#include "base/validate.h"
#include "cim/xml_reader.h"

namespace vmgroup::cim {
namespace {

pugi::xml_document Load(const std::string& xml) {
  pugi::xml_document doc;
  auto r = doc.load_string(xml.c_str());
  EXPECT_TRUE(r) << r.description() << "\n" << xml;
  return doc;
}

// XML 1.0's Char production: what a document may hold, literally or as a
// character reference.
bool IsXmlChar(uint32_t c) {
  return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
         (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

// Empty when `xml` is UTF-8 holding only XML 1.0 characters, also in its
// character references (what a strict parser such as wbemcli's demands
// and pugixml does not check); else what is wrong.
std::string NotXml10(const std::string& xml) {
  if (!IsValidUtf8(xml)) return "not UTF-8";
  for (size_t i = 0; i < xml.size();) {
    const auto b = static_cast<uint8_t>(xml[i]);
    const size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    uint32_t c = len == 1 ? b : b & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) c = (c << 6) | (static_cast<uint8_t>(xml[i + k]) & 0x3F);
    if (!IsXmlChar(c)) return "character " + std::to_string(c) + " at byte " + std::to_string(i);
    i += len;
  }
  static const std::regex kRef("&#(x[0-9A-Fa-f]+|[0-9]+);");
  for (std::sregex_iterator it(xml.begin(), xml.end(), kRef), end; it != end; ++it) {
    const std::string n = (*it)[1];
    const unsigned long c = n[0] == 'x' ? std::stoul(n.substr(1), nullptr, 16) : std::stoul(n);
    if (!IsXmlChar(static_cast<uint32_t>(c))) return "reference " + it->str();
  }
  return "";
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

// Values stored before names were checked: control characters, an escape
// sequence, bytes that are not UTF-8, a non-character. The document stays
// XML 1.0; what it cannot carry reads back as U+FFFD, and tab, newline and
// carriage return travel as references (pugixml, unlike XML 1.0, turns a
// referenced carriage return into a newline).
TEST(XmlWriterTest, WhatXmlCannotCarryIsReplacedSoTheDocumentStaysWellFormed) {
  const std::string bad = std::string("bad\x01\x1b[31m\xFF\xC3 ok\xEF\xBF\xBF nul") + '\0';
  const std::string kept = "bad\uFFFD\uFFFD[31m\uFFFD\uFFFD ok\uFFFD nul\uFFFD";
  Instance inst{"Msvm_ComputerSystem",
                {{"ElementName", "string", false, Value::Scalar(bad)},
                 {"Vmgroup_KernelCommandLine", "string", false, Value::Scalar("a\tb\nc\rd")}}};
  ObjectPath p{
      "", {}, "Msvm_ComputerSystem", {{"Name", KeyBinding::Kind::kString, bad + "\x02", {}}}};
  const std::string xml =
      IMethodResponse("1", "EnumerateInstances", ValueNamedInstanceXml(p, inst));
  EXPECT_EQ(NotXml10(xml), "") << xml;
  auto doc = Load(xml);
  auto named = doc.select_node("//VALUE.NAMEDINSTANCE").node();
  EXPECT_EQ(std::string(named.child("INSTANCENAME").child("KEYBINDING").child_value("KEYVALUE")),
            kept + "\uFFFD");
  std::ostringstream inst_xml;
  named.child("INSTANCE").print(inst_xml);
  auto back = ParseEmbeddedInstance(inst_xml.str());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->Find("ElementName")->value.scalar, kept);
  EXPECT_NE(xml.find("a&#9;b&#10;c&#13;d"), std::string::npos) << "as references";
  EXPECT_EQ(back->Find("Vmgroup_KernelCommandLine")->value.scalar.substr(0, 4), "a\tb\n");

  // In an attribute too, where a parser would turn a literal tab or newline into a space.
  const std::string error = ErrorResponse("2", "GetInstance", true, 6, "no VM\ta\n" + bad);
  EXPECT_EQ(NotXml10(error), "") << error;
  EXPECT_EQ(std::string(Load(error)
                            .select_node("//IMETHODRESPONSE/ERROR")
                            .node()
                            .attribute("DESCRIPTION")
                            .value()),
            "no VM\ta\n" + kept);
}

TEST(XmlWriterTest, EscapingAppendsPlainRunsWholeAndEscapesTheRest) {
  std::string out = "kept|";
  AppendEscaped(&out, "plain ascii");
  AppendEscaped(&out, "|a<b & \"c\" 'd' \xC3\xA9\xEF\xBF\xBE\x01 end|");
  AppendEscaped(&out, "ascii but one byte\x80");
  EXPECT_EQ(out,
            "kept|plain ascii|a&lt;b &amp; &quot;c&quot; &apos;d&apos; "
            "\xC3\xA9\xEF\xBF\xBD\xEF\xBF\xBD end|ascii but one byte\xEF\xBF\xBD");
}

// A listing's answer is written into one buffer: the head, each instance
// appended as it comes, the tail. It must be the document IMethodResponse
// makes of the same fragments, and read back instance by instance.
TEST(XmlWriterTest, AnAnswerWrittenInOneBufferReadsBackInstanceByInstance) {
  std::string out = IMethodResponseHead("9", "EnumerateInstances");
  std::string fragments;
  for (int i = 0; i < 3; ++i) {
    const std::string n = std::to_string(i);
    ObjectPath p{"",
                 {},
                 "Msvm_VirtualSystemCollection",
                 {{"CollectionID", KeyBinding::Kind::kString, "id" + n, {}}}};
    Instance inst{"Msvm_VirtualSystemCollection",
                  {{"CollectionID", "string", false, Value::Scalar("id" + n)},
                   {"ElementName", "string", false, Value::Scalar("g" + n + " <&>")},
                   {"Members", "string", true, Value::Array({"vm" + n, "x\"y"})},
                   {"Owner", "reference", false, Value::Reference(JobPath())}}};
    AppendValueNamedInstanceXml(&out, p, inst);
    fragments += ValueNamedInstanceXml(p, inst);
  }
  AppendIMethodResponseTail(&out);
  EXPECT_EQ(out, IMethodResponse("9", "EnumerateInstances", fragments));
  auto r = ParseResponse(out);
  ASSERT_TRUE(r.ok()) << r.status().ToString() << out;
  ASSERT_EQ(r->instances.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const std::string n = std::to_string(i);
    EXPECT_EQ(r->instances[i].path.Key("CollectionID")->value, "id" + n);
    const Instance& inst = r->instances[i].instance;
    EXPECT_EQ(inst.Find("ElementName")->value.scalar, "g" + n + " <&>");
    EXPECT_EQ(inst.Find("Members")->value.array, (std::vector<std::string>{"vm" + n, "x\"y"}));
    EXPECT_EQ(inst.Find("Owner")->value.refs.at(0).Key("InstanceID")->value, "job-7");
  }
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
