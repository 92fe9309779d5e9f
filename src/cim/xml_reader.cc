#include "cim/xml_reader.h"

#include <cctype>
#include <cstring>
#include <pugixml.hpp>

namespace vmgroup::cim {
namespace {

// Element names compare exactly (DSP0201 fixes their case).
bool Is(const pugi::xml_node& n, const char* name) { return std::strcmp(n.name(), name) == 0; }

std::vector<std::string> ReadLocalNamespace(const pugi::xml_node& lnp) {
  std::vector<std::string> ns;
  for (auto n : lnp.children("NAMESPACE")) ns.push_back(n.attribute("NAME").value());
  return ns;
}

// `level`: how many references enclose `n`, itself included (1 for a
// parameter's or a target's own path).
Result<ObjectPath> ReadPath(const pugi::xml_node& n, int level = 1);

Result<ObjectPath> ReadInstanceName(const pugi::xml_node& n, int level) {
  ObjectPath p;
  p.class_name = n.attribute("CLASSNAME").value();
  if (p.class_name.empty()) return Status::InvalidArgument("INSTANCENAME without CLASSNAME");
  for (auto kb : n.children("KEYBINDING")) {
    KeyBinding k;
    k.name = kb.attribute("NAME").value();
    if (auto kv = kb.child("KEYVALUE")) {
      std::string type = kv.attribute("VALUETYPE").value();
      k.kind = type == "boolean"   ? KeyBinding::Kind::kBoolean
               : type == "numeric" ? KeyBinding::Kind::kNumeric
                                   : KeyBinding::Kind::kString;
      k.value = kv.text().get();
    } else if (auto vr = kb.child("VALUE.REFERENCE")) {
      VMG_ASSIGN_OR_RETURN(ObjectPath ref, ReadPath(vr.first_child(), level + 1));
      k.kind = KeyBinding::Kind::kReference;
      k.ref.push_back(std::move(ref));
    } else {
      return Status::InvalidArgument("KEYBINDING " + k.name + " has no value");
    }
    p.keys.push_back(std::move(k));
  }
  // A single unnamed key: <INSTANCENAME><KEYVALUE>...</KEYVALUE></INSTANCENAME>.
  if (auto kv = n.child("KEYVALUE"))
    p.keys.push_back({"", KeyBinding::Kind::kString, kv.text().get(), {}});
  return p;
}

// Any of the path forms DSP0201 allows where a reference is expected.
Result<ObjectPath> ReadPath(const pugi::xml_node& n, int level) {
  if (level > kMaxReferenceNesting) {
    return Status::InvalidArgument("references nested in keys deeper than " +
                                   std::to_string(kMaxReferenceNesting) + " levels");
  }
  if (Is(n, "INSTANCENAME")) return ReadInstanceName(n, level);
  if (Is(n, "CLASSNAME")) {
    ObjectPath p;
    p.class_name = n.attribute("NAME").value();
    return p;
  }
  if (Is(n, "LOCALINSTANCEPATH") || Is(n, "LOCALCLASSPATH")) {
    auto inner = Is(n, "LOCALINSTANCEPATH") ? n.child("INSTANCENAME") : n.child("CLASSNAME");
    VMG_ASSIGN_OR_RETURN(ObjectPath p, ReadPath(inner, level));
    p.namespace_ = ReadLocalNamespace(n.child("LOCALNAMESPACEPATH"));
    return p;
  }
  if (Is(n, "INSTANCEPATH") || Is(n, "CLASSPATH")) {
    auto nsp = n.child("NAMESPACEPATH");
    auto inner = Is(n, "INSTANCEPATH") ? n.child("INSTANCENAME") : n.child("CLASSNAME");
    VMG_ASSIGN_OR_RETURN(ObjectPath p, ReadPath(inner, level));
    p.host = nsp.child("HOST").text().get();
    p.namespace_ = ReadLocalNamespace(nsp.child("LOCALNAMESPACEPATH"));
    return p;
  }
  return Status::InvalidArgument(std::string("expected an object path, found <") + n.name() + ">");
}

// The value inside a PARAMVALUE, IPARAMVALUE or PROPERTY element.
Result<Value> ReadValue(const pugi::xml_node& holder) {
  for (auto c : holder.children()) {
    if (c.type() != pugi::node_element || Is(c, "QUALIFIER")) continue;
    if (Is(c, "VALUE")) return Value::Scalar(c.text().get());
    if (Is(c, "VALUE.ARRAY")) {
      std::vector<std::string> items;
      for (auto v : c.children("VALUE")) items.push_back(v.text().get());
      return Value::Array(std::move(items));
    }
    if (Is(c, "VALUE.REFERENCE")) {
      VMG_ASSIGN_OR_RETURN(ObjectPath p, ReadPath(c.first_child()));
      return Value::Reference(std::move(p));
    }
    if (Is(c, "VALUE.REFARRAY")) {
      Value v{Value::Kind::kReferenceArray, {}, {}, {}};
      for (auto r : c.children("VALUE.REFERENCE")) {
        VMG_ASSIGN_OR_RETURN(ObjectPath p, ReadPath(r.first_child()));
        v.refs.push_back(std::move(p));
      }
      return v;
    }
    // Intrinsic parameters carry bare names: <INSTANCENAME>, <CLASSNAME>.
    VMG_ASSIGN_OR_RETURN(ObjectPath p, ReadPath(c));
    return Value::Reference(std::move(p));
  }
  return Value{};
}

Result<Instance> ReadInstance(const pugi::xml_node& n) {
  Instance inst;
  inst.class_name = n.attribute("CLASSNAME").value();
  if (inst.class_name.empty()) return Status::InvalidArgument("INSTANCE without CLASSNAME");
  for (auto p : n.children()) {
    if (p.type() != pugi::node_element || Is(p, "QUALIFIER")) continue;
    Property prop;
    prop.name = p.attribute("NAME").value();
    if (Is(p, "PROPERTY")) {
      prop.type = p.attribute("TYPE").value();
    } else if (Is(p, "PROPERTY.ARRAY")) {
      prop.type = p.attribute("TYPE").value();
      prop.is_array = true;
    } else if (Is(p, "PROPERTY.REFERENCE")) {
      prop.type = "reference";
    } else {
      return Status::InvalidArgument(std::string("unexpected <") + p.name() + "> in INSTANCE");
    }
    VMG_ASSIGN_OR_RETURN(prop.value, ReadValue(p));
    inst.properties.push_back(std::move(prop));
  }
  return inst;
}

RequestError NotValid(std::string detail) { return {"request-not-valid", std::move(detail)}; }

}  // namespace

const Param* Request::Find(std::string_view name) const { return FindByName(params, name); }

std::variant<Request, RequestError> ParseRequest(std::string_view body) {
  pugi::xml_document doc;
  auto parsed = doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) {
    return RequestError{
        "request-not-well-formed",
        std::string(parsed.description()) + " at offset " + std::to_string(parsed.offset)};
  }
  auto message = doc.child("CIM").child("MESSAGE");
  if (!message) return NotValid("no <CIM><MESSAGE> element");
  auto simple = message.child("SIMPLEREQ");
  if (!simple) {
    if (message.child("MULTIREQ")) return RequestError{"multiple-requests-unsupported", ""};
    return NotValid("no <SIMPLEREQ> in MESSAGE");
  }
  Request r;
  r.message_id = message.attribute("ID").value();
  pugi::xml_node call = simple.child("IMETHODCALL");
  if (call) {
    r.intrinsic = true;
    r.target.namespace_ = ReadLocalNamespace(call.child("LOCALNAMESPACEPATH"));
  } else if ((call = simple.child("METHODCALL"))) {
    r.intrinsic = false;
    pugi::xml_node path = call.child("LOCALINSTANCEPATH");
    if (!path) path = call.child("LOCALCLASSPATH");
    if (!path) return NotValid("METHODCALL without LOCALINSTANCEPATH or LOCALCLASSPATH");
    auto target = ReadPath(path);
    if (!target.ok()) return NotValid(target.status().message());
    r.target = std::move(target).value();
  } else {
    return NotValid("SIMPLEREQ holds neither IMETHODCALL nor METHODCALL");
  }
  r.method = call.attribute("NAME").value();
  if (r.method.empty()) return NotValid("method call without a NAME");
  const char* param_tag = r.intrinsic ? "IPARAMVALUE" : "PARAMVALUE";
  for (auto p : call.children(param_tag)) {
    auto value = ReadValue(p);
    if (!value.ok())
      return NotValid("parameter " + std::string(p.attribute("NAME").value()) + ": " +
                      value.status().message());
    r.params.push_back(
        {p.attribute("NAME").value(), p.attribute("PARAMTYPE").value(), std::move(value).value()});
  }
  return r;
}

