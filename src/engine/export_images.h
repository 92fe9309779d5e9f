// The disk images of an export, judged before anything opens them
// (storage/image_check.h): restore reads them, and an incremental export
// names its base export's images as backing files. An export may have been
// rewritten by whoever could write where it sat, manifest and checksums
// included, so an image's header counts only when it names exactly what the
// manifests say: a full image names no backing file; an incremental one
// names, relative to itself, the image of the same VM and disk in its base
// export, which the base export's manifest lists — and so on down to a full
// image. Nothing else (an absolute name, '../x', json:, a data file) passes.
//
// Not thread-safe: one per restore or export.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "engine/export_manifest.h"
#include "storage/image_check.h"

namespace vmgroup::engine {

// One image of a disk's chain across exports.
struct ExportedImage {
  std::string path;     // the file: its export's directory + "/" + disk.file
  ExportedDisk disk;    // as its export's manifest lists it
  std::string backing;  // the backing name in its header, as written; empty for a full image
};

class ExportImages {
 public:
  // Disk `d` of VM `vm_id` in the export `m` at `dir` (an absolute path
  // reached through no symbolic link), with the images it builds on, top
  // first, the full image last; every one InspectImage'd (relative names
  // only) and matched against the manifests. Reads base manifests once.
  //
  // InvalidArgument naming the image for one whose header breaks the rules
  // or disagrees with its manifest; Failed when a base export is missing,
  // is not the one the manifest names, or lacks the image, or the chain of
  // exports loops or runs deeper than storage::kMaxChainDepth;
  // FileNotFound for a missing image.
  Result<std::vector<ExportedImage>> Chain(const std::string& dir, const ExportManifest& m,
                                           const std::string& vm_id, const ExportedDisk& d);

 private:
  // The manifest of the base export of `m` (at `dir`), read once.
  Result<std::pair<std::string, const ExportManifest*>> Base(const std::string& dir,
                                                             const ExportManifest& m,
                                                             const std::string& image);

  std::map<std::string, ExportManifest> manifests_;  // by directory
};

}  // namespace vmgroup::engine
