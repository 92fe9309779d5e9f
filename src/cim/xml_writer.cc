#include "cim/xml_writer.h"

#include "base/validate.h"

namespace vmgroup::cim {
namespace {

constexpr std::string_view kHead = R"(<?xml version="1.0" encoding="utf-8" ?>)"
                                   "\n"
                                   R"(<CIM CIMVERSION="2.0" DTDVERSION="2.0">)";

// What `append` writes, as a string of its own: for a single fragment.
template <typename Fn, typename... Args>
std::string Rendered(Fn append, const Args&... args) {
  std::string out;
  append(&out, args...);
  return out;
}

// ` name="value"`, the value escaped.
void AppendAttr(std::string* out, std::string_view name, std::string_view value) {
  out->push_back(' ');
  out->append(name);
  out->append("=\"");
  AppendEscaped(out, value);
  out->push_back('"');
}

std::string Attr(std::string_view name, std::string_view value) {
  return Rendered(AppendAttr, name, value);
}

void AppendLocalNamespaceXml(std::string* out, const ObjectPath& p) {
  out->append("<LOCALNAMESPACEPATH>");
  for (const auto& part : p.namespace_) {
    out->append("<NAMESPACE");
    AppendAttr(out, "NAME", part);
    out->append("/>");
  }
  out->append("</LOCALNAMESPACEPATH>");
}

std::string LocalNamespaceXml(const ObjectPath& p) { return Rendered(AppendLocalNamespaceXml, p); }

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

void AppendTextElement(std::string* out, std::string_view tag, std::string_view text) {
  out->push_back('<');
  out->append(tag);
  out->push_back('>');
  AppendEscaped(out, text);
  out->append("</");
  out->append(tag);
  out->push_back('>');
}

void AppendReferenceXml(std::string* out, const ObjectPath& p) {
  out->append("<VALUE.REFERENCE>");
  AppendPathXml(out, p);
  out->append("</VALUE.REFERENCE>");
}

void AppendValueXml(std::string* out, const Value& v) {
  switch (v.kind) {
    case Value::Kind::kNull:
      return;
    case Value::Kind::kScalar:
      AppendTextElement(out, "VALUE", v.scalar);
      return;
    case Value::Kind::kArray:
      out->append("<VALUE.ARRAY>");
      for (const auto& item : v.array) AppendTextElement(out, "VALUE", item);
      out->append("</VALUE.ARRAY>");
      return;
    case Value::Kind::kReference:
      if (!v.refs.empty()) AppendReferenceXml(out, v.refs[0]);
      return;
    case Value::Kind::kReferenceArray:
      out->append("<VALUE.REFARRAY>");
      for (const auto& r : v.refs) AppendReferenceXml(out, r);
      out->append("</VALUE.REFARRAY>");
      return;
  }
}

std::string ValueXml(const Value& v) { return Rendered(AppendValueXml, v); }

// `kind` is SIMPLEREQ or SIMPLERSP.
std::string Message(std::string_view message_id, const std::string& body,
                    std::string_view kind = "SIMPLERSP") {
  const std::string k(kind);
  return std::string(kHead) + "<MESSAGE" + Attr("ID", message_id) + Attr("PROTOCOLVERSION", "1.0") +
         "><" + k + ">" + body + "</" + k + "></MESSAGE></CIM>\n";
}

// Whether `c` is written as itself (no reference, no replacement).
bool Plain(unsigned char c) {
  return c >= 0x20 && c < 0x80 && c != '&' && c != '<' && c != '>' && c != '"' && c != '\'';
}

}  // namespace

void AppendEscaped(std::string* out, std::string_view raw) {
  // A value stored before names were checked may hold anything: bytes that
  // are not UTF-8, or characters XML 1.0 cannot carry even as references
  // (C0 controls but tab, newline and carriage return; U+FFFE, U+FFFF).
  // Each becomes U+FFFD, so every client can still read the document.
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  // Most values are plain ASCII: written as they are, and valid UTF-8 unchecked.
  size_t plain = 0;
  while (plain < raw.size() && Plain(static_cast<unsigned char>(raw[plain]))) ++plain;
  if (plain == raw.size()) {
    out->append(raw);
    return;
  }
  std::string valid;
  if (!IsValidUtf8(raw)) valid = ToValidUtf8(raw);
  const std::string_view s = valid.empty() ? raw : valid;
  for (size_t i = 0; i < s.size();) {
    // Plain runs, the whole value as a rule, go in one append.
    size_t run = i;
    while (run < s.size() && Plain(static_cast<unsigned char>(s[run]))) ++run;
    out->append(s.substr(i, run - i));
    if (run == s.size()) break;
    i = run;
    const char c = s[i];
    switch (c) {
      case '&':
        out->append("&amp;");
        break;
      case '<':
        out->append("&lt;");
        break;
      case '>':
        out->append("&gt;");
        break;
      case '"':
        out->append("&quot;");
        break;
      case '\'':
        out->append("&apos;");
        break;
      // As references, so that attribute-value normalisation and line-end
      // handling give them back unchanged.
      case '\t':
        out->append("&#9;");
        break;
      case '\n':
        out->append("&#10;");
        break;
      case '\r':
        out->append("&#13;");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out->append(kReplacement);
        } else if (s.substr(i, 3) == "\xEF\xBF\xBE" || s.substr(i, 3) == "\xEF\xBF\xBF") {
          out->append(kReplacement);
          i += 2;
        } else {
          out->push_back(c);
        }
    }
    ++i;
  }
}

