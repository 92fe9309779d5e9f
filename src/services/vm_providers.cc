// Msvm_ComputerSystem, what defines and runs one, and its snapshot tree.
#include <functional>
#include <limits>
#include <optional>

#include "base/validate.h"
#include "cim/xml_reader.h"
#include "services/providers.h"

namespace vmgroup::services {
namespace {

// EnabledState of Msvm_ComputerSystem: 2 Enabled (running), 3 Disabled
// (off), 32768 Paused (also for a VM QEMU paused on an I/O error).
int EnabledState(catalog::Power p) {
  switch (p) {
    case catalog::Power::kRunning:
      return 2;
    case catalog::Power::kPaused:
      return 32768;
    case catalog::Power::kOff:
      return 3;
  }
  return 0;
}

cim::ClassSpec ComputerSystemSpec() {
  return {.name = "Msvm_ComputerSystem",
          .superclass = "CIM_ComputerSystem",
          .properties = {{.name = "CreationClassName", .type = "string", .key = true},
                         {.name = "Name", .type = "string", .key = true},
                         {.name = "ElementName", .type = "string"},
                         {.name = "Caption", .type = "string"},
                         {.name = "Description", .type = "string"},
                         {.name = "EnabledState", .type = "uint16"},
                         {.name = "RequestedState", .type = "uint16"},
                         {.name = "HealthState", .type = "uint16"},
                         {.name = "OperationalStatus", .type = "uint16", .is_array = true},
                         {.name = "StatusDescriptions", .type = "string", .is_array = true},
                         {.name = "ProcessID", .type = "uint32"},
                         // Where the VM lives: the URI of the libvirt
                         // connection it is a domain of; empty for the
                         // VMs vmgroupd runs itself.
                         {.name = "Vmgroup_LibvirtURI", .type = "string"}},
          .methods = {{.name = "RequestStateChange",
                       .params = {{.name = "RequestedState", .type = "uint16"},
                                  JobOut(),
                                  {.name = "TimeoutPeriod", .type = "datetime"},
                                  ErrorOut()}}}};
}

cim::ClassSpec SettingsSpec() {
  return {.name = "Msvm_VirtualSystemSettingData",
          .superclass = "CIM_VirtualSystemSettingData",
          .properties = {
              {.name = "InstanceID", .type = "string", .key = true},
              {.name = "ElementName", .type = "string"},
              {.name = "Description", .type = "string"},
              {.name = "VirtualSystemIdentifier", .type = "string"},
              {.name = "VirtualSystemType", .type = "string"},
              {.name = "CreationTime", .type = "datetime"},
              {.name = "Parent", .type = "string"},
              {.name = "IsSaved", .type = "boolean"},  // a snapshot with memory state
              // Vendor: the configuration Hyper-V keeps in resource settings.
              {.name = "Vmgroup_MemoryMB", .type = "uint64"},
              {.name = "Vmgroup_ProcessorCount", .type = "uint16"},
              {.name = "Vmgroup_DiskImages", .type = "string", .is_array = true},
              {.name = "Vmgroup_Kernel", .type = "string"},
              {.name = "Vmgroup_Initrd", .type = "string"},
              {.name = "Vmgroup_KernelCommandLine", .type = "string"},
              // Vendor, snapshots only: the cut of this member.
              {.name = "Vmgroup_SnapshotCollectionID", .type = "string"},
              {.name = "Vmgroup_CutTime", .type = "datetime"},
              {.name = "Vmgroup_PauseMicroseconds", .type = "uint64"},
              {.name = "Vmgroup_ConsistencyLevel", .type = "uint16"},
          }};
}

// "root/virtualization/v2:Msvm_VirtualSystemSettingData.InstanceID=\"Microsoft:...\"":
// the text form of a path, as the Parent property carries it.
std::string PathText(const cim::ObjectPath& p) {
  std::string out = std::string(kNamespace) + ":" + p.class_name;
  for (size_t i = 0; i < p.keys.size(); ++i) {
    out += (i ? "," : ".") + p.keys[i].name + "=\"" + p.keys[i].value + "\"";
  }
  return out;
}

// Starts the StatusDescriptions of a VM paused on an I/O error; the CLI
// reads the reason after it.
constexpr char kPausedCritical[] = "Paused-Critical: ";

// How long a listing waits to ask a VM's QEMU how it is.
constexpr auto kLookTimeout = std::chrono::seconds(1);

// Why QEMU holds `vm`, recorded running, paused on an I/O error, or "".
// Also "" when QEMU cannot say now (a cut or a merge holds the VM): the VM
// is shown as recorded then.
std::string IoErrorOf(engine::VmRegistry& vms, const catalog::VmRecord& vm) {
  if (vm.power != catalog::Power::kRunning) return "";
  auto why = vms.IoError(vm.id, Clock::now() + kLookTimeout);
  return why.ok() ? *why : "";
}

// A VM QEMU paused on an I/O error is shown as Hyper-V shows one paused on
// a critical storage error (Paused-Critical): EnabledState Paused,
// HealthState 25 (Critical failure), OperationalStatus 3 (Degraded), and
// the reason in StatusDescriptions. RequestedState stays Running, which is
// what was asked for.
cim::Instance VmInstance(const cim::ClassSpec& spec, const catalog::VmRecord& vm,
                         const std::string& io_error) {
  const bool held = !io_error.empty();
  return cim::InstanceBuilder(spec)
      .Str("CreationClassName", "Msvm_ComputerSystem")
      .Str("Name", vm.id)
      .Str("ElementName", vm.name)
      .Str("Caption", "Virtual Machine")
      .Str("Description", "vmgroup Virtual Machine")
      .Int("EnabledState", held ? EnabledState(catalog::Power::kPaused) : EnabledState(vm.power))
      .Int("RequestedState", EnabledState(vm.power))
      .Int("HealthState", held ? 25 : 5)
      .Ints("OperationalStatus", {held ? 3 : 2})
      .Strs("StatusDescriptions",
            {held ? kPausedCritical + io_error : std::string("Operating normally")})
      .Int("ProcessID", vm.pid)
      .Str("Vmgroup_LibvirtURI", vm.libvirt_uri)
      .Build();
}

cim::Instance ConfigInstance(const cim::ClassSpec& spec, const catalog::VmRecord& vm) {
  cim::InstanceBuilder b(spec);
  b.Str("InstanceID", SettingsId(vm.id))
      .Str("ElementName", vm.name)
      .Str("Description", "Active settings for the virtual machine")
      .Str("VirtualSystemIdentifier", vm.id)
      .Str("VirtualSystemType", "Microsoft:Hyper-V:System:Realized")
      .Int("Vmgroup_MemoryMB", vm.memory_mib)
      .Int("Vmgroup_ProcessorCount", vm.vcpus)
      .Strs("Vmgroup_DiskImages", vm.disks)
      .Str("Vmgroup_Kernel", vm.kernel)
      .Str("Vmgroup_Initrd", vm.initrd)
      .Str("Vmgroup_KernelCommandLine", vm.append);
  if (!vm.current_snapshot.empty()) b.Str("Parent", PathText(SettingsPath(vm.current_snapshot)));
  return b.Build();
}

cim::Instance SnapshotInstance(const cim::ClassSpec& spec, const catalog::SnapshotRecord& s,
                               const catalog::MemberSnapshot& m, const std::string& vm_name) {
  std::vector<std::string> images;
  for (const auto& d : m.disks) images.push_back(d.frozen_image);
  cim::InstanceBuilder b(spec);
  b.Str("InstanceID", SettingsId(m.id))
      .Str("ElementName", s.name + " - " + vm_name)
      .Str("Description", "Snapshot settings for the virtual machine")
      .Str("VirtualSystemIdentifier", m.vm_id)
      .Str("VirtualSystemType", s.type == 2 ? "Microsoft:Hyper-V:Snapshot:Recovery"
                                            : "Microsoft:Hyper-V:Snapshot:Realized")
      .Str("CreationTime", CimTime(s.created_us))
      .Strs("Vmgroup_DiskImages", images)
      .Str("Vmgroup_SnapshotCollectionID", s.id)
      .Str("Vmgroup_CutTime", CimTime(m.cut_time_us))
      .Int("Vmgroup_PauseMicroseconds", m.pause_us)
      .Int("Vmgroup_ConsistencyLevel", static_cast<int>(m.consistency))
      .Bool("IsSaved", !m.memory_state.empty());
  if (!m.parent_id.empty()) b.Str("Parent", PathText(SettingsPath(m.parent_id)));
  return b.Build();
}

// Every complete per-VM snapshot with its group snapshot.
template <typename Fn>
Status ForEachMemberSnapshot(engine::Engine& e, Fn fn) {
  VMG_ASSIGN_OR_RETURN(auto snaps, e.catalog().ListSnapshots());
  for (const auto& s : snaps) {
    if (s.state != catalog::SnapshotState::kComplete) continue;  // in progress
    for (const auto& m : s.members) fn(s, m);
  }
  return Status::Ok();
}

class SettingsProvider : public cim::Provider {
 public:
  explicit SettingsProvider(const Context& ctx) : ctx_(ctx), spec_(SettingsSpec()) {}
  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override {
    std::vector<cim::Instance> out;
    VMG_ASSIGN_OR_RETURN(auto vms, ctx_.engine->catalog().ListVms());
    std::map<std::string, std::string> names;
    for (const auto& vm : vms) {
      out.push_back(ConfigInstance(spec_, vm));
      names[vm.id] = vm.name;
    }
    VMG_RETURN_IF_ERROR(ForEachMemberSnapshot(*ctx_.engine, [&](const auto& s, const auto& m) {
      out.push_back(SnapshotInstance(spec_, s, m, names[m.vm_id]));
    }));
    return out;
  }

