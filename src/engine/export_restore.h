// Restoring a group from an export (docs/export-format.md): the group and
// its VMs defined again from copies of the export's files in each VM's run
// directory.
//
// An export is data, never instructions: it may have sat on any backup
// storage, and whoever could write there could rewrite it, checksums
// included. So a restore takes from it only what a VM definition needs,
// checked against the bounds every definition meets (VmRegistry::
// CheckBounds): names, memory, vCPUs, disks. It never takes QEMU arguments
// (a configuration with extra_args is refused), takes a kernel and initrd
// only as files of the export (never a host path), and judges every image,
// with its chain through the base exports, by our own reading of its header
// (export_images.h) before anything opens it. Then it copies each file byte
// for byte into the state directory, checks the copy against its checksum
// and the copied image headers again, and points each copied overlay at the
// copy below it (qemu-img rebase -u), so the restored VMs open nothing
// outside the state directory. The restored VMs are left off.
//
// Nothing is made from an export that fails a check, and a failure half-way
// takes back everything made: VMs, group, files and directories. A restore
// records its intent (the group's and VMs' ids) before it makes anything,
// so that recovery takes back one a crash cut short (TakeBackRestore).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/env.h"
#include "engine/collections.h"
#include "engine/export_manifest.h"
#include "engine/vm_registry.h"

namespace vmgroup::engine {

class ExportImages;

struct RestoreRequest {
  std::string directory;  // an export: holds manifest.json
  // New ids, and names with "-restored" appended (Hyper-V's GenerateNewID),
  // so the restore sits beside the originals. Otherwise the group and its
  // VMs come back with their own ids and names, which must be free.
  bool as_new = false;
  // Told the percentage done as files are copied. Optional.
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

  // Errors, nothing made:
  // - InvalidArgument for a directory that is not absolute or holds control
  //   characters; a manifest that is missing, too large, of an unknown
  //   version or not well-formed (export_manifest.h ParseManifest); an
  //   export without disk images; and, naming the file: a configuration
  //   that is too large, malformed, carries QEMU arguments, names a host
  //   file (or one the manifest does not list) as its kernel or initrd, or
  //   disagrees with the manifest; an image that fails the checks of
  //   export_images.h; a file that is a symbolic link, lies behind one or
  //   is not a regular file; a definition out of bounds (including a name
  //   that "-restored" makes too long).
  // - AlreadyExists for an id that is taken (without as_new).
  // - Failed, naming the file, when a file does not match its checksum (the
  //   export is damaged), or an incremental export's base is missing.
  // - FileNotFound for a missing file; then any error of copying or
  //   defining, after what was made is removed again.
  Result<RestoredGroup> Restore(const RestoreRequest& request);
  // Every check that needs no copy (all of the above but the checksums of
  // the images): what a job reports at once.
  Status Validate(const RestoreRequest& request);

 private:
  struct Plan;
  struct VmPlan;
  // Reads and checks the whole export: what Restore will copy and define.
  Result<Plan> MakePlan(const RestoreRequest& request);
  // The part of the plan for VM `vm` of the export `m` at `dir`.
  Result<VmPlan> PlanVm(const std::string& dir, const ExportManifest& m, const ExportedVm& vm,
                        bool as_new, ExportImages& images);
  // AlreadyExists unless `as_new` or the export's group and VM ids are free.
  Status CheckIdsFree(const ExportManifest& m, bool as_new);

  Env* env_;
  VmRegistry* vms_;
  CollectionManager* collections_;
  catalog::Catalog* catalog_;
};

// Takes back what the restore of `intent` made: its group, its VMs, and
// their run directories with every file in them; then forgets the intent.
// OK once nothing of it is left; Failed naming what could not be removed
// (the intent stays, for the next try).
Status TakeBackRestore(Env* env, VmRegistry& vms, catalog::Catalog& catalog,
                       const catalog::RestoreIntent& intent);

}  // namespace vmgroup::engine
