// ReferencePointCreate: a recovery snapshot taken and converted at once
// (SnapshotEngine::CreateReferencePoint says what it answers). It runs
// SnapshotCreate, then ReferencePointConvert, each with its own claim, and
// SnapshotDestroy when the conversion fails.
#pragma once

#include <string>
#include <vector>

#include "engine/group_operation.h"

namespace vmgroup::engine {

// Who must run for a CheckTracked.
enum class TrackedBy {
  kKeeping,  // a reference point made: RequireTrackable of every member
  kReading,  // what a tracking marks is read: every member's QEMU runs
};

// The checks of a recovery snapshot of collection `collection_id`, none of
// its members claimed, and of each member as `by` says (ReferencePointExport
// reads). Returns the members.
Result<std::vector<catalog::VmRecord>> CheckTracked(GroupParts& parts, OperationRunner& runner,
                                                    const std::string& collection_id,
                                                    TrackedBy by = TrackedBy::kReading);

class ReferencePointCreate {
 public:
  // `rp_id`: the reference point's id; a new GUID when empty.
  ReferencePointCreate(GroupParts& parts, OperationRunner& runner, std::string collection_id,
                       std::string name, std::string rp_id)
      : parts_(parts),
        runner_(runner),
        collection_id_(std::move(collection_id)),
        name_(std::move(name)),
        rp_id_(std::move(rp_id)) {}

  // What Run refuses before it takes the snapshot.
  Status Validate();
  Result<catalog::ReferencePointRecord> Run();

 private:
  GroupParts& parts_;
  OperationRunner& runner_;
  std::string collection_id_, name_, rp_id_;
};

}  // namespace vmgroup::engine
