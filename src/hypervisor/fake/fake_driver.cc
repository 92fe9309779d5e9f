#include "hypervisor/fake/fake_driver.h"

#include "storage/qemu_img.h"

namespace vmgroup::hypervisor::fake {
namespace {

bool IsFake(int pid) { return pid >= kFirstPid; }

// Thaws (or resumes) the guard's VMs when told to; a test that needs the
// timer has QEMU.
class FakeGuard final : public ThawGuard, public ResumeGuard {
 public:
  // `act` does it to one VM; `acting` records it first.
  FakeGuard(std::vector<std::shared_ptr<Vm>> vms, std::function<void()> acting,
            std::function<void(Vm&)> act)
      : vms_(std::move(vms)), acting_(std::move(acting)), act_(std::move(act)) {}
  void Disarm() override { vms_.clear(); }
  void ThawNow() override { ActNow(); }
  void ResumeNow() override { ActNow(); }

 private:
  void ActNow() {
    if (vms_.empty()) return;
    acting_();
    for (const auto& vm : vms_) act_(*vm);
    vms_.clear();
  }

  std::vector<std::shared_ptr<Vm>> vms_;
  std::function<void()> acting_;
  std::function<void(Vm&)> act_;
};

// A FakeVm never waits for its deadline, so whose clock it is on does not matter.
Deadline Soon() { return Clock::now() + std::chrono::seconds(5); }

}  // namespace

class FakeDriver::ProcessEnv final : public EnvWrapper {
 public:
  ProcessEnv(Env* target, FakeDriver* driver) : EnvWrapper(target), driver_(driver) {}

  Result<int64_t> ProcessStartTime(int pid) override {
    if (!IsFake(pid)) return EnvWrapper::ProcessStartTime(pid);
    std::lock_guard l(driver_->mu_);
    Process* p = driver_->LiveLocked(pid);
    if (!p) return Status::Unavailable("no process " + std::to_string(pid));
    return p->start_time;
  }
  bool IsAlive(int pid) override {
    if (!IsFake(pid)) return EnvWrapper::IsAlive(pid);
    std::lock_guard l(driver_->mu_);
    return driver_->LiveLocked(pid) != nullptr;
  }
  // Any signal ends a fake QEMU: it handles none.
  Status Kill(int pid, int signal) override {
    if (!IsFake(pid)) return EnvWrapper::Kill(pid, signal);
    std::lock_guard l(driver_->mu_);
    if (Process* p = driver_->LiveLocked(pid)) p->vm->Die();
    return Status::Ok();
  }
  Status WaitGone(int pid, Duration timeout) override {
    if (!IsFake(pid)) return EnvWrapper::WaitGone(pid, timeout);
    return IsAlive(pid) ? Status::Timeout("process " + std::to_string(pid) + " runs on")
                        : Status::Ok();
  }
  Result<std::vector<ThreadInfo>> Threads(int pid) override {
    if (!IsFake(pid)) return EnvWrapper::Threads(pid);
    return Status::Unavailable("a fake process has no threads to schedule");
  }

