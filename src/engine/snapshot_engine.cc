#include "engine/snapshot_engine.h"

#include <algorithm>
#include <ctime>

#include "base/ids.h"
#include "engine/cut_executor.h"
#include "engine/fault_points.h"
#include "engine/guest_freeze.h"
#include "engine/parallel.h"
#include "engine/snapshot_plan.h"
#include "engine/snapshot_undo.h"

namespace vmgroup::engine {
namespace {

constexpr auto kCheckTimeout = std::chrono::seconds(5);
constexpr auto kPrepareTimeout = std::chrono::seconds(60);
// What the freeze bound keeps back, beside the cut's own deadline, for the
// thaws to be answered.
constexpr auto kThawAllowance = std::chrono::seconds(1);

// "2026-11-24 20:05:31 UTC": the default name of a snapshot, as Hyper-V names
// checkpoints after their time.
std::string UtcTime(int64_t us) {
  std::time_t t = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

}  // namespace

SnapshotEngine::SnapshotEngine(Env* env, catalog::Catalog* catalog, VmRegistry* vms,
                               CollectionManager* collections, SnapshotOptions options)
    : env_(env),
      catalog_(catalog),
      vms_(vms),
      collections_(collections),
      img_(env),
      options_(options) {}

Result<std::shared_ptr<hypervisor::Vm>> SnapshotEngine::CheckMember(const catalog::VmRecord& vm) {
  for (size_t i = 0; i < vm.disks.size(); ++i) {
    if (!env_->FileExists(vm.disks[i])) {
      return Status::FileNotFound("VM " + vm.name + ": disk " + std::to_string(i) + " image " +
                                  vm.disks[i] + " is missing");
    }
  }
  if (vm.power == catalog::Power::kOff) return std::shared_ptr<hypervisor::Vm>();
  auto live = vms_->Live(vm.id);
  if (!live) return Status::InvalidState("VM " + vm.name + " is not attached; restart the service");
  auto state = live->State(env_->Now() + kCheckTimeout);
  if (!state.ok()) {
    return Status::InvalidState("VM " + vm.name + " does not answer: " + state.status().message());
  }
  if (*state == hypervisor::RunState::kIoError) {
    // Its images may lack writes the guest was told failed or still waits
    // for: no consistent cut can be taken of it.
    auto why = vms_->IoError(vm.id, env_->Now() + kCheckTimeout);
    return Status::InvalidState("VM " + vm.name + " is paused by QEMU on an I/O error (" +
                                (why.ok() ? *why : "cause unknown: " + why.status().message()) +
                                "); make room for its disk and resume it (vm resume " + vm.name +
                                ") first");
  }
  const auto expected = vm.power == catalog::Power::kRunning ? hypervisor::RunState::kRunning
                                                             : hypervisor::RunState::kPaused;
  if (*state != expected) {
    return Status::InvalidState("VM " + vm.name + " should be " + catalog::PowerName(vm.power) +
                                " but is " + hypervisor::RunStateName(*state));
  }
  return live;
}

Status SnapshotEngine::CheckDomain(const catalog::VmRecord& vm, int type) {
  if (std::string why = vms_->Unsupported(vm.id); !why.empty()) {
    return Status::NotSupported("VM " + vm.name + " cannot be snapshotted: " + why);
  }
  if (type == kSnapshotStandard) {
    return Status::NotSupported(
        "VM " + vm.name +
        " is a libvirt domain: Standard snapshots (with memory) of libvirt domains are not "
        "supported; take a disk-only (type 32768, --type disk) or recovery (type 2) snapshot");
  }
  return Status::Ok();
}

Status SnapshotEngine::RequireConnected(const std::vector<catalog::VmRecord>& vms,
                                        const std::string& what) {
  for (const auto& vm : vms) {
    if (vm.libvirt_uri.empty() || vms_->Connection(vm.libvirt_uri)) continue;
    return Status::Unavailable("VM " + vm.name + " is a domain of libvirt at " + vm.libvirt_uri +
                               ", and vmgroupd has no connection there: " + what +
                               " needs one (start vmgroupd with --libvirt " + vm.libvirt_uri + ")");
  }
  return Status::Ok();
}

Status SnapshotEngine::RequireLive(const catalog::VmRecord& vm, const hypervisor::Vm* live,
                                   const std::string& why) {
  if (live) return Status::Ok();
  return Status::NotSupported("VM " + vm.name + " is off; " + why);
}

Status SnapshotEngine::RequireComplete(const catalog::SnapshotRecord& s) {
  switch (s.state) {
    case catalog::SnapshotState::kComplete:
      return Status::Ok();
    case catalog::SnapshotState::kDestroying:
      return Status::InvalidState("snapshot " + s.name + " is being destroyed");
    case catalog::SnapshotState::kIncomplete:
      break;
  }
  return Status::InvalidState("snapshot " + s.name + " is still being taken");
}

Result<std::vector<catalog::VmRecord>> SnapshotEngine::MembersOf(const catalog::SnapshotRecord& s) {
  std::vector<catalog::VmRecord> vms;
  for (const auto& m : s.members) {
    VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(m.vm_id));
    for (const auto& d : m.disks) {
      if (!env_->FileExists(d.frozen_image)) {
        return Status::FileNotFound("snapshot " + s.name + ": image " + d.frozen_image + " of VM " +
                                    vm.name + " is missing");
      }
    }
    vms.push_back(std::move(vm));
  }
  return vms;
}

Result<SnapshotEngine::Checked> SnapshotEngine::Check(const SnapshotRequest& request) {
  VMG_RETURN_IF_ERROR(CheckSnapshotType(request.type));
  if (request.consistency != catalog::Consistency::kCrash &&
      request.consistency != catalog::Consistency::kApplication) {
    return Status::InvalidArgument("ConsistencyLevel must be 1 (application) or 2 (crash), not " +
                                   std::to_string(static_cast<int>(request.consistency)));
  }
  if (request.consistency == catalog::Consistency::kApplication &&
      request.type == kSnapshotStandard) {
    return Status::InvalidArgument(
        "application consistency is for recovery and disk-only snapshots: a Standard snapshot "
        "saves each guest's memory, and a guest saved while frozen would come back frozen");
  }
  if (!request.id.empty() && !IsGuid(request.id)) {
    return Status::InvalidArgument("snapshot id '" + request.id + "' is not a GUID");
  }
  if (request.collection_id.empty()) return Status::InvalidArgument("no collection given");
  Checked c;
  VMG_ASSIGN_OR_RETURN(c.collection, catalog_->GetCollection(request.collection_id));
  VMG_ASSIGN_OR_RETURN(auto ids, collections_->MemberVms(request.collection_id));
  if (ids.empty()) {
    return Status::InvalidState("collection " + c.collection.name + " has no VMs to snapshot");
  }
  for (const auto& id : ids) {
    VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog_->GetVm(id));
    if (request.type == kSnapshotStandard && vm.power == catalog::Power::kPaused) {
      // QEMU's background snapshot resumes the guest it saves.
      return Status::InvalidState("VM " + vm.name +
                                  " is paused: a Standard snapshot saves the memory of running "
                                  "VMs; resume it, or take a disk-only snapshot");
    }
    if (!vm.libvirt_uri.empty()) VMG_RETURN_IF_ERROR(CheckDomain(vm, request.type));
    VMG_ASSIGN_OR_RETURN(auto live, CheckMember(vm));
    c.vms.push_back(std::move(vm));
    c.live.push_back(std::move(live));
  }
  return c;
}

