#include "engine/vm_registry.h"

#include "base/ids.h"
#include "base/validate.h"
#include "engine/fault_points.h"
#include "storage/image_check.h"
#include "storage/untrusted_files.h"

namespace vmgroup::engine {
namespace {

constexpr auto kOpTimeout = std::chrono::seconds(30);
Deadline OpDeadline() { return Clock::now() + kOpTimeout; }

}  // namespace

Status CheckClientPath(const std::string& what, const std::string& path) {
  VMG_RETURN_IF_ERROR(CheckText(what, path, kMaxPathBytes));
  if (path.empty() || path[0] != '/') {
    return Status::InvalidArgument(what + " must be an absolute path, not '" + path + "'");
  }
  return Status::Ok();
}

VmRegistry::VmRegistry(Env* env, catalog::Catalog* catalog, hypervisor::Driver* driver,
                       std::string state_dir)
    : env_(env), catalog_(catalog), driver_(driver), img_(env), state_dir_(std::move(state_dir)) {}

hypervisor::VmSpec VmRegistry::SpecOf(const catalog::VmRecord& vm) const {
  return {.uuid = vm.id,
          .name = vm.name,
          .memory_mib = vm.memory_mib,
          .vcpus = vm.vcpus,
          .disks = vm.disks,
          .kernel = vm.kernel,
          .initrd = vm.initrd,
          .append = vm.append,
          .extra_args = vm.extra_args,
          .run_dir = RunDir(vm.id)};
}

Status VmRegistry::CheckBounds(const VmDefinition& def) {
  VMG_RETURN_IF_ERROR(CheckName("the VM's name", def.name));
  const std::string vm = "VM " + def.name + ": ";
  if (!def.id.empty() && !IsGuid(def.id)) {
    return Status::InvalidArgument(vm + "id '" + Printable(def.id) + "' is not a GUID");
  }
  const auto within = [&](const char* what, int64_t v, int64_t min, int64_t max,
                          const char* unit) -> Status {
    if (v >= min && v <= max) return Status::Ok();
    return Status::InvalidArgument(vm + what + " must be from " + std::to_string(min) + " to " +
                                   std::to_string(max) + unit + ", not " + std::to_string(v));
  };
  VMG_RETURN_IF_ERROR(within("memory", def.memory_mib, kMinMemoryMib, kMaxMemoryMib, " MiB"));
  VMG_RETURN_IF_ERROR(within("the number of vCPUs", def.vcpus, kMinVcpus, kMaxVcpus, ""));
  if (def.disks.size() > kMaxDisks) {
    return Status::InvalidArgument(vm + std::to_string(def.disks.size()) +
                                   " disks; a VM has at most " + std::to_string(kMaxDisks));
  }
  for (size_t i = 0; i < def.disks.size(); ++i) {
    const DiskSpec& d = def.disks[i];
    if (!d.create) {
      VMG_RETURN_IF_ERROR(CheckClientPath(vm + "disk " + std::to_string(i), d.path));
      continue;
    }
    const std::string what = "the size of new disk " + std::to_string(i);
    VMG_RETURN_IF_ERROR(
        within(what.c_str(), d.new_bytes, kMinNewDiskBytes, kMaxNewDiskBytes, " bytes"));
  }
  VMG_RETURN_IF_ERROR(CheckText(vm + "the kernel command line", def.append, kMaxKernelCommandLine));
  for (const auto& [what, path] : {std::pair{"kernel", &def.kernel}, {"initrd", &def.initrd}}) {
    if (!path->empty()) VMG_RETURN_IF_ERROR(CheckClientPath(vm + "the " + what, *path));
  }
  if (def.kernel.empty() && (!def.initrd.empty() || !def.append.empty())) {
    return Status::InvalidArgument(vm + "an initrd or a kernel command line needs a kernel");
  }
  return Status::Ok();
}

Result<std::string> VmRegistry::Define(const VmDefinition& def) {
  VMG_RETURN_IF_ERROR(CheckBounds(def));
  for (const auto& [what, path] : {std::pair{"kernel", &def.kernel}, {"initrd", &def.initrd}}) {
    if (!path->empty()) {
      VMG_RETURN_IF_ERROR(
          storage::OpenRegular(*path).status().Annotate("VM " + def.name + ": the " + what));
    }
  }
  const std::string id = def.id.empty() ? NewGuid() : def.id;
  std::vector<std::string> paths;
  for (size_t i = 0; i < def.disks.size(); ++i) {
    const std::string what = "VM " + def.name + ": disk " + std::to_string(i);
    const DiskSpec& d = def.disks[i];
    if (d.create) {
      paths.push_back(RunDir(id) + "/base" + std::to_string(i) + ".qcow2");
      continue;
    }
    // Our own reading of the headers, down the whole chain: nothing the
    // image names is opened before it is judged.
    VMG_RETURN_IF_ERROR(storage::InspectHostChain(d.path).status().Annotate(what));
    paths.push_back(d.path);
  }
  if (auto taken = catalog_->GetVm(id); taken.ok()) {
    return Status::AlreadyExists("a VM with id " + id + " already exists");
  }
  catalog::VmRecord vm{.id = id,
                       .name = def.name,
                       .memory_mib = static_cast<int>(def.memory_mib),  // within bounds
                       .vcpus = static_cast<int>(def.vcpus),
                       .kernel = def.kernel,
                       .initrd = def.initrd,
                       .append = def.append,
                       .extra_args = def.extra_args,
                       .disks = paths};
  auto created = [&] {
    std::vector<std::string> out;
    for (size_t i = 0; i < def.disks.size(); ++i) {
      if (def.disks[i].create) out.push_back(paths[i]);
    }
    return out;
  }();
  auto forget_created = [&] {
    for (const auto& p : created) (void)env_->RemoveFile(p);
  };
  if (!created.empty()) VMG_RETURN_IF_ERROR(env_->CreateDirs(RunDir(id)));
  for (size_t i = 0; i < def.disks.size(); ++i) {
    if (!def.disks[i].create) continue;
    if (Status c = img_.Create(paths[i], static_cast<uint64_t>(def.disks[i].new_bytes)); !c.ok()) {
      forget_created();
      return c.Annotate("VM " + def.name + ": disk " + std::to_string(i));
    }
  }
  if (Status s = catalog_->InsertVm(vm); !s.ok()) {
    forget_created();
    return s;
  }
  return vm.id;
}

Status VmRegistry::Undefine(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  if (vm.power != catalog::Power::kOff) {
    return Status::InvalidState("VM " + vm.name + " is " + catalog::PowerName(vm.power) +
                                "; turn it off first");
  }
  if (!vm.current_snapshot.empty()) {
    return Status::InvalidState("VM " + vm.name +
                                " is part of group snapshots; delete those first");
  }
  VMG_ASSIGN_OR_RETURN(auto collections, catalog_->CollectionsOf(id));
  for (const auto& c : collections) {
    bool removed = false;
    VMG_RETURN_IF_ERROR(catalog_->RemoveMember(c, id, &removed));
  }
  VMG_RETURN_IF_ERROR(catalog_->DeleteVm(id));
  // Everything in the run directory is the registry's: sockets, logs, the
  // disks it created. The directory itself may stay.
  if (auto files = env_->ListDir(RunDir(id)); files.ok()) {
    for (const auto& f : *files) (void)env_->RemoveFile(RunDir(id) + "/" + f);
  }
  return Status::Ok();
}

Status VmRegistry::Start(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  if (vm.power != catalog::Power::kOff) {
    return Status::InvalidState("VM " + vm.name + " is already " + catalog::PowerName(vm.power));
  }
  VMG_RETURN_IF_ERROR(env_->CreateDirs(RunDir(id)));
  VMG_ASSIGN_OR_RETURN(std::unique_ptr<hypervisor::Vm> live, driver_->Start(SpecOf(vm)));
  Status s = env_->Hit(fault::kVmStarted, vm.name);
  if (s.ok()) s = catalog_->SetVmPower(id, catalog::Power::kRunning, live->pid());
  if (!s.ok()) {
    (void)live->PowerOff();  // the first error is the one to report
    return s;
  }
  std::lock_guard lock(mu_);
  live_[id] = std::move(live);
  return Status::Ok();
}

Result<std::unique_ptr<hypervisor::Vm>> VmRegistry::Launch(const std::string& id,
                                                           const std::vector<std::string>& disks,
                                                           const std::string& incoming) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  if (vm.power != catalog::Power::kOff || Live(id)) {
    return Status::InvalidState("VM " + vm.name + " is " + catalog::PowerName(vm.power));
  }
  hypervisor::VmSpec spec = SpecOf(vm);
  spec.disks = disks;
  spec.incoming = incoming;
  return driver_->Start(spec);
}

