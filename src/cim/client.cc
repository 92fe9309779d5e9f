#include "cim/client.h"

#include "cim/class_spec.h"

namespace vmgroup::cim {
namespace {

// Escapes what a header value must not carry raw: the CIMObject header is
// percent-encoded as clients do (DSP0200 §6.3.7).
std::string PercentEncode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '=' || c == ',') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

OutParam PathArg(std::string name, ObjectPath p) {
  return {std::move(name), "", Value::Reference(std::move(p))};
}

}  // namespace

Status FromCimError(int cim_status, const std::string& description) {
  switch (static_cast<CimStatus>(cim_status)) {
    case CimStatus::kNotFound:
      return Status::NotFound(description);
    case CimStatus::kInvalidParameter:
    case CimStatus::kInvalidClass:
    case CimStatus::kInvalidNamespace:
    case CimStatus::kNoSuchProperty:
    case CimStatus::kTypeMismatch:
    case CimStatus::kMethodNotFound:
      return Status::InvalidArgument(description);
    case CimStatus::kNotSupported:
      return Status::NotSupported(description);
    case CimStatus::kAccessDenied:
      return Status::Failed("access denied: " + description);
    default:
      return Status::Failed(description);
  }
}

CimClient::CimClient(std::unique_ptr<HttpClient> http, std::string ns) : http_(std::move(http)) {
  ns_text_ = std::move(ns);
  size_t start = 0;
  while (start <= ns_text_.size()) {
    size_t slash = ns_text_.find('/', start);
    if (slash == std::string::npos) slash = ns_text_.size();
    if (slash > start) ns_.push_back(ns_text_.substr(start, slash - start));
    start = slash + 1;
  }
}

Result<Response> CimClient::Call(const std::string& method, const std::string& cim_object,
                                 const std::string& body) {
  Headers h = {{"Content-Type", "application/xml; charset=\"utf-8\""},
               {"CIMProtocolVersion", "1.0"},
               {"CIMOperation", "MethodCall"},
               {"CIMMethod", method},
               {"CIMObject", cim_object}};
  VMG_ASSIGN_OR_RETURN(HttpResponse http, http_->Post("/cimom", std::move(h), body, timeout_));
  if (http.status == 401) {
    return Status::Failed(
        "vmgroupd refused the credentials: give https://USER@HOST:PORT and the user's "
        "password (--password-file FILE, $VMGROUP_PASSWORD or the prompt)");
  }
  if (http.status != 200) {
    const std::string* why = http.Header("CIMError");
    return Status::Failed("vmgroupd answered HTTP " + std::to_string(http.status) +
                          (why ? " (" + *why + ")" : std::string()) + ": " + http.body);
  }
  VMG_ASSIGN_OR_RETURN(Response r, ParseResponse(http.body));
  if (r.error) return FromCimError(r.cim_status, r.description);
  return r;
}

Result<std::vector<NamedInstance>> CimClient::EnumerateInstances(const std::string& class_name) {
  const std::string body = IMethodCall("1", "EnumerateInstances", ns_,
                                       {PathArg("ClassName", ObjectPath{"", {}, class_name, {}})});
  VMG_ASSIGN_OR_RETURN(Response r, Call("EnumerateInstances", PercentEncode(ns_text_), body));
  return std::move(r.instances);
}

Result<Instance> CimClient::GetInstance(const ObjectPath& path) {
  ObjectPath bare = path;
  bare.host.clear();
  bare.namespace_.clear();
  const std::string body = IMethodCall("1", "GetInstance", ns_, {PathArg("InstanceName", bare)});
  VMG_ASSIGN_OR_RETURN(Response r, Call("GetInstance", PercentEncode(ns_text_), body));
  if (r.instances.empty()) return Status::NotFound("no instance in the answer");
  return std::move(r.instances[0].instance);
}

Result<std::vector<NamedInstance>> CimClient::Associators(const ObjectPath& object,
                                                          const std::string& assoc_class,
                                                          const std::string& result_class) {
  ObjectPath bare = object;
  bare.host.clear();
  bare.namespace_.clear();
  std::vector<OutParam> params = {PathArg("ObjectName", bare)};
  if (!assoc_class.empty()) {
    params.push_back(PathArg("AssocClass", ObjectPath{"", {}, assoc_class, {}}));
  }
  if (!result_class.empty()) {
    params.push_back(PathArg("ResultClass", ObjectPath{"", {}, result_class, {}}));
  }
  const std::string body = IMethodCall("1", "Associators", ns_, params);
  VMG_ASSIGN_OR_RETURN(Response r, Call("Associators", PercentEncode(ns_text_), body));
  return std::move(r.instances);
}

Result<Response> CimClient::Invoke(const ObjectPath& target, const std::string& method,
                                   const std::vector<OutParam>& args) {
  ObjectPath where = target;
  where.host.clear();
  where.namespace_ = ns_;
  const std::string body = MethodCall("1", where, method, args);
  return Call(method, PercentEncode(ns_text_ + ":" + target.class_name), body);
}

}  // namespace vmgroup::cim
