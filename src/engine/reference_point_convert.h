// ReferencePointConvert: a recovery snapshot becomes the anchor of the next
// incremental backup (SnapshotEngine::ConvertToReferencePoint says what it
// answers).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/group_operation.h"

namespace vmgroup::engine {

class ReferencePointConvert : public GroupOperation {
 public:
  // `rp_id`: the reference point's id; a new GUID when empty.
  ReferencePointConvert(GroupParts& parts, std::string snapshot_id, std::string rp_id)
      : parts_(parts), snapshot_id_(std::move(snapshot_id)), rp_id_(std::move(rp_id)) {}

  std::string_view Name() const override { return "convert_to_reference_point"; }
  Status Check() override;
  // Keeps the tracking the snapshot's cut started and records the
  // reference point.
  Status RecordIntent() override;
  // Destroys the snapshot (its members are held already).
  Status Work() override;
  // Takes the record back unless the destroy began merging.
  Status Undo(const Status& cause) override;

  // The reference point made. REQUIRES: the operation ran to its end.
  const catalog::ReferencePointRecord& reference_point() const { return rp_; }

 private:
  GroupParts& parts_;
  std::string snapshot_id_, rp_id_;
  catalog::SnapshotRecord s_;
  std::vector<std::shared_ptr<hypervisor::Vm>> live_;
  catalog::ReferencePointRecord rp_;
};

}  // namespace vmgroup::engine