void VmRegistry::Adopt(const std::string& id, std::unique_ptr<hypervisor::Vm> live) {
  std::lock_guard lock(mu_);
  live_[id] = std::move(live);
}

Status VmRegistry::EndStray(const std::string& id, int pid) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  if (vm.pid == pid && vm.power != catalog::Power::kOff) return Status::Ok();  // recorded after all
  auto stray = driver_->Attach(SpecOf(vm), pid);
  if (!stray.ok())
    return stray.status().code() == Code::kUnavailable ? Status::Ok() : stray.status();
  return (*stray)->PowerOff();
}

std::shared_ptr<hypervisor::Vm> VmRegistry::Live(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : it->second;
}

Status VmRegistry::Stop(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  auto live = Live(id);
  if (vm.power == catalog::Power::kOff || !live) {
    return Status::InvalidState("VM " + vm.name + " is off");
  }
  VMG_RETURN_IF_ERROR(live->PowerOff().Annotate("VM " + vm.name));
  {
    std::lock_guard lock(mu_);
    live_.erase(id);
  }
  return catalog_->SetVmPower(id, catalog::Power::kOff, 0);
}

Status VmRegistry::Pause(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  auto live = Live(id);
  if (vm.power != catalog::Power::kRunning || !live) {
    return Status::InvalidState("VM " + vm.name + " is " + catalog::PowerName(vm.power) +
                                ", not running");
  }
  VMG_RETURN_IF_ERROR(live->Pause(OpDeadline()).Annotate("VM " + vm.name));
  return catalog_->SetVmPower(id, catalog::Power::kPaused, live->pid());
}

