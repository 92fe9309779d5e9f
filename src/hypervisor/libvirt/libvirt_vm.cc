#include "hypervisor/libvirt/libvirt_vm.h"

#include <libvirt/virterror.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "hypervisor/libvirt/frozen_copy.h"
#include "hypervisor/libvirt/frozen_serving.h"
#include "storage/qcow2_header.h"

namespace vmgroup::hypervisor::libvirt {
namespace {

// Calls without a deadline of their own (revert, power off) still end.
constexpr auto kLongCall = std::chrono::minutes(10);
// How often a shutdown reads whether the domain is off yet.
constexpr auto kShutdownPoll = std::chrono::milliseconds(200);
// How often a block job is looked at while it runs.
constexpr auto kJobPoll = std::chrono::milliseconds(10);
constexpr unsigned kSnapshotFlags =
    VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC |
    VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT | VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA;

Status NotYet(const std::string& what) {
  return Status::NotSupported(what + " of libvirt domains are not supported yet");
}

// The agent's calls: whatever says there is no agent to talk to (none
// configured, not connected, the domain not running) is Unavailable.
Status AgentError(const std::string& what) {
  Status s = LastError(what);
  if (s.code() == Code::kNotSupported || s.code() == Code::kInvalidState) {
    return Status::Unavailable(s.ToString());
  }
  return s;
}

// The overlay file's backing file, from its header.
Result<std::string> BackingOf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FileNotFound("overlay " + path + " cannot be opened");
  std::string bytes(storage::kQcow2MaxHeaderBytes, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(in.gcount()));
  VMG_ASSIGN_OR_RETURN(auto header, storage::ParseQcow2Header(bytes));
  return header.backing_file;
}

}  // namespace

Result<std::unique_ptr<LibvirtVm>> LibvirtVm::Open(Env* env, const std::string& uri,
                                                   const VmSpec& spec) {
  const std::string& uuid = spec.uuid;
  VMG_ASSIGN_OR_RETURN(auto conn, LibvirtConnection::Open(uri));
  VMG_ASSIGN_OR_RETURN(auto dom, LookUpDomain(conn->get(), uuid));
  const int active = virDomainIsActive(dom.get());
  if (active < 0) return LastError("domain " + uuid);
  const std::string name = virDomainGetName(dom.get());
  if (active == 0) return Status::Unavailable("domain " + name + " is shut off");
  return std::unique_ptr<LibvirtVm>(
      new LibvirtVm(env, std::move(conn), std::move(dom), uuid, name, spec.run_dir));
}

LibvirtVm::LibvirtVm(Env* env, std::unique_ptr<LibvirtConnection> conn, DomainPtr dom,
                     std::string uuid, std::string name, std::string run_dir)
    : env_(env),
      conn_(std::move(conn)),
      dom_(std::move(dom)),
      uuid_(std::move(uuid)),
      name_(std::move(name)),
      run_dir_(std::move(run_dir)) {}

template <typename R>
R LibvirtVm::Call(Deadline deadline, const std::string& what, std::function<R()> call) {
  return AwaitOutcome(env_, worker_.Post(std::move(call)), deadline,
                      "domain " + name_ + ": " + what);
}

Result<DomainXml> LibvirtVm::LiveXml() {
  VMG_ASSIGN_OR_RETURN(auto xml, DomainXmlDesc(dom_.get(), 0));
  return ParseDomainXml(xml);
}

Result<const DomainDisk*> LibvirtVm::Disk(const DomainXml& xml, int disk) {
  if (disk < 0 || static_cast<size_t>(disk) >= xml.snapshot_disks.size()) {
    return Status::InvalidArgument("domain " + name_ + " has no disk " + std::to_string(disk));
  }
  return &xml.all_disks[xml.snapshot_disks[disk]];
}

Result<RunState> LibvirtVm::State(Deadline deadline) {
  return Call<Result<RunState>>(deadline, "state", [this] { return DomainState(dom_.get()); });
}

Status LibvirtVm::Pause(Deadline deadline) {
  return Call<Status>(deadline, "suspend", [this] {
    return virDomainSuspend(dom_.get()) < 0 ? LastError("suspend") : Status::Ok();
  });
}

Status LibvirtVm::Resume(Deadline deadline) {
  return Call<Status>(deadline, "resume", [this] {
    return virDomainResume(dom_.get()) < 0 ? LastError("resume") : Status::Ok();
  });
}

