#include "cim/dispatcher.h"

#include <cctype>
#include <optional>
#include <variant>

#include "cim/xml_reader.h"
#include "cim/xml_writer.h"

namespace vmgroup::cim {
namespace {

// A handler's failure; on success it has appended its IRETURNVALUE content
// to the answer.
using Failure = std::optional<CimError>;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

CimError FromStatus(const Status& s) {
  switch (s.code()) {
    case Code::kNotFound:
      return {CimStatus::kNotFound, s.message()};
    case Code::kInvalidArgument:
      return {CimStatus::kInvalidParameter, s.message()};
    case Code::kNotSupported:
      return {CimStatus::kNotSupported, s.message()};
    default:
      return {CimStatus::kFailed, s.message()};
  }
}

HttpResponse HttpError(int status, const std::string& cim_error, const std::string& detail) {
  return TextResponse(status, cim_error.empty() ? detail : cim_error + ": " + detail, cim_error);
}

// A path parameter (ClassName, InstanceName, ObjectName): however the client
// sent it, or null.
const ObjectPath* PathParam(const Request& r, std::string_view name) {
  const Param* p = r.Find(name);
  if (!p || p->value.refs.empty()) return nullptr;
  return &p->value.refs[0];
}

// A class-name parameter: CLASSNAME or a plain VALUE; empty when absent.
std::string ClassParam(const Request& r, std::string_view name) {
  if (const ObjectPath* p = PathParam(r, name)) return p->class_name;
  const Param* p = r.Find(name);
  return p && p->value.kind == Value::Kind::kScalar ? p->value.scalar : "";
}

std::string StringParam(const Request& r, std::string_view name) {
  const Param* p = r.Find(name);
  return p && p->value.kind == Value::Kind::kScalar ? p->value.scalar : "";
}

bool BoolParam(const Request& r, std::string_view name, bool fallback) {
  const Param* p = r.Find(name);
  if (!p || p->value.kind != Value::Kind::kScalar) return fallback;
  return NameEquals(p->value.scalar, "true");
}

// Keeps only the properties PropertyList names, when the client sent one.
Instance Filtered(Instance inst, const Request& r) {
  const Param* list = r.Find("PropertyList");
  if (!list || list->value.kind != Value::Kind::kArray) return inst;
  std::vector<Property> kept;
  for (auto& p : inst.properties) {
    for (const auto& want : list->value.array) {
      if (NameEquals(p.name, want)) {
        kept.push_back(std::move(p));
        break;
      }
    }
  }
  inst.properties = std::move(kept);
  return inst;
}

bool SameNamespace(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!NameEquals(a[i], b[i])) return false;
  }
  return true;
}

std::string JoinNs(const std::vector<std::string>& ns) {
  std::string out;
  for (const auto& part : ns) out += (out.empty() ? "" : "/") + part;
  return out;
}

// Why `peer` may not run `r`, or empty when it may.
std::string Refusal(const Peer& peer, const Request& r) {
  const std::string who = "user " + (peer.name.empty() ? std::string("(unknown)") : peer.name);
  const std::string op = r.intrinsic ? r.method : "InvokeMethod " + r.method;
  switch (peer.role) {
    case Role::kAdmin:
      return "";
    case Role::kReader:
      if (Dispatcher::IsRead(r)) return "";
      return who + " may only read (group " + peer.reader_group + "); " + op + " needs group " +
             peer.admin_group;
    case Role::kNone:
      break;
  }
  return who + " may not use this service: " + op + " needs group " + peer.admin_group +
         (peer.reader_group.empty() || !Dispatcher::IsRead(r) ? std::string()
                                                              : " or " + peer.reader_group);
}

}  // namespace

Dispatcher::Dispatcher(std::string_view ns, std::string host) : host_(std::move(host)) {
  if (auto parsed = ParseCimObjectHeader(ns); parsed.ok()) ns_ = parsed->namespace_;
}

void Dispatcher::Register(std::unique_ptr<Provider> provider) {
  Provider* p = provider.get();
  providers_.push_back(std::move(provider));
  classes_.try_emplace(Lower(p->spec().name), &p->spec(), p);
}

void Dispatcher::Declare(ClassSpec spec) {
  declared_.push_back(std::make_unique<ClassSpec>(std::move(spec)));
  const ClassSpec* s = declared_.back().get();
  classes_.try_emplace(Lower(s->name), s, nullptr);
}