const Param* Response::Out(std::string_view name) const { return FindByName(out, name); }

Result<Response> ParseResponse(std::string_view body) {
  pugi::xml_document doc;
  auto parsed = doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) {
    return Status::InvalidArgument(std::string("response is not XML: ") + parsed.description());
  }
  auto simple = doc.child("CIM").child("MESSAGE").child("SIMPLERSP");
  pugi::xml_node rsp = simple.child("IMETHODRESPONSE");
  if (!rsp) rsp = simple.child("METHODRESPONSE");
  if (!rsp) return Status::InvalidArgument("no IMETHODRESPONSE or METHODRESPONSE in the response");
  Response r;
  if (auto err = rsp.child("ERROR")) {
    r.error = true;
    r.cim_status = err.attribute("CODE").as_int();
    r.description = err.attribute("DESCRIPTION").value();
    return r;
  }
  if (Is(rsp, "METHODRESPONSE")) {
    r.return_value = rsp.child("RETURNVALUE").child("VALUE").text().as_uint();
    for (auto p : rsp.children("PARAMVALUE")) {
      VMG_ASSIGN_OR_RETURN(Value v, ReadValue(p));
      r.out.push_back(
          {p.attribute("NAME").value(), p.attribute("PARAMTYPE").value(), std::move(v)});
    }
    return r;
  }
  for (auto item : rsp.child("IRETURNVALUE").children()) {
    if (item.type() != pugi::node_element) continue;
    if (Is(item, "INSTANCE")) {
      VMG_ASSIGN_OR_RETURN(Instance inst, ReadInstance(item));
      r.instances.push_back({{}, std::move(inst)});
    } else if (Is(item, "VALUE.NAMEDINSTANCE") || Is(item, "VALUE.OBJECTWITHPATH")) {
      pugi::xml_node path = item.first_child();
      VMG_ASSIGN_OR_RETURN(ObjectPath p, ReadPath(path));
      VMG_ASSIGN_OR_RETURN(Instance inst, ReadInstance(item.child("INSTANCE")));
      r.instances.push_back({std::move(p), std::move(inst)});
    } else if (Is(item, "OBJECTPATH")) {
      VMG_ASSIGN_OR_RETURN(ObjectPath p, ReadPath(item.first_child()));
      r.paths.push_back(std::move(p));
    } else if (Is(item, "INSTANCENAME") || Is(item, "CLASSNAME")) {
      VMG_ASSIGN_OR_RETURN(ObjectPath p, ReadPath(item));
      r.paths.push_back(std::move(p));
    }
  }
  return r;
}

