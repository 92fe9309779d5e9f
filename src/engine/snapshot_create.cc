#include "engine/snapshot_create.h"

#include <algorithm>

#include "base/ids.h"
#include "engine/cut_executor.h"
#include "engine/fault_points.h"
#include "engine/member_checks.h"
#include "engine/parallel.h"
#include "engine/snapshot_plan.h"
#include "engine/snapshot_undo.h"

namespace vmgroup::engine {
namespace {

constexpr auto kPrepareTimeout = std::chrono::seconds(60);
// What the freeze bound keeps back, beside the cut's own deadline, for the
// thaws to be answered.
constexpr auto kThawAllowance = std::chrono::seconds(1);

}  // namespace

Status SnapshotCreate::Check() {
  VMG_RETURN_IF_ERROR(CheckSnapshotType(request_.type));
  if (request_.consistency != catalog::Consistency::kCrash &&
      request_.consistency != catalog::Consistency::kApplication) {
    return Status::InvalidArgument("ConsistencyLevel must be 1 (application) or 2 (crash), not " +
                                   std::to_string(static_cast<int>(request_.consistency)));
  }
  if (request_.consistency == catalog::Consistency::kApplication &&
      request_.type == kSnapshotStandard) {
    return Status::InvalidArgument(
        "application consistency is for recovery and disk-only snapshots: a Standard snapshot "
        "saves each guest's memory, and a guest saved while frozen would come back frozen");
  }
  if (!request_.id.empty() && !IsGuid(request_.id)) {
    return Status::InvalidArgument("snapshot id '" + request_.id + "' is not a GUID");
  }
  if (request_.collection_id.empty()) return Status::InvalidArgument("no collection given");
  VMG_ASSIGN_OR_RETURN(collection_, parts_.catalog->GetCollection(request_.collection_id));
  // Of a group across hosts this host takes only its part, on the word of
  // the coordinator (spanning_snapshots.h): anything else (a backup
  // session's snapshot, a reference point's) would leave the other hosts out.
  if (!collection_.remote_members.empty() && !request_.coordinated) {
    return Status::NotSupported("group " + collection_.name +
                                " has members on other hosts: only a snapshot of the whole "
                                "group across hosts (CreateSnapshot) is offered for it yet");
  }
  VMG_ASSIGN_OR_RETURN(auto ids, parts_.collections->MemberVms(request_.collection_id));
  if (ids.empty()) {
    return Status::InvalidState("collection " + collection_.name + " has no VMs to snapshot");
  }
  for (const auto& id : ids) {
    VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, parts_.catalog->GetVm(id));
    if (request_.type == kSnapshotStandard && vm.power == catalog::Power::kPaused) {
      // QEMU's background snapshot resumes the guest it saves.
      return Status::InvalidState("VM " + vm.name +
                                  " is paused: a Standard snapshot saves the memory of running "
                                  "VMs; resume it, or take a disk-only snapshot");
    }
    if (!vm.libvirt_uri.empty()) VMG_RETURN_IF_ERROR(CheckDomain(parts_, vm, request_.type));
    VMG_ASSIGN_OR_RETURN(auto live, CheckMember(parts_, vm));
    members_.push_back(std::move(vm));
    live_.push_back(std::move(live));
  }
  return Status::Ok();
}

Status SnapshotCreate::Prepare() {
  const catalog::SnapshotRecord& s = s_;
  return ParallelFor(s.members.size(), [&](size_t i) -> Status {
    const catalog::MemberSnapshot& m = s.members[i];
    const std::string what = "member " + members_[i].name;
    // On stable storage before the cut makes them the disks: a power cut
    // after the commit must find them, and the guest's first flush into
    // each (at the latest its thaw) must not pay for their creation.
    for (const auto& d : m.disks) {
      VMG_RETURN_IF_ERROR(parts_.img.CreateOverlay(d.frozen_image, d.overlay).Annotate(what));
      VMG_RETURN_IF_ERROR(parts_.env->SyncFile(d.overlay).Annotate(what));
    }
    VMG_RETURN_IF_ERROR(parts_.env->SyncFile(parts_.vms->RunDir(members_[i].id)).Annotate(what));
    if (const auto& live = live_[i]) {
      VMG_RETURN_IF_ERROR(
          live->OpenOverlays(OverlaysOf(m, s.tag), parts_.env->Now() + kPrepareTimeout)
              .Annotate(what));
      // Started here if the driver cannot start it inside the switch: the
      // intent, recorded, names it already (an undo or recovery drops it).
      if (const std::string t = BitmapFor(s.type, s.tag); !t.empty()) {
        VMG_RETURN_IF_ERROR(
            live->PrepareTracking(OverlaysOf(m, s.tag), t, parts_.env->Now() + kPrepareTimeout)
                .Annotate(what));
      }
      if (!m.memory_state.empty()) {
        VMG_RETURN_IF_ERROR(
            live->PrepareStateSave(m.memory_state, parts_.env->Now() + kPrepareTimeout)
                .Annotate(what));
      }
    }
    return parts_.env->Hit(fault::kMemberPrepared, members_[i].name).Annotate(what);
  });
}

