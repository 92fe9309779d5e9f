#include "engine/vm_registry.h"

#include <signal.h>

#include <algorithm>

#include "base/huge_pages.h"
#include "base/ids.h"
#include "base/validate.h"
#include "engine/managed_images.h"
#include "storage/image_check.h"
#include "storage/untrusted_files.h"

namespace vmgroup::engine {
namespace {

constexpr auto kOpTimeout = std::chrono::seconds(30);
// How long a QEMU ended by pid gets after SIGTERM, and after SIGKILL.
constexpr auto kEndWait = std::chrono::seconds(10);
// How long a VM resumed from an I/O error is watched for pausing again.
constexpr auto kRetrySettle = std::chrono::seconds(1);

// The deadline of one call to a live VM, on the clock its waits use.
Deadline OpDeadline(Env* env) { return env->Now() + kOpTimeout; }

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

void VmRegistry::AddConnection(const std::string& uri, hypervisor::Driver* driver) {
  std::lock_guard lock(mu_);
  connections_[uri] = driver;
}

hypervisor::Driver* VmRegistry::Connection(const std::string& uri) {
  std::lock_guard lock(mu_);
  auto it = connections_.find(uri);
  return it == connections_.end() ? nullptr : it->second;
}

std::vector<std::string> VmRegistry::ConnectionUris() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [uri, driver] : connections_) out.push_back(uri);
  return out;
}

std::string VmRegistry::Unsupported(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = unsupported_.find(id);
  return it == unsupported_.end() ? std::string() : it->second;
}

void VmRegistry::SetUnsupported(const std::string& id, std::string why) {
  std::lock_guard lock(mu_);
  if (why.empty()) {
    unsupported_.erase(id);
  } else {
    unsupported_[id] = std::move(why);
  }
}

Result<hypervisor::Driver*> VmRegistry::DriverOf(const catalog::VmRecord& vm) {
  if (vm.libvirt_uri.empty()) return driver_;
  if (hypervisor::Driver* d = Connection(vm.libvirt_uri)) return d;
  return Status::Unavailable("VM " + vm.name + " lives on libvirt at " + vm.libvirt_uri +
                             ", and vmgroupd has no connection there (start it with --libvirt " +
                             vm.libvirt_uri + ")");
}

namespace {

// The guards of several drivers as one: Disarm and the act-at-once method
// (each Set's) go to every guard.
template <typename Guard>
class GuardSet : public Guard {
 public:
  explicit GuardSet(std::vector<std::unique_ptr<Guard>> guards) : guards_(std::move(guards)) {}
  void Disarm() override { All(&Guard::Disarm); }

 protected:
  void All(void (Guard::*act)()) {
    for (auto& g : guards_) (g.get()->*act)();
  }

 private:
  std::vector<std::unique_ptr<Guard>> guards_;
};

class ThawGuardSet final : public GuardSet<hypervisor::ThawGuard> {
 public:
  using GuardSet::GuardSet;
  void ThawNow() override { All(&hypervisor::ThawGuard::ThawNow); }
};

class ResumeGuardSet final : public GuardSet<hypervisor::ResumeGuard> {
 public:
  using GuardSet::GuardSet;
  void ResumeNow() override { All(&hypervisor::ResumeGuard::ResumeNow); }
};

}  // namespace

template <typename Set, typename Guard>
Result<std::unique_ptr<Guard>> VmRegistry::GuardEach(
    const std::vector<std::shared_ptr<hypervisor::Vm>>& vms,
    const std::function<Result<std::unique_ptr<Guard>>(
        hypervisor::Driver*, const std::vector<std::shared_ptr<hypervisor::Vm>>&)>& arm) {
  // A QEMU guard holds QEMU's own channels, a libvirt guard acts through
  // its own connection: each VM goes to the driver it lives on.
  std::map<hypervisor::Driver*, std::vector<std::shared_ptr<hypervisor::Vm>>> by_driver;
  for (const auto& vm : vms) {
    std::string id;
    {
      std::lock_guard lock(mu_);
      for (const auto& [live_id, live] : live_) {
        if (live == vm) id = live_id;
      }
    }
    if (id.empty()) return Status::InvalidArgument("a VM to guard is not live in vmgroup");
    VMG_ASSIGN_OR_RETURN(auto record, catalog_->GetVm(id));
    VMG_ASSIGN_OR_RETURN(hypervisor::Driver * driver, DriverOf(record));
    by_driver[driver].push_back(vm);
  }
  std::vector<std::unique_ptr<Guard>> guards;
  for (const auto& [driver, guarded] : by_driver) {
    VMG_ASSIGN_OR_RETURN(auto guard, arm(driver, guarded));
    guards.push_back(std::move(guard));
  }
  if (guards.size() == 1) return std::move(guards.front());
  return std::unique_ptr<Guard>(new Set(std::move(guards)));
}