 private:
  Context ctx_;
  cim::ClassSpec spec_;
};

class ComputerSystemProvider : public cim::Provider {
 public:
  explicit ComputerSystemProvider(const Context& ctx) : ctx_(ctx), spec_(ComputerSystemSpec()) {}
  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override {
    VMG_ASSIGN_OR_RETURN(auto vms, ctx_.engine->catalog().ListVms());
    std::vector<cim::Instance> out;
    for (const auto& vm : vms) {
      out.push_back(VmInstance(spec_, vm, IoErrorOf(ctx_.engine->vms(), vm)));
    }
    return out;
  }
  Result<cim::Instance> Get(const cim::ObjectPath& path) override {
    VMG_ASSIGN_OR_RETURN(auto vm, ctx_.engine->catalog().GetVm(IdOf(path, "Name")));
    return VmInstance(spec_, vm, IoErrorOf(ctx_.engine->vms(), vm));
  }

  // Hyper-V's RequestedState values: 2 Running (start, or resume a paused
  // VM, also one QEMU paused on an I/O error), 3 Off (turn off), 9 or 32768
  // Paused. Family B codes.
  Result<cim::MethodResult> Invoke(const cim::MethodSpec&, const cim::ObjectPath& target,
                                   const std::map<std::string, cim::Value>& raw) override {
    Args args(raw);
    const std::string id = IdOf(target, "Name");
    VMG_ASSIGN_OR_RETURN(auto vm, ctx_.engine->catalog().GetVm(id));
    if (args.Has("TimeoutPeriod") && args.Str("TimeoutPeriod") != "00000000000000.000000:000") {
      return Refused(kRcBNotSupported, "TimeoutPeriod is not supported");
    }
    const int64_t want = args.Int("RequestedState", -1);
    engine::VmRegistry& vms = ctx_.engine->vms();
    std::function<Status()> change;
    std::string verb;
    using catalog::Power;
    const bool pause = want == 9 || want == 32768;
    if (want == 2 && vm.power == Power::kOff) {
      change = [&vms, id] { return vms.Start(id); };
      verb = "Start";
    } else if (want == 2 &&
               (vm.power == Power::kPaused || !IoErrorOf(ctx_.engine->vms(), vm).empty())) {
      change = [&vms, id] { return vms.Resume(id); };
      verb = "Resume";
    } else if (want == 3 && vm.power != Power::kOff) {
      change = [&vms, id] { return vms.Stop(id); };
      verb = "Turn off";
    } else if (pause && vm.power == Power::kRunning) {
      change = [&vms, id] { return vms.Pause(id); };
      verb = "Pause";
    } else if (want == 2 || want == 3 || pause) {
      return Refused(kRcBInvalidState, "VM " + vm.name + " is " + catalog::PowerName(vm.power));
    } else if (want == 4 || want == 6 || want == 10 || want == 11) {
      return Refused(kRcBNotSupported, "shut down, save, reboot and reset are not supported yet");
    } else {
      return Refused(kRcBInvalidParameter,
                     "RequestedState must be 2 (running), 3 (off) or 9/32768 (paused)");
    }
    VMG_ASSIGN_OR_RETURN(
        std::string job,
        ctx_.jobs->Start(want == 2   ? 10
                         : want == 3 ? 11
                                     : 12,
                         verb + " virtual machine " + vm.name, false, ReturnCodeB,
                         [change, id](JobControl&) -> Result<std::vector<std::string>> {
                           VMG_RETURN_IF_ERROR(change());
                           return std::vector<std::string>{Affected("Msvm_ComputerSystem", id)};
                         }));
    return JobStarted(job);
  }