Result<std::vector<std::string>> LibvirtVm::IoErrors(Deadline deadline) {
  using Out = Result<std::vector<std::string>>;
  return Call<Out>(deadline, "disk errors", [this]() -> Out {
    const int n = virDomainGetDiskErrors(dom_.get(), nullptr, 0, 0);
    if (n < 0) return LastError("disk errors");
    std::vector<virDomainDiskError> errors(static_cast<size_t>(n));
    const int got = n == 0 ? 0 : virDomainGetDiskErrors(dom_.get(), errors.data(), n, 0);
    if (got < 0) return LastError("disk errors");
    errors.resize(static_cast<size_t>(got));
    auto xml = LiveXml();
    std::vector<std::string> out;
    for (auto& e : errors) {
      std::string disk = std::string("disk ") + e.disk;
      for (size_t i = 0; xml.ok() && i < xml->snapshot_disks.size(); ++i) {
        const DomainDisk& d = xml->all_disks[xml->snapshot_disks[i]];
        if (d.target == e.disk) disk = "disk " + std::to_string(i) + " (" + d.source + ")";
      }
      free(e.disk);  // NOLINT: libvirt's allocation
      if (e.error == VIR_DOMAIN_DISK_ERROR_NONE) continue;
      out.push_back(disk + (e.error == VIR_DOMAIN_DISK_ERROR_NO_SPACE ? ": no space left on device"
                                                                      : ": an I/O error"));
    }
    return out;
  });
}

Status LibvirtVm::OpenOverlays(const std::vector<Overlay>& overlays, Deadline deadline) {
  return Call<Status>(deadline, "open overlays", [this, overlays]() -> Status {
    VMG_ASSIGN_OR_RETURN(opened_, LiveXml());
    for (const auto& o : overlays) {
      VMG_ASSIGN_OR_RETURN(const DomainDisk* d, Disk(opened_, o.disk));
      if (d->source != o.base) {
        return Status::InvalidState("disk " + d->target + " of domain " + name_ + " runs on " +
                                    d->source + ", not on the overlay's base " + o.base);
      }
      VMG_ASSIGN_OR_RETURN(auto backing, BackingOf(o.path));
      if (backing != o.base) {
        return Status::InvalidArgument("overlay " + o.path + " lies on '" + backing + "', not on " +
                                       o.base);
      }
    }
    return Status::Ok();
  });
}

LibvirtVm::SwitchOutcome LibvirtVm::Switch(const std::string& snapshot_xml, bool pause) {
  if (pause && virDomainSuspend(dom_.get()) < 0) return {LastError("suspend"), false};
  // Not paused by us: paused by its operator (the engine asks only then).
  const bool paused = true;
  if (snapshot_xml.empty()) return {Status::Ok(), paused};
  virDomainSnapshotPtr snap =
      virDomainSnapshotCreateXML(dom_.get(), snapshot_xml.c_str(), kSnapshotFlags);
  if (!snap) return {LastError("disk-only snapshot"), paused};
  virDomainSnapshotFree(snap);
  return {Status::Ok(), paused};
}

Status LibvirtVm::SendSwitch(const std::vector<Overlay>& overlays, const std::string& tracking,
                             bool pause, Deadline deadline) {
  (void)deadline;  // AwaitSwitch waits by it
  // The checkpoint exists since PrepareTracking: libvirt carries its bitmaps
  // into the overlays inside the snapshot.
  if (!tracking.empty() && tracking != prepared_tracking_) {
    return Status::InvalidState("domain " + name_ + ": tracking " + tracking +
                                " was not prepared before the switch");
  }
  std::map<std::string, std::string> by_target;
  for (const auto& o : overlays) {
    VMG_ASSIGN_OR_RETURN(const DomainDisk* d, Disk(opened_, o.disk));
    by_target[d->target] = o.path;
  }
  const std::string xml = overlays.empty() ? std::string()
                                           : SnapshotXml("vmgroup-" + overlays.front().tag,
                                                         opened_.all_disks, by_target);
  pending_pause_ = pause;
  pending_switch_ = worker_.Post<SwitchOutcome>([this, xml, pause] { return Switch(xml, pause); });
  return Status::Ok();
}

Status LibvirtVm::AwaitSwitch(Deadline deadline, bool* paused) {
  SwitchOutcome out = AwaitOutcome(env_, pending_switch_, deadline, "domain " + name_ + ": switch");
  // Not answered in time: it may still pause; the caller resumes it to be safe.
  *paused = out.status.code() == Code::kTimeout ? pending_pause_ : out.paused;
  return out.status;
}