Result<std::unique_ptr<hypervisor::ThawGuard>> VmRegistry::GuardThaw(
    const std::vector<std::shared_ptr<hypervisor::Vm>>& vms, Duration within) {
  return GuardEach<ThawGuardSet, hypervisor::ThawGuard>(
      vms, [&](hypervisor::Driver* driver, const auto& guarded) {
        return driver->GuardThaw(guarded, within);
      });
}

Result<std::unique_ptr<hypervisor::ResumeGuard>> VmRegistry::GuardResume(
    const std::vector<std::shared_ptr<hypervisor::Vm>>& vms, Duration within) {
  return GuardEach<ResumeGuardSet, hypervisor::ResumeGuard>(
      vms, [&](hypervisor::Driver* driver, const auto& guarded) {
        return driver->GuardResume(guarded, within);
      });
}

hypervisor::VmSpec VmRegistry::SpecOf(const catalog::VmRecord& vm) const {
  return {.uuid = vm.id,
          .name = vm.name,
          .config = vm.config,
          .disks = vm.disks,
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
  VMG_RETURN_IF_ERROR(
      within("memory", def.config.memory_mib, kMinMemoryMib, kMaxMemoryMib, " MiB"));
  if (def.config.hugepages) {
    VMG_RETURN_IF_ERROR(CheckHugePageMultiple("VM " + def.name, def.config.memory_mib));
  }
  VMG_RETURN_IF_ERROR(within("the number of vCPUs", def.config.vcpus, kMinVcpus, kMaxVcpus, ""));
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
  VMG_RETURN_IF_ERROR(
      CheckText(vm + "the kernel command line", def.config.append, kMaxKernelCommandLine));
  for (const auto& [what, path] :
       {std::pair{"kernel", &def.config.kernel}, {"initrd", &def.config.initrd}}) {
    if (!path->empty()) VMG_RETURN_IF_ERROR(CheckClientPath(vm + "the " + what, *path));
  }
  if (def.config.kernel.empty() && (!def.config.initrd.empty() || !def.config.append.empty())) {
    return Status::InvalidArgument(vm + "an initrd or a kernel command line needs a kernel");
  }
  return Status::Ok();
}

Result<std::string> VmRegistry::Define(const VmDefinition& def) {
  VMG_RETURN_IF_ERROR(CheckBounds(def));
  // Refused before anything is made: a VM that could not start now is a
  // host to prepare first (the pages are checked again at each start).
  if (def.config.hugepages) {
    VMG_RETURN_IF_ERROR(CheckHugePagesFree(env_, "VM " + def.name, def.config.memory_mib));
  }
  for (const auto& [what, path] :
       {std::pair{"kernel", &def.config.kernel}, {"initrd", &def.config.initrd}}) {
    if (!path->empty()) {
      VMG_RETURN_IF_ERROR(
          storage::OpenRegular(*path).status().Annotate("VM " + def.name + ": the " + what));
    }
  }
  const std::string id = def.id.empty() ? NewGuid() : def.id;
  VMG_ASSIGN_OR_RETURN(ManagedImages managed,
                       ManagedImages::Load(*catalog_, state_dir_, RunDir(id)));
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
    auto chain = storage::InspectHostChain(d.path);
    if (!chain.ok()) return chain.status().Annotate(what);
    // Nothing vmgroup manages becomes another VM's disk, nor lies below one.
    for (const auto& image : *chain) {
      VMG_RETURN_IF_ERROR(
          managed.Refuse(image.path)
              .Annotate(image.path == d.path ? what : what + ", whose backing chain holds it"));
    }
    paths.push_back(d.path);
  }
  if (auto taken = catalog_->GetVm(id); taken.ok()) {
    return Status::AlreadyExists("a VM with id " + id + " already exists");
  }
  catalog::VmRecord vm{.id = id, .name = def.name, .config = def.config, .disks = paths};
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
  if (!vm.libvirt_uri.empty()) {
    return Status::InvalidState("VM " + vm.name + " is a domain of libvirt at " + vm.libvirt_uri +
                                "; vmgroupd never undefines those: undefine it there (virsh "
                                "undefine), and vmgroupd forgets it");
  }
  if (vm.power != catalog::Power::kOff) {
    return Status::InvalidState("VM " + vm.name + " is " + catalog::PowerName(vm.power) +
                                "; turn it off first");
  }
  if (!vm.current_snapshot.empty()) {
    return Status::InvalidState("VM " + vm.name +
                                " is part of group snapshots; delete those first");
  }
  VMG_RETURN_IF_ERROR(DeleteRecord(id));
  // Everything in the run directory is the registry's: sockets, logs, the
  // disks it created. The directory itself may stay.
  if (auto files = env_->ListDir(RunDir(id)); files.ok()) {
    for (const auto& f : *files) (void)env_->RemoveFile(RunDir(id) + "/" + f);
  }
  return Status::Ok();
}

