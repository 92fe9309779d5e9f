// SnapshotCreate: a snapshot of every VM in a collection, as DESIGN §4 lays
// it out — check, persist intent, prepare while the VMs run, cut, commit —
// all or nothing (SnapshotEngine::Create says what it answers).
#pragma once

#include <memory>
#include <vector>

#include "engine/group_operation.h"
#include "engine/guest_freeze.h"

namespace vmgroup::engine {

class SnapshotCreate : public GroupOperation {
 public:
  // `started`: when the caller began the snapshot, for its duration (only
  // a run records one). REQUIRES: `request` outlives the operation.
  SnapshotCreate(GroupParts& parts, const SnapshotRequest& request, Clock::time_point started = {})
      : parts_(parts), request_(request), started_(started) {}

  std::string_view Name() const override { return "create_snapshot"; }
  Status Check() override;
  Status RecordIntent() override;
  Status Work() override;
  // Undoes the snapshot: every VM runs on its previous images again.
  Status Undo(const Status& cause) override;
  Status Finish() override;
  // The snapshot's pauses, freeze window and duration, under the group's name.
  void Report(OperationMetrics& metrics) const override {
    metrics.SnapshotTaken(collection_.name, s_, members_);
  }

  // The live VM of each member that runs or is paused (null when off),
  // taken once: a VM stopped meanwhile fails its calls instead of
  // vanishing. REQUIRES: Check() returned OK.
  const std::vector<std::shared_ptr<hypervisor::Vm>>& live() const { return live_; }
  // The snapshot; Complete once the operation ran to its end.
  const catalog::SnapshotRecord& snapshot() const { return s_; }

 private:
  Status Prepare();
  // Arms the thaw guard and freezes every running member (application
  // consistency); `frozen_index` gets the member index of each of the
  // result's members. Without request.fallback, the first member that
  // could not freeze is the error (the others are thawed again); with it,
  // request.warning is told of each.
  Result<std::unique_ptr<GuestFreeze>> FreezeGuests(std::vector<size_t>* frozen_index);

  GroupParts& parts_;
  const SnapshotRequest& request_;
  Clock::time_point started_;
  catalog::CollectionRecord collection_;
  std::vector<std::shared_ptr<hypervisor::Vm>> live_;
  catalog::SnapshotRecord s_;
};

}  // namespace vmgroup::engine