Status VmRegistry::Resume(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  auto live = Live(id);
  if (vm.power != catalog::Power::kPaused || !live) {
    return Status::InvalidState("VM " + vm.name + " is " + catalog::PowerName(vm.power) +
                                ", not paused");
  }
  // Record first: if the daemon dies in between, recovery resumes it anyway.
  VMG_RETURN_IF_ERROR(catalog_->SetVmPower(id, catalog::Power::kRunning, live->pid()));
  return live->Resume(OpDeadline()).Annotate("VM " + vm.name);
}

Result<std::vector<std::string>> VmRegistry::AttachAll() {
  VMG_ASSIGN_OR_RETURN(auto vms, catalog_->ListVms());
  std::vector<std::string> gone;
  for (const auto& vm : vms) {
    if (vm.power == catalog::Power::kOff || Live(vm.id)) continue;
    auto live = driver_->Attach(SpecOf(vm), vm.pid);
    if (!live.ok()) {
      if (live.status().code() != Code::kUnavailable) return live.status();
      VMG_RETURN_IF_ERROR(catalog_->SetVmPower(vm.id, catalog::Power::kOff, 0));
      gone.push_back(vm.id);
      continue;
    }
    std::lock_guard lock(mu_);
    live_[vm.id] = std::move(live).value();
  }
  return gone;
}

Status VmRegistry::StopAll() {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, vm] : live_) ids.push_back(id);
  }
  Status first;
  for (const auto& id : ids) {
    Status s = Stop(id);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

}  // namespace vmgroup::engine
