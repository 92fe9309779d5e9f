// Restoring a group from an export (docs/export-format.md): the group and
// its VMs defined again, each disk a new image copied out of the export
// (an incremental one with the chain of exports it builds on), after every
// file involved was checked against its checksum.
// Nothing is defined from a damaged export, and a failure half-way takes
// back what was made. The restored VMs are left off.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/env.h"
#include "engine/collections.h"
#include "engine/export_manifest.h"
#include "engine/vm_registry.h"

namespace vmgroup::engine {

struct RestoreRequest {
  std::string directory;  // an export: holds manifest.json
  // New ids, and names with "-restored" appended (Hyper-V's GenerateNewID),
  // so the restore sits beside the originals. Otherwise the group and its
  // VMs come back with their own ids and names, which must be free.
  bool as_new = false;
  // Told the percentage done as disks are checked and copied. Optional.
  std::function<void(int)> progress;
};

struct RestoredGroup {
  std::string collection_id;
  std::vector<std::string> vm_ids;  // in the manifest's order
};

class ExportRestorer {
 public:
  ExportRestorer(Env* env, VmRegistry* vms, CollectionManager* collections, catalog::Catalog* c)
      : env_(env), vms_(vms), collections_(collections), catalog_(c) {}

  // Errors, nothing made: InvalidArgument for a directory that is not
  // absolute, holds no manifest or one this build cannot read, or an export
  // without disk images; AlreadyExists for an id that is taken (without
  // as_new); Failed, naming the file, when a file is missing or does not
  // match its checksum (the export is damaged); then any error of copying
  // or defining, after what was made is removed again.
  Result<RestoredGroup> Restore(const RestoreRequest& request);
  // The checks that need no reading of the images: what a job reports at once.
  Status Validate(const RestoreRequest& request);

 private:
  Result<ExportManifest> ReadManifest(const RestoreRequest& request);
  // AlreadyExists unless `as_new` or the export's group and VM ids are free.
  Status CheckIdsFree(const ExportManifest& m, bool as_new);
  // Every file of the export is there, with its size and checksum, and so
  // is every image an incremental one builds on, in its own export.
  Status Verify(const std::string& dir, const ExportManifest& m,
                const std::function<void(uint64_t)>& checked);
  Status VerifyChain(const std::string& dir, const ExportManifest& m, const std::string& vm_id,
                     const ExportedDisk& d, int depth);

  Env* env_;
  VmRegistry* vms_;
  CollectionManager* collections_;
  catalog::Catalog* catalog_;
};

}  // namespace vmgroup::engine