Status VmRegistry::DeleteRecord(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(auto collections, catalog_->CollectionsOf(id));
  for (const auto& c : collections) {
    bool removed = false;
    VMG_RETURN_IF_ERROR(catalog_->RemoveMember(c, id, &removed));
  }
  return catalog_->DeleteVm(id);
}

Status VmRegistry::ForgetDomain(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  Drop(id);
  SetUnsupported(id, "");
  if (!vm.current_snapshot.empty()) {
    VMG_RETURN_IF_ERROR(catalog_->SetVmPower(id, catalog::Power::kOff, 0));
    return Status::InvalidState("libvirt domain " + vm.name + " is gone from " + vm.libvirt_uri +
                                ", but group snapshots of it remain: its record stays with them");
  }
  return DeleteRecord(id);
}

Result<std::unique_ptr<hypervisor::Vm>> VmRegistry::StartRecorded(const std::string& id,
                                                                  const hypervisor::VmSpec& spec) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  VMG_ASSIGN_OR_RETURN(hypervisor::Driver * driver, DriverOf(vm));
  catalog::ProcessRecord process{id, 0, 0};
  auto admit = [&](int pid) -> Status {
    VMG_ASSIGN_OR_RETURN(int64_t started, env_->ProcessStartTime(pid));
    process = {id, pid, started};
    return catalog_->InsertProcess(process);
  };
  auto live = driver->Start(spec, admit);
  // The driver ended a QEMU that did not come up; make sure, and forget it.
  if (!live.ok() && process.pid != 0) (void)EndRecorded(process);
  return live;
}

Status VmRegistry::EndRecorded(const catalog::ProcessRecord& p) {
  auto started = env_->ProcessStartTime(p.pid);
  if (started.ok() && *started == p.start_time) {
    VMG_RETURN_IF_ERROR(env_->Kill(p.pid, SIGTERM));
    if (!env_->WaitGone(p.pid, kEndWait).ok()) {
      VMG_RETURN_IF_ERROR(env_->Kill(p.pid, SIGKILL));
      VMG_RETURN_IF_ERROR(env_->WaitGone(p.pid, kEndWait).Annotate("QEMU of VM " + p.vm_id));
    }
  }
  return catalog_->DeleteProcess(p);
}

Status VmRegistry::Forget(const std::string& id, int pid) {
  VMG_ASSIGN_OR_RETURN(auto recorded, catalog_->ListProcesses());
  for (const auto& p : recorded) {
    if (p.vm_id == id && p.pid == pid) VMG_RETURN_IF_ERROR(catalog_->DeleteProcess(p));
  }
  return Status::Ok();
}

Status VmRegistry::Start(const std::string& id, bool paused) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  if (vm.power != catalog::Power::kOff) {
    return Status::InvalidState("VM " + vm.name + " is already " + catalog::PowerName(vm.power));
  }
  VMG_RETURN_IF_ERROR(env_->CreateDirs(RunDir(id)));
  hypervisor::VmSpec spec = SpecOf(vm);
  spec.paused = paused;
  VMG_ASSIGN_OR_RETURN(std::unique_ptr<hypervisor::Vm> live, StartRecorded(id, spec));
  Status s = catalog_->SetVmPower(id, paused ? catalog::Power::kPaused : catalog::Power::kRunning,
                                  live->pid());
  if (!s.ok()) {
    (void)Discard(id, std::move(live));  // the catalog error is the one to report
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
  return StartRecorded(id, spec);
}

Status VmRegistry::DefineDisks(const std::string& id, const std::vector<std::string>& disks) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  VMG_ASSIGN_OR_RETURN(hypervisor::Driver * driver, DriverOf(vm));
  hypervisor::VmSpec spec = SpecOf(vm);
  spec.disks = disks;
  return driver->DefineDisks(spec).Annotate("VM " + vm.name);
}

Result<std::vector<std::string>> VmRegistry::OffTrackings(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  VMG_ASSIGN_OR_RETURN(hypervisor::Driver * driver, DriverOf(vm));
  return driver->Trackings(SpecOf(vm));
}

