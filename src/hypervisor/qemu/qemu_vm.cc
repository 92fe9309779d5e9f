#include "hypervisor/qemu/qemu_vm.h"

#include <fcntl.h>
#include <signal.h>

#include <algorithm>
#include <cctype>

#include "hypervisor/qemu/held_trackings.h"
#include "hypervisor/qemu/listen_socket.h"
#include "hypervisor/qemu/nbd_serving.h"
#include "hypervisor/qemu/qmp_commands.h"
#include "hypervisor/qemu/state_writer.h"

namespace vmgroup::hypervisor::qemu {
namespace {

// Cleanup (revert, close) runs past the caller's cut deadline: leaving a
// half-reverted VM would be worse than being late.
constexpr auto kCleanupTimeout = std::chrono::seconds(60);

// The names QEMU keeps the descriptors of a memory state under (getfd).
constexpr char kStateFd[] = "vmg-state";
constexpr char kIncomingFd[] = "vmg-incoming";

std::string DiskDevice(size_t i) {
  return "/machine/peripheral/vd" + std::to_string(i) + "/virtio-backend";
}

// The node the merge undoing `o`'s switch writes into: `o.base`'s, once it
// is known to lie right below the overlay in the running graph (never
// whatever QEMU would pick). `adopted_running`: a merge a daemon that died
// started is still running; QEMU opened the image it writes into for
// writing, and frozen images are read-only otherwise, so `o.base` must be
// writable.
Result<std::string> RevertBase(const Overlay& o, const std::vector<qmp::FormatNode>& graph,
                               bool adopted_running) {
  const std::string what =
      "disk " + std::to_string(o.disk) + ": cannot undo the switch to " + o.path + ": ";
  if (o.base.empty()) return Status::InvalidArgument(what + "no image below it was given");
  const qmp::FormatNode* top = nullptr;
  std::vector<const qmp::FormatNode*> bases;
  for (const auto& n : graph) {
    if (n.node == OverlayNode(o)) top = &n;
    if (n.file == o.base) bases.push_back(&n);
  }
  if (!top) return Status::InvalidState(what + "QEMU has it open under no known node");
  if (top->backing != o.base) {
    return Status::InvalidState(what + "it lies on " +
                                (top->backing.empty() ? "no image" : top->backing) + ", not on " +
                                o.base + " as recorded; nothing was merged");
  }
  if (bases.size() != 1) {
    return Status::InvalidState(what + o.base + " is open " + std::to_string(bases.size()) +
                                " times; nothing was merged");
  }
  if (adopted_running && bases[0]->read_only) {
    return Status::InvalidState(what + "the merge a daemon that died left running does not " +
                                "write into " + o.base + "; it was left as it is");
  }
  return bases[0]->node;
}

}  // namespace

bool IsQemuOf(Env* env, int pid, const std::string& uuid) {
  auto cmdline = env->ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline.ok()) return false;
  const std::string needle = std::string("-uuid") + '\0' + uuid + '\0';
  return cmdline->find(needle) != std::string::npos;
}

std::string OverlayNode(const Overlay& o) { return "d" + std::to_string(o.disk) + "-" + o.tag; }
std::string OverlayFileNode(const Overlay& o) { return "f" + std::to_string(o.disk) + "-" + o.tag; }

bool IsValidTag(const std::string& tag) {
  if (tag.empty() || tag.size() > 20) return false;
  for (char ch : tag) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') return false;
  }
  return true;
}

QemuVm::QemuVm(Env* env, VmSpec spec, int pid, std::unique_ptr<QmpClient> qmp,
               std::optional<QemuUser> user)
    : env_(env), spec_(std::move(spec)), pid_(pid), qmp_(std::move(qmp)), user_(std::move(user)) {}

Status QemuVm::HandOverLocked(const std::string& path) {
  return user_ ? user_->HandOver(path) : Status::Ok();
}

Result<std::unique_lock<std::timed_mutex>> QemuVm::LockToLook(Deadline deadline) {
  std::unique_lock lock(mu_, deadline);
  if (!lock.owns_lock()) return Status::Timeout("the VM is busy (a merge or a snapshot step)");
  if (!pending_.commands.empty()) return Status::Busy("the VM is in the middle of a snapshot cut");
  return lock;
}