const Dispatcher::Entry* Dispatcher::Find(std::string_view class_name) const {
  auto it = classes_.find(Lower(class_name));
  return it == classes_.end() ? nullptr : &it->second;
}

bool Dispatcher::IsA(std::string_view name, std::string_view ancestor) const {
  std::string current(name);
  for (int depth = 0; depth < 16 && !current.empty(); ++depth) {
    if (NameEquals(current, ancestor)) return true;
    const Entry* e = Find(current);
    if (!e) return false;
    current = e->spec->superclass;
  }
  return false;
}

std::vector<const Dispatcher::Entry*> Dispatcher::Family(std::string_view name) const {
  std::vector<const Entry*> out;
  for (const auto& [key, e] : classes_) {
    if (e.provider && IsA(e.spec->name, name)) out.push_back(&e);
  }
  return out;
}

ObjectPath Dispatcher::Rooted(ObjectPath p) const {
  // A path that names another host (a group's member there) keeps it.
  if (p.host.empty()) p.host = host_;
  if (p.namespace_.empty()) p.namespace_ = ns_;
  for (auto& k : p.keys) {
    for (auto& ref : k.ref) ref = Rooted(std::move(ref));
  }
  return p;
}

Instance Dispatcher::Rooted(Instance inst) const {
  for (auto& p : inst.properties) {
    for (auto& ref : p.value.refs) ref = Rooted(std::move(ref));
  }
  return inst;
}

HttpResponse Dispatcher::Handle(const HttpRequest& http) {
  if (http.method != "POST" && http.method != "M-POST") {
    HttpResponse r = HttpError(405, "", "CIM operations are sent with POST");
    r.headers.emplace_back("Allow", "POST");
    return r;
  }
  const std::string* op = http.Header("CIMOperation");
  if (!op || !NameEquals(*op, "MethodCall")) {
    return HttpError(400, "unsupported-operation", "CIMOperation must be MethodCall");
  }
  if (const std::string* v = http.Header("CIMProtocolVersion"); v && !v->starts_with("1.")) {
    return HttpError(501, "unsupported-protocol-version", "this server speaks 1.0");
  }
  auto parsed = ParseRequest(http.body);
  if (auto* err = std::get_if<RequestError>(&parsed)) {
    const int status = err->cim_error == "multiple-requests-unsupported" ? 501 : 400;
    return HttpError(status, err->cim_error, err->detail);
  }
  const Request& req = std::get<Request>(parsed);
  const std::string* method = http.Header("CIMMethod");
  if (!method || PercentDecode(*method) != req.method) {
    return HttpError(400, "header-mismatch", "CIMMethod does not name the method in the body");
  }
  const std::string* object = http.Header("CIMObject");
  if (!object) return HttpError(400, "header-mismatch", "no CIMObject header");
  auto header_path = ParseCimObjectHeader(*object);
  if (!header_path.ok() || !SameNamespace(header_path->namespace_, req.target.namespace_) ||
      (!req.intrinsic && !NameEquals(header_path->class_name, req.target.class_name))) {
    return HttpError(400, "header-mismatch", "CIMObject does not name the target in the body");
  }

  HttpResponse r;
  r.headers.emplace_back("Content-Type", "application/xml; charset=\"utf-8\"");
  r.headers.emplace_back("CIMOperation", "MethodResponse");
  if (const std::string why = Refusal(http.peer, req); !why.empty()) {
    r.body = ErrorResponse(req.message_id, req.method, req.intrinsic,
                           static_cast<int>(CimStatus::kAccessDenied), why);
    return r;
  }
  r.body = req.intrinsic ? Intrinsic(req) : Extrinsic(req);
  return r;
}

// The intrinsic operations this server answers (DSP0200 5.3.2), each with
// the least role that may run it, as libvirt's driver tables and
// cloud-hypervisor's HTTP_ROUTES list theirs. An operation missing here
// (CreateInstance, ModifyInstance, DeleteInstance, SetProperty, ...) would
// change something: only an admin gets past the role check with it, to be
// told it is not supported.
struct Dispatcher::Intrinsics {
  // `names`: the operation answers with names or paths only (the *Names
  // twin of an operation that answers with whole classes or instances).
  // `out`: the answer, to which the handler appends its IRETURNVALUE
  // content; what it appended is dropped if it fails.
  using Handler = Failure (*)(const Dispatcher& d, const Request& r, bool names, std::string* out);
  struct Op {
    std::string_view name;  // as DSP0200 spells it
    Role needs;
    Handler run;
    bool names = false;
  };
  static const Op kOps[];
  // The operation named `name`, or null.
  static const Op* Find(std::string_view name);