std::string XmlEscape(std::string_view raw) { return Rendered(AppendEscaped, raw); }

void AppendInstanceNameXml(std::string* out, const ObjectPath& p) {
  out->append("<INSTANCENAME");
  AppendAttr(out, "CLASSNAME", p.class_name);
  out->push_back('>');
  for (const auto& k : p.keys) {
    out->append("<KEYBINDING");
    AppendAttr(out, "NAME", k.name);
    out->push_back('>');
    if (k.kind == KeyBinding::Kind::kReference && !k.ref.empty()) {
      AppendReferenceXml(out, k.ref[0]);
    } else {
      out->append("<KEYVALUE");
      AppendAttr(out, "VALUETYPE", KeyValueType(k.kind));
      out->push_back('>');
      AppendEscaped(out, k.value);
      out->append("</KEYVALUE>");
    }
    out->append("</KEYBINDING>");
  }
  out->append("</INSTANCENAME>");
}

void AppendPathXml(std::string* out, const ObjectPath& p) {
  if (!p.host.empty()) {
    out->append("<INSTANCEPATH><NAMESPACEPATH>");
    AppendTextElement(out, "HOST", p.host);
    AppendLocalNamespaceXml(out, p);
    out->append("</NAMESPACEPATH>");
    AppendInstanceNameXml(out, p);
    out->append("</INSTANCEPATH>");
  } else if (!p.namespace_.empty()) {
    out->append("<LOCALINSTANCEPATH>");
    AppendLocalNamespaceXml(out, p);
    AppendInstanceNameXml(out, p);
    out->append("</LOCALINSTANCEPATH>");
  } else {
    AppendInstanceNameXml(out, p);
  }
}

void AppendInstanceXml(std::string* out, const Instance& inst) {
  out->append("<INSTANCE");
  AppendAttr(out, "CLASSNAME", inst.class_name);
  out->push_back('>');
  for (const auto& p : inst.properties) {
    const std::string_view tag = p.type == "reference" ? "PROPERTY.REFERENCE"
                                 : p.is_array          ? "PROPERTY.ARRAY"
                                                       : "PROPERTY";
    out->push_back('<');
    out->append(tag);
    AppendAttr(out, "NAME", p.name);
    if (p.type != "reference") AppendAttr(out, "TYPE", p.type);
    out->push_back('>');
    AppendValueXml(out, p.value);
    out->append("</");
    out->append(tag);
    out->push_back('>');
  }
  out->append("</INSTANCE>");
}

void AppendValueNamedInstanceXml(std::string* out, const ObjectPath& p, const Instance& inst) {
  out->append("<VALUE.NAMEDINSTANCE>");
  AppendInstanceNameXml(out, p);
  AppendInstanceXml(out, inst);
  out->append("</VALUE.NAMEDINSTANCE>");
}

void AppendObjectWithPathXml(std::string* out, const ObjectPath& p, const Instance& inst) {
  out->append("<VALUE.OBJECTWITHPATH>");
  AppendPathXml(out, p);
  AppendInstanceXml(out, inst);
  out->append("</VALUE.OBJECTWITHPATH>");
}

void AppendObjectPathXml(std::string* out, const ObjectPath& p) {
  out->append("<OBJECTPATH>");
  AppendPathXml(out, p);
  out->append("</OBJECTPATH>");
}

std::string InstanceNameXml(const ObjectPath& p) { return Rendered(AppendInstanceNameXml, p); }
std::string PathXml(const ObjectPath& p) { return Rendered(AppendPathXml, p); }
std::string InstanceXml(const Instance& inst) { return Rendered(AppendInstanceXml, inst); }
std::string ValueNamedInstanceXml(const ObjectPath& p, const Instance& inst) {
  return Rendered(AppendValueNamedInstanceXml, p, inst);
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

std::string IMethodResponseHead(std::string_view message_id, std::string_view method) {
  std::string out(kHead);
  out.append("<MESSAGE");
  AppendAttr(&out, "ID", message_id);
  AppendAttr(&out, "PROTOCOLVERSION", "1.0");
  out.append("><SIMPLERSP><IMETHODRESPONSE");
  AppendAttr(&out, "NAME", method);
  out.append("><IRETURNVALUE>");
  return out;
}

void AppendIMethodResponseTail(std::string* out) {
  out->append("</IRETURNVALUE></IMETHODRESPONSE></SIMPLERSP></MESSAGE></CIM>\n");
}

std::string IMethodResponse(std::string_view message_id, std::string_view method,
                            std::string_view ireturnvalue_content) {
  std::string out = IMethodResponseHead(message_id, method);
  out.append(ireturnvalue_content);
  AppendIMethodResponseTail(&out);
  return out;
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