Result<RunState> QemuVm::State(Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto lock, LockToLook(deadline));
  VMG_ASSIGN_OR_RETURN(std::string s, qmp::QueryStatus(*qmp_, deadline));
  if (s == "running") return RunState::kRunning;
  if (s == "paused" || s == "postmigrate" || s == "prelaunch") return RunState::kPaused;
  if (s == "shutdown") return RunState::kShutoff;
  if (s == "io-error") return RunState::kIoError;
  return RunState::kOther;
}

Result<std::vector<std::string>> QemuVm::IoErrors(Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto lock, LockToLook(deadline));
  VMG_ASSIGN_OR_RETURN(auto devices, qmp::QueryBlock(*qmp_, deadline));
  std::vector<std::string> errors;
  for (size_t i = 0; i < spec_.disks.size(); ++i) {
    for (const auto& dev : devices) {
      if (dev.qdev != DiskDevice(i) || dev.io_status.empty() || dev.io_status == "ok") continue;
      // QEMU keeps only the kind; with its default policy only a full disk
      // stops the VM, any other error goes to the guest.
      errors.push_back("disk " + std::to_string(i) + " (" + dev.file + "): " +
                       (dev.io_status == "nospace" ? "no space left on device" : "I/O error"));
    }
  }
  return errors;
}

Status QemuVm::Pause(Deadline deadline) {
  std::lock_guard lock(mu_);
  return qmp::Stop(*qmp_, deadline);
}

Status QemuVm::Resume(Deadline deadline) {
  std::lock_guard lock(mu_);
  return qmp::Cont(*qmp_, deadline);
}

Result<std::vector<std::pair<std::string, std::string>>> QemuVm::QueryDisks(Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto devices, qmp::QueryBlock(*qmp_, deadline));
  std::vector<std::pair<std::string, std::string>> disks(spec_.disks.size());
  for (size_t i = 0; i < disks.size(); ++i) {
    bool found = false;
    for (const auto& dev : devices) {
      if (dev.qdev == DiskDevice(i)) {
        disks[i] = {dev.node, dev.file};
        found = true;
      }
    }
    if (!found) return Status::Internal("QEMU reports no device for disk " + std::to_string(i));
  }
  return disks;
}

Status QemuVm::RefreshActiveNodes(Deadline deadline) {
  std::lock_guard lock(mu_);
  return RefreshActiveNodesLocked(deadline);
}

Status QemuVm::RefreshActiveNodesLocked(Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto disks, QueryDisks(deadline));
  active_nodes_.clear();
  for (auto& d : disks) active_nodes_.push_back(d.first);
  return Status::Ok();
}

Status QemuVm::OpenOverlays(const std::vector<Overlay>& overlays, Deadline deadline) {
  std::lock_guard lock(mu_);
  for (const auto& o : overlays) {
    if (!IsValidTag(o.tag)) return Status::InvalidArgument("bad overlay tag '" + o.tag + "'");
    if (o.disk < 0 || static_cast<size_t>(o.disk) >= spec_.disks.size()) {
      return Status::InvalidArgument("no disk " + std::to_string(o.disk));
    }
  }
  // The switch must not spend pause time asking which node is on top.
  VMG_RETURN_IF_ERROR(RefreshActiveNodesLocked(deadline));

  for (size_t i = 0; i < overlays.size(); ++i) {
    const Overlay& o = overlays[i];
    Status s = HandOverLocked(o.path);
    if (s.ok()) {
      s = qmp::BlockdevAddOverlay(*qmp_, OverlayNode(o), OverlayFileNode(o), o.path, deadline);
    }
    if (!s.ok()) {
      std::vector<Overlay> opened(overlays.begin(), overlays.begin() + static_cast<long>(i));
      (void)CloseOverlaysLocked(opened, env_->Now() + kCleanupTimeout);  // the open error wins
      return s.Annotate("disk " + std::to_string(o.disk));
    }
  }
  // The switch must not spend pause time writing bitmaps either.
  Status held = HoldTrackings(*qmp_, active_nodes_, deadline);
  if (!held.ok()) (void)CloseOverlaysLocked(overlays, env_->Now() + kCleanupTimeout);
  return held;
}