  static Failure GetClass(const Dispatcher& d, const Request& r, bool names, std::string* out);
  static Failure Classes(const Dispatcher& d, const Request& r, bool names, std::string* out);
  static Failure Instances(const Dispatcher& d, const Request& r, bool names, std::string* out);
  static Failure GetInstance(const Dispatcher& d, const Request& r, bool names, std::string* out);
  static Failure GetProperty(const Dispatcher& d, const Request& r, bool names, std::string* out);
  static Failure Associators(const Dispatcher& d, const Request& r, bool names, std::string* out);
  static Failure References(const Dispatcher& d, const Request& r, bool names, std::string* out);

  // The instance the InstanceName parameter names, and its class's entry.
  struct Found {
    const Entry* entry;
    Instance instance;
  };
  static std::variant<Found, CimError> Lookup(const Dispatcher& d, const Request& r);
  // Associators (what associations link the ObjectName to) or References
  // (the associations themselves).
  static Failure Associated(const Dispatcher& d, const Request& r, bool references, bool names,
                            std::string* out);
};

const Dispatcher::Intrinsics::Op Dispatcher::Intrinsics::kOps[] = {
    {"GetClass", Role::kReader, &GetClass},
    {"EnumerateClasses", Role::kReader, &Classes},
    {"EnumerateClassNames", Role::kReader, &Classes, /*names=*/true},
    {"GetInstance", Role::kReader, &GetInstance},
    {"EnumerateInstances", Role::kReader, &Instances},
    {"EnumerateInstanceNames", Role::kReader, &Instances, /*names=*/true},
    {"GetProperty", Role::kReader, &GetProperty},
    {"Associators", Role::kReader, &Associators},
    {"AssociatorNames", Role::kReader, &Associators, /*names=*/true},
    {"References", Role::kReader, &References},
    {"ReferenceNames", Role::kReader, &References, /*names=*/true},
};

const Dispatcher::Intrinsics::Op* Dispatcher::Intrinsics::Find(std::string_view name) {
  for (const Op& op : kOps) {
    if (op.name == name) return &op;
  }
  return nullptr;
}

bool Dispatcher::IsRead(const Request& r) {
  const Intrinsics::Op* op = r.intrinsic ? Intrinsics::Find(r.method) : nullptr;
  return op && op->needs == Role::kReader;
}

Failure Dispatcher::Intrinsics::Classes(const Dispatcher& d, const Request& r, bool names,
                                        std::string* out) {
  const std::string base = ClassParam(r, "ClassName");
  const bool deep = BoolParam(r, "DeepInheritance", false);
  if (!base.empty() && !d.Find(base)) {
    return CimError{CimStatus::kInvalidClass, "no class " + base};
  }
  for (const auto& [key, e] : d.classes_) {
    const bool match = base.empty()
                           ? (deep || !d.Find(e.spec->superclass))
                           : (deep ? d.IsA(e.spec->name, base) && !NameEquals(e.spec->name, base)
                                   : NameEquals(e.spec->superclass, base));
    if (!match) continue;
    *out += names ? "<CLASSNAME NAME=\"" + XmlEscape(e.spec->name) + "\"/>" : ClassXml(*e.spec);
  }
  return std::nullopt;
}

Failure Dispatcher::Intrinsics::GetClass(const Dispatcher& d, const Request& r, bool,
                                         std::string* out) {
  const std::string name = ClassParam(r, "ClassName");
  const Entry* e = d.Find(name);
  if (!e) return CimError{CimStatus::kNotFound, "no class " + name};
  *out += ClassXml(*e->spec);
  return std::nullopt;
}

