#include "cli/api.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <thread>

#include "base/ids.h"
#include "base/validate.h"

namespace vmgroup::cli {
namespace {

constexpr const char* kNamespace = "root/virtualization/v2";

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
  cim::ObjectPath p = KeyPath("Msvm_ComputerSystem", "CreationClassName", "Msvm_ComputerSystem");
  p.keys.push_back({"Name", cim::KeyBinding::Kind::kString, id, {}});
  return p;
}

cim::ObjectPath GroupPath(const GroupInfo& g) {
  return KeyPath(g.of_groups ? "Msvm_ManagementCollection" : "Msvm_VirtualSystemCollection",
                 "CollectionID", g.id);
}

cim::ObjectPath RefPointPath(const RefPointInfo& rp) {
  cim::ObjectPath p = KeyPath("Msvm_ReferencePointCollection", "CollectionID", rp.id);
  p.keys.push_back({"VirtualSystemCollectionId", cim::KeyBinding::Kind::kString, rp.group_id, {}});
  return p;
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
    case 2:
      return "running";
    case 3:
      return "off";
    case 32768:
      return "paused";
    default:
      return "unknown";
  }
}

// How vmgroupd shows a VM QEMU paused on an I/O error: Paused with
// HealthState 25 (Critical failure), the reason in StatusDescriptions
// after this.
constexpr int64_t kHealthCritical = 25;
constexpr std::string_view kPausedCritical = "Paused-Critical: ";

VmInfo ReadVm(const cim::Instance& cs, const cim::Instance* settings) {
  VmInfo v;
  v.id = Text(cs, "Name");
  v.name = Text(cs, "ElementName");
  v.state = StateName(Int(cs, "EnabledState"));
  if (v.state == std::string("paused") && Int(cs, "HealthState") == kHealthCritical) {
    v.state = "io-error";
    for (const auto& d : Strs(cs, "StatusDescriptions")) {
      if (d.starts_with(kPausedCritical)) v.reason = d.substr(kPausedCritical.size());
    }
  }
  v.pid = Int(cs, "ProcessID");
  v.libvirt_uri = Text(cs, "Vmgroup_LibvirtURI");
  if (settings) {
    v.memory_mib = Int(*settings, "Vmgroup_MemoryMB");
    v.vcpus = Int(*settings, "Vmgroup_ProcessorCount");
    v.disks = Strs(*settings, "Vmgroup_DiskImages");
    v.kernel = Text(*settings, "Vmgroup_Kernel");
    v.initrd = Text(*settings, "Vmgroup_Initrd");
    v.append = Text(*settings, "Vmgroup_KernelCommandLine");
  }
  return v;
}