Status QemuVm::CloseOverlaysLocked(const std::vector<Overlay>& overlays, Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto names, qmp::QueryNodeNames(*qmp_, deadline));
  VMG_ASSIGN_OR_RETURN(auto disks, QueryDisks(deadline));
  Status first_error;
  for (const auto& o : overlays) {
    const std::string node = OverlayNode(o);
    if (std::find(names.begin(), names.end(), node) == names.end()) continue;
    if (static_cast<size_t>(o.disk) < disks.size() && disks[o.disk].first == node) {
      if (first_error.ok())
        first_error = Status::InvalidState(node + " is active; revert it first");
      continue;
    }
    Status s = qmp::BlockdevDel(*qmp_, node, deadline);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  return first_error;
}

Result<std::vector<Json>> QemuVm::SwitchActions(const std::vector<Overlay>& overlays) {
  std::vector<Json> actions;
  for (const auto& o : overlays) {
    if (static_cast<size_t>(o.disk) >= active_nodes_.size()) {
      return Status::InvalidState("overlays of disk " + std::to_string(o.disk) +
                                  " were not opened");
    }
    actions.push_back(qmp::SnapshotAction(active_nodes_[o.disk], OverlayNode(o)));
  }
  return actions;
}

// The tracking is on the overlays already (PrepareTracking).
Status QemuVm::SendSwitch(const std::vector<Overlay>& overlays, const std::string&, bool pause,
                          Deadline deadline) {
  std::lock_guard lock(mu_);
  pending_ = {};
  VMG_ASSIGN_OR_RETURN(auto actions, SwitchActions(overlays));
  std::vector<qmp::Command> commands;
  if (pause) commands.push_back(qmp::StopCommand());
  commands.push_back(qmp::TransactionCommand(actions));
  VMG_ASSIGN_OR_RETURN(auto ids, qmp_->Send(commands, deadline));
  for (size_t i = 0; i < ids.size(); ++i) pending_.commands.push_back({commands[i].first, ids[i]});
  pending_.stop_first = pause;
  pending_.overlays = overlays;
  return Status::Ok();
}

Status QemuVm::AwaitSwitch(Deadline deadline, bool* paused) {
  std::lock_guard lock(mu_);
  Pending p = std::exchange(pending_, {});
  *paused = false;
  pause_answered_ = {};
  Status first;
  for (size_t i = 0; i < p.commands.size(); ++i) {
    const auto& [command, id] = p.commands[i];
    Status s = qmp_->AwaitReply(command, id, deadline).status();
    if (i == 0 && p.stop_first) {
      pause_answered_ = env_->Now();
      // A stop that timed out may still take effect: count the VM as paused.
      *paused = s.ok() || s.code() == Code::kTimeout;
    } else if (s.ok()) {  // the transaction
      for (const auto& o : p.overlays) active_nodes_[o.disk] = OverlayNode(o);
    }
    if (!s.ok() && first.ok()) first = s;
  }
  if (p.commands.empty()) return Status::InvalidState("AwaitSwitch without SendSwitch");
  return first;
}

Clock::time_point QemuVm::PauseAnsweredAt() {
  std::lock_guard lock(mu_);
  return pause_answered_;
}

Status QemuVm::SendResume(Deadline deadline, bool save_state) {
  std::lock_guard lock(mu_);
  pending_ = {};
  std::vector<qmp::Command> commands = {qmp::ContCommand()};
  if (save_state && !state_pipe_.valid()) {
    // Resume all the same: a guest is never left paused for a missing save.
    pending_.error = Status::InvalidState("no memory state was prepared");
  } else if (save_state) {
    // Into the pipe to the writer, handed over with the command that names
    // it: handed a plain file instead, QEMU writes the whole RAM before it
    // lets the guest run (measured with two 128 MiB guests: a 210 ms group
    // pause instead of 16 ms).
    commands = {qmp::GetFdCommand(kStateFd), qmp::MigrateCommand(kStateFd)};
    pending_.saving = true;
  }
  auto ids = qmp_->Send(commands, deadline, save_state ? state_pipe_.get() : -1);
  // QEMU has its copy now, or none (no save, or this failed): the writer
  // sees the stream end when the last copy closes.
  state_pipe_.reset();
  if (!ids.ok()) return ids.status();
  for (size_t i = 0; i < ids->size(); ++i)
    pending_.commands.push_back({commands[i].first, (*ids)[i]});
  return Status::Ok();
}

