#include "cim/xml_writer.h"

#include "base/validate.h"

namespace vmgroup::cim {
namespace {

constexpr std::string_view kHead = R"(<?xml version="1.0" encoding="utf-8" ?>)"
                                   "\n"
                                   R"(<CIM CIMVERSION="2.0" DTDVERSION="2.0">)";

std::string Attr(std::string_view name, std::string_view value) {
  return std::string(" ") + std::string(name) + "=\"" + XmlEscape(value) + "\"";
}

std::string LocalNamespaceXml(const ObjectPath& p) {
  std::string out = "<LOCALNAMESPACEPATH>";
  for (const auto& part : p.namespace_) out += "<NAMESPACE" + Attr("NAME", part) + "/>";
  return out + "</LOCALNAMESPACEPATH>";
}

const char* KeyValueType(KeyBinding::Kind k) {
  switch (k) {
    case KeyBinding::Kind::kBoolean:
      return "boolean";
    case KeyBinding::Kind::kNumeric:
      return "numeric";
    default:
      return "string";
  }
}

std::string ValueXml(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kNull:
      return "";
    case Value::Kind::kScalar:
      return "<VALUE>" + XmlEscape(v.scalar) + "</VALUE>";
    case Value::Kind::kArray: {
      std::string out = "<VALUE.ARRAY>";
      for (const auto& item : v.array) out += "<VALUE>" + XmlEscape(item) + "</VALUE>";
      return out + "</VALUE.ARRAY>";
    }
    case Value::Kind::kReference:
      return v.refs.empty() ? "" : "<VALUE.REFERENCE>" + PathXml(v.refs[0]) + "</VALUE.REFERENCE>";
    case Value::Kind::kReferenceArray: {
      std::string out = "<VALUE.REFARRAY>";
      for (const auto& r : v.refs) out += "<VALUE.REFERENCE>" + PathXml(r) + "</VALUE.REFERENCE>";
      return out + "</VALUE.REFARRAY>";
    }
  }
  return "";
}

// `kind` is SIMPLEREQ or SIMPLERSP.
std::string Message(std::string_view message_id, const std::string& body,
                    std::string_view kind = "SIMPLERSP") {
  const std::string k(kind);
  return std::string(kHead) + "<MESSAGE" + Attr("ID", message_id) + Attr("PROTOCOLVERSION", "1.0") +
         "><" + k + ">" + body + "</" + k + "></MESSAGE></CIM>\n";
}

}  // namespace

