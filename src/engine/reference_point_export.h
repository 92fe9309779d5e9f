// ReferencePointExport: what changed in a group since a reference point,
// exported (SnapshotEngine::ExportReferencePoint says what it answers). It
// runs SnapshotCreate, SnapshotExport on top of the reference point's
// export, then SnapshotDestroy, each with its own claim.
#pragma once

#include <string>

#include "engine/export_manifest.h"
#include "engine/group_operation.h"

namespace vmgroup::engine {

class ReferencePointExport {
 public:
  ReferencePointExport(GroupParts& parts, OperationRunner& runner, std::string rp_id,
                       ExportRequest request)
      : parts_(parts), runner_(runner), rp_id_(std::move(rp_id)), request_(std::move(request)) {}

  // What Run refuses before it takes the snapshot.
  Status Validate();
  Result<ExportManifest> Run();

 private:
  GroupParts& parts_;
  OperationRunner& runner_;
  std::string rp_id_;
  ExportRequest request_;
};

// What an export of a reference point answers once the snapshot it took
// for it, `name`, was destroyed again (`destroyed`) after the export into
// `directory` (`exported`): the export's own answer, unless the destroy
// failed; then the error says that snapshot is left to destroy, and
// whether the export stands.
Status AfterTakenBack(const Status& exported, const Status& destroyed, const std::string& name,
                      const std::string& directory);

}  // namespace vmgroup::engine