Status QemuVm::AwaitResume(Deadline deadline) {
  std::lock_guard lock(mu_);
  Pending p = std::exchange(pending_, {});
  if (p.commands.empty()) return Status::InvalidState("AwaitResume without SendResume");
  Status sent;
  for (const auto& [command, id] : p.commands) {
    Status s = qmp_->AwaitReply(command, id, deadline).status();
    if (sent.ok()) sent = s;
  }
  if (!p.saving) return sent.ok() ? p.error : sent;
  if (!sent.ok()) {
    // No save started: the writer must not wait for QEMU's copy of the pipe,
    // nor the guest stay paused waiting for a save.
    (void)qmp::CloseFd(*qmp_, kStateFd, deadline);
    Status cont = qmp::Cont(*qmp_, deadline);
    return cont.ok() ? sent.Annotate("saving the memory state") : cont;
  }
  RaiseStateSaver(env_, pid_);
  // The background snapshot resumes the guest once the device state is out.
  while (true) {
    VMG_ASSIGN_OR_RETURN(std::string status, qmp::QueryStatus(*qmp_, deadline));
    if (status == "running") return Status::Ok();
    VMG_ASSIGN_OR_RETURN(qmp::MigrationInfo m, qmp::QueryMigrate(*qmp_, deadline));
    if (m.failed()) {
      // The guest stays paused when the save fails before resuming it.
      VMG_RETURN_IF_ERROR(qmp::Cont(*qmp_, deadline));
      return Status::Failed("saving the memory state failed: " + m.error);
    }
    if (env_->Now() >= deadline) return Status::Timeout("the VM did not run again in time");
    env_->SleepFor(std::chrono::microseconds(200));
  }
}

void QemuVm::EndStateSaveLocked() {
  state_pipe_.reset();
  // A writer whose stream ended exits at once; one QEMU still streams into
  // is left to finish.
  if (state_writer_ > 0 && env_->WaitGone(state_writer_, std::chrono::seconds(5)).ok()) {
    state_writer_ = 0;
  }
}

Status QemuVm::PrepareStateSave(const std::string& path, Deadline deadline) {
  std::lock_guard lock(mu_);
  Status capable = qmp::SetBackgroundSnapshot(*qmp_, true, deadline);
  if (!capable.ok() && user_ && capable.message().find("not supported") != std::string::npos) {
    // QEMU 7.2 write-protects RAM with userfaultfd(2), which the kernel
    // grants an unprivileged process only with this sysctl.
    return capable.Annotate("QEMU runs as user " + user_->name() +
                            ", who may use userfaultfd only with sysctl "
                            "vm.unprivileged_userfaultfd=1 (scripts/install-deps.sh sets it)");
  }
  VMG_RETURN_IF_ERROR(capable);
  // Started now, outside the pause.
  VMG_ASSIGN_OR_RETURN(StateWriter writer,
                       StartStateWriter(env_, path, spec_.run_dir + "/qemu.log"));
  EndStateSaveLocked();  // an earlier one
  state_path_ = path;
  state_writer_ = writer.pid;
  state_pipe_ = std::move(writer.pipe);
  return Status::Ok();
}

Status QemuVm::LoadState(const std::string& path) {
  std::lock_guard lock(mu_);
  // Loading streams the whole RAM from the file: allow for large guests.
  const Deadline deadline = env_->Now() + std::chrono::minutes(10);
  auto file = env_->OpenFile(path, O_RDONLY, 0);
  if (!file.ok()) {
    return file.status().code() == Code::kFileNotFound
               ? Status::FileNotFound("memory state " + path + " does not exist")
               : file.status();
  }
  VMG_RETURN_IF_ERROR(qmp::GetFd(*qmp_, kIncomingFd, file->get(), deadline));
  VMG_RETURN_IF_ERROR(qmp::MigrateIncoming(*qmp_, kIncomingFd, deadline));
  VMG_RETURN_IF_ERROR(qmp::AwaitMigration(*qmp_, deadline).Annotate("loading " + path));
  // A state saved from a running guest would start it: the caller resumes.
  VMG_ASSIGN_OR_RETURN(std::string status, qmp::QueryStatus(*qmp_, deadline));
  if (status == "running") VMG_RETURN_IF_ERROR(qmp::Stop(*qmp_, deadline));
  return Status::Ok();
}

