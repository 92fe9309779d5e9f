// SnapshotDestroy: a group snapshot merged away as a unit
// (SnapshotEngine::Destroy says what it answers).
#pragma once

#include <vector>

#include "engine/group_operation.h"

namespace vmgroup::engine {

class SnapshotDestroy : public GroupOperation {
 public:
  SnapshotDestroy(GroupParts& parts, const DestroyRequest& request)
      : parts_(parts), snapshot_id_(request.snapshot_id) {}
  // The destroy of `s`, already checked, with its members `vms`: one step
  // of an operation that holds them (OperationRunner::RunClaimed).
  SnapshotDestroy(GroupParts& parts, const catalog::SnapshotRecord& s,
                  const std::vector<catalog::VmRecord>& vms)
      : parts_(parts), snapshot_id_(s.id), s_(s) {
    members_ = vms;
  }

  std::string_view Name() const override { return "destroy_snapshot"; }
  Status Check() override;
  // The merges, planned and marked in the catalog (the snapshot is being
  // destroyed); those it stored, for a destroy already under way.
  Status RecordIntent() override;
  // Detaches the snapshot's images from those they do not merge into.
  Status Work() override;
  // Nothing merged yet: the snapshot stays, as it was.
  Status Undo(const Status& cause) override;
  // The merges; a failure leaves the snapshot being destroyed.
  Status Finish() override;

 private:
  GroupParts& parts_;
  std::string snapshot_id_;
  catalog::SnapshotRecord s_;
  bool resumed_ = false;  // a destroy already under way
  std::vector<catalog::DiskMerge> merges_;
};

}  // namespace vmgroup::engine
