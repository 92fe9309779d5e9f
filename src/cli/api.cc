#include "cli/api.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>

#include "base/ids.h"
#include "base/validate.h"
#include "schema/classes.h"
#include "schema/values.h"

namespace vmgroup::cli {
namespace {

// The schema vmgroupd serves: every class and property name below is one.
using CS = schema::ComputerSystem;
using VSSD = schema::VirtualSystemSettingData;
using VSMS = schema::VirtualSystemManagementService;
using Group = schema::CollectionOfMSEs;  // VM groups and groups of groups
using CMS = schema::CollectionManagementService;
using CSS = schema::CollectionSnapshotService;
using SC = schema::SnapshotCollection;
using RPC = schema::ReferencePointCollection;
using CRPS = schema::CollectionReferencePointService;
using Job = schema::ConcreteJob;
using BS = schema::BackupService;

std::string Text(const cim::Instance& i, const char* name) {
  const cim::Property* p = i.Find(name);
  return p && p->value.kind == cim::Value::Kind::kScalar ? p->value.scalar : "";
}

// A number vmgroupd sent; 0 when it sent none, or something that is not one.
int64_t Int(const cim::Instance& i, const char* name) {
  auto n = ParseInt(name, Text(i, name), std::numeric_limits<int64_t>::min(),
                    std::numeric_limits<int64_t>::max());
  return n.ok() ? *n : 0;
}

std::vector<std::string> Strs(const cim::Instance& i, const char* name) {
  const cim::Property* p = i.Find(name);
  return p ? p->value.array : std::vector<std::string>{};
}

cim::ObjectPath KeyPath(const std::string& cls, const std::string& key, const std::string& value) {
  return {"", {}, cls, {{key, cim::KeyBinding::Kind::kString, value, {}}}};
}

cim::ObjectPath VmPath(const std::string& id) {
  cim::ObjectPath p = KeyPath(CS::kClass, CS::kCreationClassName, CS::kClass);
  p.keys.push_back({CS::kName, cim::KeyBinding::Kind::kString, id, {}});
  return p;
}

// VM `vm_id` of host `host`: its path names that host.
cim::ObjectPath RemoteVmPath(const std::string& host, const std::string& vm_id) {
  cim::ObjectPath p = VmPath(vm_id);
  p.host = host;
  p.namespace_ = {"root", "virtualization", "v2"};
  return p;
}

const char* GroupClass(bool of_groups) {
  return of_groups ? schema::ManagementCollection::kClass : schema::VirtualSystemCollection::kClass;
}

cim::ObjectPath GroupPath(const GroupInfo& g) {
  return KeyPath(GroupClass(g.of_groups), Group::kCollectionID, g.id);
}

cim::ObjectPath SnapshotPath(const std::string& id) {
  return KeyPath(SC::kClass, SC::kCollectionID, id);
}

cim::ObjectPath RefPointPath(const RefPointInfo& rp) {
  cim::ObjectPath p = KeyPath(RPC::kClass, RPC::kCollectionID, rp.id);
  p.keys.push_back(
      {RPC::kVirtualSystemCollectionId, cim::KeyBinding::Kind::kString, rp.group_id, {}});
  return p;
}

cim::ObjectPath JobPath(const std::string& id) {
  return KeyPath(Job::kClass, Job::kInstanceID, id);
}

cim::OutParam Ref(const std::string& name, cim::ObjectPath p) {
  return {name, "reference", cim::Value::Reference(std::move(p))};
}

cim::OutParam Scalar(const std::string& name, const std::string& type, std::string v) {
  return {name, type, cim::Value::Scalar(std::move(v))};
}

// An embedded instance the way Hyper-V clients send settings: CIM-XML text.
std::string Embedded(const std::string& cls,
                     const std::vector<std::tuple<std::string, std::string, std::string>>& props) {
  cim::Instance inst{cls, {}};
  for (const auto& [name, type, value] : props) {
    if (value.empty()) continue;
    inst.properties.push_back({name, type, false, cim::Value::Scalar(value)});
  }
  return cim::InstanceXml(inst);
}

const char* StateName(int64_t enabled_state) {
  switch (enabled_state) {
    case schema::EnabledState::kEnabled:
      return "running";
    case schema::EnabledState::kDisabled:
      return "off";
    case schema::EnabledState::kPaused:
      return "paused";
    default:
      return "unknown";
  }
}

// How vmgroupd shows a VM QEMU paused on an I/O error: Paused with
// HealthState Critical failure, the reason in StatusDescriptions after
// schema::kPausedCritical.
constexpr std::string_view kPausedCritical = schema::kPausedCritical;

VmInfo ReadVm(const cim::Instance& cs, const cim::Instance* settings) {
  VmInfo v;
  v.id = Text(cs, CS::kName);
  v.name = Text(cs, CS::kElementName);
  v.state = StateName(Int(cs, CS::kEnabledState));
  if (v.state == std::string("paused") &&
      Int(cs, CS::kHealthState) == schema::HealthState::kCriticalFailure) {
    v.state = "io-error";
    for (const auto& d : Strs(cs, CS::kStatusDescriptions)) {
      if (d.starts_with(kPausedCritical)) v.reason = d.substr(kPausedCritical.size());
    }
  }
  // Off, and held so by this host's part of an apply across hosts.
  constexpr std::string_view kHeld = schema::kHeldForApply;
  if (v.state == std::string("off")) {
    for (const auto& d : Strs(cs, CS::kStatusDescriptions)) {
      if (!d.starts_with(kHeld)) continue;
      v.state = "held";
      v.reason = d.substr(kHeld.size());
    }
  }
  v.pid = Int(cs, CS::kProcessID);
  v.libvirt_uri = Text(cs, CS::kVmgroupLibvirtURI);
  if (settings) {
    v.config.memory_mib = Int(*settings, VSSD::kVmgroupMemoryMB);
    v.config.vcpus = Int(*settings, VSSD::kVmgroupProcessorCount);
    v.disks = Strs(*settings, VSSD::kVmgroupDiskImages);
    v.config.kernel = Text(*settings, VSSD::kVmgroupKernel);
    v.config.initrd = Text(*settings, VSSD::kVmgroupInitrd);
    v.config.append = Text(*settings, VSSD::kVmgroupKernelCommandLine);
    v.config.hugepages = cim::NameEquals(Text(*settings, VSSD::kVmgroupHugePages), "true");
  }
  return v;
}

JobInfo ReadJob(const cim::Instance& j) {
  JobInfo out;
  out.id = Text(j, Job::kInstanceID);
  out.description = Text(j, Job::kDescription);
  out.error = Text(j, Job::kErrorDescription);
  out.state = static_cast<int>(Int(j, Job::kJobState));
  out.percent = static_cast<int>(Int(j, Job::kPercentComplete));
  out.error_code = static_cast<int>(Int(j, Job::kErrorCode));
  out.type = static_cast<int>(Int(j, Job::kJobType));
  out.cancellable = Text(j, Job::kCancellable) == "TRUE";
  out.started = Text(j, Job::kStartTime);
  out.elapsed = Text(j, Job::kElapsedTime);
  return out;
}

// Picks the one item whose name or id is `key`.
template <typename T>
Result<T> PickOne(std::vector<T> items, const std::string& key, const std::string& what) {
  std::vector<T> named;
  for (auto& it : items) {
    if (it.id == key) return std::move(it);
    if (it.name == key) named.push_back(it);
  }
  if (named.empty()) return Status::NotFound("no " + what + " is named or has id '" + key + "'");
  if (named.size() > 1) {
    return Status::InvalidArgument(std::to_string(named.size()) + " " + what + "s are named '" +
                                   key + "'; give the id instead");
  }
  return std::move(named[0]);
}

}  // namespace

std::string AffectedId(const std::string& entry) { return entry.substr(entry.find(':') + 1); }

bool IsInstanceOf(const std::string& entry, std::string_view class_name) {
  return entry.starts_with(class_name) && entry.size() > class_name.size() &&
         entry[class_name.size()] == ':';
}

Result<std::unique_ptr<Api>> Api::Connect(Env* env, const std::string& endpoint,
                                          const std::string& cacert, const std::string& password) {
  VMG_ASSIGN_OR_RETURN(auto http,
                       cim::HttpClient::Create(endpoint, {.cacert = cacert, .password = password}));
  return std::unique_ptr<Api>(
      new Api(env, std::make_unique<cim::CimClient>(std::move(http), schema::kNamespace)));
}

Result<cim::ObjectPath> Api::ServicePath(const std::string& cls) {
  VMG_ASSIGN_OR_RETURN(auto all, cim_->EnumerateInstances(cls));
  if (all.empty()) return Status::NotFound("vmgroupd serves no " + cls);
  return all[0].path;
}

Result<CallResult> Api::CallOn(const cim::ObjectPath& target, const std::string& method,
                               const std::vector<cim::OutParam>& args) {
  VMG_ASSIGN_OR_RETURN(cim::Response r, cim_->Invoke(target, method, args));
  CallResult out;
  out.code = r.return_value;
  if (const cim::Param* e = r.Out(schema::MethodOut::kErrorDescription)) {
    out.error = e->value.scalar;
  }
  if (const cim::Param* j = r.Out(schema::MethodOut::kJob); j && !j->value.refs.empty()) {
    if (const cim::KeyBinding* k = j->value.refs[0].Key(Job::kInstanceID)) out.job_id = k->value;
  }
  out.response = std::move(r);
  return out;
}

Result<CallResult> Api::Call(const std::string& service_class, const std::string& method,
                             const std::vector<cim::OutParam>& args) {
  VMG_ASSIGN_OR_RETURN(cim::ObjectPath svc, ServicePath(service_class));
  return CallOn(svc, method, args);
}

Result<std::vector<VmInfo>> Api::ListVms() {
  VMG_ASSIGN_OR_RETURN(auto systems, cim_->EnumerateInstances(CS::kClass));
  VMG_ASSIGN_OR_RETURN(auto settings, cim_->EnumerateInstances(VSSD::kClass));
  std::map<std::string, const cim::Instance*> config;  // VM id -> its configuration
  for (const auto& s : settings) {
    if (Text(s.instance, VSSD::kVirtualSystemType) == schema::VirtualSystemType::kRealized) {
      config[Text(s.instance, VSSD::kVirtualSystemIdentifier)] = &s.instance;
    }
  }
  std::vector<VmInfo> out;
  for (const auto& cs : systems) {
    auto it = config.find(Text(cs.instance, CS::kName));
    out.push_back(ReadVm(cs.instance, it == config.end() ? nullptr : it->second));
  }
  return out;
}

Result<VmInfo> Api::FindVm(const std::string& key) {
  VMG_ASSIGN_OR_RETURN(auto vms, ListVms());
  return PickOne(std::move(vms), key, "VM");
}

Result<CallResult> Api::CreateVm(const NewVm& vm) {
  const std::string settings =
      Embedded(VSSD::kClass, {{VSSD::kElementName, "string", vm.name},
                              {VSSD::kVmgroupKernel, "string", vm.config.kernel},
                              {VSSD::kVmgroupInitrd, "string", vm.config.initrd},
                              {VSSD::kVmgroupKernelCommandLine, "string", vm.config.append}});
  using Quantity = schema::QuantitySettingData;
  std::vector<std::string> resources = {
      Embedded(schema::MemorySettingData::kClass,
               {{Quantity::kVirtualQuantity, "uint64", std::to_string(vm.config.memory_mib)},
                {schema::MemorySettingData::kVmgroupHugePages, "boolean",
                 vm.config.hugepages ? "true" : ""}}),
      Embedded(schema::ProcessorSettingData::kClass,
               {{Quantity::kVirtualQuantity, "uint64", std::to_string(vm.config.vcpus)}})};
  using Storage = schema::StorageAllocationSettingData;
  for (size_t i = 0; i < vm.disk_paths.size(); ++i) {
    cim::Instance disk{Storage::kClass, {}};
    if (vm.disk_new_bytes[i] > 0) {
      disk.properties.push_back({Storage::kVmgroupNewSizeBytes, "uint64", false,
                                 cim::Value::Scalar(std::to_string(vm.disk_new_bytes[i]))});
    } else {
      disk.properties.push_back(
          {Storage::kHostResource, "string", true, cim::Value::Array({vm.disk_paths[i]})});
    }
    resources.push_back(cim::InstanceXml(disk));
  }
  using Define = VSMS::DefineSystem;
  return Call(VSMS::kClass, Define::kMethod,
              {Scalar(Define::kSystemSettings, "string", settings),
               {Define::kResourceSettings, "string", cim::Value::Array(resources)}});
}

Result<CallResult> Api::DeleteVm(const std::string& id) {
  using Destroy = VSMS::DestroySystem;
  return Call(VSMS::kClass, Destroy::kMethod, {Ref(Destroy::kAffectedSystem, VmPath(id))});
}

Result<CallResult> Api::ChangeVmState(const std::string& id, int requested) {
  using Change = CS::RequestStateChange;
  return CallOn(VmPath(id), Change::kMethod,
                {Scalar(Change::kRequestedState, "uint16", std::to_string(requested))});
}

Result<CallResult> Api::ShutDownVm(const std::string& id, int64_t timeout_seconds, bool force) {
  using Change = CS::RequestStateChange;
  // A CIM interval: ddddddddhhmmss.mmmmmm:000.
  char timeout[64];
  std::snprintf(timeout, sizeof timeout, "%08lld%02d%02d%02d.000000:000",
                static_cast<long long>(timeout_seconds / 86400),
                static_cast<int>(timeout_seconds / 3600 % 24),
                static_cast<int>(timeout_seconds / 60 % 60),
                static_cast<int>(timeout_seconds % 60));
  return CallOn(
      VmPath(id), Change::kMethod,
      {Scalar(Change::kRequestedState, "uint16", std::to_string(schema::RequestedState::kShutDown)),
       Scalar(Change::kTimeoutPeriod, "datetime", timeout),
       Scalar(Change::kVmgroupForce, "boolean", force ? "true" : "false")});
}

Result<std::vector<GroupInfo>> Api::ListGroups() {
  std::vector<GroupInfo> out;
  for (bool of_groups : {false, true}) {
    VMG_ASSIGN_OR_RETURN(auto all, cim_->EnumerateInstances(GroupClass(of_groups)));
    for (const auto& c : all) {
      GroupInfo g{Text(c.instance, Group::kCollectionID),
                  Text(c.instance, Group::kElementName),
                  of_groups,
                  {}};
      VMG_ASSIGN_OR_RETURN(auto members,
                           cim_->Associators(GroupPath(g),
                                             of_groups ? schema::CollectedCollections::kClass
                                                       : schema::CollectedVirtualSystems::kClass,
                                             ""));
      // A member is a group or a VM.
      const char* name = of_groups ? Group::kElementName : CS::kElementName;
      for (const auto& m : members) g.members.push_back(Text(m.instance, name));
      out.push_back(std::move(g));
    }
  }
  // Members on other hosts: no instance here to associate, only the link,
  // whose Member path names another host than its Collection path (this
  // daemon's).
  VMG_ASSIGN_OR_RETURN(auto links,
                       cim_->EnumerateInstances(schema::CollectedVirtualSystems::kClass));
  for (const auto& link : links) {
    const cim::Property* group = link.instance.Find(schema::CollectedMSEs::kCollection);
    const cim::Property* member = link.instance.Find(schema::CollectedMSEs::kMember);
    if (!group || !member || group->value.refs.empty() || member->value.refs.empty()) continue;
    const cim::ObjectPath& vm = member->value.refs[0];
    const cim::KeyBinding* id = group->value.refs[0].Key(Group::kCollectionID);
    const cim::KeyBinding* name = vm.Key(CS::kName);
    if (vm.host == group->value.refs[0].host || !id || !name) continue;
    for (auto& g : out) {
      if (!g.of_groups && g.id == id->value) g.members.push_back(vm.host + ":" + name->value);
    }
  }
  return out;
}

Result<GroupInfo> Api::FindGroup(const std::string& key) {
  VMG_ASSIGN_OR_RETURN(auto groups, ListGroups());
  return PickOne(std::move(groups), key, "group");
}

Result<CallResult> Api::ImportGroup(const std::string& directory, bool as_new) {
  using Import = CMS::ImportCollection;
  return Call(CMS::kClass, Import::kMethod,
              {Scalar(Import::kImportDirectory, "string", directory),
               Scalar(Import::kGenerateNewID, "boolean", as_new ? "true" : "false")});
}

Result<CallResult> Api::CreateGroup(const std::string& name, bool of_groups,
                                    const std::string& id) {
  using Define = CMS::DefineCollection;
  const int type =
      of_groups ? schema::CollectionType::kCollections : schema::CollectionType::kVirtualSystems;
  std::vector<cim::OutParam> args = {Scalar(Define::kName, "string", name),
                                     Scalar(Define::kType, "uint16", std::to_string(type))};
  if (!id.empty()) args.push_back(Scalar(Define::kId, "string", id));
  return Call(CMS::kClass, Define::kMethod, args);
}

Result<cim::ObjectPath> Api::MemberPath(const GroupInfo& g, const std::string& member) {
  if (g.of_groups) {
    VMG_ASSIGN_OR_RETURN(GroupInfo m, FindGroup(member));
    return GroupPath(m);
  }
  VMG_ASSIGN_OR_RETURN(VmInfo vm, FindVm(member));
  return VmPath(vm.id);
}

Result<CallResult> Api::AddMember(const GroupInfo& g, const std::string& member) {
  VMG_ASSIGN_OR_RETURN(cim::ObjectPath m, MemberPath(g, member));
  using Add = CMS::AddMember;
  return Call(CMS::kClass, Add::kMethod,
              {Ref(Add::kMember, m), Ref(Add::kCollection, GroupPath(g))});
}

Result<CallResult> Api::RemoveMember(const GroupInfo& g, const std::string& member) {
  VMG_ASSIGN_OR_RETURN(cim::ObjectPath m, MemberPath(g, member));
  using Remove = CMS::RemoveMember;
  return Call(CMS::kClass, Remove::kMethod,
              {Ref(Remove::kMember, m), Ref(Remove::kCollection, GroupPath(g))});
}

Result<CallResult> Api::AddRemoteMember(const GroupInfo& g, const std::string& host,
                                        const std::string& vm_id) {
  using Add = CMS::AddMember;
  return Call(CMS::kClass, Add::kMethod,
              {Ref(Add::kMember, RemoteVmPath(host, vm_id)), Ref(Add::kCollection, GroupPath(g))});
}

Result<CallResult> Api::RemoveRemoteMember(const GroupInfo& g, const std::string& host,
                                           const std::string& vm_id) {
  using Remove = CMS::RemoveMember;
  return Call(
      CMS::kClass, Remove::kMethod,
      {Ref(Remove::kMember, RemoteVmPath(host, vm_id)), Ref(Remove::kCollection, GroupPath(g))});
}

Result<CallResult> Api::RenameGroup(const GroupInfo& g, const std::string& new_name) {
  using Rename = CMS::RenameCollection;
  return Call(
      CMS::kClass, Rename::kMethod,
      {Ref(Rename::kCollection, GroupPath(g)), Scalar(Rename::kNewName, "string", new_name)});
}

Result<CallResult> Api::DeleteGroup(const GroupInfo& g) {
  using Destroy = CMS::DestroyCollection;
  return Call(CMS::kClass, Destroy::kMethod, {Ref(Destroy::kCollection, GroupPath(g))});
}

Result<CallResult> Api::CreateSnapshot(const GroupInfo& g, int type, int consistency, bool fallback,
                                       const std::string& name) {
  using Settings = schema::VirtualSystemSnapshotSettingData;
  const std::string settings = Embedded(
      Settings::kClass,
      {{Settings::kElementName, "string", name},
       {Settings::kConsistencyLevel, "uint8", std::to_string(consistency)},
       {Settings::kVmgroupAllowCrashConsistentFallback, "boolean", fallback ? "true" : "false"}});
  using Create = CSS::CreateSnapshot;
  return Call(CSS::kClass, Create::kMethod,
              {Ref(Create::kCollection, GroupPath(g)),
               Scalar(Create::kSnapshotSettings, "string", settings),
               Scalar(Create::kSnapshotType, "uint16", std::to_string(type))});
}

Result<CallResult> Api::ApplySnapshot(const std::string& id) {
  using Apply = CSS::ApplySnapshot;
  return Call(CSS::kClass, Apply::kMethod, {Ref(Apply::kSnapshotCollection, SnapshotPath(id))});
}

Result<CallResult> Api::ReleaseApplyPart(const std::string& id) {
  using HC = schema::HostCutService;
  return Call(HC::kClass, HC::AbortApplyPart::kMethod, {Scalar(HC::kSnapshotID, "string", id)});
}

Result<CallResult> Api::DestroySnapshot(const std::string& id) {
  using Destroy = CSS::DestroySnapshot;
  return Call(CSS::kClass, Destroy::kMethod,
              {Ref(Destroy::kAffectedSnapshotCollection, SnapshotPath(id))});
}

Result<CallResult> Api::ExportSnapshot(const std::string& id, const std::string& directory,
                                       bool copy_storage, const std::string& base) {
  using Settings = schema::CollectionSnapshotExportSettingData;
  const std::string settings = Embedded(
      Settings::kClass, {{Settings::kCopyVmStorage, "boolean", copy_storage ? "true" : "false"},
                         {Settings::kDifferentialBackupBase, "string", base}});
  using Export = CSS::ExportSnapshot;
  return Call(CSS::kClass, Export::kMethod,
              {Ref(Export::kSnapshotCollection, SnapshotPath(id)),
               Scalar(Export::kExportDirectory, "string", directory),
               Scalar(Export::kExportSettingData, "string", settings)});
}

Result<CallResult> Api::ConvertToReferencePoint(const std::string& snapshot_id) {
  using Convert = CSS::ConvertToReferencePoint;
  return Call(CSS::kClass, Convert::kMethod,
              {Ref(Convert::kAffectedSnapshotCollection, SnapshotPath(snapshot_id))});
}

Result<std::vector<RefPointInfo>> Api::ListRefPoints(const std::string& group_id) {
  using VSRP = schema::VirtualSystemReferencePoint;
  VMG_ASSIGN_OR_RETURN(auto all, cim_->EnumerateInstances(RPC::kClass));
  VMG_ASSIGN_OR_RETURN(auto members, cim_->EnumerateInstances(VSRP::kClass));
  std::vector<RefPointInfo> out;
  for (const auto& named : all) {
    const cim::Instance& i = named.instance;
    RefPointInfo rp{.id = Text(i, RPC::kCollectionID),
                    .name = Text(i, RPC::kElementName),
                    .group_id = Text(i, RPC::kVirtualSystemCollectionId),
                    .cut = Text(i, RPC::kVmgroupCutTime),
                    .created = Text(i, RPC::kVmgroupCreationTime),
                    .snapshot_id = Text(i, RPC::kVmgroupSnapshotCollectionID),
                    .vm_ids = {}};
    if (!group_id.empty() && rp.group_id != group_id) continue;
    for (const auto& member : members) {
      const cim::Instance& m = member.instance;
      if (Text(m, VSRP::kVmgroupReferencePointCollectionID) == rp.id) {
        rp.vm_ids.push_back(Text(m, VSRP::kVirtualSystemIdentifier));
      }
    }
    out.push_back(std::move(rp));
  }
  std::sort(out.begin(), out.end(),
            [](const RefPointInfo& a, const RefPointInfo& b) { return a.created < b.created; });
  return out;
}

Result<RefPointInfo> Api::GetRefPoint(const std::string& id_or_name) {
  VMG_ASSIGN_OR_RETURN(auto all, ListRefPoints(""));
  std::vector<RefPointInfo*> named;
  for (auto& rp : all) {
    if (rp.id == id_or_name) return std::move(rp);
    if (rp.name == id_or_name) named.push_back(&rp);
  }
  if (named.size() > 1) {
    return Status::InvalidArgument(std::to_string(named.size()) + " reference points are named '" +
                                   id_or_name + "'; give the id");
  }
  if (named.empty()) return Status::NotFound("no reference point is named '" + id_or_name + "'");
  return std::move(*named[0]);
}

Result<CallResult> Api::CreateRefPoint(const GroupInfo& g, const std::string& name) {
  using Settings = schema::CollectionReferencePointSettingData;
  const std::string settings =
      Embedded(Settings::kClass, {{Settings::kElementName, "string", name}});
  using Create = CRPS::CreateReferencePoint;
  return Call(CRPS::kClass, Create::kMethod,
              {Ref(Create::kCollection, GroupPath(g)),
               Scalar(Create::kReferencePointSettings, "string", settings),
               Scalar(Create::kReferencePointType, "uint16",
                      std::to_string(schema::ReferencePointType::kRctBased))});
}

Result<CallResult> Api::ExportRefPoint(const RefPointInfo& rp, const std::string& directory,
                                       const std::string& base) {
  using Settings = schema::CollectionReferencePointExportSettingData;
  const std::string settings =
      Embedded(Settings::kClass, {{Settings::kBaseReferencePointCollection, "string", base}});
  using Export = CRPS::ExportReferencePoint;
  return Call(CRPS::kClass, Export::kMethod,
              {Ref(Export::kReferencePointCollection, RefPointPath(rp)),
               Scalar(Export::kExportDirectory, "string", directory),
               Scalar(Export::kExportSettingData, "string", settings)});
}

Result<CallResult> Api::DestroyRefPoint(const RefPointInfo& rp) {
  using Destroy = CRPS::DestroyReferencePoint;
  return Call(CRPS::kClass, Destroy::kMethod,
              {Ref(Destroy::kAffectedReferencePointCollection, RefPointPath(rp))});
}

Result<CallResult> Api::BeginBackup(const GroupInfo& g, const BackupBegin& b) {
  using Begin = BS::BeginBackup;
  std::vector<cim::OutParam> args = {Ref(Begin::kCollection, GroupPath(g))};
  if (!b.snapshot_id.empty())
    args.push_back(Ref(Begin::kSnapshotCollection, SnapshotPath(b.snapshot_id)));
  if (!b.base_id.empty()) {
    args.push_back(Ref(Begin::kBaseReferencePointCollection,
                       RefPointPath({.id = b.base_id, .group_id = g.id})));
  }
  if (b.consistency != 0) {
    args.push_back(Scalar(Begin::kConsistencyLevel, "uint16", std::to_string(b.consistency)));
  }
  if (b.fallback) args.push_back(Scalar(Begin::kAllowCrashConsistentFallback, "boolean", "true"));
  if (b.idle_seconds != 0) {
    args.push_back(Scalar(Begin::kIdleTimeout, "uint32", std::to_string(b.idle_seconds)));
  }
  if (b.tcp) {
    args.push_back(
        Scalar(Begin::kTransport, "uint16", std::to_string(schema::BackupTransport::kTcp)));
  }
  return Call(BS::kClass, Begin::kMethod, args);
}

Result<HostInfo> Api::GetHost() {
  VMG_ASSIGN_OR_RETURN(auto services, cim_->EnumerateInstances(VSMS::kClass));
  if (services.empty()) return Status::NotFound(std::string("vmgroupd serves no ") + VSMS::kClass);
  const cim::Instance& s = services.front().instance;
  return HostInfo{.name = Text(s, VSMS::kSystemName),
                  .accelerator = Text(s, VSMS::kVmgroupAccelerator)};
}

Result<std::vector<BackupInfo>> Api::ListBackups() {
  using Session = schema::BackupSession;
  using Disk = schema::BackupDisk;
  VMG_ASSIGN_OR_RETURN(auto sessions, cim_->EnumerateInstances(Session::kClass));
  VMG_ASSIGN_OR_RETURN(auto disks, cim_->EnumerateInstances(Disk::kClass));
  std::vector<BackupInfo> out;
  for (const auto& named : sessions) {
    const cim::Instance& s = named.instance;
    BackupInfo b{.id = Text(s, Session::kInstanceID),
                 .group_id = Text(s, Session::kVirtualSystemCollectionId),
                 .snapshot_id = Text(s, Session::kSnapshotCollectionID),
                 .base_id = Text(s, Session::kBaseReferencePointCollectionID),
                 .started = Text(s, Session::kStartTime),
                 .state = Text(s, Session::kState),
                 .took_snapshot = Text(s, Session::kTookSnapshot) == "TRUE"};
    for (const auto& disk : disks) {
      const cim::Instance& d = disk.instance;
      if (Text(d, Disk::kSessionID) != b.id) continue;
      b.disks.push_back({.vm_id = Text(d, Disk::kVirtualSystemIdentifier),
                         .vm_name = Text(d, Disk::kVirtualSystemName),
                         .index = static_cast<int>(Int(d, Disk::kDiskIndex)),
                         .export_name = Text(d, Disk::kExportName),
                         .uri = Text(d, Disk::kURI),
                         .socket = Text(d, Disk::kSocketPath),
                         .size = static_cast<uint64_t>(Int(d, Disk::kSize)),
                         .context = Text(d, Disk::kMetadataContext),
                         .full_read_reason = Text(d, Disk::kFullReadReason),
                         .host = Text(d, Disk::kHost)});
    }
    std::sort(b.disks.begin(), b.disks.end(), [](const auto& x, const auto& y) {
      return std::tie(x.vm_name, x.index) < std::tie(y.vm_name, y.index);
    });
    out.push_back(std::move(b));
  }
  std::sort(out.begin(), out.end(),
            [](const BackupInfo& x, const BackupInfo& y) { return x.started < y.started; });
  return out;
}

Result<BackupInfo> Api::GetBackup(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(auto all, ListBackups());
  for (auto& b : all) {
    if (b.id == id) return std::move(b);
  }
  return Status::NotFound("no backup session " + id + " is serving");
}

Result<BackupInfo> Api::AwaitBackup(const CallResult& begun) {
  using Begin = BS::BeginBackup;
  const cim::Param* session = begun.response.Out(Begin::kResultingBackupSession);
  const cim::KeyBinding* key = session && !session->value.refs.empty()
                                   ? session->value.refs[0].Key(schema::BackupSession::kInstanceID)
                                   : nullptr;
  if (!key || begun.job_id.empty()) {
    return Status::Failed("the daemon's answer to BeginBackup names no session and job");
  }
  while (true) {
    auto b = GetBackup(key->value);
    if (b.ok() || b.status().code() != Code::kNotFound) return b;
    VMG_ASSIGN_OR_RETURN(JobInfo job, GetJob(begun.job_id));
    if (job.Finished()) {
      return Status::Failed(job.error.empty() ? "the backup session ended before it served"
                                              : job.error);
    }
    env_->SleepFor(std::chrono::milliseconds(100));
  }
}

Result<CallResult> Api::EndBackup(const std::string& id, bool to_refpoint) {
  using End = BS::EndBackup;
  return Call(BS::kClass, End::kMethod,
              {Ref(End::kBackupSession,
                   KeyPath(schema::BackupSession::kClass, schema::BackupSession::kInstanceID, id)),
               Scalar(End::kToReferencePoint, "boolean", to_refpoint ? "true" : "false")});
}

Result<DiskChangesInfo> Api::BackupChanges(const std::string& id, const std::string& vm, int disk,
                                           uint64_t offset, uint64_t length) {
  using Changes = BS::GetVirtualDiskChanges;
  VMG_ASSIGN_OR_RETURN(
      CallResult r,
      Call(BS::kClass, Changes::kMethod,
           {Ref(Changes::kBackupSession,
                KeyPath(schema::BackupSession::kClass, schema::BackupSession::kInstanceID, id)),
            Scalar(Changes::kVirtualSystemIdentifier, "string", vm),
            Scalar(Changes::kDiskIndex, "uint32", std::to_string(disk)),
            Scalar(Changes::kByteOffset, "uint64", std::to_string(offset)),
            Scalar(Changes::kByteLength, "uint64", std::to_string(length))}));
  if (r.code != 0) return Status::Failed(r.error.empty() ? "refused" : r.error);
  const cim::Param* offsets = r.response.Out(Changes::kChangedByteOffsets);
  const cim::Param* lengths = r.response.Out(Changes::kChangedByteLengths);
  const cim::Param* processed = r.response.Out(Changes::kProcessedByteLength);
  if (!offsets || !lengths || !processed ||
      offsets->value.array.size() != lengths->value.array.size()) {
    return Status::Failed("the daemon's answer to GetVirtualDiskChanges lacks its ranges");
  }
  auto byte_count = [](const char* what, const std::string& text) {
    return ParseInt(what, text, 0, std::numeric_limits<int64_t>::max());
  };
  DiskChangesInfo out;
  for (size_t i = 0; i < offsets->value.array.size(); ++i) {
    VMG_ASSIGN_OR_RETURN(int64_t at,
                         byte_count(Changes::kChangedByteOffsets, offsets->value.array[i]));
    VMG_ASSIGN_OR_RETURN(int64_t bytes,
                         byte_count(Changes::kChangedByteLengths, lengths->value.array[i]));
    out.ranges.emplace_back(at, bytes);
  }
  VMG_ASSIGN_OR_RETURN(int64_t done,
                       byte_count(Changes::kProcessedByteLength, processed->value.scalar));
  out.processed = static_cast<uint64_t>(done);
  return out;
}

Result<MemberSnapshotInfo> Api::ReadMember(const cim::Instance& vssd) {
  MemberSnapshotInfo m;
  m.vm_id = Text(vssd, VSSD::kVirtualSystemIdentifier);
  m.settings_id = Text(vssd, VSSD::kInstanceID);
  m.cut_time = Text(vssd, VSSD::kVmgroupCutTime);
  m.parent = Text(vssd, VSSD::kParent);
  m.pause_us = Int(vssd, VSSD::kVmgroupPauseMicroseconds);
  m.consistency = static_cast<int>(Int(vssd, VSSD::kVmgroupConsistencyLevel));
  m.images = Strs(vssd, VSSD::kVmgroupDiskImages);
  return m;
}

Result<std::vector<SnapshotInfo>> Api::ListSnapshots(const std::string& group_id) {
  // Two requests whatever the number of snapshots: the collections, and
  // every settings object (VM configurations name the VMs; per-VM snapshots
  // name their group snapshot).
  VMG_ASSIGN_OR_RETURN(auto all, cim_->EnumerateInstances(SC::kClass));
  VMG_ASSIGN_OR_RETURN(auto settings, cim_->EnumerateInstances(VSSD::kClass));
  std::map<std::string, std::string> vm_names;
  std::map<std::string, std::vector<MemberSnapshotInfo>> members;  // by snapshot collection
  for (const auto& s : settings) {
    const std::string owner = Text(s.instance, VSSD::kVmgroupSnapshotCollectionID);
    if (owner.empty()) {
      vm_names[Text(s.instance, VSSD::kVirtualSystemIdentifier)] =
          Text(s.instance, VSSD::kElementName);
    } else {
      VMG_ASSIGN_OR_RETURN(MemberSnapshotInfo m, ReadMember(s.instance));
      members[owner].push_back(std::move(m));
    }
  }
  std::vector<SnapshotInfo> out;
  for (const auto& c : all) {
    const cim::Instance& i = c.instance;
    if (!group_id.empty() && Text(i, SC::kVmgroupVirtualSystemCollectionID) != group_id) continue;
    SnapshotInfo s;
    s.id = Text(i, SC::kCollectionID);
    s.name = Text(i, SC::kElementName);
    s.group_id = Text(i, SC::kVmgroupVirtualSystemCollectionID);
    s.created = Text(i, SC::kVmgroupCreationTime);
    s.type = static_cast<int>(Int(i, SC::kVmgroupSnapshotType));
    s.pause_window_us = Int(i, SC::kVmgroupPauseWindowMicroseconds);
    s.duration_us = Int(i, SC::kVmgroupDurationMicroseconds);
    s.consistency = static_cast<int>(Int(i, SC::kVmgroupConsistencyLevel));
    s.freeze_window_us = Int(i, SC::kVmgroupFreezeWindowMicroseconds);
    s.parent_id = Text(i, SC::kVmgroupParentSnapshotCollectionID);
    s.current = Text(i, SC::kVmgroupIsCurrent) == "TRUE";
    if (const cim::Property* hosts = i.Find(SC::kVmgroupHosts)) s.hosts = hosts->value.array;
    s.cut_spread_us = Int(i, SC::kVmgroupCutSpreadMicroseconds);
    s.members = std::move(members[s.id]);
    for (auto& m : s.members) m.vm_name = vm_names.count(m.vm_id) ? vm_names[m.vm_id] : m.vm_id;
    out.push_back(std::move(s));
  }
  return out;
}

Result<SnapshotInfo> Api::GetSnapshot(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(auto all, ListSnapshots(""));
  for (auto& s : all) {
    if (s.id == id) return std::move(s);
  }
  return Status::NotFound("no group snapshot has id " + id);
}

Result<std::vector<JobInfo>> Api::ListJobs() {
  VMG_ASSIGN_OR_RETURN(auto all, cim_->EnumerateInstances(Job::kClass));
  std::vector<JobInfo> out;
  for (const auto& j : all) out.push_back(ReadJob(j.instance));
  return out;
}

Result<JobInfo> Api::GetJob(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(cim::Instance j, cim_->GetInstance(JobPath(id)));
  JobInfo info = ReadJob(j);
  if (info.Finished()) {
    VMG_ASSIGN_OR_RETURN(auto made,
                         cim_->Associators(JobPath(id), schema::AffectedJobElement::kClass, ""));
    for (const auto& m : made) {
      // The identifying key is the last one (Name, CollectionID, InstanceID).
      info.affected.push_back(m.path.class_name + ":" +
                              (m.path.keys.empty() ? "" : m.path.keys.back().value));
    }
  }
  return info;
}

Result<CallResult> Api::CancelJob(const std::string& id) {
  using Change = Job::RequestStateChange;
  return CallOn(JobPath(id), Change::kMethod,
                {Scalar(Change::kRequestedState, "uint16",
                        std::to_string(schema::JobRequestedState::kTerminate))});
}

Result<JobInfo> Api::WaitJob(const std::string& id,
                             const std::function<void(const JobInfo&)>& progress) {
  auto interval = std::chrono::milliseconds(20);
  while (true) {
    VMG_ASSIGN_OR_RETURN(JobInfo j, GetJob(id));
    if (progress) progress(j);
    if (j.Finished()) return j;
    env_->SleepFor(interval);
    interval = std::min(interval * 2, std::chrono::milliseconds(250));
  }
}

}  // namespace vmgroup::cli
