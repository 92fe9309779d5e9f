#include "engine/export_images.h"

#include <filesystem>
#include <set>

#include "base/validate.h"

namespace vmgroup::engine {
namespace {

std::string Normal(const std::string& path) {
  return std::filesystem::path(path).lexically_normal().string();
}

}  // namespace

Result<std::pair<std::string, const ExportManifest*>> ExportImages::Base(const std::string& dir,
                                                                         const ExportManifest& m,
                                                                         const std::string& image) {
  const std::string base_dir = Normal(dir + "/" + m.base.directory);
  if (auto known = manifests_.find(base_dir); known != manifests_.end()) {
    return std::pair<std::string, const ExportManifest*>(base_dir, &known->second);
  }
  auto read = ReadManifestIn(base_dir);
  if (read.status().code() == Code::kFileNotFound) {
    return Status::Failed("the export " + base_dir + " that " + image +
                          " builds on is missing; an incremental export needs its whole chain");
  }
  VMG_RETURN_IF_ERROR(read.status());
  if (read->snapshot_id != m.base.snapshot_id) {
    return Status::Failed("the export in " + base_dir + " is not the one " + image +
                          " builds on (it holds snapshot " + read->snapshot_id + ", not " +
                          m.base.snapshot_id + ")");
  }
  auto added = manifests_.emplace(base_dir, std::move(read).value()).first;
  return std::pair<std::string, const ExportManifest*>(base_dir, &added->second);
}

Result<std::vector<ExportedImage>> ExportImages::Chain(const std::string& dir,
                                                       const ExportManifest& m,
                                                       const std::string& vm_id,
                                                       const ExportedDisk& d) {
  std::vector<ExportedImage> chain;
  std::set<std::string> exports;  // visited, to stop a chain of exports that loops
  std::string at_dir = dir;
  const ExportManifest* at = &m;
  ExportedDisk disk = d;
  while (true) {
    if (!exports.insert(Normal(at_dir)).second ||
        chain.size() >= static_cast<size_t>(storage::kMaxChainDepth)) {
      return Status::Failed("the exports that " + chain.front().path +
                            " builds on loop or run deeper than " +
                            std::to_string(storage::kMaxChainDepth));
    }
    const std::string path = at_dir + "/" + disk.file;
    VMG_ASSIGN_OR_RETURN(storage::CheckedImage image,
                         storage::InspectImage(path, storage::BackingNames::kRelativeOnly));
    // Appended, not "'" + a temporary: GCC 12 at -O3 warns falsely (-Wrestrict, GCC bug 105651)
    const std::string shown =
        std::string("'").append(Printable(image.header.backing_file)).append("'");
    chain.push_back({.path = path, .disk = disk, .backing = image.header.backing_file});
    if (disk.base_file.empty()) {
      if (image.header.has_backing) {
        return Status::InvalidArgument(
            "image " + path + " names the backing file " + shown +
            ", but its manifest lists it as a full image; an export's images stand alone or "
            "build on their base export's");
      }
      return chain;
    }
    if (!image.header.has_backing) {
      return Status::InvalidArgument("image " + path +
                                     " names no backing file, but its manifest lists it as "
                                     "building on " +
                                     disk.base_file);
    }
    VMG_ASSIGN_OR_RETURN(auto base, Base(at_dir, *at, path));
    const ExportedDisk* below = FindDisk(*base.second, vm_id, disk.index);
    if (!below) {
      return Status::Failed("the export in " + base.first + " lacks the disk " + path +
                            " builds on");
    }
    const std::string expected = Normal(base.first + "/" + below->file);
    if (Normal(at_dir + "/" + disk.base_file) != expected) {
      return Status::InvalidArgument(
          "the manifest in " + at_dir + " says " + path + " builds on " + disk.base_file +
          ", which is not the image its base export lists (" + expected + ")");
    }
    if (Normal(image.backing_path) != expected) {
      return Status::InvalidArgument("image " + path + " names the backing file " + shown +
                                     ", which is not the image it builds on in its base "
                                     "export (" +
                                     expected + ")");
    }
    at_dir = base.first;
    at = base.second;
    disk = *below;
  }
}

}  // namespace vmgroup::engine