Failure Dispatcher::Intrinsics::Instances(const Dispatcher& d, const Request& r, bool names,
                                          std::string* out) {
  const std::string name = ClassParam(r, "ClassName");
  if (!d.Find(name)) return CimError{CimStatus::kInvalidClass, "no class " + name};
  for (const Entry* e : d.Family(name)) {
    // Room for as much as the class's last listing took, and an eighth
    // more: so that a listing of megabytes is not copied (and its fresh
    // pages faulted in) each time the buffer doubles. What stays unused of
    // a large reservation is never touched, so never resident.
    const size_t start = out->size();
    if (!names) out->reserve(start + e->listed_bytes.load() * 9 / 8);
    // Each instance is written as the provider makes it, then dropped.
    Status s = e->provider->ForEach([&](Instance inst) {
      const ObjectPath path = PathOf(*e->spec, inst, {});
      if (names) {
        AppendInstanceNameXml(out, path);
      } else {
        AppendValueNamedInstanceXml(out, path, Filtered(d.Rooted(std::move(inst)), r));
      }
    });
    if (!s.ok()) return FromStatus(s);
    if (!names) e->listed_bytes.store(out->size() - start);
  }
  return std::nullopt;
}

std::variant<Dispatcher::Intrinsics::Found, CimError> Dispatcher::Intrinsics::Lookup(
    const Dispatcher& d, const Request& r) {
  const ObjectPath* path = PathParam(r, "InstanceName");
  if (!path) return CimError{CimStatus::kInvalidParameter, r.method + " needs an InstanceName"};
  const Entry* e = d.Find(path->class_name);
  if (!e) return CimError{CimStatus::kInvalidClass, "no class " + path->class_name};
  for (const auto& p : e->spec->properties) {
    if (p.key && !path->Key(p.name)) {
      return CimError{CimStatus::kInvalidParameter, "the path lacks key " + p.name};
    }
  }
  for (const auto& k : path->keys) {
    const PropertySpec* p = e->spec->Property(k.name);
    if (!p || !p->key) {
      return CimError{CimStatus::kInvalidParameter, k.name + " is not a key of " + e->spec->name};
    }
  }
  if (!e->provider) return CimError{CimStatus::kNotFound, e->spec->name + " has no instances"};
  auto inst = e->provider->Get(*path);
  if (!inst.ok()) return FromStatus(inst.status());
  return Found{e, std::move(inst).value()};
}

Failure Dispatcher::Intrinsics::GetInstance(const Dispatcher& d, const Request& r, bool,
                                            std::string* out) {
  auto found = Lookup(d, r);
  if (auto* err = std::get_if<CimError>(&found)) return *err;
  AppendInstanceXml(out, Filtered(d.Rooted(std::move(std::get<Found>(found).instance)), r));
  return std::nullopt;
}

Failure Dispatcher::Intrinsics::GetProperty(const Dispatcher& d, const Request& r, bool,
                                            std::string* out) {
  auto found = Lookup(d, r);
  if (auto* err = std::get_if<CimError>(&found)) return *err;
  const auto& [e, inst] = std::get<Found>(found);
  const std::string prop = StringParam(r, "PropertyName");
  const Property* p = inst.Find(prop);
  if (!p) return CimError{CimStatus::kNoSuchProperty, e->spec->name + " has no property " + prop};
  Instance one{inst.class_name, {*p}};
  std::string xml = InstanceXml(d.Rooted(std::move(one)));
  // The IRETURNVALUE of GetProperty is the bare value.
  const size_t open = xml.find('>', xml.find("<PROPERTY"));
  const size_t close = xml.rfind("</PROPERTY");
  if (open != std::string::npos && close != std::string::npos && close > open)
    out->append(xml, open + 1, close - open - 1);
  return std::nullopt;
}

Failure Dispatcher::Intrinsics::Associators(const Dispatcher& d, const Request& r, bool names,
                                            std::string* out) {
  return Associated(d, r, /*references=*/false, names, out);
}

Failure Dispatcher::Intrinsics::References(const Dispatcher& d, const Request& r, bool names,
                                           std::string* out) {
  return Associated(d, r, /*references=*/true, names, out);
}