Status QemuVm::AwaitStateSaved(Deadline deadline) {
  std::lock_guard lock(mu_);
  // No migration at all: the save was never started (a daemon that died
  // before resuming the cut); there is nothing to wait for.
  VMG_ASSIGN_OR_RETURN(qmp::MigrationInfo m, qmp::QueryMigrate(*qmp_, deadline));
  if (m.status.empty()) return Status::NotFound("no memory state is being saved");
  VMG_RETURN_IF_ERROR(qmp::AwaitMigration(*qmp_, deadline).Annotate("saving the memory state"));
  // Only the Vm that prepared the save knows its file and its writer, which
  // may still be writing the stream's tail; a caller that attached later
  // (recovery) checks the file it recorded.
  if (state_writer_ > 0) {
    VMG_RETURN_IF_ERROR(
        env_->WaitGone(state_writer_, std::max<Duration>(deadline - env_->Now(), {}))
            .Annotate("the memory state's writer"));
    state_writer_ = 0;
  }
  if (!state_path_.empty() && !env_->FileExists(state_path_)) {
    return Status::IoError("the memory state could not be written to " + state_path_ +
                           " (no space, or the directory is gone); QEMU's log says why");
  }
  return Status::Ok();
}

Status QemuVm::RevertOverlays(const std::vector<Overlay>& overlays) {
  std::lock_guard lock(mu_);
  EndStateSaveLocked();  // a save prepared for the undone snapshot
  const Deadline deadline = env_->Now() + kCleanupTimeout;
  auto JobOf = [](const Overlay& o) { return "revert-" + OverlayNode(o); };
  VMG_ASSIGN_OR_RETURN(auto disks, QueryDisks(deadline));
  VMG_ASSIGN_OR_RETURN(auto graph, qmp::QueryFormatNodeGraph(*qmp_, deadline));
  // Every merge is checked before any starts: an undo merges all or nothing.
  // A revert left running by a daemon that died mid-revert is adopted, not
  // started again (QEMU refuses a duplicate job id); the others start here.
  std::vector<const Overlay*> merged;
  std::vector<std::pair<const Overlay*, std::string>> to_start;  // (overlay, base node)
  for (const auto& o : overlays) {
    VMG_ASSIGN_OR_RETURN(auto job, qmp::QueryJob(*qmp_, JobOf(o), deadline));
    const bool active =
        static_cast<size_t>(o.disk) < disks.size() && disks[o.disk].first == OverlayNode(o);
    if (!job && !active) continue;
    const bool adopted_running = job && job->status != "concluded";
    VMG_ASSIGN_OR_RETURN(std::string base, RevertBase(o, graph, adopted_running));
    merged.push_back(&o);
    if (!job) to_start.emplace_back(&o, base);
  }
  // Start every missing merge first, then finish them all: the disks commit
  // in parallel.
  for (const auto& [o, base] : to_start) {
    VMG_RETURN_IF_ERROR(
        qmp::BlockCommit(*qmp_, JobOf(*o), OverlayNode(*o), OverlayNode(*o), base, deadline));
  }
  for (const Overlay* o : merged) VMG_RETURN_IF_ERROR(qmp::CompleteJob(*qmp_, JobOf(*o), deadline));
  VMG_RETURN_IF_ERROR(RefreshActiveNodesLocked(deadline));
  VMG_ASSIGN_OR_RETURN(disks, QueryDisks(deadline));
  for (const Overlay* o : merged) {
    const std::string now =
        static_cast<size_t>(o->disk) < disks.size() ? disks[o->disk].second : "no image";
    if (now != o->base) {
      return Status::Failed("disk " + std::to_string(o->disk) + ": undoing the switch to " +
                            o->path + " left the disk on " + now + ", not on " + o->base +
                            " as recorded; the images need an operator's check");
    }
  }
  VMG_RETURN_IF_ERROR(CloseOverlaysLocked(overlays, deadline));
  // The trackings OpenOverlays held go back into the images, active again.
  return StoreHeldTrackings(*qmp_, deadline);
}

Status QemuVm::FinishSwitch(Deadline deadline) {
  std::lock_guard lock(mu_);
  return StoreHeldTrackings(*qmp_, deadline);
}

