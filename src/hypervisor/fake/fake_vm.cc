#include "hypervisor/fake/fake_vm.h"

#include <algorithm>
#include <thread>
#include <type_traits>
#include <utility>

#include "storage/qemu_img.h"

namespace vmgroup::hypervisor::fake {

struct FakeVm::Shared {
  std::mutex mu;
  std::string name;
  Env* env = nullptr;  // fault points; null on its own
  // Its image files, and its memory states, as QEMU's own work: through
  // Env::Default(), whatever becomes of the engine's Env. Null on its own.
  std::unique_ptr<storage::QemuImg> img;
  int pid = 0;                            // none: the fake is not a process
  std::vector<std::string> active, base;  // `base`: the disks it was made with
  RunState state;
  bool gone = false;
  std::map<std::string, Status> fail;
  std::map<std::string, Duration> delay;
  std::vector<std::string> calls;
  bool frozen = false;  // the guest's filesystems, as the agent would say
  std::map<std::string, std::map<int, std::string>> trackings;
  std::string state_file;  // prepared by PrepareStateSave; "" when none
  bool state_saved = false;
  std::string serving;  // the socket of ServeImages; "" when none
  bool ignores_shutdown = false;
};

FakeVm::FakeVm(std::vector<std::string> disks, RunState state)
    : FakeVm(std::make_shared<Shared>()) {
  shared_->active = shared_->base = std::move(disks);
  shared_->state = state;
}

FakeVm::FakeVm(std::string name, std::vector<std::string> disks, RunState state, int pid, Env* env)
    : FakeVm(std::move(disks), state) {
  shared_->name = std::move(name);
  shared_->pid = pid;
  shared_->env = env;
  shared_->img = std::make_unique<storage::QemuImg>(Env::Default());
}

FakeVm::FakeVm(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

FakeVm::~FakeVm() = default;

std::unique_ptr<FakeVm> FakeVm::Share() { return std::unique_ptr<FakeVm>(new FakeVm(shared_)); }

void FakeVm::FailOn(const std::string& op, Status s) {
  std::lock_guard l(shared_->mu);
  shared_->fail[op] = std::move(s);
}

void FakeVm::DelayOn(const std::string& op, Duration delay) {
  std::lock_guard l(shared_->mu);
  shared_->delay[op] = delay;
}

std::vector<std::string> FakeVm::calls() {
  std::lock_guard l(shared_->mu);
  return shared_->calls;
}

std::vector<std::string> FakeVm::active() {
  std::lock_guard l(shared_->mu);
  return shared_->active;
}

RunState FakeVm::state() {
  std::lock_guard l(shared_->mu);
  return shared_->state;
}

std::map<std::string, std::map<int, std::string>> FakeVm::trackings() {
  std::lock_guard l(shared_->mu);
  return shared_->trackings;
}

void FakeVm::Die() {
  std::lock_guard l(shared_->mu);
  shared_->gone = true;
  shared_->state = RunState::kShutoff;
}

void FakeVm::set_pid(int pid) {
  std::lock_guard l(shared_->mu);
  shared_->pid = pid;
}

int FakeVm::pid() const {
  std::lock_guard l(shared_->mu);
  return shared_->pid;
}

template <typename F>
Status FakeVm::Do(const std::string& op, F effect) {
  Shared& s = *shared_;
  Duration delay{};
  Env* env;
  std::string name;
  {
    std::lock_guard l(s.mu);
    s.calls.push_back(op);
    if (auto it = s.delay.find(op); it != s.delay.end()) delay = it->second;
    env = s.env;
    name = s.name;
  }
  if (env) VMG_RETURN_IF_ERROR(env->Hit(std::string(kFakePointPrefix) + op, name));
  // Real time, not the Env's: the delay stands for a slow hypervisor while
  // the caller's other threads (the other members of a cut) run on.
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
  std::lock_guard l(s.mu);
  if (auto it = s.fail.find(op); it != s.fail.end()) {
    Status failed = it->second;
    s.fail.erase(it);
    return failed;
  }
  if (s.gone) return Status::Unavailable("the fake QEMU of " + s.name + " is gone");
  if constexpr (std::is_void_v<decltype(effect())>) {
    effect();
    return Status::Ok();
  } else {
    return effect();
  }
}

Result<RunState> FakeVm::State(Deadline) {
  std::lock_guard l(shared_->mu);
  if (shared_->gone) return Status::Unavailable("the fake QEMU of " + shared_->name + " is gone");
  return shared_->state;
}

Status FakeVm::Pause(Deadline) {
  return Do("pause", [&] { shared_->state = RunState::kPaused; });
}

Status FakeVm::Resume(Deadline) {
  return Do("resume", [&] { shared_->state = RunState::kRunning; });
}

Result<std::vector<std::string>> FakeVm::IoErrors(Deadline) { return std::vector<std::string>{}; }

Status FakeVm::OpenOverlays(const std::vector<Overlay>& overlays, Deadline) {
  return Do("open", [&]() -> Status {
    if (!shared_->img) return Status::Ok();
    for (const auto& o : overlays) {
      if (!Env::Default()->FileExists(o.path)) return Status::FileNotFound("no overlay " + o.path);
    }
    return Status::Ok();
  });
}

Status FakeVm::SendSwitch(const std::vector<Overlay>& overlays, const std::string& tracking,
                          bool pause, Deadline deadline) {
  Status p = pause ? Pause(deadline) : Status::Ok();
  sent_paused_ = pause && p.ok();
  // Like QEMU, the switch runs even when the pause failed.
  Status t = Do("switch", [&] {
    for (const auto& o : overlays) {
      shared_->active[o.disk] = o.path;
      if (!tracking.empty()) shared_->trackings[tracking][o.disk] = o.path;
    }
  });
  sent_status_ = p.ok() ? t : p;
  return Status::Ok();
}

Status FakeVm::AwaitSwitch(Deadline, bool* paused) {
  *paused = sent_paused_;
  return sent_status_;
}

Status FakeVm::SendResume(Deadline deadline, bool save_state) {
  if (save_state) {
    (void)Do("save", [&]() -> Status {
      if (shared_->state_file.empty()) return Status::InvalidState("no state save prepared");
      shared_->state_saved = true;
      if (!shared_->img) return Status::Ok();
      return Env::Default()->WriteFile(shared_->state_file, "memory of " + shared_->name);
    });
  }
  sent_status_ = Resume(deadline);
  return Status::Ok();
}

Status FakeVm::AwaitResume(Deadline) { return sent_status_; }

Status FakeVm::FinishSwitch(Deadline) {
  return Do("finish-switch", [] { return Status::Ok(); });
}

Status FakeVm::PrepareStateSave(const std::string& path, Deadline) {
  return Do("prepare-save", [&]() -> Status {
    shared_->state_file = path;
    shared_->state_saved = false;
    if (!shared_->img) return Status::Ok();
    if (Env::Default()->FileExists(path)) return Status::AlreadyExists(path + " exists");
    return Env::Default()->WriteFile(path, "");
  });
}

Status FakeVm::AwaitStateSaved(Deadline) {
  return Do("saved", [&]() -> Status {
    if (shared_->img && !shared_->state_saved) return Status::NotFound("no state save started");
    return Status::Ok();
  });
}

Status FakeVm::RevertOverlays(const std::vector<Overlay>& overlays) {
  return Do("revert", [&]() -> Status {
    Shared& s = *shared_;
    for (const auto& o : overlays) {
      if (s.active[o.disk] != o.path) continue;
      const std::string& base = o.base.empty() ? s.base[o.disk] : o.base;
      if (s.img) {
        VMG_ASSIGN_OR_RETURN(storage::ImageInfo info, s.img->Info(o.path));
        if (info.backing_filename != base) {
          return Status::InvalidState(o.path + " does not lie on " + base);
        }
        VMG_RETURN_IF_ERROR(s.img->Commit(o.path));  // writes since the switch are kept
      }
      s.active[o.disk] = base;
    }
    s.state_file.clear();
    return Status::Ok();
  });
}

Result<std::vector<std::string>> FakeVm::ActiveImages(Deadline) {
  std::lock_guard l(shared_->mu);
  if (shared_->gone) return Status::Unavailable("the fake QEMU of " + shared_->name + " is gone");
  return shared_->active;
}

Status FakeVm::CommitImage(int disk, const std::string& top, const std::string& base, Deadline) {
  return Do("commit", [&]() -> Status {
    Shared& s = *shared_;
    if (!s.img) {
      if (s.active[disk] == top) s.active[disk] = base;
      return Status::Ok();
    }
    VMG_ASSIGN_OR_RETURN(auto chain, s.img->Chain(s.active[disk]));
    auto at = std::find_if(chain.begin(), chain.end(),
                           [&](const storage::ImageInfo& i) { return i.filename == top; });
    if (at == chain.end() || at + 1 == chain.end() || (at + 1)->filename != base) {
      return Status::InvalidArgument(top + " on " + base + " is not in the chain of disk " +
                                     std::to_string(disk));
    }
    VMG_RETURN_IF_ERROR(s.img->Commit(top));
    if (at == chain.begin()) {
      s.active[disk] = base;
      return Status::Ok();
    }
    return s.img->Rebase((at - 1)->filename, base, /*unsafe=*/true);
  });
}

Status FakeVm::PrepareTracking(const std::vector<Overlay>&, const std::string& name, Deadline) {
  return Do("track", [&]() -> Status {
    if (shared_->trackings.count(name)) return Status::AlreadyExists("tracking " + name);
    return Status::Ok();
  });
}

Status FakeVm::KeepTracking(int disk, const std::string& image, const std::string& name, Deadline) {
  return Do("keep", [&]() -> Status {
    auto it = shared_->trackings.find(name);
    if (it == shared_->trackings.end() || !it->second.count(disk)) {
      return Status::NotFound("no tracking " + name + " on disk " + std::to_string(disk));
    }
    it->second[disk] = image;  // done again: as it was
    return Status::Ok();
  });
}

Status FakeVm::DropTracking(int disk, const std::string& image, const std::string& name, Deadline) {
  return Do("untrack", [&] {
    auto it = shared_->trackings.find(name);
    if (it == shared_->trackings.end()) return;
    // As a libvirt checkpoint: one object, whichever disk is named.
    if (image.empty() || it->second[disk] == image) shared_->trackings.erase(it);
  });
}

Result<std::vector<std::string>> FakeVm::Trackings(Deadline) {
  std::vector<std::string> names;
  VMG_RETURN_IF_ERROR(Do("trackings", [&] {
    for (const auto& [name, disks] : shared_->trackings) names.push_back(name);
  }));
  return names;
}

Status FakeVm::CopyMarked(int disk, const std::string& image, const std::string& name,
                          const std::string&, Deadline) {
  return Do("copy", [&]() -> Status {
    auto it = shared_->trackings.find(name);
    if (it == shared_->trackings.end() || it->second[disk] != image) {
      return Status::NotFound(image + " has no tracking " + name);
    }
    return Status::Ok();
  });
}

Result<std::vector<ServedExport>> ServeFake(
    storage::QemuImg* img, const std::vector<std::string>& disks,
    const std::map<std::string, std::map<int, std::string>>& trackings, const NbdListen& where,
    const std::vector<ServedImage>& images) {
  const std::string& socket = where.path;
  std::vector<ServedExport> exports;
  for (const auto& i : images) {
    if (i.disk < 0 || static_cast<size_t>(i.disk) >= disks.size()) {
      return Status::InvalidArgument("no disk " + std::to_string(i.disk));
    }
    ServedExport e{.port = where.tcp_host.empty() ? 0 : kFakeNbdPort};
    if (img) {
      VMG_ASSIGN_OR_RETURN(auto chain, img->Chain(disks[i.disk]));
      auto at = std::find_if(chain.begin(), chain.end(),
                             [&](const storage::ImageInfo& c) { return c.filename == i.image; });
      if (at == chain.end()) {
        return Status::NotFound("disk " + std::to_string(i.disk) + " has " + i.image + " not open");
      }
      e.size = at->virtual_size;
    }
    if (!i.tracking.empty()) {
      auto t = trackings.find(i.tracking);
      auto on = t == trackings.end() ? nullptr : &t->second;
      if (!on || !on->count(i.disk) || on->at(i.disk) != i.image) {
        return Status::NotFound(i.image + " has no tracking " + i.tracking);
      }
      e.context = "qemu:dirty-bitmap:" + i.tracking;
    }
    exports.push_back(e);
  }
  if (img && where.tcp_host.empty()) {
    if (Env::Default()->FileExists(socket)) return Status::AlreadyExists(socket + " exists");
    VMG_RETURN_IF_ERROR(Env::Default()->WriteFile(socket, ""));
  }
  return exports;
}

Result<std::vector<ServedExport>> FakeVm::ServeImages(const NbdListen& at,
                                                      const std::vector<ServedImage>& images,
                                                      Deadline) {
  std::vector<ServedExport> exports;
  Status served = Do("serve", [&]() -> Status {
    Shared& s = *shared_;
    if (!s.serving.empty()) return Status::AlreadyExists("the VM serves already on " + s.serving);
    VMG_ASSIGN_OR_RETURN(exports, ServeFake(s.img.get(), s.active, s.trackings, at, images));
    s.serving = at.path;
    return Status::Ok();
  });
  if (!served.ok()) return served;
  return exports;
}

Status FakeVm::StopServing(const std::string& socket, Deadline) {
  return Do("stop-serving", [&]() -> Status {
    shared_->serving.clear();
    return shared_->img ? Env::Default()->RemoveFile(socket) : Status::Ok();
  });
}

std::string FakeVm::serving() {
  std::lock_guard l(shared_->mu);
  return shared_->serving;
}

Status FakeVm::OpenAgent(Deadline) {
  return Do("open-agent", [] {});
}

Result<int> FakeVm::FreezeFilesystems(Deadline) {
  VMG_RETURN_IF_ERROR(Do("freeze", [&] { shared_->frozen = true; }));
  return 1;
}

Result<int> FakeVm::ThawFilesystems(Deadline) {
  int thawed = 0;
  VMG_RETURN_IF_ERROR(Do("thaw", [&] { thawed = std::exchange(shared_->frozen, false) ? 1 : 0; }));
  return thawed;
}

Result<bool> FakeVm::FilesystemsFrozen(Deadline) {
  std::lock_guard l(shared_->mu);
  return shared_->frozen;
}

Status FakeVm::PowerOff() {
  return Do("poweroff", [&] {
    shared_->state = RunState::kShutoff;
    shared_->gone = true;
  });
}

void FakeVm::IgnoreShutdown() {
  std::lock_guard l(shared_->mu);
  shared_->ignores_shutdown = true;
}

Status FakeVm::Shutdown(Deadline) {
  bool ignored = false;
  VMG_RETURN_IF_ERROR(Do("shutdown", [&] {
    ignored = shared_->ignores_shutdown;
    if (ignored) return;
    shared_->state = RunState::kShutoff;
    shared_->gone = true;
  }));
  if (ignored) return Status::Timeout("the fake guest of " + shared_->name + " ignores the button");
  return Status::Ok();
}

}  // namespace vmgroup::hypervisor::fake