Result<std::unique_ptr<GuestFreeze>> SnapshotCreate::FreezeGuests(
    std::vector<size_t>* frozen_index) {
  const catalog::SnapshotRecord& s = s_;
  std::vector<FreezeMember> members;
  for (size_t i = 0; i < s.members.size(); ++i) {
    if (!live_[i]) continue;  // off: its disks are at rest
    members.push_back(
        {members_[i].name, live_[i], s.members[i].power_at_cut == catalog::Power::kRunning});
    frozen_index->push_back(i);
  }
  // Armed before the first freeze, for the whole bound: from then on no
  // stall or death of this process leaves a guest frozen.
  const ArmGuard arm = [&](const std::vector<std::shared_ptr<hypervisor::Vm>>& open) {
    return parts_.vms->GuardThaw(open, parts_.options.freeze_bound);
  };
  const Duration answer_within = std::max<Duration>(
      parts_.options.freeze_bound - parts_.options.pause_deadline - kThawAllowance,
      std::chrono::seconds(1));
  auto freeze = std::make_unique<GuestFreeze>(parts_.env, std::move(members), arm,
                                              parts_.env->Now() + answer_within);
  for (const Status& r : freeze->results()) {
    if (r.ok()) continue;
    if (!request_.fallback) {
      return Status(r.code(), r.message() +
                                  "; take a crash-consistent snapshot, or allow a "
                                  "crash-consistent fallback for such members");
    }
    if (request_.warning) request_.warning(r.message() + "; it was cut crash consistent");
  }
  return freeze;
}

Status SnapshotCreate::Undo(const Status& cause) {
  Status undo =
      UndoSnapshot(parts_.env, *parts_.vms, *parts_.catalog, parts_.img, s_, cause.message());
  if (undo.ok()) return cause;
  return Status(cause.code(), cause.message() + "; cleaning up also failed (recovery will retry " +
                                  "at the next start): " + undo.message());
}

Status SnapshotCreate::RecordIntent() {
  std::vector<PlannedMember> planned;
  std::vector<std::string> member_ids;
  for (const auto& vm : members_) {
    planned.push_back({&vm, parts_.vms->RunDir(vm.id)});
    member_ids.push_back(NewGuid());
  }
  const std::string id = request_.id.empty() ? NewGuid() : request_.id;
  const int64_t now_us = parts_.env->NowMicros();
  const std::string name =
      request_.name.empty() ? DefaultSnapshotName(collection_.name, now_us) : request_.name;
  // Appended, not "s" + a temporary: GCC 12 at -O3 warns falsely (-Wrestrict, GCC bug 105651)
  s_ = PlanSnapshot(id, std::string("s").append(id, 0, 8), collection_.id, name, request_.type,
                    now_us, planned, member_ids);
  s_.consistency = request_.consistency;
  s_.coordinated = request_.coordinated;
  for (const auto& vm : members_) {
    VMG_RETURN_IF_ERROR(parts_.env->CreateDirs(parts_.vms->RunDir(vm.id)));
  }
  return parts_.catalog->InsertSnapshot(s_);
}