Status SnapshotEngine::Validate(const SnapshotRequest& request) {
  VMG_ASSIGN_OR_RETURN(Checked checked, Check(request));
  std::lock_guard lock(mu_);
  return CheckNotBusyLocked(checked.vms);
}

Status SnapshotEngine::CheckNotBusyLocked(const std::vector<catalog::VmRecord>& vms) {
  for (const auto& vm : vms) {
    if (busy_.count(vm.id)) {
      return Status::Busy("VM " + vm.name + " is in another snapshot operation; try again");
    }
  }
  return Status::Ok();
}

Status SnapshotEngine::Claim(const std::vector<catalog::VmRecord>& vms) {
  std::lock_guard lock(mu_);
  VMG_RETURN_IF_ERROR(CheckNotBusyLocked(vms));
  for (const auto& vm : vms) busy_.insert(vm.id);
  return Status::Ok();
}

bool SnapshotEngine::RunUnclaimed(const std::string& vm_id, const std::function<void()>& fn) {
  std::lock_guard lock(mu_);
  if (busy_.count(vm_id)) return false;
  fn();
  return true;
}

void SnapshotEngine::Release(const std::vector<catalog::VmRecord>& vms) {
  std::lock_guard lock(mu_);
  for (const auto& vm : vms) busy_.erase(vm.id);
}

