// What an incremental export builds on (ExportRequest::base), and how it
// copies the changes since it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/export_manifest.h"
#include "engine/group_operation.h"

namespace vmgroup::engine {

struct IncrementalBase {
  // The reference point whose bitmaps mark the changes; none when the
  // base is the snapshot right before (the changes are what the frozen
  // images hold themselves).
  std::optional<catalog::ReferencePointRecord> rp;
  std::string snapshot_id;  // of the base export
  std::string directory;    // the base export (absolute)
  ExportManifest manifest;
  std::vector<std::shared_ptr<hypervisor::Vm>> live;  // per member, with `rp`
};

// The base request.base names for an export of snapshot `s` of `vms`:
// InvalidArgument without copy_storage, or for a base that is neither a
// reference point nor a snapshot of the group; NotSupported for a member
// that is off (with a reference point); Failed ("export in full") when the
// base does not lead up to `s` or its export is gone.
Result<IncrementalBase> CheckBase(GroupParts& parts, const ExportRequest& request,
                                  const catalog::SnapshotRecord& s,
                                  const std::vector<catalog::VmRecord>& vms);

// The newest export (directory and manifest) of snapshot `snapshot_id`
// with its disks, into `base`; Failed ("export in full") when there is
// none. `what` names the base in the message.
Status FindBaseExport(GroupParts& parts, const std::string& snapshot_id, const std::string& what,
                      IncrementalBase* base);

// Failed ("export in full") unless every image of `base` that an
// export of `vms` will build on passes export_images.h's checks.
Status CheckBaseImages(const IncrementalBase& base, const std::vector<catalog::VmRecord>& vms);

// Writes to `path` an overlay of `base_file` (recorded as `relative`)
// holding what changed since the base in `disk`'s frozen image of member
// `member`.
Status CopyChanges(GroupParts& parts, const IncrementalBase& base, size_t member,
                   const catalog::SnapshotDisk& disk, const std::string& base_file,
                   const std::string& relative, const std::string& path);

}  // namespace vmgroup::engine