std::string XmlEscape(std::string_view raw) {
  // A value stored before names were checked may hold anything: bytes that
  // are not UTF-8, or characters XML 1.0 cannot carry even as references
  // (C0 controls but tab, newline and carriage return; U+FFFE, U+FFFF).
  // Each becomes U+FFFD, so every client can still read the document.
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string valid;
  if (!IsValidUtf8(raw)) valid = ToValidUtf8(raw);
  const std::string_view s = valid.empty() ? raw : valid;
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      // As references, so that attribute-value normalisation and line-end
      // handling give them back unchanged.
      case '\t':
        out += "&#9;";
        break;
      case '\n':
        out += "&#10;";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += kReplacement;
        } else if (s.substr(i, 3) == "\xEF\xBF\xBE" || s.substr(i, 3) == "\xEF\xBF\xBF") {
          out += kReplacement;
          i += 2;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string InstanceNameXml(const ObjectPath& p) {
  std::string out = "<INSTANCENAME" + Attr("CLASSNAME", p.class_name) + ">";
  for (const auto& k : p.keys) {
    out += "<KEYBINDING" + Attr("NAME", k.name) + ">";
    if (k.kind == KeyBinding::Kind::kReference && !k.ref.empty()) {
      out += "<VALUE.REFERENCE>" + PathXml(k.ref[0]) + "</VALUE.REFERENCE>";
    } else {
      out += "<KEYVALUE" + Attr("VALUETYPE", KeyValueType(k.kind)) + ">" + XmlEscape(k.value) +
             "</KEYVALUE>";
    }
    out += "</KEYBINDING>";
  }
  return out + "</INSTANCENAME>";
}

std::string PathXml(const ObjectPath& p) {
  if (!p.host.empty()) {
    return "<INSTANCEPATH><NAMESPACEPATH><HOST>" + XmlEscape(p.host) + "</HOST>" +
           LocalNamespaceXml(p) + "</NAMESPACEPATH>" + InstanceNameXml(p) + "</INSTANCEPATH>";
  }
  if (!p.namespace_.empty()) {
    return "<LOCALINSTANCEPATH>" + LocalNamespaceXml(p) + InstanceNameXml(p) +
           "</LOCALINSTANCEPATH>";
  }
  return InstanceNameXml(p);
}

std::string InstanceXml(const Instance& inst) {
  std::string out = "<INSTANCE" + Attr("CLASSNAME", inst.class_name) + ">";
  for (const auto& p : inst.properties) {
    if (p.type == "reference") {
      out += "<PROPERTY.REFERENCE" + Attr("NAME", p.name) + ">" + ValueXml(p.value) +
             "</PROPERTY.REFERENCE>";
    } else if (p.is_array) {
      out += "<PROPERTY.ARRAY" + Attr("NAME", p.name) + Attr("TYPE", p.type) + ">" +
             ValueXml(p.value) + "</PROPERTY.ARRAY>";
    } else {
      out += "<PROPERTY" + Attr("NAME", p.name) + Attr("TYPE", p.type) + ">" + ValueXml(p.value) +
             "</PROPERTY>";
    }
  }
  return out + "</INSTANCE>";
}

std::string ValueNamedInstanceXml(const ObjectPath& p, const Instance& inst) {
  return "<VALUE.NAMEDINSTANCE>" + InstanceNameXml(p) + InstanceXml(inst) +
         "</VALUE.NAMEDINSTANCE>";
}

std::string ObjectWithPathXml(const ObjectPath& p, const Instance& inst) {
  return "<VALUE.OBJECTWITHPATH>" + PathXml(p) + InstanceXml(inst) + "</VALUE.OBJECTWITHPATH>";
}

std::string ObjectPathXml(const ObjectPath& p) {
  return "<OBJECTPATH>" + PathXml(p) + "</OBJECTPATH>";
}

namespace {

std::string ParamsXml(const char* tag, const std::vector<OutParam>& params, bool bare_refs) {
  std::string out;
  for (const auto& p : params) {
    out += std::string("<") + tag + Attr("NAME", p.name);
    if (!bare_refs && !p.paramtype.empty()) out += Attr("PARAMTYPE", p.paramtype);
    out += ">";
    if (bare_refs && p.value.kind == Value::Kind::kReference && !p.value.refs.empty()) {
      const ObjectPath& ref = p.value.refs[0];
      out += ref.keys.empty() ? "<CLASSNAME" + Attr("NAME", ref.class_name) + "/>"
                              : InstanceNameXml(ref);
    } else {
      out += ValueXml(p.value);
    }
    out += std::string("</") + tag + ">";
  }
  return out;
}

}  // namespace

std::string IMethodCall(std::string_view message_id, std::string_view method,
                        const std::vector<std::string>& ns, const std::vector<OutParam>& params) {
  ObjectPath where{"", ns, "", {}};
  return Message(message_id,
                 "<IMETHODCALL" + Attr("NAME", method) + ">" + LocalNamespaceXml(where) +
                     ParamsXml("IPARAMVALUE", params, true) + "</IMETHODCALL>",
                 "SIMPLEREQ");
}

std::string MethodCall(std::string_view message_id, const ObjectPath& target,
                       std::string_view method, const std::vector<OutParam>& params) {
  return Message(message_id,
                 "<METHODCALL" + Attr("NAME", method) + "><LOCALINSTANCEPATH>" +
                     LocalNamespaceXml(target) + InstanceNameXml(target) + "</LOCALINSTANCEPATH>" +
                     ParamsXml("PARAMVALUE", params, false) + "</METHODCALL>",
                 "SIMPLEREQ");
}

std::string IMethodResponse(std::string_view message_id, std::string_view method,
                            std::string_view ireturnvalue_content) {
  return Message(message_id, "<IMETHODRESPONSE" + Attr("NAME", method) + "><IRETURNVALUE>" +
                                 std::string(ireturnvalue_content) +
                                 "</IRETURNVALUE></IMETHODRESPONSE>");
}

std::string MethodResponse(std::string_view message_id, std::string_view method,
                           uint32_t return_value, const std::vector<OutParam>& out) {
  std::string body = "<METHODRESPONSE" + Attr("NAME", method) + "><RETURNVALUE" +
                     Attr("PARAMTYPE", "uint32") + "><VALUE>" + std::to_string(return_value) +
                     "</VALUE></RETURNVALUE>";
  for (const auto& p : out) {
    body += "<PARAMVALUE" + Attr("NAME", p.name) + Attr("PARAMTYPE", p.paramtype) + ">" +
            ValueXml(p.value) + "</PARAMVALUE>";
  }
  return Message(message_id, body + "</METHODRESPONSE>");
}

std::string ErrorResponse(std::string_view message_id, std::string_view method, bool intrinsic,
                          int cim_status, std::string_view description) {
  const char* tag = intrinsic ? "IMETHODRESPONSE" : "METHODRESPONSE";
  return Message(message_id, std::string("<") + tag + Attr("NAME", method) + "><ERROR" +
                                 Attr("CODE", std::to_string(cim_status)) +
                                 Attr("DESCRIPTION", description) + "/></" + tag + ">");
}

}  // namespace vmgroup::cim