 private:
  FakeDriver* driver_;
};

FakeDriver::FakeDriver(Env* env)
    : env_(env), process_env_(std::make_unique<ProcessEnv>(env, this)) {}

FakeDriver::~FakeDriver() = default;

Env* FakeDriver::env() { return process_env_.get(); }

std::shared_ptr<FakeVm> FakeDriver::Running(const std::string& name) {
  std::lock_guard l(mu_);
  for (auto& [pid, p] : processes_) {
    if (p.name == name && LiveLocked(pid)) return p.vm;
  }
  return nullptr;
}

std::vector<std::string> FakeDriver::calls() {
  std::lock_guard l(mu_);
  return calls_;
}

void FakeDriver::Record(std::string call) {
  std::lock_guard l(mu_);
  calls_.push_back(std::move(call));
}

FakeDriver::Process* FakeDriver::LiveLocked(int pid) {
  auto it = processes_.find(pid);
  if (it == processes_.end() || it->second.vm->state() == RunState::kShutoff) return nullptr;
  return &it->second;
}

Result<std::unique_ptr<ThawGuard>> FakeDriver::GuardThaw(
    const std::vector<std::shared_ptr<Vm>>& vms, Duration) {
  Record("guard " + std::to_string(vms.size()) + " VMs");
  return std::unique_ptr<ThawGuard>(new FakeGuard(
      vms, [this] { Record("thaw now"); }, [](Vm& vm) { (void)vm.ThawFilesystems(Soon()); }));
}

Result<std::unique_ptr<ResumeGuard>> FakeDriver::GuardResume(
    const std::vector<std::shared_ptr<Vm>>& vms, Duration) {
  Record("guard resume " + std::to_string(vms.size()) + " VMs");
  return std::unique_ptr<ResumeGuard>(new FakeGuard(
      vms, [this] { Record("resume now"); }, [](Vm& vm) { (void)vm.Resume(Soon()); }));
}

Result<std::unique_ptr<Vm>> FakeDriver::Start(const VmSpec& spec,
                                              const std::function<Status(int pid)>& admit) {
  Record("start " + spec.name + (spec.incoming.empty() ? "" : " from " + spec.incoming));
  VMG_RETURN_IF_ERROR(env_->Hit(std::string(kFakePointPrefix) + "start", spec.name));
  for (const auto& f : spec.disks) {
    if (!env_->FileExists(f)) return Status::Unavailable("QEMU would not start: no disk " + f);
  }
  if (!spec.incoming.empty() && !env_->FileExists(spec.incoming)) {
    return Status::Unavailable("QEMU would not start: no memory state " + spec.incoming);
  }
  const RunState state =
      spec.paused || !spec.incoming.empty() ? RunState::kPaused : RunState::kRunning;
  std::shared_ptr<FakeVm> vm;
  int pid;
  {
    std::lock_guard l(mu_);
    pid = next_pid_++;
    vm = std::make_shared<FakeVm>(spec.name, spec.disks, state, pid, env_);
    // Start times grow as the kernel's do: a pid is never the same process twice.
    processes_[pid] = {spec.uuid, spec.name, pid - kFirstPid + 1, vm};
  }
  Status up = admit ? admit(pid) : Status::Ok();
  if (up.ok()) up = env_->Hit(kFaultStarted, spec.name);
  if (!up.ok()) {
    vm->Die();  // as QemuDriver ends a QEMU that did not come up
    return up;
  }
  return std::unique_ptr<Vm>(vm->Share());
}

Result<std::unique_ptr<Vm>> FakeDriver::Attach(const VmSpec& spec, int pid) {
  Record("attach " + spec.name);
  VMG_RETURN_IF_ERROR(env_->Hit(std::string(kFakePointPrefix) + "attach", spec.name));
  std::lock_guard l(mu_);
  Process* p = LiveLocked(pid);
  if (!p || p->uuid != spec.uuid) {
    return Status::Unavailable("no fake QEMU of " + spec.name + " runs as " + std::to_string(pid));
  }
  return std::unique_ptr<Vm>(p->vm->Share());
}

Result<std::vector<ServedExport>> FakeDriver::ServeImages(const VmSpec& spec, const NbdListen& at,
                                                          const std::vector<ServedImage>& images) {
  Record("serve-off " + spec.name);
  VMG_RETURN_IF_ERROR(env_->Hit(std::string(kFakePointPrefix) + "serve-off", spec.name));
  std::lock_guard l(mu_);
  if (serving_off_.count(spec.uuid)) {
    return Status::AlreadyExists("VM " + spec.name + " is served already");
  }
  storage::QemuImg img(Env::Default());
  VMG_ASSIGN_OR_RETURN(auto exports,
                       ServeFake(&img, spec.disks, TrackingsOffLocked(spec.uuid), at, images));
  serving_off_[spec.uuid] = at.path;
  return exports;
}

Status FakeDriver::StopServing(const VmSpec& spec, const std::string& socket) {
  Record("stop-serving-off " + spec.name);
  VMG_RETURN_IF_ERROR(env_->Hit(std::string(kFakePointPrefix) + "stop-serving-off", spec.name));
  std::lock_guard l(mu_);
  if (auto it = serving_off_.find(spec.uuid); it != serving_off_.end() && it->second == socket) {
    serving_off_.erase(it);
  }
  return Env::Default()->RemoveFile(socket);
}

Status FakeDriver::KeepTracking(const VmSpec& spec, int disk, const std::string& image,
                                const std::string& name) {
  Record("keep-off " + spec.name);
  VMG_RETURN_IF_ERROR(env_->Hit(std::string(kFakePointPrefix) + "keep-off", spec.name));
  std::lock_guard l(mu_);
  for (auto& [pid, p] : processes_) {
    if (p.uuid == spec.uuid && LiveLocked(pid)) {
      return Status::InvalidState("VM " + spec.name + " runs");
    }
  }
  kept_off_[spec.uuid][name][disk] = image;  // done again: as it was
  return Status::Ok();
}

std::map<std::string, std::map<int, std::string>> FakeDriver::TrackingsOff(
    const std::string& uuid) {
  std::lock_guard l(mu_);
  return TrackingsOffLocked(uuid);
}

std::map<std::string, std::map<int, std::string>> FakeDriver::TrackingsOffLocked(
    const std::string& uuid) {
  // Its trackings live in its images: those its last process left, then
  // those added since.
  std::map<std::string, std::map<int, std::string>> trackings;
  for (auto& [pid, p] : processes_) {
    if (p.uuid == uuid) trackings = p.vm->trackings();
  }
  if (auto it = kept_off_.find(uuid); it != kept_off_.end()) {
    for (const auto& [name, disks] : it->second) {
      for (const auto& [disk, image] : disks) trackings[name][disk] = image;
    }
  }
  return trackings;
}

std::string FakeDriver::ServingOff(const std::string& uuid) {
  std::lock_guard l(mu_);
  auto it = serving_off_.find(uuid);
  return it == serving_off_.end() ? "" : it->second;
}

}  // namespace vmgroup::hypervisor::fake