Status LibvirtVm::SendResume(Deadline deadline, bool save_state) {
  (void)deadline;
  if (save_state) return NotYet("memory states");
  pending_resume_ = worker_.Post<Status>(
      [this] { return virDomainResume(dom_.get()) < 0 ? LastError("resume") : Status::Ok(); });
  return Status::Ok();
}

Status LibvirtVm::AwaitResume(Deadline deadline) {
  return AwaitOutcome(env_, pending_resume_, deadline, "domain " + name_ + ": resume");
}

Status LibvirtVm::FinishSwitch(Deadline) { return Status::Ok(); }

Status LibvirtVm::PrepareStateSave(const std::string& path, Deadline deadline) {
  (void)path, (void)deadline;
  return NotYet("snapshots with memory");
}

Status LibvirtVm::AwaitStateSaved(Deadline deadline) {
  (void)deadline;
  return Status::NotFound("no memory state save was started on domain " + name_);
}

Status LibvirtVm::RevertOverlays(const std::vector<Overlay>& overlays) {
  const Deadline deadline = env_->Now() + kLongCall;
  return Call<Status>(deadline, "revert",
                      [this, overlays, deadline] { return Revert(overlays, deadline); });
}

Status LibvirtVm::Revert(const std::vector<Overlay>& overlays, Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto xml, LiveXml());
  // Check every overlay before merging any.
  std::vector<const Overlay*> active;
  for (const auto& o : overlays) {
    VMG_ASSIGN_OR_RETURN(const DomainDisk* d, Disk(xml, o.disk));
    if (d->source != o.path) continue;  // never switched, or reverted already
    if (d->backing.empty() || d->backing.front() != o.base) {
      return Status::InvalidState("overlay " + o.path + " of disk " + d->target +
                                  " does not lie on its base " + o.base);
    }
    active.push_back(&o);
  }
  for (const Overlay* o : active) {
    const std::string target = Disk(xml, o->disk).value()->target;
    virDomainBlockJobInfo job{};
    const int running = virDomainGetBlockJobInfo(dom_.get(), target.c_str(), &job, 0);
    if (running < 0) return LastError("block job of " + target);
    // A merge a process that died left running is adopted (it merges into
    // the overlay's backing, checked above: `base`).
    if (running == 0 && virDomainBlockCommit(
                            dom_.get(), target.c_str(), nullptr, nullptr, 0,
                            VIR_DOMAIN_BLOCK_COMMIT_ACTIVE | VIR_DOMAIN_BLOCK_COMMIT_SHALLOW) < 0) {
      return LastError("merging " + o->path + " into " + o->base);
    }
    VMG_RETURN_IF_ERROR(Pivot(target, deadline));
  }
  VMG_ASSIGN_OR_RETURN(auto after, LiveXml());
  for (const Overlay* o : active) {
    VMG_ASSIGN_OR_RETURN(const DomainDisk* d, Disk(after, o->disk));
    if (d->source != o->base) {
      return Status::Failed("disk " + d->target + " runs on " + d->source + " after merging " +
                            o->path + ", not on " + o->base);
    }
  }
  return Status::Ok();
}

Status LibvirtVm::Pivot(const std::string& target, Deadline deadline) {
  for (;;) {
    if (virDomainBlockJobAbort(dom_.get(), target.c_str(), VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) == 0) {
      return Status::Ok();
    }
    const virError* e = virGetLastError();
    // Not ready yet: the merge is still copying.
    if (!e || e->code != VIR_ERR_BLOCK_COPY_ACTIVE) return LastError("pivot of " + target);
    if (env_->Now() > deadline) {
      return Status::Timeout("the merge of disk " + target + " was not ready by its deadline");
    }
    env_->SleepFor(kJobPoll);
  }
}

Status LibvirtVm::WaitJobGone(const std::string& target, Deadline deadline) {
  for (;;) {
    virDomainBlockJobInfo job{};
    const int running = virDomainGetBlockJobInfo(dom_.get(), target.c_str(), &job, 0);
    if (running < 0) return LastError("block job of " + target);
    if (running == 0) return Status::Ok();
    if (env_->Now() > deadline) {
      return Status::Timeout("the merge of disk " + target + " did not end by its deadline");
    }
    env_->SleepFor(kJobPoll);
  }
}