JobInfo ReadJob(const cim::Instance& j) {
  JobInfo out;
  out.id = Text(j, "InstanceID");
  out.description = Text(j, "Description");
  out.error = Text(j, "ErrorDescription");
  out.state = static_cast<int>(Int(j, "JobState"));
  out.percent = static_cast<int>(Int(j, "PercentComplete"));
  out.error_code = static_cast<int>(Int(j, "ErrorCode"));
  out.type = static_cast<int>(Int(j, "JobType"));
  out.cancellable = Text(j, "Cancellable") == "TRUE";
  out.started = Text(j, "StartTime");
  out.elapsed = Text(j, "ElapsedTime");
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

Result<std::unique_ptr<Api>> Api::Connect(const std::string& endpoint, const std::string& cacert) {
  VMG_ASSIGN_OR_RETURN(auto http, cim::HttpClient::Create(endpoint, {.cacert = cacert}));
  return std::unique_ptr<Api>(
      new Api(std::make_unique<cim::CimClient>(std::move(http), kNamespace)));
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
  if (const cim::Param* e = r.Out("Vmgroup_ErrorDescription")) out.error = e->value.scalar;
  if (const cim::Param* j = r.Out("Job"); j && !j->value.refs.empty()) {
    if (const cim::KeyBinding* k = j->value.refs[0].Key("InstanceID")) out.job_id = k->value;
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
  VMG_ASSIGN_OR_RETURN(auto systems, cim_->EnumerateInstances("Msvm_ComputerSystem"));
  VMG_ASSIGN_OR_RETURN(auto settings, cim_->EnumerateInstances("Msvm_VirtualSystemSettingData"));
  std::map<std::string, const cim::Instance*> config;  // VM id -> its configuration
  for (const auto& s : settings) {
    if (Text(s.instance, "VirtualSystemType") == "Microsoft:Hyper-V:System:Realized") {
      config[Text(s.instance, "VirtualSystemIdentifier")] = &s.instance;
    }
  }
  std::vector<VmInfo> out;
  for (const auto& cs : systems) {
    auto it = config.find(Text(cs.instance, "Name"));
    out.push_back(ReadVm(cs.instance, it == config.end() ? nullptr : it->second));
  }
  return out;
}

Result<VmInfo> Api::FindVm(const std::string& key) {
  VMG_ASSIGN_OR_RETURN(auto vms, ListVms());
  return PickOne(std::move(vms), key, "VM");
}

Result<CallResult> Api::CreateVm(const NewVm& vm) {
  const std::string settings = Embedded("Msvm_VirtualSystemSettingData",
                                        {{"ElementName", "string", vm.name},
                                         {"Vmgroup_Kernel", "string", vm.kernel},
                                         {"Vmgroup_Initrd", "string", vm.initrd},
                                         {"Vmgroup_KernelCommandLine", "string", vm.append}});
  std::vector<std::string> resources = {
      Embedded("Msvm_MemorySettingData",
               {{"VirtualQuantity", "uint64", std::to_string(vm.memory_mib)}}),
      Embedded("Msvm_ProcessorSettingData",
               {{"VirtualQuantity", "uint64", std::to_string(vm.vcpus)}})};
  for (size_t i = 0; i < vm.disk_paths.size(); ++i) {
    cim::Instance disk{"Msvm_StorageAllocationSettingData", {}};
    if (vm.disk_new_bytes[i] > 0) {
      disk.properties.push_back({"Vmgroup_NewSizeBytes", "uint64", false,
                                 cim::Value::Scalar(std::to_string(vm.disk_new_bytes[i]))});
    } else {
      disk.properties.push_back(
          {"HostResource", "string", true, cim::Value::Array({vm.disk_paths[i]})});
    }
    resources.push_back(cim::InstanceXml(disk));
  }
  return Call("Msvm_VirtualSystemManagementService", "DefineSystem",
              {Scalar("SystemSettings", "string", settings),
               {"ResourceSettings", "string", cim::Value::Array(resources)}});
}

Result<CallResult> Api::DeleteVm(const std::string& id) {
  return Call("Msvm_VirtualSystemManagementService", "DestroySystem",
              {Ref("AffectedSystem", VmPath(id))});
}

Result<CallResult> Api::ChangeVmState(const std::string& id, int requested) {
  return CallOn(VmPath(id), "RequestStateChange",
                {Scalar("RequestedState", "uint16", std::to_string(requested))});
}

Result<std::vector<GroupInfo>> Api::ListGroups() {
  std::vector<GroupInfo> out;
  for (bool of_groups : {false, true}) {
    VMG_ASSIGN_OR_RETURN(auto all,
                         cim_->EnumerateInstances(of_groups ? "Msvm_ManagementCollection"
                                                            : "Msvm_VirtualSystemCollection"));
    for (const auto& c : all) {
      GroupInfo g{Text(c.instance, "CollectionID"), Text(c.instance, "ElementName"), of_groups, {}};
      VMG_ASSIGN_OR_RETURN(
          auto members,
          cim_->Associators(
              GroupPath(g),
              of_groups ? "Msvm_CollectedCollections" : "Msvm_CollectedVirtualSystems", ""));
      for (const auto& m : members) g.members.push_back(Text(m.instance, "ElementName"));
      out.push_back(std::move(g));
    }
  }
  return out;
}

Result<GroupInfo> Api::FindGroup(const std::string& key) {
  VMG_ASSIGN_OR_RETURN(auto groups, ListGroups());
  return PickOne(std::move(groups), key, "group");
}

Result<CallResult> Api::ImportGroup(const std::string& directory, bool as_new) {
  return Call("Msvm_CollectionManagementService", "Vmgroup_ImportCollection",
              {Scalar("ImportDirectory", "string", directory),
               Scalar("GenerateNewID", "boolean", as_new ? "true" : "false")});
}

Result<CallResult> Api::CreateGroup(const std::string& name, bool of_groups) {
  return Call("Msvm_CollectionManagementService", "DefineCollection",
              {Scalar("Name", "string", name), Scalar("Type", "uint16", of_groups ? "1" : "0")});
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
  return Call("Msvm_CollectionManagementService", "AddMember",
              {Ref("Member", m), Ref("Collection", GroupPath(g))});
}

Result<CallResult> Api::RemoveMember(const GroupInfo& g, const std::string& member) {
  VMG_ASSIGN_OR_RETURN(cim::ObjectPath m, MemberPath(g, member));
  return Call("Msvm_CollectionManagementService", "RemoveMember",
              {Ref("Member", m), Ref("Collection", GroupPath(g))});
}

Result<CallResult> Api::RenameGroup(const GroupInfo& g, const std::string& new_name) {
  return Call("Msvm_CollectionManagementService", "RenameCollection",
              {Ref("Collection", GroupPath(g)), Scalar("NewName", "string", new_name)});
}

Result<CallResult> Api::DeleteGroup(const GroupInfo& g) {
  return Call("Msvm_CollectionManagementService", "DestroyCollection",
              {Ref("Collection", GroupPath(g))});
}

Result<CallResult> Api::CreateSnapshot(const GroupInfo& g, int type, int consistency, bool fallback,
                                       const std::string& name) {
  const std::string settings =
      Embedded("Msvm_VirtualSystemSnapshotSettingData",
               {{"ElementName", "string", name},
                {"ConsistencyLevel", "uint8", std::to_string(consistency)},
                {"Vmgroup_AllowCrashConsistentFallback", "boolean", fallback ? "true" : "false"}});
  return Call("Msvm_CollectionSnapshotService", "CreateSnapshot",
              {Ref("Collection", GroupPath(g)), Scalar("SnapshotSettings", "string", settings),
               Scalar("SnapshotType", "uint16", std::to_string(type))});
}

Result<CallResult> Api::ApplySnapshot(const std::string& id) {
  return Call("Msvm_CollectionSnapshotService", "ApplySnapshot",
              {Ref("SnapshotCollection", KeyPath("Msvm_SnapshotCollection", "CollectionID", id))});
}

Result<CallResult> Api::DestroySnapshot(const std::string& id) {
  return Call(
      "Msvm_CollectionSnapshotService", "DestroySnapshot",
      {Ref("AffectedSnapshotCollection", KeyPath("Msvm_SnapshotCollection", "CollectionID", id))});
}

Result<CallResult> Api::ExportSnapshot(const std::string& id, const std::string& directory,
                                       bool copy_storage, const std::string& base) {
  const std::string settings =
      Embedded("Msvm_CollectionSnapshotExportSettingData",
               {{"CopyVmStorage", "boolean", copy_storage ? "true" : "false"},
                {"DifferentialBackupBase", "string", base}});
  return Call("Msvm_CollectionSnapshotService", "ExportSnapshot",
              {Ref("SnapshotCollection", KeyPath("Msvm_SnapshotCollection", "CollectionID", id)),
               Scalar("ExportDirectory", "string", directory),
               Scalar("ExportSettingData", "string", settings)});
}

Result<CallResult> Api::ConvertToReferencePoint(const std::string& snapshot_id) {
  return Call("Msvm_CollectionSnapshotService", "ConvertToReferencePoint",
              {Ref("AffectedSnapshotCollection",
                   KeyPath("Msvm_SnapshotCollection", "CollectionID", snapshot_id))});
}

Result<std::vector<RefPointInfo>> Api::ListRefPoints(const std::string& group_id) {
  VMG_ASSIGN_OR_RETURN(auto all, cim_->EnumerateInstances("Msvm_ReferencePointCollection"));
  VMG_ASSIGN_OR_RETURN(auto members, cim_->EnumerateInstances("Msvm_VirtualSystemReferencePoint"));
  std::vector<RefPointInfo> out;
  for (const auto& named : all) {
    const cim::Instance& i = named.instance;
    RefPointInfo rp{.id = Text(i, "CollectionID"),
                    .name = Text(i, "ElementName"),
                    .group_id = Text(i, "VirtualSystemCollectionId"),
                    .cut = Text(i, "Vmgroup_CutTime"),
                    .created = Text(i, "Vmgroup_CreationTime"),
                    .snapshot_id = Text(i, "Vmgroup_SnapshotCollectionID"),
                    .vm_ids = {}};
    if (!group_id.empty() && rp.group_id != group_id) continue;
    for (const auto& member : members) {
      const cim::Instance& m = member.instance;
      if (Text(m, "Vmgroup_ReferencePointCollectionID") == rp.id) {
        rp.vm_ids.push_back(Text(m, "VirtualSystemIdentifier"));
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
  const std::string settings =
      Embedded("Msvm_CollectionReferencePointSettingData", {{"ElementName", "string", name}});
  return Call(
      "Msvm_CollectionReferencePointService", "CreateReferencePoint",
      {Ref("Collection", GroupPath(g)), Scalar("ReferencePointSettings", "string", settings),
       Scalar("ReferencePointType", "uint16", "2")});
}

Result<CallResult> Api::ExportRefPoint(const RefPointInfo& rp, const std::string& directory,
                                       const std::string& base) {
  const std::string settings = Embedded("Msvm_CollectionReferencePointExportSettingData",
                                        {{"BaseReferencePointCollection", "string", base}});
  return Call("Msvm_CollectionReferencePointService", "ExportReferencePoint",
              {Ref("ReferencePointCollection", RefPointPath(rp)),
               Scalar("ExportDirectory", "string", directory),
               Scalar("ExportSettingData", "string", settings)});
}

Result<CallResult> Api::DestroyRefPoint(const RefPointInfo& rp) {
  return Call("Msvm_CollectionReferencePointService", "DestroyReferencePoint",
              {Ref("AffectedReferencePointCollection", RefPointPath(rp))});
}

Result<MemberSnapshotInfo> Api::ReadMember(const cim::Instance& vssd) {
  MemberSnapshotInfo m;
  m.vm_id = Text(vssd, "VirtualSystemIdentifier");
  m.settings_id = Text(vssd, "InstanceID");
  m.cut_time = Text(vssd, "Vmgroup_CutTime");
  m.parent = Text(vssd, "Parent");
  m.pause_us = Int(vssd, "Vmgroup_PauseMicroseconds");
  m.consistency = static_cast<int>(Int(vssd, "Vmgroup_ConsistencyLevel"));
  m.images = Strs(vssd, "Vmgroup_DiskImages");
  return m;
}

Result<std::vector<SnapshotInfo>> Api::ListSnapshots(const std::string& group_id) {
  // Two requests whatever the number of snapshots: the collections, and
  // every settings object (VM configurations name the VMs; per-VM snapshots
  // name their group snapshot).
  VMG_ASSIGN_OR_RETURN(auto all, cim_->EnumerateInstances("Msvm_SnapshotCollection"));
  VMG_ASSIGN_OR_RETURN(auto settings, cim_->EnumerateInstances("Msvm_VirtualSystemSettingData"));
  std::map<std::string, std::string> vm_names;
  std::map<std::string, std::vector<MemberSnapshotInfo>> members;  // by snapshot collection
  for (const auto& s : settings) {
    const std::string owner = Text(s.instance, "Vmgroup_SnapshotCollectionID");
    if (owner.empty()) {
      vm_names[Text(s.instance, "VirtualSystemIdentifier")] = Text(s.instance, "ElementName");
    } else {
      VMG_ASSIGN_OR_RETURN(MemberSnapshotInfo m, ReadMember(s.instance));
      members[owner].push_back(std::move(m));
    }
  }
  std::vector<SnapshotInfo> out;
  for (const auto& c : all) {
    const cim::Instance& i = c.instance;
    if (!group_id.empty() && Text(i, "Vmgroup_VirtualSystemCollectionID") != group_id) continue;
    SnapshotInfo s;
    s.id = Text(i, "CollectionID");
    s.name = Text(i, "ElementName");
    s.group_id = Text(i, "Vmgroup_VirtualSystemCollectionID");
    s.created = Text(i, "Vmgroup_CreationTime");
    s.type = static_cast<int>(Int(i, "Vmgroup_SnapshotType"));
    s.pause_window_us = Int(i, "Vmgroup_PauseWindowMicroseconds");
    s.duration_us = Int(i, "Vmgroup_DurationMicroseconds");
    s.consistency = static_cast<int>(Int(i, "Vmgroup_ConsistencyLevel"));
    s.freeze_window_us = Int(i, "Vmgroup_FreezeWindowMicroseconds");
    s.parent_id = Text(i, "Vmgroup_ParentSnapshotCollectionID");
    s.current = Text(i, "Vmgroup_IsCurrent") == "TRUE";
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
  VMG_ASSIGN_OR_RETURN(auto all, cim_->EnumerateInstances("Msvm_ConcreteJob"));
  std::vector<JobInfo> out;
  for (const auto& j : all) out.push_back(ReadJob(j.instance));
  return out;
}

Result<JobInfo> Api::GetJob(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(cim::Instance j,
                       cim_->GetInstance(KeyPath("Msvm_ConcreteJob", "InstanceID", id)));
  JobInfo info = ReadJob(j);
  if (info.Finished()) {
    VMG_ASSIGN_OR_RETURN(auto made, cim_->Associators(KeyPath("Msvm_ConcreteJob", "InstanceID", id),
                                                      "Msvm_AffectedJobElement", ""));
    for (const auto& m : made) {
      // The identifying key is the last one (Name, CollectionID, InstanceID).
      info.affected.push_back(m.path.class_name + ":" +
                              (m.path.keys.empty() ? "" : m.path.keys.back().value));
    }
  }
  return info;
}

Result<CallResult> Api::CancelJob(const std::string& id) {
  return CallOn(KeyPath("Msvm_ConcreteJob", "InstanceID", id), "RequestStateChange",
                {Scalar("RequestedState", "uint16", "4")});
}

Result<JobInfo> Api::WaitJob(const std::string& id,
                             const std::function<void(const JobInfo&)>& progress) {
  auto interval = std::chrono::milliseconds(20);
  while (true) {
    VMG_ASSIGN_OR_RETURN(JobInfo j, GetJob(id));
    if (progress) progress(j);
    if (j.Finished()) return j;
    std::this_thread::sleep_for(interval);
    interval = std::min(interval * 2, std::chrono::milliseconds(250));
  }
}

}  // namespace vmgroup::cli
