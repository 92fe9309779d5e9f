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
// A VM that was a libvirt domain (manifest version 3) comes back as a
// domain, shut off, on an open connection (RestoreRequest::libvirt_uri, else
// the one it was exported from; Unavailable naming `--libvirt URI` when it
// is not open), defined from the exported XML as the libvirt driver
// sanitises it (hypervisor::Driver::PrepareRestore: no QEMU arguments, no
// host devices or host paths it did not make; its disks the copies without
// any <backingStore>), and recorded in the catalog as DomainSync records
// domains. Its copies go where libvirt's QEMU reads images: beside the
// images the domain had when exported, when libvirt keeps images of a
// domain vmgroup knows on that connection there (a directory the operator
// set up for libvirt, with its ownership and labels), else the VM's run
// directory in the state directory.
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
  // The libvirt connection (an open one of the registry's) the export's
  // libvirt domains are defined on; "" for the one each was exported from.
  std::string libvirt_uri;
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
  // - AlreadyExists for an id that is taken (without as_new), and for a
  //   libvirt domain whose UUID or name libvirt or the catalog knows, or
  //   whose copy beside its images would replace a file.
  // - Unavailable for a libvirt domain whose connection is not open.
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
                        const RestoreRequest& request, ExportImages& images);
  // AlreadyExists unless `as_new` or the export's group and VM ids are free.
  Status CheckIdsFree(const ExportManifest& m, bool as_new);
  // The libvirt part of `p`, the plan of domain `vm` read from `dir`.
  Status PlanDomain(const std::string& dir, const ExportedVm& vm, const RestoreRequest& request,
                    VmPlan& p);
  // Where a restored domain's copies go on `uri` (see above): `exported`,
  // or "" for its run directory.
  std::string DomainImageDir(const std::string& uri, const std::string& exported);
  // Defines the domain of plan `v` and records it in the catalog: its id.
  Result<std::string> DefineDomain(const VmPlan& v);

  Env* env_;
  VmRegistry* vms_;
  CollectionManager* collections_;
  catalog::Catalog* catalog_;
};

// Takes back what the restore of `intent` made: its group, its VMs (a
// libvirt domain undefined on its connection), their run directories with
// every file in them and the files it copied elsewhere; then forgets the
// intent. OK once nothing of it is left; Unavailable, naming `--libvirt
// URI`, when a domain's connection is not open, and Failed naming what
// could not be removed: the intent stays then, for the next try.
Status TakeBackRestore(Env* env, VmRegistry& vms, catalog::Catalog& catalog,
                       const catalog::RestoreIntent& intent);

}  // namespace vmgroup::engine
