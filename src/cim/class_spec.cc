#include "cim/class_spec.h"

#include <cctype>
#include <charconv>
#include <limits>

#include "cim/xml_writer.h"

namespace vmgroup::cim {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Qualifier(std::string_view name) {
  return R"(<QUALIFIER NAME=")" + std::string(name) +
         R"(" TYPE="boolean"><VALUE>TRUE</VALUE></QUALIFIER>)";
}

std::string StringQualifier(std::string_view name, std::string_view value) {
  return R"(<QUALIFIER NAME=")" + std::string(name) + R"(" TYPE="string"><VALUE>)" +
         XmlEscape(value) + "</VALUE></QUALIFIER>";
}

template <typename T>
Status CheckInteger(std::string_view type, std::string_view text) {
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range) {
    return Status::InvalidArgument("'" + std::string(text) + "' is out of range for " +
                                   std::string(type));
  }
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Status::InvalidArgument("'" + std::string(text) + "' is not a " + std::string(type));
  }
  return Status::Ok();
}

}  // namespace

const ParamSpec* MethodSpec::Param(std::string_view n) const { return FindByName(params, n); }

const PropertySpec* ClassSpec::Property(std::string_view n) const {
  return FindByName(properties, n);
}

const MethodSpec* ClassSpec::Method(std::string_view n) const { return FindByName(methods, n); }

void ClassRegistry::Add(ClassSpec spec) {
  std::string key = Lower(spec.name);
  classes_.emplace(std::move(key), std::move(spec));
}

const ClassSpec* ClassRegistry::Find(std::string_view name) const {
  auto it = classes_.find(Lower(name));
  return it == classes_.end() ? nullptr : &it->second;
}

std::vector<std::string> ClassRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [key, spec] : classes_) out.push_back(spec.name);
  return out;
}

std::string ClassXml(const ClassSpec& spec) {
  std::string out = R"(<CLASS NAME=")" + XmlEscape(spec.name) + "\"";
  if (!spec.superclass.empty()) out += R"( SUPERCLASS=")" + XmlEscape(spec.superclass) + "\"";
  out += ">";
  if (spec.association) out += Qualifier("Association");
  for (const auto& p : spec.properties) {
    const std::string key = p.key ? Qualifier("Key") : "";
    if (p.type == "reference") {
      out += R"(<PROPERTY.REFERENCE NAME=")" + XmlEscape(p.name) + R"(" REFERENCECLASS=")" +
             XmlEscape(p.reference_class) + "\">" + key + "</PROPERTY.REFERENCE>";
    } else if (p.is_array) {
      out += R"(<PROPERTY.ARRAY NAME=")" + XmlEscape(p.name) + R"(" TYPE=")" + p.type + "\">" +
             key + "</PROPERTY.ARRAY>";
    } else {
      out += R"(<PROPERTY NAME=")" + XmlEscape(p.name) + R"(" TYPE=")" + p.type + "\">" + key +
             "</PROPERTY>";
    }
  }
  for (const auto& m : spec.methods) {
    out += R"(<METHOD NAME=")" + XmlEscape(m.name) + R"(" TYPE="uint32">)";
    for (const auto& p : m.params) {
      std::string quals = (p.in ? Qualifier("In") : "") + (p.out ? Qualifier("Out") : "");
      if (!p.embedded_class.empty()) quals += StringQualifier("EmbeddedInstance", p.embedded_class);
      if (p.type == "reference") {
        const char* tag = p.is_array ? "PARAMETER.REFARRAY" : "PARAMETER.REFERENCE";
        out += std::string("<") + tag + R"( NAME=")" + XmlEscape(p.name) + R"(" REFERENCECLASS=")" +
               XmlEscape(p.reference_class) + "\">" + quals + "</" + tag + ">";
      } else {
        const char* tag = p.is_array ? "PARAMETER.ARRAY" : "PARAMETER";
        out += std::string("<") + tag + R"( NAME=")" + XmlEscape(p.name) + R"(" TYPE=")" + p.type +
               "\">" + quals + "</" + tag + ">";
      }
    }
    out += "</METHOD>";
  }
  return out + "</CLASS>";
}