Status VmRegistry::DropOffTracking(const std::string& id, const std::string& name) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  VMG_ASSIGN_OR_RETURN(hypervisor::Driver * driver, DriverOf(vm));
  return driver->DropTracking(SpecOf(vm), name).Annotate("VM " + vm.name);
}

Status VmRegistry::KeepOffTracking(const std::string& id, int disk, const std::string& image,
                                   const std::string& name) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  VMG_ASSIGN_OR_RETURN(hypervisor::Driver * driver, DriverOf(vm));
  return driver->KeepTracking(SpecOf(vm), disk, image, name).Annotate("VM " + vm.name);
}

Result<std::vector<hypervisor::ServedExport>> VmRegistry::ServeOff(
    const std::string& id, const hypervisor::NbdListen& at,
    const std::vector<hypervisor::ServedImage>& images) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  VMG_ASSIGN_OR_RETURN(hypervisor::Driver * driver, DriverOf(vm));
  return driver->ServeImages(SpecOf(vm), at, images);
}

Status VmRegistry::StopServingOff(const std::string& id, const std::string& socket) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  VMG_ASSIGN_OR_RETURN(hypervisor::Driver * driver, DriverOf(vm));
  return driver->StopServing(SpecOf(vm), socket);
}

void VmRegistry::Adopt(const std::string& id, std::unique_ptr<hypervisor::Vm> live) {
  std::lock_guard lock(mu_);
  live_[id] = std::move(live);
}

Status VmRegistry::Discard(const std::string& id, std::unique_ptr<hypervisor::Vm> launched) {
  // Not forgotten unless gone: recovery ends it then.
  VMG_RETURN_IF_ERROR(launched->PowerOff());
  return Forget(id, launched->pid());
}

void VmRegistry::Drop(const std::string& id) {
  std::lock_guard lock(mu_);
  live_.erase(id);
}

std::shared_ptr<hypervisor::Vm> VmRegistry::Live(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : it->second;
}

Status VmRegistry::Stop(const std::string& id, const StopOptions& how) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  auto live = Live(id);
  if (vm.power == catalog::Power::kOff || !live) {
    return Status::InvalidState("VM " + vm.name + " is off");
  }
  bool shut_down = false;
  if (how.shutdown) {
    VMG_ASSIGN_OR_RETURN(shut_down, ShutDown(vm, *live, how));
  }
  if (!shut_down) VMG_RETURN_IF_ERROR(live->PowerOff().Annotate("VM " + vm.name));
  {
    std::lock_guard lock(mu_);
    live_.erase(id);
  }
  VMG_RETURN_IF_ERROR(catalog_->SetVmPower(id, catalog::Power::kOff, 0));
  return Forget(id, live->pid());
}

Result<bool> VmRegistry::ShutDown(const catalog::VmRecord& vm, hypervisor::Vm& live,
                                  const StopOptions& how) {
  if (vm.power == catalog::Power::kPaused) {
    if (how.force) return false;
    return Status::InvalidState("VM " + vm.name +
                                " is paused: its guest cannot shut down; resume it first, or "
                                "use `vmgroup vm turn-off`");
  }
  Status s = live.Shutdown(env_->Now() + how.timeout);
  if (s.ok()) return true;
  if (s.code() != Code::kTimeout) return s.Annotate("VM " + vm.name);
  if (how.force) return false;
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(how.timeout).count();
  return Status::Timeout("the guest of VM " + vm.name + " did not shut down within " +
                         std::to_string(seconds) +
                         " s; it runs on; use `vmgroup vm turn-off` to turn it off");
}

Status VmRegistry::Pause(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  auto live = Live(id);
  if (vm.power != catalog::Power::kRunning || !live) {
    return Status::InvalidState("VM " + vm.name + " is " + catalog::PowerName(vm.power) +
                                ", not running");
  }
  VMG_RETURN_IF_ERROR(live->Pause(OpDeadline(env_)).Annotate("VM " + vm.name));
  return catalog_->SetVmPower(id, catalog::Power::kPaused, live->pid());
}

Result<std::string> VmRegistry::IoError(const std::string& id, Deadline deadline) {
  auto live = Live(id);
  if (!live) return std::string();
  VMG_ASSIGN_OR_RETURN(hypervisor::RunState state, live->State(deadline));
  if (state != hypervisor::RunState::kIoError) return std::string();
  VMG_ASSIGN_OR_RETURN(auto errors, live->IoErrors(deadline));
  if (errors.empty()) return std::string("a disk request failed (QEMU names no disk)");
  std::string out;
  for (const auto& e : errors) out += (out.empty() ? "" : "; ") + e;
  return out;
}