 private:
  Context ctx_;
  cim::ClassSpec spec_;
};

// Longest kernel command line QEMU hands an x86 guest (COMMAND_LINE_SIZE,
// less its NUL).
constexpr size_t kMaxKernelCommandLine = 2047;

// The text of a scalar property, or "" when absent.
std::string TextOf(const cim::Instance& i, const char* name) {
  const cim::Property* p = i.Find(name);
  return p && p->value.kind == cim::Value::Kind::kScalar ? p->value.scalar : std::string();
}

// A positive whole number property, at most what the definition's field
// holds (`max`): parsed whole, refused beyond, never clamped (the engine
// applies the bounds a VM may have). `fallback` when absent.
Result<int64_t> NumberOf(const cim::Instance& i, const char* name, const std::string& what,
                         int64_t max, int64_t fallback) {
  const cim::Property* p = i.Find(name);
  if (!p || p->value.kind == cim::Value::Kind::kNull) return fallback;
  const std::string text = p->value.kind == cim::Value::Kind::kScalar ? p->value.scalar : "";
  auto n = ParseInt(what, text, 1, max);
  if (!n.ok()) {
    return Status::InvalidArgument(what + " must be a positive number no larger than " +
                                   std::to_string(max) + ", not '" + Printable(text) + "'");
  }
  return n;
}

// The settings a DefineSystem call carries, read into a VM definition.
// InvalidArgument saying what is wrong when they do not make one.
Result<engine::VmDefinition> ReadDefinition(const std::string& system,
                                            const std::vector<std::string>& resources) {
  auto vssd = cim::ParseEmbeddedInstance(system);
  if (!vssd.ok() || !cim::NameEquals(vssd->class_name, "Msvm_VirtualSystemSettingData")) {
    return Status::InvalidArgument(
        "SystemSettings must be an embedded Msvm_VirtualSystemSettingData");
  }
  engine::VmDefinition def;
  def.name = TextOf(*vssd, "ElementName");
  VMG_RETURN_IF_ERROR(CheckName("VM name (ElementName)", def.name));
  def.id = TextOf(*vssd, "VirtualSystemIdentifier");
  def.kernel = TextOf(*vssd, "Vmgroup_Kernel");
  def.initrd = TextOf(*vssd, "Vmgroup_Initrd");
  def.append = TextOf(*vssd, "Vmgroup_KernelCommandLine");
  VMG_RETURN_IF_ERROR(CheckText("Vmgroup_Kernel", def.kernel, kMaxPathBytes));
  VMG_RETURN_IF_ERROR(CheckText("Vmgroup_Initrd", def.initrd, kMaxPathBytes));
  VMG_RETURN_IF_ERROR(CheckText("Vmgroup_KernelCommandLine", def.append, kMaxKernelCommandLine));
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  for (const auto& r : resources) {
    auto rasd = cim::ParseEmbeddedInstance(r);
    if (!rasd.ok()) {
      return Status::InvalidArgument("a ResourceSettings entry is not an embedded instance: " +
                                     rasd.status().message());
    }
    if (cim::NameEquals(rasd->class_name, "Msvm_MemorySettingData")) {
      VMG_ASSIGN_OR_RETURN(const int64_t mib,
                           NumberOf(*rasd, "VirtualQuantity", "memory in MiB (VirtualQuantity)",
                                    kIntMax, def.memory_mib));
      def.memory_mib = static_cast<int>(mib);
    } else if (cim::NameEquals(rasd->class_name, "Msvm_ProcessorSettingData")) {
      VMG_ASSIGN_OR_RETURN(const int64_t count,
                           NumberOf(*rasd, "VirtualQuantity", "processor count (VirtualQuantity)",
                                    kIntMax, def.vcpus));
      def.vcpus = static_cast<int>(count);
    } else if (cim::NameEquals(rasd->class_name, "Msvm_StorageAllocationSettingData")) {
      const std::string what = "disk " + std::to_string(def.disks.size());
      VMG_ASSIGN_OR_RETURN(const int64_t bytes,
                           NumberOf(*rasd, "Vmgroup_NewSizeBytes", what + ": Vmgroup_NewSizeBytes",
                                    std::numeric_limits<int64_t>::max(), 0));
      const cim::Property* host = rasd->Find("HostResource");
      std::vector<std::string> paths;
      if (host && host->value.kind == cim::Value::Kind::kScalar) {
        paths = {host->value.scalar};
      } else if (host) {
        paths = host->value.array;
      }
      if ((bytes > 0) == !paths.empty() || paths.size() > 1) {
        return Status::InvalidArgument(
            what +
            ": a Msvm_StorageAllocationSettingData needs either one HostResource (an "
            "existing image) or Vmgroup_NewSizeBytes (a new one)");
      }
      if (bytes > 0) {
        def.disks.push_back(engine::DiskSpec::New(bytes));
      } else {
        VMG_RETURN_IF_ERROR(CheckText(what + ": HostResource", paths[0], kMaxPathBytes));
        def.disks.emplace_back(paths[0]);
      }
    } else {
      return Status::InvalidArgument("vmgroupd does not know resource class " +
                                     Printable(rasd->class_name));
    }
  }
  return def;
}

class ManagementServiceProvider : public ServiceProvider {
 public:
  explicit ManagementServiceProvider(const Context& ctx)
      : ServiceProvider(
            ctx, "Msvm_VirtualSystemManagementService", "vmms",
            "Hyper-V Virtual System Management Service",
            {{.name = "DefineSystem",
              .params = {{.name = "SystemSettings",
                          .type = "string",
                          .embedded_class = "Msvm_VirtualSystemSettingData"},
                         {.name = "ResourceSettings",
                          .type = "string",
                          .is_array = true,
                          .embedded_class = "CIM_ResourceAllocationSettingData"},
                         RefIn("ReferenceConfiguration", "CIM_VirtualSystemSettingData"),
                         RefOut("ResultingSystem", "CIM_ComputerSystem"),
                         JobOut()}},
             {.name = "DestroySystem",
              .params = {RefIn("AffectedSystem", "CIM_ComputerSystem"), JobOut()}}}) {
    engine::Engine* e = ctx.engine;
    On("DefineSystem", [e](const Args& a) -> Result<cim::MethodResult> {
      if (a.Ref("ReferenceConfiguration")) {
        return Refused(kRcBNotSupported, "ReferenceConfiguration is not supported");
      }
      auto def = ReadDefinition(a.Str("SystemSettings"), a.Strs("ResourceSettings"));
      if (!def.ok()) return Outcome(ReturnCodeB, def.status());
      auto id = e->vms().Define(*def);
      if (!id.ok()) return Refused(ReturnCodeB(id.status()), id.status().message());
      cim::MethodResult r = Done();
      r.out.push_back({"ResultingSystem", "reference", cim::Value::Reference(VmPath(*id))});
      return r;
    });
    On("DestroySystem", [e](const Args& a) -> Result<cim::MethodResult> {
      auto vm = a.RefId("AffectedSystem", "Name", "a VM");
      if (!vm.ok()) return Outcome(ReturnCodeB, vm.status());
      return Outcome(ReturnCodeB, e->vms().Undefine(*vm));
    });
  }
};

// VM -> its settings: its configuration (Msvm_SettingsDefineState), or each
// of its snapshots (Msvm_SnapshotOfVirtualSystem).
cim::ClassSpec VmLinkSpec(const char* name, const char* left, const char* right,
                          const char* left_class = "Msvm_ComputerSystem") {
  return {.name = name,
          .association = true,
          .properties = {
              {.name = left, .type = "reference", .key = true, .reference_class = left_class},
              {.name = right,
               .type = "reference",
               .key = true,
               .reference_class = "Msvm_VirtualSystemSettingData"}}};
}

// A VM -> settings association: one link per VM whose `settings_id` is
// not empty, the VM in `vm_role`, its settings in `settings_role`.
std::unique_ptr<cim::Provider> VmLinks(
    engine::Engine* e, const char* name, const char* vm_role, const char* settings_role,
    std::function<std::string(const catalog::VmRecord&)> settings_id) {
  return std::make_unique<ListProvider>(
      VmLinkSpec(name, vm_role, settings_role),
      [=](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto vms, e->catalog().ListVms());
        std::vector<cim::Instance> links;
        for (const auto& vm : vms) {
          const std::string id = settings_id(vm);
          if (id.empty()) continue;
          links.push_back(cim::InstanceBuilder(spec)
                              .Ref(vm_role, VmPath(vm.id))
                              .Ref(settings_role, SettingsPath(id))
                              .Build());
        }
        return links;
      });
}

// An association whose second end is a per-VM snapshot: one link per
// snapshot for which `first` names the other end.
std::unique_ptr<cim::Provider> SnapshotLinks(
    engine::Engine* e, cim::ClassSpec spec,
    std::function<std::optional<cim::ObjectPath>(const catalog::MemberSnapshot&)> first) {
  const std::string first_role = spec.properties[0].name, second_role = spec.properties[1].name;
  return std::make_unique<ListProvider>(
      std::move(spec), [=](const cim::ClassSpec& s) -> Result<std::vector<cim::Instance>> {
        std::vector<cim::Instance> links;
        VMG_RETURN_IF_ERROR(ForEachMemberSnapshot(*e, [&](const auto&, const auto& m) {
          auto other = first(m);
          if (!other) return;
          links.push_back(cim::InstanceBuilder(s)
                              .Ref(first_role, std::move(*other))
                              .Ref(second_role, SettingsPath(m.id))
                              .Build());
        }));
        return links;
      });
}

}  // namespace

