#include "hypervisor/qemu/qemu_driver.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/huge_pages.h"
#include "hypervisor/qemu/accel_probe.h"
#include "hypervisor/qemu/guest_agent.h"
#include "hypervisor/qemu/listen_socket.h"
#include "hypervisor/qemu/qemu_vm.h"
#include "hypervisor/qemu/qmp_commands.h"
#include "hypervisor/qemu/resume_guard.h"
#include "hypervisor/qemu/storage_daemon.h"
#include "hypervisor/qemu/thaw_guard.h"
#include "storage/qemu_img.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// QEMU's option parser splits on ','; a literal comma is written twice.
std::string Escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    out += ch;
    if (ch == ',') out += ',';
  }
  return out;
}

std::string Tail(Env* env, const std::string& path, size_t max_bytes) {
  std::string s = env->ReadFile(path).value_or("");
  if (s.size() > max_bytes) s = s.substr(s.size() - max_bytes);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The descriptors QEMU is started with (SpawnOptions::fds): its monitor's
// and its agent channel's listening sockets, its serial log, which it
// opens as descriptor set 0, and its guard monitor's listening socket.
constexpr int kMonitorFd = 3;
constexpr int kAgentFd = 4;
constexpr int kSerialFd = 5;
constexpr int kGuardMonitorFd = 6;

// How long the resume guard's connections may take: its monitor answers at
// once unless another client holds it.
constexpr auto kGuardConnectTimeout = std::chrono::seconds(5);

// What -sandbox forbids QEMU besides its default list: obsolete system
// calls, gaining privileges, starting processes (no exec:, no helpers),
// changing scheduling or resource limits.
constexpr char kSandbox[] =
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

// Makes the run directory QEMU's to reach and nobody else's, and hands QEMU
// the images it runs on: each disk's active image and the images vmgroup
// made in the run directory (overlays, new and restored disks), which it
// may merge into, and lets it read a kernel and initrd kept there. Images
// below those, and boot files elsewhere, are left as they are.
Status ArrangeFiles(const VmSpec& spec, const std::optional<QemuUser>& user) {
  if (!user) {
    if (::chmod(spec.run_dir.c_str(), 0700) != 0) {
      return Status::IoError("cannot close " + spec.run_dir + ": " + std::strerror(errno));
    }
    return Status::Ok();
  }
  VMG_RETURN_IF_ERROR(user->ShareRunDir(spec.run_dir));
  for (const auto& disk : spec.disks) VMG_RETURN_IF_ERROR(user->HandOver(disk));
  for (const std::string* boot : {&spec.config.kernel, &spec.config.initrd}) {
    if (boot->rfind(spec.run_dir + "/", 0) == 0 &&
        boot->find('/', spec.run_dir.size() + 1) == std::string::npos) {
      VMG_RETURN_IF_ERROR(user->ShareForReading(*boot));
    }
  }
  return user->HandOverImagesIn(spec.run_dir);
}

Status ValidateSpec(Env* env, const VmSpec& spec) {
  if (spec.run_dir.empty() || spec.run_dir[0] != '/') {
    return Status::InvalidArgument("VM " + spec.name + ": run directory must be an absolute path");
  }
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const std::string& d = spec.disks[i];
    if (d.empty() || d[0] != '/') {
      return Status::InvalidArgument("VM " + spec.name + ": disk " + std::to_string(i) +
                                     " must be an absolute path, got '" + d + "'");
    }
    if (!env->FileExists(d)) {
      return Status::FileNotFound("VM " + spec.name + ": disk " + std::to_string(i) + " image " +
                                  d + " is missing");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Accel> ParseAccel(const std::string& name) {
  if (name == "auto") return Accel::kAuto;
  if (name == "kvm") return Accel::kKvm;
  if (name == "tcg") return Accel::kTcg;
  return Status::InvalidArgument("accelerator must be auto, kvm or tcg, got '" + name + "'");
}

std::string AccelName(Accel accel) {
  switch (accel) {
    case Accel::kAuto:
      return "auto";
    case Accel::kKvm:
      return "kvm";
    case Accel::kTcg:
      return "tcg";
  }
  return "auto";
}

Result<std::unique_ptr<QemuDriver>> QemuDriver::Create(Env* env, QemuOptions options) {
  VMG_ASSIGN_OR_RETURN(std::optional<QemuUser> user, QemuUser::LookUp(options.user));
  Status kvm_refusal;
  if (options.accel == Accel::kAuto) {
    kvm_refusal = ProbeAccel(env, "kvm",
                             {.binary = options.binary,
                              .run_as = user ? user->RunAs() : std::vector<std::string>{},
                              .deadline = options.probe_deadline});
    options.accel = kvm_refusal.ok() ? Accel::kKvm : Accel::kTcg;
  }
  return std::unique_ptr<QemuDriver>(
      new QemuDriver(env, std::move(options), std::move(user), std::move(kvm_refusal)));
}

std::vector<std::string> QemuDriver::CommandLine(const VmSpec& spec) const {
  std::vector<std::string> argv;
  if (user_) argv = user_->RunAs();
  // debug-threads names the vCPU threads "CPU <n>/TCG|KVM": the cut tells
  // them from the threads that answer QMP by that name.
  argv.insert(argv.end(),
              {options_.binary, "-name", "guest=" + Escape(spec.name) + ",debug-threads=on",
               "-uuid", spec.uuid, "-sandbox", kSandbox});
  argv.insert(argv.end(), {"-accel", AccelName(options_.accel)});  // never auto (Create)
  argv.insert(argv.end(),
              {"-nodefaults", "-no-user-config", "-display", "none", "-m",
               std::to_string(spec.config.memory_mib), "-smp", std::to_string(spec.config.vcpus)});
  if (spec.config.hugepages) {
    // Every page taken at start (prealloc): left to the guest's first
    // touches, the first memory snapshot would fault them in inside its
    // pause. Named as the machine names its own RAM ("pc.ram"), so that a
    // memory state's RAM block is the one a VM on huge pages loads it into.
    argv.insert(argv.end(),
                {"-object",
                 "memory-backend-memfd,id=pc.ram,size=" + std::to_string(spec.config.memory_mib) +
                     "M,hugetlb=on,hugetlbsize=2M,prealloc=on",
                 "-machine", "memory-backend=pc.ram"});
  }
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const std::string n = std::to_string(i);
    argv.insert(argv.end(),
                {"-blockdev", "driver=file,filename=" + Escape(spec.disks[i]) + ",node-name=f" + n,
                 "-blockdev", "driver=qcow2,file=f" + n + ",node-name=d" + n, "-device",
                 "virtio-blk-pci,drive=d" + n + ",id=vd" + n});
  }
  if (!spec.config.kernel.empty()) argv.insert(argv.end(), {"-kernel", spec.config.kernel});
  if (!spec.config.initrd.empty()) argv.insert(argv.end(), {"-initrd", spec.config.initrd});
  if (!spec.config.append.empty()) argv.insert(argv.end(), {"-append", spec.config.append});
  const std::string monitor = "fd=" + std::to_string(kMonitorFd);
  argv.insert(argv.end(), {"-add-fd", "fd=" + std::to_string(kSerialFd) + ",set=0", "-serial",
                           "file:" + qmp::FdSetPath(0), "-chardev",
                           "socket,id=vmg-qmp," + monitor + ",server=on,wait=off", "-mon",
                           "chardev=vmg-qmp,mode=control"});
  // The resume guard's own monitor (resume_guard.h): the one above is the Vm's.
  argv.insert(argv.end(),
              {"-chardev",
               "socket,id=vmg-guard,fd=" + std::to_string(kGuardMonitorFd) + ",server=on,wait=off",
               "-mon", "chardev=vmg-guard,mode=control"});
  const auto agent = GuestAgent::ChannelArgs("fd=" + std::to_string(kAgentFd));
  argv.insert(argv.end(), agent.begin(), agent.end());
  argv.insert(argv.end(), spec.config.extra_args.begin(), spec.config.extra_args.end());
  if (!spec.incoming.empty()) {
    argv.insert(argv.end(), {"-incoming", "defer"});
  } else if (spec.paused) {
    argv.push_back("-S");  // QEMU waits in "prelaunch" for `cont`
  }
  return argv;
}

Result<std::unique_ptr<ThawGuard>> QemuDriver::GuardThaw(
    const std::vector<std::shared_ptr<Vm>>& vms, Duration within) {
  std::vector<int> agents;
  for (const auto& vm : vms) {
    auto* qemu = dynamic_cast<QemuVm*>(vm.get());
    if (!qemu) return Status::InvalidArgument("a VM to guard is not one of vmgroupd's own QEMUs");
    const int fd = qemu->OpenAgentFd();
    if (fd < 0) {
      return Status::InvalidState("no open agent channel to guard for QEMU " +
                                  std::to_string(vm->pid()) + " (Vm::OpenAgent first)");
    }
    agents.push_back(fd);
  }
  return StartThawGuard(agents, within);
}

Result<std::unique_ptr<ResumeGuard>> QemuDriver::GuardResume(
    const std::vector<std::shared_ptr<Vm>>& vms, Duration within) {
  std::vector<std::string> monitors;
  for (const auto& vm : vms) {
    auto* qemu = dynamic_cast<QemuVm*>(vm.get());
    if (!qemu) return Status::InvalidArgument("a VM to guard is not one of vmgroupd's own QEMUs");
    const std::string path = GuardMonitorPath(qemu->spec());
    if (!env_->FileExists(path)) {
      return Status::Unavailable("QEMU " + std::to_string(vm->pid()) + " of VM " +
                                 qemu->spec().name +
                                 " has no resume guard monitor (it was started by an older "
                                 "vmgroupd); it gets one when it next starts");
    }
    monitors.push_back(path);
  }
  return StartResumeGuard(env_, monitors, within, env_->Now() + kGuardConnectTimeout);
}

Result<std::unique_ptr<Vm>> QemuDriver::Start(const VmSpec& spec,
                                              const std::function<Status(int pid)>& admit) {
  VMG_RETURN_IF_ERROR(ValidateSpec(env_, spec));
  if (spec.config.hugepages) {
    // The pages may have gone to others since the VM was defined: said
    // here, not as QEMU's failure to preallocate.
    VMG_RETURN_IF_ERROR(CheckHugePageMultiple("VM " + spec.name, spec.config.memory_mib));
    VMG_RETURN_IF_ERROR(CheckHugePagesFree(env_, "VM " + spec.name, spec.config.memory_mib));
  }
  VMG_RETURN_IF_ERROR(ArrangeFiles(spec, user_).Annotate("VM " + spec.name));
  VMG_ASSIGN_OR_RETURN(UniqueFd monitor, ListenAt(MonitorPath(spec), ExistingFile::kReplace));
  VMG_ASSIGN_OR_RETURN(UniqueFd guard_monitor,
                       ListenAt(GuardMonitorPath(spec), ExistingFile::kReplace));
  VMG_ASSIGN_OR_RETURN(UniqueFd agent,
                       ListenAt(GuestAgent::SocketPath(spec.run_dir), ExistingFile::kReplace));
  VMG_ASSIGN_OR_RETURN(UniqueFd serial,
                       env_->OpenFile(SerialPath(spec), O_WRONLY | O_CREAT | O_TRUNC, 0640));
  VMG_ASSIGN_OR_RETURN(
      int pid, env_->Spawn(CommandLine(spec), {.log_path = LogPath(spec),
                                               .fds = {{monitor.get(), kMonitorFd},
                                                       {agent.get(), kAgentFd},
                                                       {serial.get(), kSerialFd},
                                                       {guard_monitor.get(), kGuardMonitorFd}},
                                               .admit = admit}));
  // QEMU's copies only from now: its exit closes the monitor at once.
  monitor.reset();
  guard_monitor.reset();
  agent.reset();
  serial.reset();
  // Why QEMU may have failed to open a file: said with each error below.
  const std::string hint = user_ ? "; " + user_->Hint() : "";
  const Deadline deadline = env_->Now() + options_.start_timeout;
  // The monitor listens already: this connection waits in its queue until
  // QEMU serves it, and ends at once if QEMU exits first.
  auto qmp = QmpClient::Connect(env_, MonitorPath(spec), deadline);
  if (!qmp.ok()) {
    if (env_->WaitGone(pid, std::chrono::seconds(5)).ok()) {
      return Status::Unavailable("QEMU for VM " + spec.name +
                                 " exited at start: " + Tail(env_, LogPath(spec), 2000) + hint);
    }
    (void)env_->Kill(pid, SIGKILL);
    (void)env_->WaitGone(pid, std::chrono::seconds(5));
    return qmp.status().Annotate("QEMU for VM " + spec.name + " never answered its monitor");
  }
  auto vm = std::make_unique<QemuVm>(env_, spec, pid, std::move(qmp).value(), user_);
  Status ready = vm->RefreshActiveNodes(deadline);
  if (ready.ok()) ready = env_->Hit(kFaultStarted, spec.name);
  if (ready.ok() && !spec.incoming.empty()) ready = vm->LoadState(spec.incoming);
  if (!ready.ok()) {
    (void)vm->PowerOff();
    return ready.Annotate("VM " + spec.name + " (QEMU said: " + Tail(env_, LogPath(spec), 500) +
                          ")" + hint);
  }
  return std::unique_ptr<Vm>(std::move(vm));
}

Result<std::vector<ServedExport>> QemuDriver::ServeImages(const VmSpec& spec, const NbdListen& at,
                                                          const std::vector<ServedImage>& images) {
  VMG_RETURN_IF_ERROR(ValidateSpec(env_, spec));
  // The daemon reads the images as QEMU would: images made while the VM
  // was off are handed over as its next start would.
  VMG_RETURN_IF_ERROR(ArrangeFiles(spec, user_).Annotate("VM " + spec.name));
  auto served = ServeOffline(env_, options_.storage_daemon, user_, spec, at, images);
  if (!served.ok()) return served.status().Annotate("VM " + spec.name + " (off)");
  return served;
}

Status QemuDriver::StopServing(const VmSpec& spec, const std::string& socket) {
  return StopServingOffline(env_, socket).Annotate("VM " + spec.name);
}

Status QemuDriver::KeepTracking(const VmSpec& spec, int disk, const std::string& image,
                                const std::string& name) {
  (void)disk;  // a QEMU bitmap lives in the image alone
  return storage::QemuImg(env_).AddBitmap(image, name).Annotate("VM " + spec.name + " (off)");
}

Result<std::unique_ptr<Vm>> QemuDriver::Attach(const VmSpec& spec, int pid) {
  if (!env_->IsAlive(pid) || !IsQemuOf(env_, pid, spec.uuid)) {
    return Status::Unavailable("QEMU of VM " + spec.name + " (pid " + std::to_string(pid) +
                               ") is not running");
  }
  VMG_ASSIGN_OR_RETURN(auto qmp, QmpClient::Connect(env_, MonitorPath(spec),
                                                    env_->Now() + std::chrono::seconds(10)));
  auto vm = std::make_unique<QemuVm>(env_, spec, pid, std::move(qmp), user_);
  VMG_RETURN_IF_ERROR(vm->RefreshActiveNodes(env_->Now() + std::chrono::seconds(10)));
  return std::unique_ptr<Vm>(std::move(vm));
}

}  // namespace vmgroup::hypervisor::qemu