Status VmRegistry::RetryIoError(const catalog::VmRecord& vm, hypervisor::Vm& live) {
  VMG_RETURN_IF_ERROR(live.Resume(OpDeadline(env_)).Annotate("VM " + vm.name));
  // QEMU resubmits the failed requests as the vCPUs start: a cause still
  // there pauses the VM again within moments.
  const Deadline settle = env_->Now() + kRetrySettle;
  while (env_->Now() < settle) {
    auto again = IoError(vm.id, OpDeadline(env_));
    if (again.ok() && !again->empty()) {
      return Status::Failed("VM " + vm.name + " paused again on an I/O error: " + *again +
                            "; make room (or repair the disk) and resume it again");
    }
    env_->SleepFor(std::chrono::milliseconds(50));
  }
  return Status::Ok();
}

Status VmRegistry::Resume(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
  auto live = Live(id);
  if (vm.power == catalog::Power::kRunning && live) {
    VMG_ASSIGN_OR_RETURN(std::string held, IoError(id, OpDeadline(env_)));
    if (!held.empty()) return RetryIoError(vm, *live);
  }
  if (vm.power != catalog::Power::kPaused || !live) {
    return Status::InvalidState("VM " + vm.name + " is " + catalog::PowerName(vm.power) +
                                ", not paused");
  }
  // Record first: if the daemon dies in between, recovery resumes it anyway.
  VMG_RETURN_IF_ERROR(catalog_->SetVmPower(id, catalog::Power::kRunning, live->pid()));
  return live->Resume(OpDeadline(env_)).Annotate("VM " + vm.name);
}

Result<std::vector<std::string>> VmRegistry::AttachAll() {
  VMG_ASSIGN_OR_RETURN(auto vms, catalog_->ListVms());
  VMG_ASSIGN_OR_RETURN(auto recorded, catalog_->ListProcesses());
  std::vector<std::string> gone;
  for (const auto& vm : vms) {
    if (vm.power == catalog::Power::kOff || Live(vm.id)) continue;
    if (!vm.libvirt_uri.empty()) {
      VMG_ASSIGN_OR_RETURN(bool on, AttachDomain(vm));
      if (!on) gone.push_back(vm.id);
      continue;
    }
    // Its own QEMU, by the process recorded at its start. A catalog older
    // than the processes table has none: the pid alone, as then.
    auto own = std::find_if(recorded.begin(), recorded.end(),
                            [&](const auto& p) { return p.vm_id == vm.id && p.pid == vm.pid; });
    const bool known = own != recorded.end();
    auto started = env_->ProcessStartTime(vm.pid);
    Result<std::unique_ptr<hypervisor::Vm>> live =
        Status::Unavailable("QEMU of VM " + vm.name + " is gone");
    if (started.ok() && (!known || *started == own->start_time)) {
      live = driver_->Attach(SpecOf(vm), vm.pid);
    }
    if (!live.ok()) {
      if (live.status().code() != Code::kUnavailable) return live.status();
      // Still ours but not reachable: ended, so that it is never a second QEMU.
      if (known) VMG_RETURN_IF_ERROR(EndRecorded(*own));
      VMG_RETURN_IF_ERROR(catalog_->SetVmPower(vm.id, catalog::Power::kOff, 0));
      gone.push_back(vm.id);
      continue;
    }
    if (!known) VMG_RETURN_IF_ERROR(catalog_->InsertProcess({vm.id, vm.pid, *started}));
    std::lock_guard lock(mu_);
    live_[vm.id] = std::move(live).value();
  }
  // Every other process: one the dead daemon started and no VM's record
  // names (an apply or a start cut short), or one that stopped.
  for (const auto& p : recorded) {
    auto live = Live(p.vm_id);
    if (live && live->pid() == p.pid) continue;
    VMG_RETURN_IF_ERROR(EndRecorded(p));
  }
  return gone;
}

Result<bool> VmRegistry::AttachDomain(const catalog::VmRecord& vm) {
  hypervisor::Driver* driver = Connection(vm.libvirt_uri);
  if (!driver) return true;  // not connected this time: as recorded
  auto live = driver->Attach(SpecOf(vm), 0);
  if (live.ok()) {
    Adopt(vm.id, std::move(live).value());
    return true;
  }
  // Shut off, or undefined (DomainSync forgets it when it lists).
  if (live.status().code() != Code::kUnavailable && live.status().code() != Code::kNotFound) {
    return live.status();
  }
  VMG_RETURN_IF_ERROR(catalog_->SetVmPower(vm.id, catalog::Power::kOff, 0));
  return false;
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
