#include "services/common.h"

#include <unistd.h>

#include <ctime>

#include "base/validate.h"

namespace vmgroup::services {

std::vector<std::string> NamespaceParts() { return {"root", "virtualization", "v2"}; }

cim::ObjectPath KeyPath(const std::string& class_name, const std::string& key,
                        const std::string& value) {
  return {"", NamespaceParts(), class_name, {{key, cim::KeyBinding::Kind::kString, value, {}}}};
}

cim::ObjectPath VmPath(const std::string& vm_id) {
  using CS = schema::ComputerSystem;
  cim::ObjectPath p = KeyPath(CS::kClass, CS::kCreationClassName, CS::kClass);
  p.keys.push_back({CS::kName, cim::KeyBinding::Kind::kString, vm_id, {}});
  return p;
}

cim::ObjectPath RemoteVmPath(const catalog::RemoteMember& m) {
  cim::ObjectPath p = VmPath(m.vm_id);
  p.host = m.host;
  return p;
}

bool IsThisHost(const std::string& host) {
  if (host.empty() || host == "localhost" || host == "127.0.0.1" || host == "::1") return true;
  char name[256] = {};
  return ::gethostname(name, sizeof name - 1) == 0 && host == name;
}

std::string SettingsId(const std::string& id) { return "Microsoft:" + id; }

cim::ObjectPath SettingsPath(const std::string& id) {
  using VSSD = schema::VirtualSystemSettingData;
  return KeyPath(VSSD::kClass, VSSD::kInstanceID, SettingsId(id));
}

cim::ObjectPath CollectionPath(const catalog::CollectionRecord& c) {
  return KeyPath(c.type == catalog::CollectionType::kVirtualSystems
                     ? schema::VirtualSystemCollection::kClass
                     : schema::ManagementCollection::kClass,
                 schema::CollectionOfMSEs::kCollectionID, c.id);
}

cim::ObjectPath SnapshotCollectionPath(const std::string& snapshot_id) {
  return KeyPath(schema::SnapshotCollection::kClass, schema::SnapshotCollection::kCollectionID,
                 snapshot_id);
}

cim::ObjectPath ReferencePointPath(const catalog::ReferencePointRecord& rp) {
  using RPC = schema::ReferencePointCollection;
  cim::ObjectPath p = KeyPath(RPC::kClass, RPC::kCollectionID, rp.id);
  p.keys.push_back(
      {RPC::kVirtualSystemCollectionId, cim::KeyBinding::Kind::kString, rp.collection_id, {}});
  return p;
}

cim::ObjectPath MemberReferencePointPath(const catalog::ReferencePointMember& m) {
  using VSRP = schema::VirtualSystemReferencePoint;
  cim::ObjectPath p = KeyPath(VSRP::kClass, VSRP::kInstanceID, SettingsId(m.id));
  p.keys.push_back({VSRP::kVirtualSystemIdentifier, cim::KeyBinding::Kind::kString, m.vm_id, {}});
  return p;
}

std::vector<std::string> AffectedBy(const catalog::ReferencePointRecord& rp) {
  std::vector<std::string> out = {Affected(schema::ReferencePointCollection::kClass, rp.id)};
  for (const auto& m : rp.members) out.push_back(Affected(schema::ComputerSystem::kClass, m.vm_id));
  return out;
}

std::vector<std::string> AffectedBy(const engine::ExportManifest& m) {
  std::vector<std::string> out = {Affected(schema::SnapshotCollection::kClass, m.snapshot_id)};
  for (const auto& vm : m.vms) out.push_back(Affected(schema::ComputerSystem::kClass, vm.id));
  return out;
}

std::vector<std::string> AffectedBy(const engine::SpanningExportManifest& m) {
  std::vector<std::string> out = {Affected(schema::SnapshotCollection::kClass, m.snapshot_id)};
  for (const auto& part : m.parts) {
    // A VM of another host is not this host's ComputerSystem.
    if (!part.host.empty()) continue;
    for (const auto& id : part.vm_ids) out.push_back(Affected(schema::ComputerSystem::kClass, id));
  }
  return out;
}

// The catalog keeps consistency as the number CIM shows: the providers
// render it cast (Vmgroup_ConsistencyLevel).
static_assert(static_cast<int>(catalog::Consistency::kUnknown) ==
                  schema::ConsistencyLevel::kUnknown &&
              static_cast<int>(catalog::Consistency::kApplication) ==
                  schema::ConsistencyLevel::kApplication &&
              static_cast<int>(catalog::Consistency::kCrash) == schema::ConsistencyLevel::kCrash);

Result<catalog::Consistency> ReadConsistencyLevel(const cim::Instance& settings) {
  const cim::Property* p = settings.Find(schema::CutSettingData::kConsistencyLevel);
  if (!p || p->value.kind != cim::Value::Kind::kScalar) return catalog::Consistency::kCrash;
  const std::string& level = p->value.scalar;
  using Level = schema::ConsistencyLevel;
  if (level == std::to_string(Level::kApplication)) return catalog::Consistency::kApplication;
  if (level == std::to_string(Level::kUnknown) || level == std::to_string(Level::kCrash)) {
    return catalog::Consistency::kCrash;
  }
  return Status::InvalidArgument("ConsistencyLevel must be 0, 1 or 2, not " + level);
}

Result<std::string> ElementNameOf(const cim::Instance& settings, const std::string& what) {
  const cim::Property* p = settings.Find(schema::CutSettingData::kElementName);
  if (!p || p->value.kind == cim::Value::Kind::kNull) return std::string();
  if (p->value.kind != cim::Value::Kind::kScalar) {
    return Status::InvalidArgument(what + " (ElementName) must be a single string");
  }
  VMG_RETURN_IF_ERROR(CheckName(what + " (ElementName)", p->value.scalar));
  return p->value.scalar;
}

cim::ObjectPath JobPath(const std::string& job_id) {
  return KeyPath(schema::ConcreteJob::kClass, schema::ConcreteJob::kInstanceID, job_id);
}

std::string Affected(const std::string& class_name, const std::string& id) {
  return class_name + ":" + id;
}

cim::ObjectPath AffectedPath(const std::string& entry) {
  const size_t colon = entry.find(':');
  const std::string cls = entry.substr(0, colon);
  const std::string id = colon == std::string::npos ? "" : entry.substr(colon + 1);
  if (cls == schema::ComputerSystem::kClass) return VmPath(id);
  if (cls == schema::VirtualSystemSettingData::kClass) return SettingsPath(id);
  // Every other class a job affects is a collection.
  return KeyPath(cls, schema::CollectionOfMSEs::kCollectionID, id);
}

std::string IdOf(const cim::ObjectPath& p, const std::string& key) {
  const cim::KeyBinding* k = p.Key(key);
  if (!k) return "";
  const std::string prefix = "Microsoft:";
  return k->value.starts_with(prefix) ? k->value.substr(prefix.size()) : k->value;
}

std::string CimTime(int64_t us) {
  std::time_t t = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02d.%06d+000", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(us % 1'000'000));
  return buf;
}

std::string CimInterval(int64_t us) {
  const int64_t s = us / 1'000'000;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%08lld%02d%02d%02d.%06d:000", static_cast<long long>(s / 86400),
                static_cast<int>(s / 3600 % 24), static_cast<int>(s / 60 % 60),
                static_cast<int>(s % 60), static_cast<int>(us % 1'000'000));
  return buf;
}