Providers VmProviders(const Context& ctx) {
  Providers out;
  out.push_back(std::make_unique<ComputerSystemProvider>(ctx));
  out.push_back(std::make_unique<SettingsProvider>(ctx));
  out.push_back(std::make_unique<ManagementServiceProvider>(ctx));
  engine::Engine* e = ctx.engine;
  out.push_back(VmLinks(e, "Msvm_SettingsDefineState", "ManagedElement", "SettingData",
                        [](const catalog::VmRecord& vm) { return vm.id; }));
  out.push_back(SnapshotLinks(e,
                              VmLinkSpec("Msvm_SnapshotOfVirtualSystem", "Antecedent", "Dependent"),
                              [](const catalog::MemberSnapshot& m) { return VmPath(m.vm_id); }));
  // The snapshot tree: each snapshot under its parent, the snapshot last
  // applied to each VM, and each VM's newest snapshot in its current branch.
  out.push_back(SnapshotLinks(
      e,
      VmLinkSpec("Msvm_ParentChildSettingData", "Parent", "Child", "Msvm_VirtualSystemSettingData"),
      [](const catalog::MemberSnapshot& m) -> std::optional<cim::ObjectPath> {
        if (m.parent_id.empty()) return std::nullopt;
        return SettingsPath(m.parent_id);
      }));
  out.push_back(VmLinks(e, "Msvm_LastAppliedSnapshot", "Dependent", "Antecedent",
                        [](const catalog::VmRecord& vm) { return vm.last_applied; }));
  out.push_back(VmLinks(e, "Msvm_MostCurrentSnapshotInBranch", "Antecedent", "Dependent",
                        [](const catalog::VmRecord& vm) { return vm.current_snapshot; }));
  return out;
}

}  // namespace vmgroup::services