Status SnapshotCreate::Work() {
  Env* env = parts_.env;
  catalog::SnapshotRecord& s = s_;
  const std::string& id = s.id;
  VMG_RETURN_IF_ERROR(env->Hit(fault::kIntentRecorded, id));

  // Prepare while the VMs run.
  VMG_RETURN_IF_ERROR(Prepare());
  VMG_RETURN_IF_ERROR(env->Hit(fault::kPrepared, id));
  // The last moment a cancel is honoured: past it the cut is too short to stop.
  if (request_.cancelled && request_.cancelled()) {
    return Status::Cancelled("cancelled before the cut; nothing was kept");
  }
  if (request_.progress) request_.progress(50);

  // Freeze (application consistency): the guests flush and stop writing.
  std::unique_ptr<GuestFreeze> freeze;
  std::vector<size_t> frozen_index;  // member index of each of freeze's members
  Deadline cut_by = Deadline::max();
  if (s.consistency == catalog::Consistency::kApplication) {
    // The guard thaws every guest once the bound has passed from its arming, just below.
    cut_by = env->Now() + parts_.options.freeze_bound - kThawAllowance;
    VMG_ASSIGN_OR_RETURN(freeze, FreezeGuests(&frozen_index));
    // On a failure `freeze` thaws as Work returns: before the undo, not after it.
    VMG_RETURN_IF_ERROR(env->Hit(fault::kFrozen, id));
  }

  // Cut.
  std::vector<CutMember> cut;
  std::vector<size_t> cut_index;  // member index of each cut entry
  for (size_t i = 0; i < s.members.size(); ++i) {
    const auto& m = s.members[i];
    if (!live_[i]) continue;  // off: its commit is its cut
    cut.push_back({members_[i].name, live_[i], m.power_at_cut == catalog::Power::kRunning,
                   OverlaysOf(m, s.tag), !m.memory_state.empty(), m.vm_id});
    cut_index.push_back(i);
  }
  const std::string tracking = BitmapFor(s.type, s.tag);
  CutOutcome outcome = request_.cut ? request_.cut(cut, tracking, cut_by)
                                    : ExecuteCut(env, cut, tracking, parts_.options.pause_deadline);
  if (freeze) {
    for (size_t k = 0; k < frozen_index.size(); ++k) {
      if (freeze->Frozen(k)) {
        s.members[frozen_index[k]].consistency = catalog::Consistency::kApplication;
      }
    }
    for (const auto& w : freeze->Thaw(env->Now() + kThawAllowance + kCheckTimeout)) {
      if (request_.warning) request_.warning(w);
    }
    s.freeze_window_us = freeze->window_us();
    if (request_.freeze_timings) {
      std::vector<FreezeTiming> timings(s.members.size());
      for (size_t k = 0; k < frozen_index.size(); ++k) {
        timings[frozen_index[k]] = freeze->timings()[k];
      }
      request_.freeze_timings(timings);
    }
  }
  if (!outcome.status.ok()) {
    Status cause = outcome.status;
    if (!outcome.revert_status.ok()) {
      cause = Status(cause.code(), cause.message() + "; " + outcome.revert_status.message());
    }
    return cause;
  }
  if (request_.cut_timings) request_.cut_timings(outcome.timings);
  VMG_RETURN_IF_ERROR(env->Hit(fault::kCutDone, id));
  // The memory states stream out while the VMs run; the snapshot counts
  // only once every one is complete and on disk.
  const bool with_memory = std::any_of(s.members.begin(), s.members.end(),
                                       [](const auto& m) { return !m.memory_state.empty(); });
  if (with_memory && request_.progress) request_.progress(60);
  Status saved = ParallelFor(s.members.size(), [&](size_t i) -> Status {
    const auto& m = s.members[i];
    if (m.memory_state.empty()) return Status::Ok();
    VMG_RETURN_IF_ERROR(live_[i]->AwaitStateSaved(env->Now() + kStateSaveTimeout));
    return env->SyncFile(m.memory_state);
  });
  VMG_RETURN_IF_ERROR(saved);
  // What the drivers kept out of the pause (QEMU: storing the trackings of
  // the images the cut froze), before the commit: a committed snapshot's
  // trackings are in its images.
  VMG_RETURN_IF_ERROR(ParallelFor(cut.size(), [&](size_t k) -> Status {
    return cut[k].vm->FinishSwitch(env->Now() + kPrepareTimeout).Annotate("member " + cut[k].name);
  }));

  if (request_.before_commit) VMG_RETURN_IF_ERROR(request_.before_commit());

  // Commit.
  const int64_t now = env->NowMicros();
  for (auto& m : s.members) m.cut_time_us = now;  // offline members: the commit is their cut
  for (size_t k = 0; k < cut.size(); ++k) {
    s.members[cut_index[k]].cut_time_us = outcome.timings[k].cut_time_us;
    s.members[cut_index[k]].pause_us = outcome.timings[k].pause_us;
  }
  s.pause_window_us = outcome.window_us;
  s.duration_us =
      std::chrono::duration_cast<std::chrono::microseconds>(env->Now() - started_).count();
  VMG_RETURN_IF_ERROR(parts_.catalog->CompleteSnapshot(s));
  s.state = catalog::SnapshotState::kComplete;
  return Status::Ok();
}

Status SnapshotCreate::Finish() {
  (void)parts_.env->Hit(fault::kCommitted, s_.id);  // past the commit nothing is undone
  return Status::Ok();
}

}  // namespace vmgroup::engine
