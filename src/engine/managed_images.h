// ManagedImages: which image files vmgroup already manages, so that none of
// them becomes the disk of another VM. A VM run on another VM's active image
// writes under that VM's feet; one run on a snapshot's frozen image changes
// the snapshot for good; one run on an export's image changes the backup.
//
// Managed, each named with its owner:
//   - every VM's active image of every disk ("is VM V's active disk 0");
//   - every frozen image, overlay and memory state of every snapshot
//     ("is the frozen image of disk 0 of VM V in snapshot S");
//   - every image of every reference point;
//   - any file under the state directory, except in the run directory of
//     the VM being defined (a restore copies that VM's images there first);
//   - any file whose directory, or that directory's parent, holds an
//     export manifest (export_manifest.h kManifestFile: an export's images
//     sit in <export>/<vm-id>/).
// Files are compared by identity (device and inode), never by name: a
// symbolic link, a hard link or a bind mount names the same image.
//
// The backing chain of a new disk counts too: QEMU opens backing files
// read-only, but a managed image below a new VM is still wrong — an active
// image changes under the new VM, and destroying a snapshot merges its
// child into the frozen image, which would change the new VM's disk
// behind its back. So every image of the chain is checked.
//
// Thread-safe (reads the catalog only).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "catalog/catalog.h"

namespace vmgroup::engine {

class ManagedImages {
 public:
  // What the catalog knows at this instant, and the state directory.
  // `own_run_dir`: the run directory of the VM being defined, which may
  // hold its own (restored) images.
  static Result<ManagedImages> Load(catalog::Catalog& catalog, const std::string& state_dir,
                                    const std::string& own_run_dir);

  // OK when `path` is none of the managed images; InvalidArgument naming
  // `path` and its owner otherwise. A missing file is not managed.
  Status Refuse(const std::string& path) const;

 private:
  using Identity = std::pair<uint64_t, uint64_t>;  // st_dev, st_ino
  void Note(const std::string& path, std::string owner);
  std::map<Identity, std::string> owners_;  // identity -> "is VM V's active disk 0"
  std::string state_dir_, own_run_dir_;     // resolved
};

}  // namespace vmgroup::engine