Result<std::vector<std::string>> QemuVm::ActiveImages(Deadline deadline) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(auto disks, QueryDisks(deadline));
  std::vector<std::string> files;
  for (auto& d : disks) files.push_back(d.second);
  return files;
}

Status QemuVm::CommitImage(int disk, const std::string& top, const std::string& base,
                           Deadline deadline) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(auto disks, QueryDisks(deadline));
  if (disk < 0 || static_cast<size_t>(disk) >= disks.size()) {
    return Status::InvalidArgument("no disk " + std::to_string(disk));
  }
  const std::string job = "merge-d" + std::to_string(disk);
  // Backing images opened from headers have generated node names: look them
  // up by file.
  VMG_ASSIGN_OR_RETURN(auto nodes, qmp::QueryFormatNodes(*qmp_, deadline));
  auto top_node = nodes.find(top), base_node = nodes.find(base);
  VMG_ASSIGN_OR_RETURN(auto running, qmp::QueryJob(*qmp_, job, deadline));
  if (!running) {
    if (top_node == nodes.end() || base_node == nodes.end()) {
      return Status::InvalidArgument("disk " + std::to_string(disk) + " has " + top + " or " +
                                     base + " not open");
    }
    // QEMU reopens the base to write into it.
    VMG_RETURN_IF_ERROR(HandOverLocked(base));
    VMG_RETURN_IF_ERROR(qmp::BlockCommit(*qmp_, job, disks[disk].first, top_node->second,
                                         base_node->second, deadline));
  }
  VMG_RETURN_IF_ERROR(qmp::CompleteJob(*qmp_, job, deadline));
  VMG_RETURN_IF_ERROR(RefreshActiveNodesLocked(deadline));
  if (top_node == nodes.end()) return Status::Ok();
  // A node vmgroup named (an overlay, or the image the VM started on) stays
  // in the graph when merged away, still holding the base as its backing —
  // then no later merge or snapshot could use the base — and its file open:
  // close it, with the file node the VM was started with if it was that one.
  // (Nodes QEMU opened from image headers go by themselves.)
  VMG_ASSIGN_OR_RETURN(auto names, qmp::QueryNodeNames(*qmp_, deadline));
  auto present = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  const std::string& merged = top_node->second;
  if (!present(merged)) return Status::Ok();
  VMG_RETURN_IF_ERROR(qmp::BlockdevDel(*qmp_, merged, deadline));
  const std::string file_node = "f" + std::to_string(disk);
  if (merged == "d" + std::to_string(disk) && present(file_node)) {
    VMG_RETURN_IF_ERROR(qmp::BlockdevDel(*qmp_, file_node, deadline));
  }
  return Status::Ok();
}

Result<std::string> QemuVm::ImageNodeLocked(int disk, const std::string& image, Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto disks, QueryDisks(deadline));
  if (disk < 0 || static_cast<size_t>(disk) >= disks.size()) {
    return Status::InvalidArgument("no disk " + std::to_string(disk));
  }
  VMG_ASSIGN_OR_RETURN(auto nodes, qmp::QueryFormatNodes(*qmp_, deadline));
  auto node = nodes.find(image);
  if (node == nodes.end()) {
    return Status::InvalidArgument("disk " + std::to_string(disk) + " has " + image + " not open");
  }
  return node->second;
}

Result<std::optional<qmp::BitmapInfo>> QemuVm::BitmapLocked(const std::string& node,
                                                            const std::string& name,
                                                            Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto bitmaps, qmp::QueryBitmaps(*qmp_, node, deadline));
  for (const auto& b : bitmaps) {
    if (b.name == name) return std::optional<qmp::BitmapInfo>(b);
  }
  return std::optional<qmp::BitmapInfo>();
}

Status QemuVm::PrepareTracking(const std::vector<Overlay>& overlays, const std::string& name,
                               Deadline deadline) {
  // On the overlays before the pause: nothing writes them until the switch
  // makes them active, so each bitmap marks exactly what comes after the cut.
  std::lock_guard lock(mu_);
  std::vector<Json> actions;
  for (const auto& o : overlays) actions.push_back(qmp::BitmapAddAction(OverlayNode(o), name));
  return qmp::Transaction(*qmp_, actions, deadline);
}

