// ReferencePointDestroy: a reference point forgotten, its tracking dropped
// (SnapshotEngine::DestroyReferencePoint says what it answers).
#pragma once

#include <string>
#include <vector>

#include "engine/group_operation.h"

namespace vmgroup::engine {

class ReferencePointDestroy : public GroupOperation {
 public:
  ReferencePointDestroy(GroupParts& parts, std::string rp_id)
      : parts_(parts), rp_id_(std::move(rp_id)) {}

  // Claims no member: it changes no member's images or power, and never
  // waited for another operation on them.
  std::string_view Name() const override { return "destroy_reference_point"; }
  Status Check() override;
  // Drops the tracking on running members and forgets the record.
  Status Work() override;
  // Sweeps what the drops missed.
  Status Finish() override;

 private:
  GroupParts& parts_;
  std::string rp_id_;
  catalog::ReferencePointRecord rp_;
};

}  // namespace vmgroup::engine