Status SnapshotEngine::Prepare(const catalog::SnapshotRecord& s, const Checked& checked) {
  return ParallelFor(s.members.size(), [&](size_t i) -> Status {
    const catalog::MemberSnapshot& m = s.members[i];
    const std::string what = "member " + checked.vms[i].name;
    // On stable storage before the cut makes them the disks: a power cut
    // after the commit must find them, and the guest's first flush into
    // each (at the latest its thaw) must not pay for their creation.
    for (const auto& d : m.disks) {
      VMG_RETURN_IF_ERROR(img_.CreateOverlay(d.frozen_image, d.overlay).Annotate(what));
      VMG_RETURN_IF_ERROR(env_->SyncFile(d.overlay).Annotate(what));
    }
    VMG_RETURN_IF_ERROR(env_->SyncFile(vms_->RunDir(checked.vms[i].id)).Annotate(what));
    if (const auto& live = checked.live[i]) {
      VMG_RETURN_IF_ERROR(
          live->OpenOverlays(OverlaysOf(m, s.tag), env_->Now() + kPrepareTimeout).Annotate(what));
      // Started here if the driver cannot start it inside the switch: the
      // intent, recorded, names it already (an undo or recovery drops it).
      if (const std::string t = BitmapFor(s.type, s.tag); !t.empty()) {
        VMG_RETURN_IF_ERROR(
            live->PrepareTracking(OverlaysOf(m, s.tag), t, env_->Now() + kPrepareTimeout)
                .Annotate(what));
      }
      if (!m.memory_state.empty()) {
        VMG_RETURN_IF_ERROR(
            live->PrepareStateSave(m.memory_state, env_->Now() + kPrepareTimeout).Annotate(what));
      }
    }
    return env_->Hit(fault::kMemberPrepared, checked.vms[i].name).Annotate(what);
  });
}

Result<std::unique_ptr<GuestFreeze>> SnapshotEngine::FreezeGuests(
    const catalog::SnapshotRecord& s, const Checked& checked, const SnapshotRequest& request,
    std::vector<size_t>* frozen_index) {
  std::vector<FreezeMember> members;
  for (size_t i = 0; i < s.members.size(); ++i) {
    if (!checked.live[i]) continue;  // off: its disks are at rest
    members.push_back({checked.vms[i].name, checked.live[i],
                       s.members[i].power_at_cut == catalog::Power::kRunning});
    frozen_index->push_back(i);
  }
  // Armed before the first freeze, for the whole bound: from then on no
  // stall or death of this process leaves a guest frozen.
  const ArmGuard arm = [&](const std::vector<std::shared_ptr<hypervisor::Vm>>& open) {
    return vms_->GuardThaw(open, options_.freeze_bound);
  };
  const Duration answer_within = std::max<Duration>(
      options_.freeze_bound - options_.pause_deadline - kThawAllowance, std::chrono::seconds(1));
  auto freeze =
      std::make_unique<GuestFreeze>(env_, std::move(members), arm, env_->Now() + answer_within);
  for (const Status& r : freeze->results()) {
    if (r.ok()) continue;
    if (!request.fallback) {
      return Status(r.code(), r.message() +
                                  "; take a crash-consistent snapshot, or allow a "
                                  "crash-consistent fallback for such members");
    }
    if (request.warning) request.warning(r.message() + "; it was cut crash consistent");
  }
  return freeze;
}

Status SnapshotEngine::Abandon(const catalog::SnapshotRecord& s, const Status& cause) {
  Status undo = UndoSnapshot(env_, *vms_, *catalog_, img_, s, cause.message());
  if (undo.ok()) return cause;
  return Status(cause.code(), cause.message() + "; cleaning up also failed (recovery will retry " +
                                  "at the next start): " + undo.message());
}