Status QemuVm::KeepTracking(int disk, const std::string& image, const std::string& name,
                            Deadline deadline) {
  // The overlay's bitmap goes with the overlay (a merge does not carry
  // bitmaps down): one on `image` marks what the merge writes into it.
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(std::string node, ImageNodeLocked(disk, image, deadline));
  VMG_ASSIGN_OR_RETURN(auto existing, BitmapLocked(node, name, deadline));
  if (existing) return Status::Ok();  // added by an earlier call, marking since
  return qmp::BitmapAdd(*qmp_, node, name, deadline);
}

Status QemuVm::DropTracking(int disk, const std::string& image, const std::string& name,
                            Deadline deadline) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(auto nodes, qmp::QueryFormatNodes(*qmp_, deadline));
  if (nodes.find(image) == nodes.end()) return Status::Ok();  // gone, and its bitmaps with it
  VMG_ASSIGN_OR_RETURN(std::string node, ImageNodeLocked(disk, image, deadline));
  VMG_ASSIGN_OR_RETURN(auto existing, BitmapLocked(node, name, deadline));
  if (!existing) return Status::Ok();
  return qmp::BitmapRemove(*qmp_, node, name, deadline);
}

Result<std::vector<std::string>> QemuVm::Trackings(Deadline) {
  return std::vector<std::string>{};  // bitmaps live in the images only
}

Status QemuVm::CopyMarked(int disk, const std::string& image, const std::string& name,
                          const std::string& target, Deadline deadline) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(std::string node, ImageNodeLocked(disk, image, deadline));
  VMG_RETURN_IF_ERROR(CheckTrustedBitmap(*qmp_, node, image, name, deadline));
  // The target (an export's file) stays ours: QEMU writes it through a
  // descriptor of ours, whoever it runs as.
  VMG_ASSIGN_OR_RETURN(UniqueFd file, env_->OpenFile(target, O_RDWR, 0));
  VMG_ASSIGN_OR_RETURN(const int fdset, qmp::AddFd(*qmp_, file.get(), deadline));
  const std::string d = std::to_string(disk), copy = "copy-d" + d;
  Status s = qmp::BlockdevAddTarget(*qmp_, copy, qmp::FdSetPath(fdset), deadline);
  if (s.ok()) {
    s = qmp::BackupMarked(*qmp_, copy, node, copy, name, deadline);
    if (s.ok()) s = qmp::CompleteJob(*qmp_, copy, deadline);
    Status closed = qmp::BlockdevDel(*qmp_, copy, deadline);
    if (s.ok()) s = closed;
  }
  Status removed = qmp::RemoveFdSet(*qmp_, fdset, deadline);
  return s.ok() ? removed : s.Annotate("copying into " + target);
}

Result<std::vector<ServedNode>> QemuVm::ServedNodesLocked(const std::vector<ServedImage>& images,
                                                          Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto graph, qmp::QueryFormatNodeGraph(*qmp_, deadline));
  std::vector<ServedNode> nodes;
  for (const auto& i : images) {
    if (i.disk < 0 || static_cast<size_t>(i.disk) >= spec_.disks.size()) {
      return Status::InvalidArgument("no disk " + std::to_string(i.disk));
    }
    auto node = ImageNodeLocked(i.disk, i.image, deadline);
    if (!node.ok()) {
      // The disk exists (checked above): the image is not open.
      return node.status().code() == Code::kInvalidArgument
                 ? Status::NotFound(node.status().message())
                 : node.status();
    }
    if (!i.tracking.empty()) {
      VMG_RETURN_IF_ERROR(CheckTrustedBitmap(*qmp_, *node, i.image, i.tracking, deadline));
    }
    auto in_graph = std::find_if(graph.begin(), graph.end(),
                                 [&](const qmp::FormatNode& n) { return n.node == *node; });
    if (in_graph == graph.end()) return Status::NotFound(i.image + " left the block graph");
    nodes.push_back({*node, in_graph->size});
  }
  return nodes;
}