Result<Instance> ParseEmbeddedInstance(std::string_view xml) {
  pugi::xml_document doc;
  auto parsed = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) {
    return Status::InvalidArgument(std::string("embedded instance is not XML: ") +
                                   parsed.description());
  }
  auto inst = doc.child("INSTANCE");
  if (!inst) return Status::InvalidArgument("embedded instance has no <INSTANCE> element");
  return ReadInstance(inst);
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

Result<ObjectPath> ParseCimObjectHeader(std::string_view header) {
  const std::string text = PercentDecode(header);
  ObjectPath p;
  const size_t colon = text.find(':');
  const std::string ns = text.substr(0, colon);
  size_t start = 0;
  while (start <= ns.size()) {
    size_t slash = ns.find('/', start);
    std::string part =
        ns.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!part.empty()) p.namespace_.push_back(part);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (colon == std::string::npos) return p;
  std::string rest = text.substr(colon + 1);
  const size_t dot = rest.find('.');
  p.class_name = rest.substr(0, dot);
  if (p.class_name.empty()) return Status::InvalidArgument("CIMObject names no class: " + text);
  if (dot == std::string::npos) return p;
  // key=value pairs: values are "quoted" (with \" escapes) or bare.
  size_t i = dot + 1;
  while (i < rest.size()) {
    size_t eq = rest.find('=', i);
    if (eq == std::string::npos) return Status::InvalidArgument("bad key binding in " + text);
    KeyBinding k{rest.substr(i, eq - i), KeyBinding::Kind::kNumeric, "", {}};
    i = eq + 1;
    if (i < rest.size() && rest[i] == '"') {
      k.kind = KeyBinding::Kind::kString;
      for (++i; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        k.value += rest[i];
      }
      if (i >= rest.size()) return Status::InvalidArgument("unterminated key value in " + text);
      ++i;  // closing quote
    } else {
      size_t end = rest.find(',', i);
      k.value = rest.substr(i, end == std::string::npos ? std::string::npos : end - i);
      if (k.value == "TRUE" || k.value == "FALSE" || k.value == "true" || k.value == "false") {
        k.kind = KeyBinding::Kind::kBoolean;
      }
      i = end == std::string::npos ? rest.size() : end;
    }
    p.keys.push_back(std::move(k));
    if (i < rest.size() && rest[i] == ',') ++i;
  }
  return p;
}

}  // namespace vmgroup::cim
