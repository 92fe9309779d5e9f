// QemuVm: hypervisor::Vm over one QMP connection. Every call takes the VM's
// mutex, so one VM's commands never interleave; different VMs run in parallel.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "hypervisor/driver.h"
#include "hypervisor/qemu/guest_agent.h"
#include "hypervisor/qemu/nbd_serving.h"
#include "hypervisor/qemu/qemu_user.h"
#include "hypervisor/qemu/qmp_client.h"
#include "hypervisor/qemu/qmp_commands.h"

namespace vmgroup::hypervisor::qemu {

class QemuVm final : public Vm {
 public:
  // `user`: who QEMU runs as, when not as this process; the images QEMU
  // opens later (overlays, merge targets) are handed to it.
  QemuVm(Env* env, VmSpec spec, int pid, std::unique_ptr<QmpClient> qmp,
         std::optional<QemuUser> user = std::nullopt);

  int pid() const override { return pid_; }
  Result<RunState> State(Deadline deadline) override;
  Status Pause(Deadline deadline) override;
  Status Resume(Deadline deadline) override;
  Result<std::vector<std::string>> IoErrors(Deadline deadline) override;
  Status OpenOverlays(const std::vector<Overlay>& overlays, Deadline deadline) override;
  Status SendSwitch(const std::vector<Overlay>& overlays, const std::string& tracking, bool pause,
                    Deadline deadline) override;
  Status AwaitSwitch(Deadline deadline, bool* paused) override;
  Clock::time_point PauseAnsweredAt() override;
  Status SendResume(Deadline deadline, bool save_state) override;
  Status AwaitResume(Deadline deadline) override;
  Status FinishSwitch(Deadline deadline) override;
  Status PrepareStateSave(const std::string& path, Deadline deadline) override;
  Status AwaitStateSaved(Deadline deadline) override;
  Status RevertOverlays(const std::vector<Overlay>& overlays) override;
  Result<std::vector<std::string>> ActiveImages(Deadline deadline) override;
  Status CommitImage(int disk, const std::string& top, const std::string& base,
                     Deadline deadline) override;
  // A tracking is a persistent dirty bitmap: started inside the switch's
  // transaction on each new overlay (nothing to prepare), kept by a bitmap
  // added on the frozen image before the overlay is merged into it.
  Status PrepareTracking(const std::vector<Overlay>& overlays, const std::string& name,
                         Deadline deadline) override;
  Status KeepTracking(int disk, const std::string& image, const std::string& name,
                      Deadline deadline) override;
  Status DropTracking(int disk, const std::string& image, const std::string& name,
                      Deadline deadline) override;
  Result<std::vector<std::string>> Trackings(Deadline deadline) override;
  Status CopyMarked(int disk, const std::string& image, const std::string& name,
                    const std::string& target, Deadline deadline) override;
  // An NBD server of QEMU's on a socket this process binds (QEMU, sandboxed
  // and maybe another user, is handed the descriptor), one read-only block
  // export per image, publishing the tracking's bitmap. A bitmap that still
  // records is accepted on a read-only export when its node is read-only
  // (a frozen image is: QEMU refuses only writable nodes' enabled bitmaps).
  Result<std::vector<ServedExport>> ServeImages(const NbdListen& at,
                                                const std::vector<ServedImage>& images,
                                                Deadline deadline) override;
  // Every block export QEMU lists is vmgroup's: it is the only one to add
  // exports to its QEMUs.
  Status StopServing(const std::string& socket, Deadline deadline) override;
  Status OpenAgent(Deadline deadline) override;
  Result<int> FreezeFilesystems(Deadline deadline) override;
  Result<int> ThawFilesystems(Deadline deadline) override;
  Result<bool> FilesystemsFrozen(Deadline deadline) override;
  Status PowerOff() override;
  // system_powerdown, then the wait for QEMU to exit: QEMU runs without
  // -no-shutdown, so a guest that powers off ends it, and a clean exit
  // stores its persistent bitmaps. The VM's mutex is held only to press the
  // button, so that looks at its state go on meanwhile.
  Status Shutdown(Deadline deadline) override;

  // Reads the active node of every disk into active_nodes_.
  Status RefreshActiveNodes(Deadline deadline);
  // For a QEMU started with -incoming defer: loads the memory state saved in
  // `path` (QEMU reads it from a descriptor of ours: the file stays
  // root's); the VM is paused afterwards.
  Status LoadState(const std::string& path);
  // The descriptor of the agent channel OpenAgent opened (a thaw guard
  // keeps a copy), or -1.
  int OpenAgentFd();
  // What it was started or attached with (a resume guard finds its run
  // directory there).
  const VmSpec& spec() const { return spec_; }