Result<int64_t> ParseCimInterval(const std::string& text) {
  // ddddddddhhmmss.mmmmmm:000, each field digits only.
  bool ok = text.size() == 25 && text[14] == '.' && text.compare(21, 4, ":000") == 0;
  for (size_t i = 0; ok && i < 21; ++i) {
    ok = i == 14 || (text[i] >= '0' && text[i] <= '9');
  }
  if (!ok) return Status::InvalidArgument("'" + text + "' is not a CIM interval");
  const auto field = [&](size_t at, size_t n) { return std::stoll(text.substr(at, n)); };
  const int64_t seconds =
      ((field(0, 8) * 24 + field(8, 2)) * 60 + field(10, 2)) * 60 + field(12, 2);
  return seconds * 1'000'000 + field(15, 6);
}

const cim::ObjectPath* Args::Ref(const std::string& name) const {
  auto it = args_.find(name);
  return it == args_.end() || it->second.refs.empty() ? nullptr : &it->second.refs[0];
}

bool Args::Has(const std::string& name) const {
  auto it = args_.find(name);
  return it != args_.end() && it->second.kind != cim::Value::Kind::kNull;
}

std::string Args::Str(const std::string& name) const {
  auto it = args_.find(name);
  return it == args_.end() ? "" : it->second.scalar;
}

Result<std::string> Args::Required(const std::string& name) const {
  if (!Has(name)) return Status::InvalidArgument(name + " is required");
  std::string v = Str(name);
  if (v.empty()) return Status::InvalidArgument(name + " must not be empty");
  return v;
}

Result<std::string> Args::Path(const std::string& name) const {
  VMG_ASSIGN_OR_RETURN(std::string path, Required(name));
  VMG_RETURN_IF_ERROR(CheckText(name, path, kMaxPathBytes));
  return path;
}

Result<std::string> Args::RefId(const std::string& name, const std::string& key,
                                const std::string& what) const {
  const cim::ObjectPath* p = Ref(name);
  const std::string id = p ? IdOf(*p, key) : "";
  if (id.empty()) {
    return Status::InvalidArgument(name + " must name " + what + " (a reference with its " + key +
                                   ")");
  }
  return id;
}