ObjectPath PathOf(const ClassSpec& spec, const Instance& inst, std::vector<std::string> ns) {
  ObjectPath p{"", std::move(ns), spec.name, {}};
  for (const auto& ps : spec.properties) {
    if (!ps.key) continue;
    const Property* prop = inst.Find(ps.name);
    KeyBinding k{ps.name, KeyBinding::Kind::kString, "", {}};
    if (ps.type == "reference") {
      k.kind = KeyBinding::Kind::kReference;
      if (prop && !prop->value.refs.empty()) k.ref.push_back(prop->value.refs[0]);
    } else {
      if (ps.type == "boolean")
        k.kind = KeyBinding::Kind::kBoolean;
      else if (ps.type != "string" && ps.type != "datetime" && ps.type != "char16") {
        k.kind = KeyBinding::Kind::kNumeric;
      }
      if (prop) k.value = prop->value.scalar;
    }
    p.keys.push_back(std::move(k));
  }
  return p;
}

Status CheckScalar(std::string_view type, std::string_view text) {
  if (type == "uint8") return CheckInteger<uint8_t>(type, text);
  if (type == "uint16") return CheckInteger<uint16_t>(type, text);
  if (type == "uint32") return CheckInteger<uint32_t>(type, text);
  if (type == "uint64") return CheckInteger<uint64_t>(type, text);
  if (type == "sint8") return CheckInteger<int8_t>(type, text);
  if (type == "sint16") return CheckInteger<int16_t>(type, text);
  if (type == "sint32") return CheckInteger<int32_t>(type, text);
  if (type == "sint64") return CheckInteger<int64_t>(type, text);
  if (type == "boolean") {
    const std::string v = Lower(text);
    if (v == "true" || v == "false") return Status::Ok();
    return Status::InvalidArgument("'" + std::string(text) + "' is not TRUE or FALSE");
  }
  if (type == "datetime") {
    // yyyymmddhhmmss.mmmmmmsutc (timestamp) or ddddddddhhmmss.mmmmmm:000 (interval).
    bool ok = text.size() == 25 && text[14] == '.' &&
              (text[21] == '+' || text[21] == '-' || text[21] == ':');
    for (size_t i = 0; ok && i < text.size(); ++i) {
      if (i == 14 || i == 21) continue;
      ok = std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '*';
    }
    if (!ok) return Status::InvalidArgument("'" + std::string(text) + "' is not a CIM datetime");
  }
  return Status::Ok();
}

std::variant<std::map<std::string, Value>, CimError> CheckArguments(
    const MethodSpec& method, const std::vector<Param>& args) {
  std::map<std::string, Value> out;
  for (const auto& a : args) {
    const ParamSpec* spec = method.Param(a.name);
    if (!spec || !spec->in) {
      return CimError{CimStatus::kInvalidParameter,
                      method.name + " has no input parameter " + a.name};
    }
    const Value& v = a.value;
    auto mismatch = [&](const std::string& why) {
      return CimError{CimStatus::kTypeMismatch, "parameter " + spec->name + ": " + why};
    };
    if (v.kind != Value::Kind::kNull) {
      const bool ref = spec->type == "reference";
      const bool got_ref =
          v.kind == Value::Kind::kReference || v.kind == Value::Kind::kReferenceArray;
      const bool got_array =
          v.kind == Value::Kind::kArray || v.kind == Value::Kind::kReferenceArray;
      if (ref != got_ref)
        return mismatch(ref ? "expected a reference" : "did not expect a reference");
      if (spec->is_array != got_array) {
        return mismatch(spec->is_array ? "expected an array" : "did not expect an array");
      }
      if (!ref) {
        const std::vector<std::string> items =
            got_array ? v.array : std::vector<std::string>{v.scalar};
        for (const auto& item : items) {
          if (Status s = CheckScalar(spec->type, item); !s.ok()) return mismatch(s.message());
        }
      }
    }
    out[spec->name] = v;
  }
  return out;
}

}  // namespace vmgroup::cim