 private:
  // The active node and file of each disk, by disk index.
  Result<std::vector<std::pair<std::string, std::string>>> QueryDisks(Deadline deadline);
  // mu_, for a look at the state from outside the engine's sequence (a
  // listing): Timeout when it is not free by `deadline`, Busy between a
  // Send* and its Await* (a command of its own would lose their replies).
  Result<std::unique_lock<std::timed_mutex>> LockToLook(Deadline deadline);
  Status CloseOverlaysLocked(const std::vector<Overlay>& overlays, Deadline deadline);
  // The node of `image` in disk `disk`'s chain, and its bitmaps.
  Result<std::string> ImageNodeLocked(int disk, const std::string& image, Deadline deadline);
  Result<std::optional<qmp::BitmapInfo>> BitmapLocked(const std::string& node,
                                                      const std::string& name, Deadline deadline);
  // The node of each image to serve and its size, checked as ServeImages says.
  Result<std::vector<ServedNode>> ServedNodesLocked(const std::vector<ServedImage>& images,
                                                    Deadline deadline);
  Status StopServingLocked(const std::string& socket, Deadline deadline);
  Status RefreshActiveNodesLocked(Deadline deadline);
  // Ends what is left of a memory state save: the pipe, if QEMU never got
  // it (its writer then exits, the file left empty), and the writer process
  // once it is gone (waited for a few seconds).
  void EndStateSaveLocked();
  // `path` made QEMU's to write, when it runs as another user.
  Status HandOverLocked(const std::string& path);
  // The transaction actions that put `overlays` on top.
  Result<std::vector<Json>> SwitchActions(const std::vector<Overlay>& overlays);

  // The guest agent, connected for one call: a freeze must not hold mu_
  // (QMP goes on). Calls are serialised by agent_mu_.
  Result<std::unique_ptr<GuestAgent>> Agent(Deadline deadline);
  // Runs `call` on the open channel, or on one connected for it; a failed
  // call closes the open channel (it may hold a late answer), and so does
  // `close` (the thaw ends the freeze the channel was opened for).
  template <typename Call>
  auto OnAgent(Deadline deadline, bool close, Call call)
      -> decltype(call(std::declval<GuestAgent&>()));

  Env* env_;
  const VmSpec spec_;
  const int pid_;
  // Timed: a look at the state (State, IoErrors) gives up at its deadline
  // rather than wait out a merge that holds the VM.
  std::timed_mutex mu_;
  std::mutex agent_mu_;
  std::unique_ptr<GuestAgent> open_agent_;  // guarded by agent_mu_; see OpenAgent
  std::unique_ptr<QmpClient> qmp_;          // guarded by mu_
  std::vector<std::string> active_nodes_;   // guarded by mu_; refreshed outside pauses
  const std::optional<QemuUser> user_;
  // The memory state save PrepareStateSave set up (guarded by mu_): its
  // file, the writer process that copies the stream into it, and the pipe's
  // write end until SendResume hands it to QEMU.
  std::string state_path_;
  int state_writer_ = 0;
  UniqueFd state_pipe_;
  // Between a Send* and its Await*: what was sent (guarded by mu_).
  struct Pending {
    std::vector<std::pair<std::string, std::string>> commands;  // (command, id)
    bool stop_first = false;  // SendSwitch: a stop went ahead of the transaction
    bool saving = false;      // SendResume: a memory state save, not a plain cont
    std::vector<Overlay> overlays;
    Status error;  // to report from the Await* although the command went out
  } pending_;
  Clock::time_point pause_answered_;  // guarded by mu_; see PauseAnsweredAt
};

// True if process `pid` is the QEMU of the VM with this UUID (its command
// line carries "-uuid <uuid>"): guards against a PID reused by the kernel.
bool IsQemuOf(Env* env, int pid, const std::string& uuid);

// Node names of an overlay (see qemu_driver.h).
std::string OverlayNode(const Overlay& o);
std::string OverlayFileNode(const Overlay& o);
// Tags become parts of node names: letters, digits, '-', '_', 1..20 characters.
bool IsValidTag(const std::string& tag);

}  // namespace vmgroup::hypervisor::qemu
