#include "storage/image_check.h"

#include <filesystem>
#include <set>

#include "base/validate.h"
#include "storage/untrusted_files.h"

namespace vmgroup::storage {
namespace {

constexpr uint64_t kKnownIncompatible = kQcow2Dirty | kQcow2CompressionType | kQcow2ExtendedL2;

// QEMU takes a name with a ':' before its first '/' as "protocol:rest"
// (json:, nbd:, http:, ...), not as a file.
bool NamesProtocol(const std::string& name) {
  const size_t colon = name.find(':');
  return colon != std::string::npos && colon < name.find('/');
}

Status Refuse(const std::string& path, const std::string& why) {
  return Status::InvalidArgument("image " + path + " " + why);
}

Status CheckBacking(const std::string& path, const Qcow2Header& h, BackingNames names) {
  // Appended, not "'" + a temporary: GCC 12 at -O3 warns falsely (-Wrestrict, GCC bug 105651)
  const std::string shown = std::string("'").append(Printable(h.backing_file)).append("'");
  if (!CheckText("backing file name", h.backing_file, kQcow2MaxBackingName).ok()) {
    return Refuse(
        path, "names a backing file " + shown + " that holds control characters or is not UTF-8");
  }
  if (NamesProtocol(h.backing_file)) {
    return Refuse(path, "names its backing file " + shown +
                            " as a protocol or json: filename; only plain files are accepted");
  }
  if (h.backing_file[0] == '/' && names == BackingNames::kRelativeOnly) {
    return Refuse(path, "names its backing file by the absolute path " + shown +
                            "; an export's images may only name files of the export, "
                            "relative to themselves");
  }
  if (h.backing_format.empty()) {
    return Refuse(path, "does not give the format of its backing file " + shown +
                            " (QEMU would guess it from the content)");
  }
  if (h.backing_format != "qcow2") {
    return Refuse(path, "gives its backing file " + shown + " the format '" +
                            Printable(h.backing_format) + "'; only qcow2 is accepted");
  }
  return Status::Ok();
}

}  // namespace

Result<CheckedImage> InspectImage(const std::string& path, BackingNames names) {
  VMG_ASSIGN_OR_RETURN(std::string head, ReadHead(path, kQcow2MaxHeaderBytes));
  auto parsed = ParseQcow2Header(head);
  if (!parsed.ok()) return Refuse(path, "is " + parsed.status().message());
  CheckedImage image{.path = path, .header = std::move(parsed).value()};
  const Qcow2Header& h = image.header;
  if (h.crypt_method != 0) return Refuse(path, "is encrypted; vmgroup cannot use it");
  if (h.incompatible_features & kQcow2Corrupt) {
    return Refuse(path, "is marked corrupt; repair it with qemu-img check -r first");
  }
  if ((h.incompatible_features & kQcow2ExternalData) || h.has_data_file) {
    return Refuse(path, "keeps its data in an external data file ('" + Printable(h.data_file) +
                            "'); only self-contained qcow2 images are accepted");
  }
  if (h.incompatible_features & ~kKnownIncompatible) {
    return Refuse(path, "uses qcow2 features this vmgroup does not know (incompatible bits " +
                            std::to_string(h.incompatible_features & ~kKnownIncompatible) + ")");
  }
  if (h.has_backing) {
    VMG_RETURN_IF_ERROR(CheckBacking(path, h, names));
    image.backing_path =
        h.backing_file[0] == '/'
            ? h.backing_file
            : std::filesystem::path(path).parent_path().string() + "/" + h.backing_file;
  }
  return image;
}

Result<std::vector<CheckedImage>> InspectHostChain(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return Status::InvalidArgument("image '" + Printable(path) + "' must be an absolute path");
  }
  std::vector<CheckedImage> chain;
  std::set<std::string> seen;
  for (std::string next = path; !next.empty();) {
    if (!seen.insert(std::filesystem::path(next).lexically_normal().string()).second) {
      return Refuse(chain.back().path, "has a backing chain that loops back to " + next);
    }
    if (chain.size() >= static_cast<size_t>(kMaxChainDepth)) {
      return Refuse(path, "has a backing chain deeper than " + std::to_string(kMaxChainDepth));
    }
    auto image = InspectImage(next, BackingNames::kAbsoluteToo);
    if (!image.ok()) {
      if (chain.empty() || image.status().code() != Code::kFileNotFound) return image.status();
      return Refuse(chain.back().path,
                    "names a backing file that is missing: " + image.status().message());
    }
    next = image->backing_path;
    chain.push_back(std::move(image).value());
  }
  return chain;
}

}  // namespace vmgroup::storage