Failure Dispatcher::Intrinsics::Associated(const Dispatcher& d, const Request& r, bool references,
                                           bool names, std::string* out) {
  const ObjectPath* object = PathParam(r, "ObjectName");
  if (!object) return CimError{CimStatus::kInvalidParameter, r.method + " needs an ObjectName"};
  if (!d.Find(object->class_name)) {
    return CimError{CimStatus::kInvalidClass, "no class " + object->class_name};
  }
  const std::string assoc = ClassParam(r, references ? "ResultClass" : "AssocClass");
  const std::string result = references ? "" : ClassParam(r, "ResultClass");
  const std::string role = StringParam(r, "Role");
  const std::string result_role = references ? "" : StringParam(r, "ResultRole");
  std::vector<ObjectPath> seen;
  for (const auto& [key, e] : d.classes_) {
    if (!e.provider || !e.spec->association) continue;
    if (!assoc.empty() && !d.IsA(e.spec->name, assoc)) continue;
    auto all = e.provider->Enumerate();
    if (!all.ok()) return FromStatus(all.status());
    for (auto& inst : *all) {
      const Property* mine = nullptr;
      for (const auto& p : inst.properties) {
        if (p.type != "reference" || p.value.refs.empty()) continue;
        if (!role.empty() && !NameEquals(p.name, role)) continue;
        if (SamePath(p.value.refs[0], *object)) mine = &p;
      }
      if (!mine) continue;
      if (references) {
        ObjectPath path = d.Rooted(PathOf(*e.spec, inst, d.ns_));
        if (names) {
          AppendObjectPathXml(out, path);
        } else {
          AppendObjectWithPathXml(out, path, Filtered(d.Rooted(inst), r));
        }
        continue;
      }
      for (const auto& p : inst.properties) {
        if (&p == mine || p.type != "reference" || p.value.refs.empty()) continue;
        if (!result_role.empty() && !NameEquals(p.name, result_role)) continue;
        const ObjectPath& target = p.value.refs[0];
        if (!result.empty() && !d.IsA(target.class_name, result)) continue;
        bool dup = false;
        for (const auto& s : seen) dup = dup || SamePath(s, target);
        if (dup) continue;
        seen.push_back(target);
        if (names) {
          AppendObjectPathXml(out, d.Rooted(target));
          continue;
        }
        const Entry* te = d.Find(target.class_name);
        if (!te || !te->provider) continue;
        auto found = te->provider->Get(target);
        if (!found.ok()) continue;  // gone meanwhile: an association to nothing is skipped
        AppendObjectWithPathXml(out, d.Rooted(target),
                                Filtered(d.Rooted(std::move(found).value()), r));
      }
    }
  }
  return std::nullopt;
}

std::string Dispatcher::Intrinsic(const Request& r) const {
  // The whole answer is written in this one buffer, each instance as it
  // comes; an error replaces it.
  std::string out = IMethodResponseHead(r.message_id, r.method);
  const Failure failed = [&]() -> Failure {
    if (!SameNamespace(r.target.namespace_, ns_)) {
      return CimError{CimStatus::kInvalidNamespace, "no namespace " + JoinNs(r.target.namespace_) +
                                                        "; this server serves " + JoinNs(ns_)};
    }
    const Intrinsics::Op* op = Intrinsics::Find(r.method);
    if (!op)
      return CimError{CimStatus::kNotSupported, "operation " + r.method + " is not supported"};
    return op->run(*this, r, op->names, &out);
  }();
  if (failed) {
    return ErrorResponse(r.message_id, r.method, true, static_cast<int>(failed->status),
                         failed->description);
  }
  AppendIMethodResponseTail(&out);
  return out;
}

std::string Dispatcher::Extrinsic(const Request& r) {
  auto fail = [&](const CimError& e) {
    return ErrorResponse(r.message_id, r.method, false, static_cast<int>(e.status), e.description);
  };
  if (!SameNamespace(r.target.namespace_, ns_)) {
    return fail({CimStatus::kInvalidNamespace, "no namespace " + JoinNs(r.target.namespace_)});
  }
  const Entry* e = Find(r.target.class_name);
  if (!e) return fail({CimStatus::kInvalidClass, "no class " + r.target.class_name});
  const MethodSpec* method = e->spec->Method(r.method);
  if (!method) {
    return fail({CimStatus::kMethodNotFound, e->spec->name + " has no method " + r.method});
  }
  if (!e->provider || r.target.keys.empty()) {
    return fail({CimStatus::kInvalidParameter,
                 r.method + " is invoked on an instance of " + e->spec->name + ", not the class"});
  }
  auto args = CheckArguments(*method, r.params);
  if (auto* err = std::get_if<CimError>(&args)) return fail(*err);
  if (auto target = e->provider->Get(r.target); !target.ok())
    return fail(FromStatus(target.status()));
  auto result = e->provider->Invoke(*method, r.target, std::get<0>(args));
  if (!result.ok()) return fail(FromStatus(result.status()));
  for (auto& out : result->out) {
    for (auto& ref : out.value.refs) ref = Rooted(std::move(ref));
  }
  return MethodResponse(r.message_id, method->name, result->return_value, result->out);
}

}  // namespace vmgroup::cim