Result<std::vector<std::string>> LibvirtVm::ActiveImages(Deadline deadline) {
  using Out = Result<std::vector<std::string>>;
  return Call<Out>(deadline, "disks", [this]() -> Out {
    VMG_ASSIGN_OR_RETURN(auto xml, LiveXml());
    return xml.info.disks;
  });
}

Status LibvirtVm::CommitImage(int disk, const std::string& top, const std::string& base,
                              Deadline deadline) {
  return Call<Status>(deadline, "merge", [=, this] { return Commit(disk, top, base, deadline); });
}

Status LibvirtVm::Commit(int disk, const std::string& top, const std::string& base,
                         Deadline deadline) {
  VMG_ASSIGN_OR_RETURN(auto xml, LiveXml());
  VMG_ASSIGN_OR_RETURN(const DomainDisk* d, Disk(xml, disk));
  std::vector<std::string> chain{d->source};
  chain.insert(chain.end(), d->backing.begin(), d->backing.end());
  size_t k = 0;
  while (k + 1 < chain.size() && chain[k] != top) ++k;
  if (k + 1 >= chain.size() || chain[k + 1] != base) {
    return Status::InvalidArgument(top + " does not lie directly on " + base + " in disk " +
                                   d->target + "'s chain");
  }
  const std::string target = d->target;
  const bool active = k == 0;
  virDomainBlockJobInfo job{};
  const int running = virDomainGetBlockJobInfo(dom_.get(), target.c_str(), &job, 0);
  if (running < 0) return LastError("block job of " + target);
  if (running == 0 && virDomainBlockCommit(dom_.get(), target.c_str(), base.c_str(), top.c_str(), 0,
                                           active ? VIR_DOMAIN_BLOCK_COMMIT_ACTIVE : 0) < 0) {
    return LastError("merging " + top + " into " + base);
  }
  VMG_RETURN_IF_ERROR(active ? Pivot(target, deadline) : WaitJobGone(target, deadline));
  VMG_ASSIGN_OR_RETURN(auto after, LiveXml());
  VMG_ASSIGN_OR_RETURN(const DomainDisk* now, Disk(after, disk));
  const bool gone = now->source != top &&
                    std::find(now->backing.begin(), now->backing.end(), top) == now->backing.end();
  if (!gone) return Status::Failed(top + " is still in disk " + target + "'s chain after merging");
  return Status::Ok();
}

// --- Change tracking (checkpoints) ---

Status LibvirtVm::PrepareTracking(const std::vector<Overlay>& overlays, const std::string& name,
                                  Deadline deadline) {
  if (!IsOwnCheckpoint(name)) {
    return Status::InvalidArgument("'" + name + "' is not a name in vmgroup's namespace");
  }
  return Call<Status>(deadline, "checkpoint", [this, overlays, name]() -> Status {
    std::vector<std::string> targets;
    for (const auto& o : overlays) {
      VMG_ASSIGN_OR_RETURN(const DomainDisk* d, Disk(opened_, o.disk));
      targets.push_back(d->target);
    }
    if (virDomainCheckpointPtr old = virDomainCheckpointLookupByName(dom_.get(), name.c_str(), 0)) {
      virDomainCheckpointFree(old);
      return Status::AlreadyExists("domain " + name_ + " has a checkpoint " + name + " already");
    }
    const std::string xml = CheckpointXml(name, opened_.all_disks, targets);
    virDomainCheckpointPtr cp = virDomainCheckpointCreateXML(dom_.get(), xml.c_str(), 0);
    if (!cp) return LastError("checkpoint " + name);
    virDomainCheckpointFree(cp);
    prepared_tracking_ = name;
    return Status::Ok();
  });
}

Status LibvirtVm::KeepTracking(int disk, const std::string& image, const std::string& name,
                               Deadline deadline) {
  (void)disk, (void)image;  // a checkpoint covers its disks' whole chains
  return Call<Status>(deadline, "checkpoint", [this, name]() -> Status {
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom_.get(), name.c_str(), 0);
    if (!cp) {
      return Status::NotFound("domain " + name_ + " has no checkpoint " + name +
                              " (was the snapshot taken while it was shut off?)");
    }
    virDomainCheckpointFree(cp);
    return Status::Ok();
  });
}