Result<catalog::SnapshotRecord> SnapshotEngine::Create(const SnapshotRequest& request) {
  const Clock::time_point started = env_->Now();
  VMG_ASSIGN_OR_RETURN(Checked checked, Check(request));
  VMG_RETURN_IF_ERROR(Claim(checked.vms));
  const Releaser releaser{this, checked.vms};

  // Persist intent.
  std::vector<PlannedMember> planned;
  std::vector<std::string> member_ids;
  for (const auto& vm : checked.vms) {
    planned.push_back({&vm, vms_->RunDir(vm.id)});
    member_ids.push_back(NewGuid());
  }
  const std::string id = request.id.empty() ? NewGuid() : request.id;
  const int64_t now_us = env_->NowMicros();
  const std::string name =
      request.name.empty() ? checked.collection.name + " - " + UtcTime(now_us) : request.name;
  catalog::SnapshotRecord s = PlanSnapshot(id, "s" + id.substr(0, 8), checked.collection.id, name,
                                           request.type, now_us, planned, member_ids);
  s.consistency = request.consistency;
  for (const auto& vm : checked.vms) VMG_RETURN_IF_ERROR(env_->CreateDirs(vms_->RunDir(vm.id)));
  VMG_RETURN_IF_ERROR(catalog_->InsertSnapshot(s));
  if (Status f = env_->Hit(fault::kIntentRecorded, id); !f.ok()) return Abandon(s, f);

  // Prepare while the VMs run.
  if (Status p = Prepare(s, checked); !p.ok()) return Abandon(s, p);
  if (Status f = env_->Hit(fault::kPrepared, id); !f.ok()) return Abandon(s, f);
  // The last moment a cancel is honoured: past it the cut is too short to stop.
  if (request.cancelled && request.cancelled()) {
    return Abandon(s, Status::Cancelled("cancelled before the cut; nothing was kept"));
  }
  if (request.progress) request.progress(50);

  // Freeze (application consistency): the guests flush and stop writing.
  std::unique_ptr<GuestFreeze> freeze;
  std::vector<size_t> frozen_index;  // member index of each of freeze's members
  if (s.consistency == catalog::Consistency::kApplication) {
    auto frozen = FreezeGuests(s, checked, request, &frozen_index);
    if (!frozen.ok()) return Abandon(s, frozen.status());
    freeze = std::move(*frozen);
    if (Status f = env_->Hit(fault::kFrozen, id); !f.ok()) {
      freeze.reset();  // thawed before the undo, not after it
      return Abandon(s, f);
    }
  }

  // Cut.
  std::vector<CutMember> cut;
  std::vector<size_t> cut_index;  // member index of each cut entry
  for (size_t i = 0; i < s.members.size(); ++i) {
    const auto& m = s.members[i];
    if (!checked.live[i]) continue;  // off: its commit is its cut
    cut.push_back({checked.vms[i].name, checked.live[i], m.power_at_cut == catalog::Power::kRunning,
                   OverlaysOf(m, s.tag), !m.memory_state.empty()});
    cut_index.push_back(i);
  }
  CutOutcome outcome = ExecuteCut(env_, cut, BitmapFor(s.type, s.tag), options_.pause_deadline);
  if (freeze) {
    for (size_t k = 0; k < frozen_index.size(); ++k) {
      if (freeze->Frozen(k)) {
        s.members[frozen_index[k]].consistency = catalog::Consistency::kApplication;
      }
    }
    for (const auto& w : freeze->Thaw(env_->Now() + kThawAllowance + kCheckTimeout)) {
      if (request.warning) request.warning(w);
    }
    s.freeze_window_us = freeze->window_us();
  }
  if (!outcome.status.ok()) {
    Status cause = outcome.status;
    if (!outcome.revert_status.ok()) {
      cause = Status(cause.code(), cause.message() + "; " + outcome.revert_status.message());
    }
    return Abandon(s, cause);
  }
  if (Status f = env_->Hit(fault::kCutDone, id); !f.ok()) return Abandon(s, f);
  // The memory states stream out while the VMs run; the snapshot counts
  // only once every one is complete and on disk.
  const bool with_memory = std::any_of(s.members.begin(), s.members.end(),
                                       [](const auto& m) { return !m.memory_state.empty(); });
  if (with_memory && request.progress) request.progress(60);
  Status saved = ParallelFor(s.members.size(), [&](size_t i) -> Status {
    const auto& m = s.members[i];
    if (m.memory_state.empty()) return Status::Ok();
    VMG_RETURN_IF_ERROR(checked.live[i]->AwaitStateSaved(env_->Now() + kStateSaveTimeout));
    return env_->SyncFile(m.memory_state);
  });
  if (!saved.ok()) return Abandon(s, saved);

  // Commit.
  const int64_t now = env_->NowMicros();
  for (auto& m : s.members) m.cut_time_us = now;  // offline members: the commit is their cut
  for (size_t k = 0; k < cut.size(); ++k) {
    s.members[cut_index[k]].cut_time_us = outcome.timings[k].cut_time_us;
    s.members[cut_index[k]].pause_us = outcome.timings[k].pause_us;
  }
  s.pause_window_us = outcome.window_us;
  s.duration_us =
      std::chrono::duration_cast<std::chrono::microseconds>(env_->Now() - started).count();
  if (Status c = catalog_->CompleteSnapshot(s); !c.ok()) return Abandon(s, c);
  s.state = catalog::SnapshotState::kComplete;
  (void)env_->Hit(fault::kCommitted, id);  // past the commit nothing is undone
  return s;
}

}  // namespace vmgroup::engine