int64_t Args::Int(const std::string& name, int64_t fallback) const {
  if (!Has(name)) return fallback;
  return std::stoll(Str(name));  // CheckArguments proved it an integer of its type
}

std::vector<std::string> Args::Strs(const std::string& name) const {
  auto it = args_.find(name);
  if (it == args_.end()) return {};
  if (it->second.kind == cim::Value::Kind::kScalar) return {it->second.scalar};
  return it->second.array;
}

cim::MethodResult Done(uint32_t code) { return {code, {}}; }

cim::MethodResult Refused(uint32_t code, std::string why) {
  return {code,
          {{schema::MethodOut::kErrorDescription, "string", cim::Value::Scalar(std::move(why))}}};
}

cim::MethodResult Outcome(ErrorCodeOf family, const Status& s) {
  return s.ok() ? Done() : Refused(family(s), s.message());
}

cim::MethodResult JobStarted(const std::string& job_id) {
  return {4096, {{schema::MethodOut::kJob, "reference", cim::Value::Reference(JobPath(job_id))}}};
}

ServiceProvider::ServiceProvider(const Context& ctx, std::string class_name, std::string name,
                                 std::string caption, std::vector<cim::MethodSpec> methods)
    : name_(std::move(name)), caption_(std::move(caption)), host_(ctx.host) {
  using S = schema::Service;
  spec_ = {.name = std::move(class_name),
           .superclass = "CIM_Service",
           .properties = {{.name = S::kCreationClassName, .type = "string", .key = true},
                          {.name = S::kName, .type = "string", .key = true},
                          {.name = S::kSystemCreationClassName, .type = "string", .key = true},
                          {.name = S::kSystemName, .type = "string", .key = true},
                          {.name = S::kElementName, .type = "string"},
                          {.name = S::kCaption, .type = "string"},
                          {.name = S::kEnabledState, .type = "uint16"},
                          {.name = S::kHealthState, .type = "uint16"},
                          {.name = S::kStarted, .type = "boolean"}},
           .methods = std::move(methods)};
  for (auto& m : spec_.methods) m.params.push_back(ErrorOut());
}

void ServiceProvider::AddProperty(const std::string& name, std::string value) {
  spec_.properties.push_back({.name = name, .type = "string"});
  added_.emplace_back(name, std::move(value));
}

Result<std::vector<cim::Instance>> ServiceProvider::Enumerate() {
  using S = schema::Service;
  cim::InstanceBuilder b(spec_);
  b.Str(S::kCreationClassName, spec_.name)
      .Str(S::kName, name_)
      .Str(S::kSystemCreationClassName, schema::ComputerSystem::kClass)
      .Str(S::kSystemName, host_)
      .Str(S::kElementName, caption_)
      .Str(S::kCaption, caption_)
      .Int(S::kEnabledState, schema::EnabledState::kEnabled)
      .Int(S::kHealthState, schema::HealthState::kOk)
      .Bool(S::kStarted, true);
  for (const auto& [name, value] : added_) b.Str(name, value);
  return std::vector<cim::Instance>{b.Build()};
}

Result<cim::MethodResult> ServiceProvider::Invoke(const cim::MethodSpec& method,
                                                  const cim::ObjectPath&,
                                                  const std::map<std::string, cim::Value>& args) {
  auto it = handlers_.find(method.name);
  if (it == handlers_.end()) {
    return Status::NotSupported(spec_.name + "." + method.name +
                                " is not available in this version of vmgroupd");
  }
  return it->second(Args(args));
}

cim::ClassSpec LinkSpec(const char* name, const char* superclass, const char* left,
                        const char* left_class, const char* right, const char* right_class) {
  return {.name = name,
          .superclass = superclass,
          .association = true,
          .properties = {
              {.name = left, .type = "reference", .key = true, .reference_class = left_class},
              {.name = right, .type = "reference", .key = true, .reference_class = right_class}}};
}

cim::ParamSpec RefIn(std::string name, std::string reference_class) {
  return {
      .name = std::move(name), .type = "reference", .reference_class = std::move(reference_class)};
}

cim::ParamSpec RefOut(std::string name, std::string reference_class) {
  return {.name = std::move(name),
          .type = "reference",
          .in = false,
          .out = true,
          .reference_class = std::move(reference_class)};
}

cim::ParamSpec RefInOut(std::string name, std::string reference_class) {
  return {.name = std::move(name),
          .type = "reference",
          .in = true,
          .out = true,
          .reference_class = std::move(reference_class)};
}

cim::ParamSpec JobOut() { return RefOut(schema::MethodOut::kJob, "CIM_ConcreteJob"); }

cim::ParamSpec ErrorOut() {
  return {.name = schema::MethodOut::kErrorDescription, .type = "string", .in = false, .out = true};
}

}  // namespace vmgroup::services
