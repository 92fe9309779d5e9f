// FakeVm (tests only): an in-memory hypervisor::Vm for fast unit tests of
// engine logic — which calls happen in which order, and what a failure or a
// slow call leads to. Anything that claims VM behaviour is tested on QEMU.
//
// Made on its own (FakeVm(disks)) it touches no file: its disks are names.
// Made by FakeDriver (fake_driver.h) it stands in for a QEMU process: its
// disks are real qcow2 files, and what QEMU would do to them it does with
// qemu-img (a revert or a merge commits the image and rewrites the header
// above it), so that the engine's own qemu-img reads find the chains a QEMU
// would have left. That work is QEMU's, not the engine's: it goes through
// Env::Default(), and goes on whatever becomes of the engine (DyingEnv).
// Each of its calls first reaches fault point "fake.<op>" (kFakePointPrefix
// and the op's name as calls() lists it; Env::Hit, subject: the VM's name),
// whose error is the call's answer. Once powered off or killed (Die) it
// answers Unavailable, as a QEMU that is gone.
//
// Change tracking is kept as libvirt keeps it: as named objects of the VM
// (Trackings lists them), each on the image of each disk it marks. Copies
// of what a tracking marks (CopyMarked) write nothing: the fake knows no
// clusters. A serving (ServeImages) serves nothing either: a FakeDriver's
// VM stands an empty file in for its socket, so that a caller's tests see
// whether one is left, and reads each size from the image.
//
// Thread-safe. Handles made by Share() are the same VM (as two connections
// to one QEMU); each keeps its own Send*/Await* pair.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "hypervisor/driver.h"

namespace vmgroup::storage {
class QemuImg;
}

namespace vmgroup::hypervisor::fake {

// The fault points of a FakeDriver's VMs are "fake.pause", "fake.switch"...
inline constexpr std::string_view kFakePointPrefix = "fake.";

class FakeVm final : public Vm {
 public:
  explicit FakeVm(std::vector<std::string> disks, RunState state = RunState::kRunning);
  // A FakeDriver's VM: `name` is the subject of its fault points, reached
  // through `env`.
  FakeVm(std::string name, std::vector<std::string> disks, RunState state, int pid, Env* env);
  ~FakeVm() override;

  // Another handle to this VM.
  std::unique_ptr<FakeVm> Share();

  // Make the next call of `op` ("pause", "switch", "revert", "resume",
  // "commit", "keep"... as listed by calls()) fail with `s`, or take `delay`
  // before answering.
  void FailOn(const std::string& op, Status s);
  void DelayOn(const std::string& op, Duration delay);
  // Every op asked for, in order ("pause", "switch", ...), failed ones too.
  std::vector<std::string> calls();
  std::vector<std::string> active();
  RunState state();
  // Tracking name -> the image it lives on, by disk index.
  std::map<std::string, std::map<int, std::string>> trackings();
  // The process ends, as if killed: the VM is shut off, and every later
  // call answers Unavailable.
  void Die();
  // From now on the guest ignores the power button, as a guest without
  // ACPI support does: Shutdown answers Timeout (at once: the fake keeps no
  // clock) and the VM runs on.
  void IgnoreShutdown();
  void set_pid(int pid);

  int pid() const override;
  Result<RunState> State(Deadline) override;
  Status Pause(Deadline) override;
  Status Resume(Deadline) override;
  // The fake never meets a failed disk request.
  Result<std::vector<std::string>> IoErrors(Deadline) override;
  // A FakeDriver's VM checks that each overlay exists (FileNotFound).
  Status OpenOverlays(const std::vector<Overlay>& overlays, Deadline) override;
  // The fake does the work when sent and reports it when awaited.
  Status SendSwitch(const std::vector<Overlay>& overlays, const std::string& tracking, bool pause,
                    Deadline deadline) override;
  Status AwaitSwitch(Deadline, bool* paused) override;
  // With `save_state`, writes a few bytes into the file PrepareStateSave made.
  Status SendResume(Deadline deadline, bool save_state) override;
  Status AwaitResume(Deadline) override;
  Status FinishSwitch(Deadline) override;
  // A FakeDriver's VM creates the file (AlreadyExists if it exists).
  Status PrepareStateSave(const std::string& path, Deadline) override;
  Status AwaitStateSaved(Deadline) override;
  // Each active overlay becomes its base again (committed into it first,
  // for a FakeDriver's VM; InvalidState when it does not lie on it). On its
  // own, an overlay that names no base goes back to the disk the FakeVm
  // was made with.
  Status RevertOverlays(const std::vector<Overlay>& overlays) override;
  Result<std::vector<std::string>> ActiveImages(Deadline) override;
  Status CommitImage(int disk, const std::string& top, const std::string& base, Deadline) override;
  Status PrepareTracking(const std::vector<Overlay>& overlays, const std::string& name,
                         Deadline) override;
  Status KeepTracking(int disk, const std::string& image, const std::string& name,
                      Deadline) override;
  Status DropTracking(int disk, const std::string& image, const std::string& name,
                      Deadline) override;
  Result<std::vector<std::string>> Trackings(Deadline) override;
  Status CopyMarked(int disk, const std::string& image, const std::string& name,
                    const std::string& target, Deadline) override;
  // "serve" and "stop-serving" in calls().
  Result<std::vector<ServedExport>> ServeImages(const NbdListen& at,
                                                const std::vector<ServedImage>& images,
                                                Deadline) override;
  Status StopServing(const std::string& socket, Deadline) override;
  // The socket of the serving under way, or "" when none.
  std::string serving();
  Status OpenAgent(Deadline) override;
  Result<int> FreezeFilesystems(Deadline) override;
  Result<int> ThawFilesystems(Deadline) override;
  Result<bool> FilesystemsFrozen(Deadline) override;
  Status PowerOff() override;
  // "shutdown" in calls(): the VM is off as after PowerOff, unless IgnoreShutdown.
  Status Shutdown(Deadline) override;

 private:
  struct Shared;
  explicit FakeVm(std::shared_ptr<Shared> shared);

  // Records `op`, reaches its fault point, waits any delay asked for, then
  // answers a failure asked for or runs `effect` under the lock.
  template <typename F>
  Status Do(const std::string& op, F effect);

  std::shared_ptr<Shared> shared_;
  Status sent_status_;
  bool sent_paused_ = false;
};

// A fake serving of `images` of a VM whose disks' top images are `disks`
// (by index), with `trackings` (name -> disk -> image): Vm::ServeImages's
// checks and answers. With `img` (a FakeDriver's VM), each image must be in
// its disk's chain on file, which gives its size, and an empty file stands
// in for a unix socket (AlreadyExists when one is there); without, sizes
// are 0. Over TCP every export is on port kFakeNbdPort, and no file is made.
inline constexpr int kFakeNbdPort = 10809;
Result<std::vector<ServedExport>> ServeFake(
    storage::QemuImg* img, const std::vector<std::string>& disks,
    const std::map<std::string, std::map<int, std::string>>& trackings, const NbdListen& at,
    const std::vector<ServedImage>& images);

}  // namespace vmgroup::hypervisor::fake
