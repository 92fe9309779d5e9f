// One host's part of an apply across hosts (issue 20; docs/multihost.md
// "Apply across hosts"), driven by the group's coordinator: Prepare, then
// Commit or Abort. The part is an ordinary apply (SnapshotApply) of this
// host's part of the group snapshot, which has the group snapshot's id, cut
// in two at its catalog commit: Prepare stops the members and makes their
// new overlays, all of which Abort still takes back; Commit commits it and
// starts again what an apply starts.
//
// Unlike a part of a cut (host_cuts.h), a prepared part never ends by
// itself: the coordinator records its decision before it tells any host,
// and a host that took its part back on a timeout while another committed
// would leave the group split between two points in time. So a prepared
// part keeps its members claimed and stopped until Commit or Abort comes,
// also across a restart of this host: its intent is held once prepared
// (Catalog::HoldApplyIntent), recovery leaves it be, and TakeUpHeld takes
// it up again. The coordinator sends its decision again until every host
// has answered it; for a coordinator that never comes back, this host's
// operator settles the part with Abort (`vmgroup snapshot release`).
//
// Thread-safe: steps of different parts run concurrently; steps of one part
// one at a time.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "engine/group_operation.h"

namespace vmgroup::engine {

class HostApplies {
 public:
  // REQUIRES: `parts` and `claims` outlive this.
  HostApplies(GroupParts& parts, MemberClaims& claims) : parts_(parts), claims_(claims) {}

  HostApplies(const HostApplies&) = delete;
  HostApplies& operator=(const HostApplies&) = delete;

  // Whether this host can apply its part `snapshot_id`, changing nothing:
  // Apply's checks (SnapshotEngine::ValidateApply), Busy while a member is
  // claimed. OK when the part is held prepared already. The coordinator's
  // first step of each apply: a Prepare after it is no late one (Abort).
  Status Validate(const std::string& snapshot_id);
  // Checks, claims the members, records the intent and prepares the part
  // (members stopped, new overlays made and libvirt domains defined on
  // them), then holds it. OK once held, also when it was held already (the
  // coordinator asking again after an answer it lost). On an error nothing
  // is left of it, unless the error says what could not be taken back
  // (then the part stays held for Abort).
  Status Prepare(const std::string& snapshot_id);
  // Commits the held part and finishes it as an apply on one host does
  // (Finish: a libvirt domain that ran starts again): its errors are the
  // answer, the part applied all the same. An error of the commit itself
  // keeps the part held (the coordinator asks again). With no part held:
  // OK when its members are on the snapshot already (a commit whose answer
  // was lost), else InvalidState.
  Status Commit(const std::string& snapshot_id);
  // Takes the held part back: its members on their old images, those that
  // ran started again. OK when none is held; a Prepare of it that comes
  // later (one the coordinator gave up waiting for, still on its way) is
  // refused. An error says what could not be taken back; the part stays
  // held, for Abort again.
  Status Abort(const std::string& snapshot_id);

  // Takes up the parts recovery left held (this host restarted while they
  // waited). Each whose checks fail now (a member gone, a connection not
  // open) is logged and left in the catalog for the next start.
  void TakeUpHeld();
  // The snapshot ids of the parts held now.
  std::vector<std::string> Held();
  // Why VM `vm_id` is held stopped (the apply, and what settles it), or ""
  // when no part holds it.
  std::string HoldOf(const std::string& vm_id);
  // InvalidState saying HoldOf when VM `vm_id` is a member of a held part:
  // `what` ("starting it") would break it.
  Status CheckNotHeld(const std::string& vm_id, const std::string& what);

 private:
  struct Part;
  std::shared_ptr<Part> Find(const std::string& snapshot_id);
  // Forgets `part` (a step ended it): its members are released. Parts
  // still held when this goes stay held in the catalog, for the next start.
  void Forget(const std::shared_ptr<Part>& part);
  // Whether the apply of `snapshot_id` is still recorded: not all was taken back.
  bool Unsettled(const std::string& snapshot_id);
  // `part`'s checks (SnapshotApply::Check), then its members claimed and
  // recorded in it.
  Status CheckAndClaim(Part& part);
  // Commit's answer with no part held.
  Status CommittedAlready(const std::string& snapshot_id);
  // HoldOf, with the VM's name in `name`. REQUIRES: mu_ held.
  std::string HoldOfLocked(const std::string& vm_id, std::string* name);

  GroupParts& parts_;
  MemberClaims& claims_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Part>> parts_by_id_;  // guarded by mu_
  std::set<std::string> aborted_;  // guarded by mu_: Abort came with no part held
};

}  // namespace vmgroup::engine
