#include "hypervisor/qemu/qemu_driver.h"

#include <signal.h>

#include <fstream>
#include <sstream>

#include "hypervisor/qemu/guest_agent.h"
#include "hypervisor/qemu/qemu_vm.h"
#include "hypervisor/qemu/thaw_guard.h"

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

std::string Tail(const std::string& path, size_t max_bytes) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s = s.substr(s.size() - max_bytes);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
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

QemuDriver::QemuDriver(Env* env, QemuOptions options) : env_(env), options_(std::move(options)) {}

std::vector<std::string> QemuDriver::CommandLine(const VmSpec& spec) const {
  // debug-threads names the vCPU threads "CPU <n>/TCG|KVM": the cut tells
  // them from the threads that answer QMP by that name.
  std::vector<std::string> argv = {options_.binary, "-name",
                                   "guest=" + Escape(spec.name) + ",debug-threads=on", "-uuid",
                                   spec.uuid};
  switch (options_.accel) {
    case Accel::kAuto:
      argv.insert(argv.end(), {"-accel", "kvm", "-accel", "tcg"});
      break;
    case Accel::kKvm:
      argv.insert(argv.end(), {"-accel", "kvm"});
      break;
    case Accel::kTcg:
      argv.insert(argv.end(), {"-accel", "tcg"});
      break;
  }
  argv.insert(argv.end(), {"-nodefaults", "-no-user-config", "-display", "none", "-m",
                           std::to_string(spec.memory_mib), "-smp", std::to_string(spec.vcpus)});
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const std::string n = std::to_string(i);
    argv.insert(argv.end(),
                {"-blockdev", "driver=file,filename=" + Escape(spec.disks[i]) + ",node-name=f" + n,
                 "-blockdev", "driver=qcow2,file=f" + n + ",node-name=d" + n, "-device",
                 "virtio-blk-pci,drive=d" + n + ",id=vd" + n});
  }
  if (!spec.kernel.empty()) argv.insert(argv.end(), {"-kernel", spec.kernel});
  if (!spec.initrd.empty()) argv.insert(argv.end(), {"-initrd", spec.initrd});
  if (!spec.append.empty()) argv.insert(argv.end(), {"-append", spec.append});
  argv.insert(argv.end(), {"-serial", "file:" + Escape(SerialPath(spec)), "-qmp",
                           "unix:" + Escape(MonitorPath(spec)) + ",server=on,wait=off"});
  const auto agent = GuestAgent::ChannelArgs(Escape(GuestAgent::SocketPath(spec.run_dir)));
  argv.insert(argv.end(), agent.begin(), agent.end());
  argv.insert(argv.end(), spec.extra_args.begin(), spec.extra_args.end());
  if (!spec.incoming.empty()) argv.insert(argv.end(), {"-incoming", "defer"});
  return argv;
}

Result<std::unique_ptr<ThawGuard>> QemuDriver::GuardThaw(
    const std::vector<std::shared_ptr<Vm>>& vms, Duration within) {
  std::vector<int> agents;
  for (const auto& vm : vms) {
    const int fd = static_cast<QemuVm&>(*vm).OpenAgentFd();
    if (fd < 0) {
      return Status::InvalidState("no open agent channel to guard for QEMU " +
                                  std::to_string(vm->pid()) + " (Vm::OpenAgent first)");
    }
    agents.push_back(fd);
  }
  return StartThawGuard(agents, within);
}

Result<std::unique_ptr<Vm>> QemuDriver::Start(const VmSpec& spec) {
  VMG_RETURN_IF_ERROR(ValidateSpec(env_, spec));
  VMG_RETURN_IF_ERROR(env_->RemoveFile(MonitorPath(spec)));  // a stale socket of a dead QEMU
  VMG_ASSIGN_OR_RETURN(int pid, env_->Spawn(CommandLine(spec), {.log_path = LogPath(spec)}));

  const Deadline deadline = Clock::now() + options_.start_timeout;
  while (true) {
    if (!env_->IsAlive(pid)) {
      return Status::Unavailable("QEMU for VM " + spec.name +
                                 " exited at start: " + Tail(LogPath(spec), 2000));
    }
    auto qmp = QmpClient::Connect(MonitorPath(spec), Clock::now() + std::chrono::milliseconds(200));
    if (qmp.ok()) {
      auto vm = std::make_unique<QemuVm>(env_, spec, pid, std::move(qmp).value());
      Status ready = vm->RefreshActiveNodes(deadline);
      if (ready.ok() && !spec.incoming.empty()) ready = vm->LoadState(spec.incoming);
      if (!ready.ok()) {
        (void)vm->PowerOff();
        return ready.Annotate("VM " + spec.name + " (QEMU said: " + Tail(LogPath(spec), 500) + ")");
      }
      return std::unique_ptr<Vm>(std::move(vm));
    }
    if (Clock::now() >= deadline) {
      (void)env_->Kill(pid, SIGKILL);
      (void)env_->WaitGone(pid, std::chrono::seconds(5));
      return qmp.status().Annotate("QEMU for VM " + spec.name + " never answered its monitor");
    }
  }
}

Result<std::unique_ptr<Vm>> QemuDriver::Attach(const VmSpec& spec, int pid) {
  if (!env_->IsAlive(pid) || !IsQemuOf(env_, pid, spec.uuid)) {
    return Status::Unavailable("QEMU of VM " + spec.name + " (pid " + std::to_string(pid) +
                               ") is not running");
  }
  VMG_ASSIGN_OR_RETURN(
      auto qmp, QmpClient::Connect(MonitorPath(spec), Clock::now() + std::chrono::seconds(10)));
  auto vm = std::make_unique<QemuVm>(env_, spec, pid, std::move(qmp));
  VMG_RETURN_IF_ERROR(vm->RefreshActiveNodes(Clock::now() + std::chrono::seconds(10)));
  return std::unique_ptr<Vm>(std::move(vm));
}

}  // namespace vmgroup::hypervisor::qemu
