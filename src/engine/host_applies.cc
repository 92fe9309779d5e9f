#include "engine/host_applies.h"

#include <optional>

#include "base/log.h"
#include "engine/snapshot_apply.h"

namespace vmgroup::engine {
namespace {

std::string PartOf(const std::string& snapshot_id) {
  return "this host's part of the apply of snapshot " + snapshot_id;
}

// What settles a held part on this host, for messages.
std::string Settles(const std::string& snapshot_id) {
  return "its coordinator commits or aborts it, or this host's operator takes it back "
         "(vmgroup snapshot release " +
         snapshot_id + ")";
}

}  // namespace

struct HostApplies::Part {
  Part(GroupParts& parts, const std::string& snapshot_id)
      : request{.snapshot_id = snapshot_id}, op(parts, request) {}
  const ApplyRequest request;
  SnapshotApply op;                  // refers to request
  std::optional<MemberClaim> claim;  // from its checks on
  std::mutex mu;                     // held by the step under way
  // Guarded by HostApplies::mu_: the members claimed (from the claim on),
  // and whether Commit may commit it.
  std::vector<catalog::VmRecord> members;
  bool prepared = false;
};

std::shared_ptr<HostApplies::Part> HostApplies::Find(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  auto it = parts_by_id_.find(snapshot_id);
  return it == parts_by_id_.end() ? nullptr : it->second;
}

void HostApplies::Forget(const std::shared_ptr<Part>& part) {
  std::lock_guard lock(mu_);
  auto it = parts_by_id_.find(part->request.snapshot_id);
  if (it != parts_by_id_.end() && it->second == part) parts_by_id_.erase(it);
}

bool HostApplies::Unsettled(const std::string& snapshot_id) {
  auto intents = parts_.catalog->ListApplyIntents();
  if (!intents.ok()) return true;  // not known to be settled
  for (const auto& intent : *intents) {
    if (intent.snapshot_id == snapshot_id) return true;
  }
  return false;
}

Status HostApplies::CheckAndClaim(Part& part) {
  VMG_RETURN_IF_ERROR(part.op.Check());
  VMG_ASSIGN_OR_RETURN(MemberClaim claim, claims_.Claim(part.op.members()));
  part.claim.emplace(std::move(claim));
  std::lock_guard lock(mu_);
  part.members = part.op.members();
  return Status::Ok();
}

Status HostApplies::Validate(const std::string& snapshot_id) {
  {
    std::lock_guard lock(mu_);
    aborted_.erase(snapshot_id);  // a new apply of it begins
    auto it = parts_by_id_.find(snapshot_id);
    if (it != parts_by_id_.end() && it->second->prepared) return Status::Ok();
  }
  const ApplyRequest request{.snapshot_id = snapshot_id};
  SnapshotApply op(parts_, request);
  VMG_RETURN_IF_ERROR(op.Check());
  return claims_.CheckFree(op.members());
}

Status HostApplies::Prepare(const std::string& snapshot_id) {
  auto part = std::make_shared<Part>(parts_, snapshot_id);
  std::lock_guard step(part->mu);
  {
    std::lock_guard lock(mu_);
    if (aborted_.count(snapshot_id) > 0) {
      return Status::Cancelled("the coordinator aborted the apply of snapshot " + snapshot_id +
                               " before this host prepared its part");
    }
    auto [it, added] = parts_by_id_.emplace(snapshot_id, part);
    if (!added) {
      if (it->second->prepared) return Status::Ok();
      return Status::Busy(PartOf(snapshot_id) +
                          " is being prepared, or waits to be taken back (Abort)");
    }
  }
  SnapshotApply& op = part->op;
  Status checked = CheckAndClaim(*part);
  if (checked.ok()) checked = op.RecordIntent();
  if (!checked.ok()) {
    Forget(part);
    return checked;
  }
  // Held only once whole: a part cut short before is recovery's to undo.
  Status prepared = op.Prepare();
  if (prepared.ok()) prepared = parts_.catalog->HoldApplyIntent(snapshot_id, op.tag());
  if (prepared.ok()) {
    std::lock_guard lock(mu_);
    part->prepared = true;
    return Status::Ok();
  }
  Status undone = op.Undo(prepared);
  if (!Unsettled(snapshot_id)) Forget(part);  // else kept for Abort, its members claimed
  return undone;
}

Status HostApplies::CommittedAlready(const std::string& snapshot_id) {
  VMG_ASSIGN_OR_RETURN(catalog::SnapshotRecord s, parts_.catalog->GetSnapshot(snapshot_id));
  for (const auto& m : s.members) {
    auto vm = parts_.catalog->GetVm(m.vm_id);
    if (!vm.ok() || vm->last_applied != m.id) {
      return Status::InvalidState("this host holds no part of the apply of snapshot " +
                                  snapshot_id +
                                  " to commit: it was not prepared here, or it was taken back");
    }
  }
  return Status::Ok();
}

Status HostApplies::Commit(const std::string& snapshot_id) {
  auto part = Find(snapshot_id);
  if (!part) return CommittedAlready(snapshot_id);
  std::lock_guard step(part->mu);
  if (Find(snapshot_id) != part) return CommittedAlready(snapshot_id);  // a step ended it
  {
    std::lock_guard lock(mu_);
    if (!part->prepared) {
      return Status::InvalidState(PartOf(snapshot_id) +
                                  " was not prepared whole: only Abort settles it");
    }
  }
  VMG_RETURN_IF_ERROR(part->op.Commit().Annotate("committing " + PartOf(snapshot_id)));
  Status finished = part->op.Finish();
  Forget(part);
  return finished;
}

Status HostApplies::Abort(const std::string& snapshot_id) {
  auto part = Find(snapshot_id);
  if (!part) {
    std::lock_guard lock(mu_);
    aborted_.insert(snapshot_id);
    return Status::Ok();
  }
  std::lock_guard step(part->mu);
  if (Find(snapshot_id) != part) return Status::Ok();  // a step ended it
  Status undone = part->op.Undo(Status::Cancelled("aborted"));
  if (Unsettled(snapshot_id)) {
    return Status::Failed("taking back " + PartOf(snapshot_id) + ": " + undone.message() +
                          "; it stays held, for Abort again");
  }
  Forget(part);
  return Status::Ok();
}

void HostApplies::TakeUpHeld() {
  auto intents = parts_.catalog->ListApplyIntents();
  if (!intents.ok()) {
    Log(LogLevel::kWarning, "applies held across hosts: " + intents.status().ToString());
    return;
  }
  for (const auto& intent : *intents) {
    if (!intent.held || intent.committed) continue;
    const std::string& id = intent.snapshot_id;
    auto part = std::make_shared<Part>(parts_, id);
    if (Status st = CheckAndClaim(*part); !st.ok()) {
      Log(LogLevel::kWarning, PartOf(id) + ", held for its coordinator, cannot be taken up (" +
                                  st.message() + "); it stays as it is until the next start");
      continue;
    }
    part->op.TakeUp(intent);
    {
      std::lock_guard lock(mu_);
      part->prepared = true;
      parts_by_id_.emplace(id, part);
    }
    Log(LogLevel::kInfo, PartOf(id) +
                             " was prepared before the service restarted: its members stay "
                             "stopped until " +
                             Settles(id));
  }
}

std::vector<std::string> HostApplies::Held() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, part] : parts_by_id_) out.push_back(id);
  return out;
}

std::string HostApplies::HoldOfLocked(const std::string& vm_id, std::string* name) {
  for (const auto& [id, part] : parts_by_id_) {
    for (const auto& vm : part->members) {
      if (vm.id != vm_id) continue;
      *name = vm.name;
      return "held stopped by " + PartOf(id) + " across hosts until " + Settles(id);
    }
  }
  return "";
}

std::string HostApplies::HoldOf(const std::string& vm_id) {
  std::lock_guard lock(mu_);
  std::string name;
  return HoldOfLocked(vm_id, &name);
}

Status HostApplies::CheckNotHeld(const std::string& vm_id, const std::string& what) {
  std::lock_guard lock(mu_);
  std::string name;
  const std::string why = HoldOfLocked(vm_id, &name);
  if (why.empty()) return Status::Ok();
  return Status::InvalidState("VM " + name + " is " + why + "; " + what +
                              " would split the group between two points in time");
}

}  // namespace vmgroup::engine
