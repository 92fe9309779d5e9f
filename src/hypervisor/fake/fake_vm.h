// FakeVm (tests only): an in-memory hypervisor::Vm for fast unit tests of
// engine logic — which calls happen in which order, and what a failure or a
// slow call leads to. Anything that claims VM behaviour is tested on QEMU.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "hypervisor/driver.h"

namespace vmgroup::hypervisor::fake {

class FakeVm final : public Vm {
 public:
  explicit FakeVm(std::vector<std::string> disks, RunState state = RunState::kRunning)
      : active_(std::move(disks)), base_(active_), state_(state) {}

  // Make the next call of `op` ("pause", "switch", "revert", "resume") fail
  // with `s`, or take `delay` before answering.
  void FailOn(const std::string& op, Status s) {
    std::lock_guard l(mu_);
    fail_[op] = std::move(s);
  }
  void DelayOn(const std::string& op, Duration delay) {
    std::lock_guard l(mu_);
    delay_[op] = delay;
  }
  std::vector<std::string> calls() {
    std::lock_guard l(mu_);
    return calls_;
  }
  std::vector<std::string> active() {
    std::lock_guard l(mu_);
    return active_;
  }
  RunState state() {
    std::lock_guard l(mu_);
    return state_;
  }

  int pid() const override { return pid_; }
  void set_pid(int pid) { pid_ = pid; }
  Result<RunState> State(Deadline) override { return state(); }
  Status Pause(Deadline) override {
    return Do("pause", [&] { state_ = RunState::kPaused; });
  }
  Status Resume(Deadline) override {
    return Do("resume", [&] { state_ = RunState::kRunning; });
  }
  // The fake never meets a failed disk request.
  Result<std::vector<std::string>> IoErrors(Deadline) override {
    return std::vector<std::string>{};
  }
  Status OpenOverlays(const std::vector<Overlay>&, Deadline) override {
    return Do("open", [] {});
  }
  // The fake does the work when sent and reports it when awaited.
  Status SendSwitch(const std::vector<Overlay>& overlays, const std::string& /*tracking*/,
                    bool pause, Deadline deadline) override {
    Status p = pause ? Pause(deadline) : Status::Ok();
    sent_paused_ = pause && p.ok();
    // Like QEMU, the switch runs even when the pause failed.
    Status t = Do("switch", [&] {
      for (const auto& o : overlays) active_[o.disk] = o.path;
    });
    sent_status_ = p.ok() ? t : p;
    return Status::Ok();
  }
  Status AwaitSwitch(Deadline, bool* paused) override {
    *paused = sent_paused_;
    return sent_status_;
  }
  Status SendResume(Deadline deadline, bool save_state) override {
    if (save_state) (void)Do("save", [] {});
    sent_status_ = Resume(deadline);
    return Status::Ok();
  }
  Status PrepareStateSave(const std::string&, Deadline) override {
    return Do("prepare-save", [] {});
  }
  Status AwaitStateSaved(Deadline) override {
    return Do("saved", [] {});
  }
  Status AwaitResume(Deadline) override { return sent_status_; }
  Status RevertOverlays(const std::vector<Overlay>&) override {
    return Do("revert", [&] { active_ = base_; });
  }
  Result<std::vector<std::string>> ActiveImages(Deadline) override { return active(); }
  Status CommitImage(int disk, const std::string& top, const std::string& base, Deadline) override {
    return Do("commit", [&] {
      if (active_[disk] == top) active_[disk] = base;
    });
  }
  Status PrepareTracking(const std::vector<Overlay>&, const std::string&, Deadline) override {
    return Do("track", [] {});
  }
  Status KeepTracking(int, const std::string&, const std::string&, Deadline) override {
    return Do("keep", [] {});
  }
  Status DropTracking(int, const std::string&, const std::string&, Deadline) override {
    return Do("untrack", [] {});
  }
  Result<std::vector<std::string>> Trackings(Deadline) override {
    return std::vector<std::string>{};
  }
  Status CopyMarked(int, const std::string&, const std::string&, const std::string&,
                    Deadline) override {
    return Do("copy", [] {});
  }
  Status OpenAgent(Deadline) override {
    return Do("open-agent", [] {});
  }
  Result<int> FreezeFilesystems(Deadline) override {
    VMG_RETURN_IF_ERROR(Do("freeze", [&] { frozen_ = true; }));
    return 1;
  }
  Result<int> ThawFilesystems(Deadline) override {
    int thawed = 0;
    VMG_RETURN_IF_ERROR(Do("thaw", [&] { thawed = std::exchange(frozen_, false) ? 1 : 0; }));
    return thawed;
  }
  Result<bool> FilesystemsFrozen(Deadline) override {
    std::lock_guard l(mu_);
    return frozen_;
  }
  Status PowerOff() override {
    return Do("poweroff", [&] { state_ = RunState::kShutoff; });
  }

 private:
  template <typename F>
  Status Do(const std::string& op, F effect) {
    Duration delay{};
    {
      std::lock_guard l(mu_);
      calls_.push_back(op);
      if (auto it = delay_.find(op); it != delay_.end()) delay = it->second;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::lock_guard l(mu_);
    if (auto it = fail_.find(op); it != fail_.end()) {
      Status s = it->second;
      fail_.erase(it);
      return s;
    }
    effect();
    return Status::Ok();
  }

  int pid_ = 0;  // none: the fake is not a process
  std::mutex mu_;
  std::vector<std::string> active_, base_;
  RunState state_;
  std::map<std::string, Status> fail_;
  std::map<std::string, Duration> delay_;
  std::vector<std::string> calls_;
  Status sent_status_;
  bool sent_paused_ = false;
  bool frozen_ = false;  // the guest's filesystems, as the agent would say
};

}  // namespace vmgroup::hypervisor::fake
