// SnapshotExport: a group snapshot copied out for backup
// (SnapshotEngine::Export says what it answers).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "engine/export_base.h"
#include "engine/export_manifest.h"
#include "engine/group_operation.h"

namespace vmgroup::engine {

class WrittenExport;  // what an export has made so far

class SnapshotExport : public GroupOperation {
 public:
  // REQUIRES: `request` outlives the operation.
  SnapshotExport(GroupParts& parts, const ExportRequest& request);
  ~SnapshotExport() override;

  // The directory, the snapshot, and the base of an incremental export.
  std::string_view Name() const override { return "export_snapshot"; }
  Status Check() override;
  // Records the export's directory, for recovery to take back.
  Status RecordIntent() override;
  // Writes every file of the export; the manifest, last, commits it.
  Status Work() override;
  // Removes what the export wrote.
  Status Undo(const Status& cause) override;
  // Records the export as a base for later incremental ones.
  Status Finish() override;

  // The manifest written. REQUIRES: the operation ran to its end.
  const ExportManifest& manifest() const { return m_; }

 private:
  // Writes member `i`'s files into the export and records them in `out`.
  Status ExportVm(size_t i, ExportedVm& out);

  GroupParts& parts_;
  const ExportRequest& request_;
  catalog::SnapshotRecord s_;
  std::optional<IncrementalBase> base_;
  std::vector<std::vector<uint64_t>> sizes_;  // per member and disk
  uint64_t total_ = 0, done_ = 0;             // bytes, for progress
  ExportManifest m_;
  std::unique_ptr<WrittenExport> written_;
};

}  // namespace vmgroup::engine