Status LibvirtVm::DropTracking(int disk, const std::string& image, const std::string& name,
                               Deadline deadline) {
  (void)disk, (void)image;
  if (!IsOwnCheckpoint(name)) {
    return Status::InvalidArgument("checkpoint " + name + " is not vmgroup's: left alone");
  }
  return Call<Status>(deadline, "checkpoint delete", [this, name]() -> Status {
    virDomainCheckpointPtr cp = virDomainCheckpointLookupByName(dom_.get(), name.c_str(), 0);
    if (!cp) return Status::Ok();
    // With its bitmaps: the domain runs, libvirt removes them from its
    // images. When libvirt cannot (its bitmaps went with images an apply
    // discarded), its metadata goes alone: a bitmap left in an image costs
    // only its bytes, a checkpoint left behind would be swept for ever.
    Status s;
    if (virDomainCheckpointDelete(cp, 0) < 0) {
      s = LastError("deleting checkpoint " + name);
      if (virDomainCheckpointDelete(cp, VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY) == 0) {
        s = Status::Ok();
      }
    }
    virDomainCheckpointFree(cp);
    if (prepared_tracking_ == name) prepared_tracking_.clear();
    return s;
  });
}

Result<std::vector<std::string>> LibvirtVm::Trackings(Deadline deadline) {
  using Out = Result<std::vector<std::string>>;
  return Call<Out>(deadline, "checkpoints", [this]() -> Out { return OwnCheckpoints(dom_.get()); });
}

Status LibvirtVm::CopyMarked(int disk, const std::string& image, const std::string& name,
                             const std::string& target, Deadline deadline) {
  (void)disk;
  return CopyMarkedOffline(Env::Default(), image, name, target, deadline);
}

Result<std::vector<ServedExport>> LibvirtVm::ServeImages(const NbdListen& at,
                                                         const std::vector<ServedImage>& images,
                                                         Deadline) {
  return ServeFrozen(env_, run_dir_, uuid_, name_, at, images);
}

Status LibvirtVm::StopServing(const std::string& socket, Deadline) {
  return StopServingFrozen(env_, socket);
}

Status LibvirtVm::OpenAgent(Deadline deadline) {
  return Call<Status>(deadline, "guest agent", [this] {
    long long seconds = 0;
    unsigned nanos = 0;
    return virDomainGetTime(dom_.get(), &seconds, &nanos, 0) < 0 ? AgentError("guest agent")
                                                                 : Status::Ok();
  });
}

Result<int> LibvirtVm::FreezeFilesystems(Deadline deadline) {
  auto frozen = Call<Result<int>>(deadline, "freeze", [this]() -> Result<int> {
    const int n = virDomainFSFreeze(dom_.get(), nullptr, 0, 0);
    if (n < 0) return AgentError("freeze");
    return n;
  });
  // Late: the freeze may still happen; the thaw queued behind it undoes it.
  if (frozen.status().code() == Code::kTimeout) {
    (void)worker_.Post<Status>([this] {
      (void)virDomainFSThaw(dom_.get(), nullptr, 0, 0);
      return Status::Ok();
    });
  }
  return frozen;
}

Result<int> LibvirtVm::ThawFilesystems(Deadline deadline) {
  return Call<Result<int>>(deadline, "thaw", [this]() -> Result<int> {
    const int n = virDomainFSThaw(dom_.get(), nullptr, 0, 0);
    if (n < 0) return AgentError("thaw");
    return n;
  });
}

Result<bool> LibvirtVm::FilesystemsFrozen(Deadline deadline) {
  (void)deadline;
  return Status::NotSupported("libvirt does not tell whether a guest's filesystems are frozen");
}

Status LibvirtVm::PowerOff() {
  return Call<Status>(env_->Now() + kLongCall, "destroy", [this] {
    return virDomainDestroy(dom_.get()) < 0 ? LastError("destroy") : Status::Ok();
  });
}

Status LibvirtVm::Shutdown(Deadline deadline) {
  VMG_RETURN_IF_ERROR(Call<Status>(deadline, "shutdown", [this] {
    return virDomainShutdown(dom_.get()) < 0 ? LastError("shutdown") : Status::Ok();
  }));
  // Read between waits rather than held on the worker, so that other looks
  // at the domain (a listing) go on meanwhile.
  while (true) {
    auto state = State(deadline);
    // A transient domain is gone once off.
    if (state.ok() ? *state == RunState::kShutoff : state.status().code() == Code::kNotFound) {
      return Status::Ok();
    }
    if (!state.ok() && state.status().code() != Code::kTimeout) return state.status();
    if (env_->Now() >= deadline) {
      return Status::Timeout("the guest of domain " + name_ + " did not shut down");
    }
    env_->SleepFor(kShutdownPoll);
  }
}

}  // namespace vmgroup::hypervisor::libvirt