Result<std::vector<ServedExport>> QemuVm::ServeImages(const NbdListen& at,
                                                      const std::vector<ServedImage>& images,
                                                      Deadline deadline) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(auto nodes, ServedNodesLocked(images, deadline));
  VMG_ASSIGN_OR_RETURN(Listener listener, ListenFor(at));
  if (Status started = StartNbdServer(*qmp_, listener.fd.get(), at.tls_dir, deadline);
      !started.ok()) {
    // Only the socket is ours: a serving under way is left as it is.
    if (at.tcp_host.empty()) (void)env_->RemoveFile(at.path);
    return started;
  }
  auto exports = ExportNodes(*qmp_, nodes, images, listener.port, deadline);
  if (exports.ok()) return exports;
  Status ended = StopServingLocked(at.path, env_->Now() + kCleanupTimeout);
  if (ended.ok()) return exports.status();
  return Status(
      exports.status().code(),
      exports.status().message() + "; ending the serving failed too: " + ended.ToString());
}

Status QemuVm::StopServing(const std::string& socket, Deadline deadline) {
  std::lock_guard lock(mu_);
  return StopServingLocked(socket, deadline);
}

Status QemuVm::StopServingLocked(const std::string& socket, Deadline deadline) {
  VMG_RETURN_IF_ERROR(EndNbdServing(*qmp_, deadline));
  return env_->RemoveFile(socket);
}

// An agent that exists answers guest-sync in tens of milliseconds, under TCG
// too; one that has not answered in this long is not there.
constexpr auto kAgentAnswer = std::chrono::seconds(3);

Result<std::unique_ptr<GuestAgent>> QemuVm::Agent(Deadline deadline) {
  return GuestAgent::Connect(env_, GuestAgent::SocketPath(spec_.run_dir),
                             std::min(deadline, env_->Now() + kAgentAnswer));
}

template <typename Call>
auto QemuVm::OnAgent(Deadline deadline, bool close, Call call)
    -> decltype(call(std::declval<GuestAgent&>())) {
  std::lock_guard lock(agent_mu_);
  if (!open_agent_) {
    VMG_ASSIGN_OR_RETURN(auto agent, Agent(deadline));
    return call(*agent);
  }
  auto r = call(*open_agent_);
  if (!r.ok() || close) open_agent_.reset();
  return r;
}

Status QemuVm::OpenAgent(Deadline deadline) {
  std::lock_guard lock(agent_mu_);
  open_agent_.reset();
  VMG_ASSIGN_OR_RETURN(open_agent_, Agent(deadline));
  return Status::Ok();
}

int QemuVm::OpenAgentFd() {
  std::lock_guard lock(agent_mu_);
  return open_agent_ ? open_agent_->fd() : -1;
}

Result<int> QemuVm::FreezeFilesystems(Deadline deadline) {
  return OnAgent(deadline, /*close=*/false, [&](GuestAgent& a) { return a.Freeze(deadline); });
}

Result<int> QemuVm::ThawFilesystems(Deadline deadline) {
  return OnAgent(deadline, /*close=*/true, [&](GuestAgent& a) { return a.Thaw(deadline); });
}

Result<bool> QemuVm::FilesystemsFrozen(Deadline deadline) {
  return OnAgent(deadline, /*close=*/false, [&](GuestAgent& a) { return a.Frozen(deadline); });
}

Status QemuVm::PowerOff() {
  std::lock_guard lock(mu_);
  // A quit that fails because QEMU is already gone is fine; WaitGone decides.
  (void)qmp::Quit(*qmp_, env_->Now() + std::chrono::seconds(5));
  EndStateSaveLocked();  // a save QEMU streamed ends with it
  if (env_->WaitGone(pid_, std::chrono::seconds(10)).ok()) return Status::Ok();
  // Never kill a process that merely inherited the PID.
  if (!IsQemuOf(env_, pid_, spec_.uuid)) return Status::Ok();
  VMG_RETURN_IF_ERROR(env_->Kill(pid_, SIGKILL));
  return env_->WaitGone(pid_, std::chrono::seconds(10));
}

Status QemuVm::Shutdown(Deadline deadline) {
  {
    std::lock_guard lock(mu_);
    VMG_RETURN_IF_ERROR(qmp::SystemPowerdown(*qmp_, deadline));
  }
  const Duration left = std::max<Duration>(deadline - env_->Now(), Duration::zero());
  if (!env_->WaitGone(pid_, left).ok()) {
    return Status::Timeout("the guest did not power off (QEMU still runs)");
  }
  std::lock_guard lock(mu_);
  EndStateSaveLocked();  // a save QEMU streamed ends with it
  return Status::Ok();
}

}  // namespace vmgroup::hypervisor::qemu
