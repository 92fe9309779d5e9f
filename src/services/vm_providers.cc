// Msvm_ComputerSystem, what defines and runs one, and its snapshot tree.
#include <functional>
#include <limits>
#include <optional>

#include "base/validate.h"
#include "cim/xml_reader.h"
#include "services/job_method.h"
#include "services/providers.h"

namespace vmgroup::services {
namespace {

using CS = schema::ComputerSystem;
using VSSD = schema::VirtualSystemSettingData;
using VSMS = schema::VirtualSystemManagementService;

// EnabledState of Msvm_ComputerSystem: 2 Enabled (running), 3 Disabled
// (off), 32768 Paused (also for a VM QEMU paused on an I/O error).
int EnabledState(catalog::Power p) {
  switch (p) {
    case catalog::Power::kRunning:
      return schema::EnabledState::kEnabled;
    case catalog::Power::kPaused:
      return schema::EnabledState::kPaused;
    case catalog::Power::kOff:
      return schema::EnabledState::kDisabled;
  }
  return 0;
}

cim::ClassSpec ComputerSystemSpec() {
  return {
      .name = CS::kClass,
      .superclass = "CIM_ComputerSystem",
      .properties = {{.name = CS::kCreationClassName, .type = "string", .key = true},
                     {.name = CS::kName, .type = "string", .key = true},
                     {.name = CS::kElementName, .type = "string"},
                     {.name = CS::kCaption, .type = "string"},
                     {.name = CS::kDescription, .type = "string"},
                     {.name = CS::kEnabledState, .type = "uint16"},
                     {.name = CS::kRequestedState, .type = "uint16"},
                     {.name = CS::kHealthState, .type = "uint16"},
                     {.name = CS::kOperationalStatus, .type = "uint16", .is_array = true},
                     {.name = CS::kStatusDescriptions, .type = "string", .is_array = true},
                     {.name = CS::kProcessID, .type = "uint32"},
                     // Where the VM lives: the URI of the libvirt
                     // connection it is a domain of; empty for the
                     // VMs vmgroupd runs itself.
                     {.name = CS::kVmgroupLibvirtURI, .type = "string"}},
      .methods = {{.name = CS::RequestStateChange::kMethod,
                   .params = {{.name = CS::RequestStateChange::kRequestedState, .type = "uint16"},
                              JobOut(),
                              {.name = CS::RequestStateChange::kTimeoutPeriod, .type = "datetime"},
                              // Vendor, with 4 (Shut Down): turn the VM off
                              // when its guest has not shut down within
                              // TimeoutPeriod.
                              {.name = CS::RequestStateChange::kVmgroupForce, .type = "boolean"},
                              ErrorOut()}}}};
}

cim::ClassSpec SettingsSpec() {
  return {.name = VSSD::kClass,
          .superclass = "CIM_VirtualSystemSettingData",
          .properties = {
              {.name = VSSD::kInstanceID, .type = "string", .key = true},
              {.name = VSSD::kElementName, .type = "string"},
              {.name = VSSD::kDescription, .type = "string"},
              {.name = VSSD::kVirtualSystemIdentifier, .type = "string"},
              {.name = VSSD::kVirtualSystemType, .type = "string"},
              {.name = VSSD::kCreationTime, .type = "datetime"},
              {.name = VSSD::kParent, .type = "string"},
              {.name = VSSD::kIsSaved, .type = "boolean"},  // a snapshot with memory state
              // Vendor: the configuration Hyper-V keeps in resource settings.
              {.name = VSSD::kVmgroupMemoryMB, .type = "uint64"},
              {.name = VSSD::kVmgroupProcessorCount, .type = "uint16"},
              {.name = VSSD::kVmgroupDiskImages, .type = "string", .is_array = true},
              {.name = VSSD::kVmgroupKernel, .type = "string"},
              {.name = VSSD::kVmgroupInitrd, .type = "string"},
              {.name = VSSD::kVmgroupKernelCommandLine, .type = "string"},
              {.name = VSSD::kVmgroupHugePages, .type = "boolean"},
              // Vendor, snapshots only: the cut of this member.
              {.name = VSSD::kVmgroupSnapshotCollectionID, .type = "string"},
              {.name = VSSD::kVmgroupCutTime, .type = "datetime"},
              {.name = VSSD::kVmgroupPauseMicroseconds, .type = "uint64"},
              {.name = VSSD::kVmgroupConsistencyLevel, .type = "uint16"},
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

// How long a listing waits to ask a VM's QEMU how it is.
constexpr auto kLookTimeout = std::chrono::seconds(1);

// Why QEMU holds `vm`, recorded running, paused on an I/O error, or "".
// Also "" when QEMU cannot say now (a cut or a merge holds the VM): the VM
// is shown as recorded then. The deadline is on the jobs' Env's clock, so
// that tests can control it.
std::string IoErrorOf(const Context& ctx, const catalog::VmRecord& vm) {
  if (vm.power != catalog::Power::kRunning) return "";
  auto why = ctx.engine->vms().IoError(vm.id, ctx.jobs->env()->Now() + kLookTimeout);
  return why.ok() ? *why : "";
}

// A VM QEMU paused on an I/O error is shown as Hyper-V shows one paused on
// a critical storage error (Paused-Critical): EnabledState Paused,
// HealthState 25 (Critical failure), OperationalStatus 3 (Degraded), and
// the reason in StatusDescriptions. RequestedState stays Running, which is
// what was asked for. A VM held off by this host's part of an apply across
// hosts (`hold`: why, HostApplies::HoldOf) is off, healthy, with why in
// StatusDescriptions after schema::kHeldForApply.
cim::Instance VmInstance(const cim::ClassSpec& spec, const catalog::VmRecord& vm,
                         const std::string& io_error, const std::string& hold) {
  const bool io_paused = !io_error.empty();
  const std::string status = io_paused       ? schema::kPausedCritical + io_error
                             : !hold.empty() ? schema::kHeldForApply + hold
                                             : std::string("Operating normally");
  return cim::InstanceBuilder(spec)
      .Str(CS::kCreationClassName, CS::kClass)
      .Str(CS::kName, vm.id)
      .Str(CS::kElementName, vm.name)
      .Str(CS::kCaption, "Virtual Machine")
      .Str(CS::kDescription, "vmgroup Virtual Machine")
      .Int(CS::kEnabledState,
           io_paused ? EnabledState(catalog::Power::kPaused) : EnabledState(vm.power))
      .Int(CS::kRequestedState, EnabledState(vm.power))
      .Int(CS::kHealthState,
           io_paused ? schema::HealthState::kCriticalFailure : schema::HealthState::kOk)
      .Ints(CS::kOperationalStatus,
            {io_paused ? schema::OperationalStatus::kDegraded : schema::OperationalStatus::kOk})
      .Strs(CS::kStatusDescriptions, {status})
      .Int(CS::kProcessID, vm.pid)
      .Str(CS::kVmgroupLibvirtURI, vm.libvirt_uri)
      .Build();
}

cim::Instance ConfigInstance(const cim::ClassSpec& spec, const catalog::VmRecord& vm) {
  cim::InstanceBuilder b(spec);
  b.Str(VSSD::kInstanceID, SettingsId(vm.id))
      .Str(VSSD::kElementName, vm.name)
      .Str(VSSD::kDescription, "Active settings for the virtual machine")
      .Str(VSSD::kVirtualSystemIdentifier, vm.id)
      .Str(VSSD::kVirtualSystemType, schema::VirtualSystemType::kRealized)
      .Int(VSSD::kVmgroupMemoryMB, vm.config.memory_mib)
      .Int(VSSD::kVmgroupProcessorCount, vm.config.vcpus)
      .Strs(VSSD::kVmgroupDiskImages, vm.disks)
      .Str(VSSD::kVmgroupKernel, vm.config.kernel)
      .Str(VSSD::kVmgroupInitrd, vm.config.initrd)
      .Str(VSSD::kVmgroupKernelCommandLine, vm.config.append)
      .Bool(VSSD::kVmgroupHugePages, vm.config.hugepages);
  if (!vm.current_snapshot.empty())
    b.Str(VSSD::kParent, PathText(SettingsPath(vm.current_snapshot)));
  return b.Build();
}

cim::Instance SnapshotInstance(const cim::ClassSpec& spec, const catalog::SnapshotRecord& s,
                               const catalog::MemberSnapshot& m, const std::string& vm_name) {
  std::vector<std::string> images;
  for (const auto& d : m.disks) images.push_back(d.frozen_image);
  cim::InstanceBuilder b(spec);
  b.Str(VSSD::kInstanceID, SettingsId(m.id))
      .Str(VSSD::kElementName, s.name + " - " + vm_name)
      .Str(VSSD::kDescription, "Snapshot settings for the virtual machine")
      .Str(VSSD::kVirtualSystemIdentifier, m.vm_id)
      .Str(VSSD::kVirtualSystemType, s.type == schema::SnapshotType::kRecovery
                                         ? schema::VirtualSystemType::kSnapshotRecovery
                                         : schema::VirtualSystemType::kSnapshotRealized)
      .Str(VSSD::kCreationTime, CimTime(s.created_us))
      .Strs(VSSD::kVmgroupDiskImages, images)
      .Str(VSSD::kVmgroupSnapshotCollectionID, s.id)
      .Str(VSSD::kVmgroupCutTime, CimTime(m.cut_time_us))
      .Int(VSSD::kVmgroupPauseMicroseconds, m.pause_us)
      .Int(VSSD::kVmgroupConsistencyLevel, static_cast<int>(m.consistency))
      .Bool(VSSD::kIsSaved, !m.memory_state.empty());
  if (!m.parent_id.empty()) b.Str(VSSD::kParent, PathText(SettingsPath(m.parent_id)));
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
    VMG_RETURN_IF_ERROR(ForEach([&](cim::Instance inst) { out.push_back(std::move(inst)); }));
    return out;
  }
  // Every VM's configuration, then every per-VM snapshot: thousands, each
  // built from the catalog's records as `each` takes it.
  Status ForEach(const std::function<void(cim::Instance)>& each) override {
    VMG_ASSIGN_OR_RETURN(auto vms, ctx_.engine->catalog().ListVms());
    std::map<std::string, std::string> names;
    for (const auto& vm : vms) {
      each(ConfigInstance(spec_, vm));
      names[vm.id] = vm.name;
    }
    return ForEachMemberSnapshot(*ctx_.engine, [&](const auto& s, const auto& m) {
      each(SnapshotInstance(spec_, s, m, names[m.vm_id]));
    });
  }
  // The instance Enumerate would find, looked up by its id: an association
  // to a VM's snapshots gets each one, and the default (a scan of
  // Enumerate) read every snapshot of the catalog for each.
  Result<cim::Instance> Get(const cim::ObjectPath& path) override {
    const cim::KeyBinding* key = path.Key(VSSD::kInstanceID);
    const std::string id = IdOf(path, VSSD::kInstanceID);
    catalog::Catalog& c = ctx_.engine->catalog();
    if (key && key->kind != cim::KeyBinding::Kind::kReference && key->value == SettingsId(id)) {
      auto vm = c.GetVm(id);
      if (vm.ok()) return ConfigInstance(spec_, *vm);
      if (vm.status().code() != Code::kNotFound) return vm.status();
      auto s = c.SnapshotOfMember(id);
      if (!s.ok() && s.status().code() != Code::kNotFound) return s.status();
      const bool shown = s.ok() && s->state == catalog::SnapshotState::kComplete;
      for (const auto& m : shown ? s->members : std::vector<catalog::MemberSnapshot>{}) {
        if (m.id != id) continue;
        auto owner = c.GetVm(m.vm_id);  // gone: no name, as Enumerate shows it
        if (!owner.ok() && owner.status().code() != Code::kNotFound) return owner.status();
        return SnapshotInstance(spec_, *s, m, owner.ok() ? owner->name : "");
      }
    }
    return Status::NotFound("no " + spec_.name + " instance has those keys");
  }

 private:
  Context ctx_;
  cim::ClassSpec spec_;
};

// What a client sends for no timeout: an interval of zero.
constexpr char kNoTimeout[] = "00000000000000.000000:000";

class ComputerSystemProvider : public cim::Provider {
 public:
  explicit ComputerSystemProvider(const Context& ctx) : ctx_(ctx), spec_(ComputerSystemSpec()) {}
  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override {
    VMG_ASSIGN_OR_RETURN(auto vms, ctx_.engine->catalog().ListVms());
    std::vector<cim::Instance> out;
    for (const auto& vm : vms) out.push_back(Instance(vm));
    return out;
  }
  Result<cim::Instance> Get(const cim::ObjectPath& path) override {
    VMG_ASSIGN_OR_RETURN(auto vm, ctx_.engine->catalog().GetVm(IdOf(path, CS::kName)));
    return Instance(vm);
  }

  // Hyper-V's RequestedState values: 2 Running (start, or resume a paused
  // VM, also one QEMU paused on an I/O error), 3 Off (turn off: the plug
  // pulled), 9 or 32768 Paused; and CIM's 4 Shut Down: the guest's power
  // button pressed, the job done once the VM is off, failed when it is not
  // within TimeoutPeriod (default kShutdownTimeout; the VM runs on) unless
  // Vmgroup_Force turns it off then. Family B codes.
  Result<cim::MethodResult> Invoke(const cim::MethodSpec&, const cim::ObjectPath& target,
                                   const std::map<std::string, cim::Value>& raw) override {
    Args args(raw);
    using Method = CS::RequestStateChange;
    const std::string id = IdOf(target, CS::kName);
    VMG_ASSIGN_OR_RETURN(auto vm, ctx_.engine->catalog().GetVm(id));
    using Want = schema::RequestedState;
    const int64_t want = args.Int(Method::kRequestedState, -1);
    const std::string timeout = args.Str(Method::kTimeoutPeriod);
    engine::StopOptions shutdown{.shutdown = true,
                                 .force = cim::NameEquals(args.Str(Method::kVmgroupForce), "true")};
    if (want == Want::kShutDown && !timeout.empty() && timeout != kNoTimeout) {
      auto us = ParseCimInterval(timeout);
      if (!us.ok()) return Refused(kRcBInvalidParameter, us.status().message());
      shutdown.timeout = std::chrono::microseconds(*us);
    } else if (!timeout.empty() && timeout != kNoTimeout) {
      return Refused(kRcBNotSupported, "TimeoutPeriod is supported with 4 (shut down) only");
    }
    engine::VmRegistry& vms = ctx_.engine->vms();
    std::function<Status()> change;
    std::string verb;
    using catalog::Power;
    const bool pause = want == Want::kQuiesce || want == Want::kPaused;
    if (want == Want::kRunning && vm.power == Power::kOff) {
      change = [&vms, id] { return vms.Start(id); };
      verb = "Start";
    } else if (want == Want::kRunning &&
               (vm.power == Power::kPaused || !IoErrorOf(ctx_, vm).empty())) {
      change = [&vms, id] { return vms.Resume(id); };
      verb = "Resume";
    } else if (want == Want::kOff && vm.power != Power::kOff) {
      change = [&vms, id] { return vms.Stop(id); };
      verb = "Turn off";
    } else if (want == Want::kShutDown && vm.power != Power::kOff) {
      change = [&vms, id, shutdown] { return vms.Stop(id, shutdown); };
      verb = "Shut down";
    } else if (pause && vm.power == Power::kRunning) {
      change = [&vms, id] { return vms.Pause(id); };
      verb = "Pause";
    } else if (want == Want::kRunning || want == Want::kOff || want == Want::kShutDown || pause) {
      return Refused(kRcBInvalidState, "VM " + vm.name + " is " + catalog::PowerName(vm.power));
    } else if (want == Want::kSaved || want == Want::kReboot || want == Want::kReset) {
      return Refused(kRcBNotSupported, "save, reboot and reset are not supported yet");
    } else {
      return Refused(kRcBInvalidParameter,
                     "RequestedState must be 2 (running), 3 (off), 4 (shut down) or 9/32768 "
                     "(paused)");
    }
    // A member held stopped by this host's part of an apply across hosts
    // must not run on the images that apply is replacing.
    if (verb == "Start") {
      Status held = ctx_.engine->snapshots().host_applies().CheckNotHeld(vm.id, "starting it");
      if (!held.ok()) return Refused(kRcBInvalidState, held.message());
    }
    // A QEMU that serves a backup session's reader must not quit under it.
    if (want == Want::kOff || want == Want::kShutDown) {
      Status served = ctx_.engine->snapshots().CheckNotServed(
          vm, want == Want::kOff ? "turning it off" : "shutting it down");
      if (!served.ok()) return Refused(kRcBInvalidState, served.message());
    }
    // The refusals above were its checks, each with its own code.
    return StartJob(
        ctx_.jobs, ReturnCodeB, Status::Ok(),
        [&]() -> Result<JobMethod> {
          return JobMethod{.type = want == Want::kRunning    ? 10
                                   : want == Want::kOff      ? 11
                                   : want == Want::kShutDown ? 13
                                                             : 12,
                           .description = verb + " virtual machine " + vm.name};
        },
        [change, id](JobControl&) -> Result<std::vector<std::string>> {
          VMG_RETURN_IF_ERROR(change());
          return std::vector<std::string>{Affected(CS::kClass, id)};
        });
  }

 private:
  // `vm` as listed: paused on an I/O error, or held by an apply, says why.
  cim::Instance Instance(const catalog::VmRecord& vm) {
    return VmInstance(spec_, vm, IoErrorOf(ctx_, vm),
                      ctx_.engine->snapshots().host_applies().HoldOf(vm.id));
  }

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

// A boolean property: false when absent; InvalidArgument for anything but
// true or false.
Result<bool> BooleanOf(const cim::Instance& i, const char* name) {
  const cim::Property* p = i.Find(name);
  if (!p || p->value.kind == cim::Value::Kind::kNull) return false;
  const std::string text = p->value.kind == cim::Value::Kind::kScalar ? p->value.scalar : "";
  if (cim::NameEquals(text, "true")) return true;
  if (cim::NameEquals(text, "false")) return false;
  return Status::InvalidArgument(std::string(name) + " must be true or false, not '" +
                                 Printable(text) + "'");
}

// The settings a DefineSystem call carries, read into a VM definition.
// InvalidArgument saying what is wrong when they do not make one.
Result<engine::VmDefinition> ReadDefinition(const std::string& system,
                                            const std::vector<std::string>& resources) {
  auto vssd = cim::ParseEmbeddedInstance(system);
  if (!vssd.ok() || !cim::NameEquals(vssd->class_name, VSSD::kClass)) {
    return Status::InvalidArgument(
        "SystemSettings must be an embedded Msvm_VirtualSystemSettingData");
  }
  engine::VmDefinition def;
  def.name = TextOf(*vssd, VSSD::kElementName);
  VMG_RETURN_IF_ERROR(CheckName("VM name (ElementName)", def.name));
  def.id = TextOf(*vssd, VSSD::kVirtualSystemIdentifier);
  def.config.kernel = TextOf(*vssd, VSSD::kVmgroupKernel);
  def.config.initrd = TextOf(*vssd, VSSD::kVmgroupInitrd);
  def.config.append = TextOf(*vssd, VSSD::kVmgroupKernelCommandLine);
  VMG_RETURN_IF_ERROR(CheckText(VSSD::kVmgroupKernel, def.config.kernel, kMaxPathBytes));
  VMG_RETURN_IF_ERROR(CheckText(VSSD::kVmgroupInitrd, def.config.initrd, kMaxPathBytes));
  VMG_RETURN_IF_ERROR(
      CheckText(VSSD::kVmgroupKernelCommandLine, def.config.append, kMaxKernelCommandLine));
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  for (const auto& r : resources) {
    auto rasd = cim::ParseEmbeddedInstance(r);
    if (!rasd.ok()) {
      return Status::InvalidArgument("a ResourceSettings entry is not an embedded instance: " +
                                     rasd.status().message());
    }
    using Storage = schema::StorageAllocationSettingData;
    using Quantity = schema::QuantitySettingData;
    if (cim::NameEquals(rasd->class_name, schema::MemorySettingData::kClass)) {
      VMG_ASSIGN_OR_RETURN(const int64_t mib, NumberOf(*rasd, Quantity::kVirtualQuantity,
                                                       "memory in MiB (VirtualQuantity)", kIntMax,
                                                       def.config.memory_mib));
      def.config.memory_mib = mib;
      VMG_ASSIGN_OR_RETURN(def.config.hugepages,
                           BooleanOf(*rasd, schema::MemorySettingData::kVmgroupHugePages));
    } else if (cim::NameEquals(rasd->class_name, schema::ProcessorSettingData::kClass)) {
      VMG_ASSIGN_OR_RETURN(const int64_t count, NumberOf(*rasd, Quantity::kVirtualQuantity,
                                                         "processor count (VirtualQuantity)",
                                                         kIntMax, def.config.vcpus));
      def.config.vcpus = count;
    } else if (cim::NameEquals(rasd->class_name, Storage::kClass)) {
      const std::string what = "disk " + std::to_string(def.disks.size());
      VMG_ASSIGN_OR_RETURN(const int64_t bytes,
                           NumberOf(*rasd, Storage::kVmgroupNewSizeBytes,
                                    what + ": " + Storage::kVmgroupNewSizeBytes,
                                    std::numeric_limits<int64_t>::max(), 0));
      const cim::Property* host = rasd->Find(Storage::kHostResource);
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
  using Define = VSMS::DefineSystem;
  using Destroy = VSMS::DestroySystem;

 public:
  explicit ManagementServiceProvider(const Context& ctx)
      : ServiceProvider(
            ctx, VSMS::kClass, "vmms", "Hyper-V Virtual System Management Service",
            {{.name = Define::kMethod,
              .params = {{.name = Define::kSystemSettings,
                          .type = "string",
                          .embedded_class = VSSD::kClass},
                         {.name = Define::kResourceSettings,
                          .type = "string",
                          .is_array = true,
                          .embedded_class = "CIM_ResourceAllocationSettingData"},
                         RefIn(Define::kReferenceConfiguration, "CIM_VirtualSystemSettingData"),
                         RefOut(Define::kResultingSystem, "CIM_ComputerSystem"),
                         JobOut()}},
             {.name = Destroy::kMethod,
              .params = {RefIn(Destroy::kAffectedSystem, "CIM_ComputerSystem"), JobOut()}}}) {
    AddProperty(VSMS::kVmgroupAccelerator, ctx.accelerator);
    engine::Engine* e = ctx.engine;
    On(Define::kMethod, [e](const Args& a) -> Result<cim::MethodResult> {
      if (a.Ref(Define::kReferenceConfiguration)) {
        return Refused(kRcBNotSupported, "ReferenceConfiguration is not supported");
      }
      auto def = ReadDefinition(a.Str(Define::kSystemSettings), a.Strs(Define::kResourceSettings));
      if (!def.ok()) return Outcome(ReturnCodeB, def.status());
      auto id = e->vms().Define(*def);
      if (!id.ok()) return Refused(ReturnCodeB(id.status()), id.status().message());
      cim::MethodResult r = Done();
      r.out.push_back({Define::kResultingSystem, "reference", cim::Value::Reference(VmPath(*id))});
      return r;
    });
    On(Destroy::kMethod, [e](const Args& a) -> Result<cim::MethodResult> {
      auto vm = a.RefId(Destroy::kAffectedSystem, CS::kName, "a VM");
      if (!vm.ok()) return Outcome(ReturnCodeB, vm.status());
      return Outcome(ReturnCodeB, e->vms().Undefine(*vm));
    });
  }
};

// VM -> its settings: its configuration (Msvm_SettingsDefineState), or each
// of its snapshots (Msvm_SnapshotOfVirtualSystem).
cim::ClassSpec VmLinkSpec(const char* name, const char* left, const char* right,
                          const char* left_class = CS::kClass) {
  return {.name = name,
          .association = true,
          .properties = {
              {.name = left, .type = "reference", .key = true, .reference_class = left_class},
              {.name = right, .type = "reference", .key = true, .reference_class = VSSD::kClass}}};
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
  using Defines = schema::SettingsDefineState;
  out.push_back(VmLinks(e, Defines::kClass, Defines::kManagedElement, Defines::kSettingData,
                        [](const catalog::VmRecord& vm) { return vm.id; }));
  using SnapshotOf = schema::SnapshotOfVirtualSystem;
  out.push_back(SnapshotLinks(
      e, VmLinkSpec(SnapshotOf::kClass, SnapshotOf::kAntecedent, SnapshotOf::kDependent),
      [](const catalog::MemberSnapshot& m) { return VmPath(m.vm_id); }));
  // The snapshot tree: each snapshot under its parent, the snapshot last
  // applied to each VM, and each VM's newest snapshot in its current branch.
  using ParentChild = schema::ParentChildSettingData;
  out.push_back(SnapshotLinks(
      e, VmLinkSpec(ParentChild::kClass, ParentChild::kParent, ParentChild::kChild, VSSD::kClass),
      [](const catalog::MemberSnapshot& m) -> std::optional<cim::ObjectPath> {
        if (m.parent_id.empty()) return std::nullopt;
        return SettingsPath(m.parent_id);
      }));
  using LastApplied = schema::LastAppliedSnapshot;
  out.push_back(VmLinks(e, LastApplied::kClass, LastApplied::kDependent, LastApplied::kAntecedent,
                        [](const catalog::VmRecord& vm) { return vm.last_applied; }));
  using MostCurrent = schema::MostCurrentSnapshotInBranch;
  out.push_back(VmLinks(e, MostCurrent::kClass, MostCurrent::kAntecedent, MostCurrent::kDependent,
                        [](const catalog::VmRecord& vm) { return vm.current_snapshot; }));
  return out;
}

}  // namespace vmgroup::services
