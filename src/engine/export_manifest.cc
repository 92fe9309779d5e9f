#include "engine/export_manifest.h"

#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "base/ids.h"
#include "base/validate.h"
#include "engine/spanning_export.h"
#include "engine/vm_registry.h"
#include "storage/untrusted_files.h"

namespace vmgroup::engine {
namespace {

using nlohmann::json;

// Reads a JSON document whose shape `read` checks; any mismatch of names or
// types is one InvalidArgument naming `what`.
template <typename T, typename Read>
Result<T> Parse(const std::string& text, const char* what, Read read) {
  // The reader's messages quote what it read: Printable keeps a crafted
  // file's bytes from reaching a terminal raw.
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string(what) +
                                   " is not valid JSON: " + Printable(e.what()));
  }
  if (!doc.is_object()) return Status::InvalidArgument(std::string(what) + " is not a JSON object");
  try {
    return read(doc);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string(what) + " is malformed: " + Printable(e.what()));
  }
}

// A whole number that fits int64_t, as written: 1e3, 2.5 and 2^64 are no
// such numbers (get<int64_t> would round or wrap them silently).
int64_t Whole(const json& doc, const char* key) {
  const json& v = doc.at(key);
  const bool fits =
      v.is_number_integer() && !(v.is_number_unsigned() &&
                                 v.get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()});
  if (!fits) {
    throw json::type_error::create(302, std::string(key) + " must be a whole number", &v);
  }
  return v.get<int64_t>();
}

// The same for a size or count that cannot be negative.
uint64_t Count(const json& doc, const char* key) {
  const json& v = doc.at(key);
  if (!v.is_number_unsigned()) {
    throw json::type_error::create(302, std::string(key) + " must be a whole number >= 0", &v);
  }
  return v.get<uint64_t>();
}

// Pretty JSON; a byte that is not UTF-8 (a name recorded before names were
// checked) becomes U+FFFD instead of an exception.
std::string Dump(const json& doc) {
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Status Guid(const std::string& what, const std::string& id) {
  if (IsGuid(id)) return Status::Ok();
  return Status::InvalidArgument(what + " '" + Printable(id) + "' is not a GUID");
}

// A name the manifest gives a file, relative to `base`: printable, not
// absolute, and (when `inside`) not leading out of the export.
Status RelativeName(const std::string& what, const std::string& name, bool inside) {
  VMG_RETURN_IF_ERROR(CheckText(what, name, kMaxPathBytes));
  if (name.empty() || name[0] == '/') {
    return Status::InvalidArgument(what + " '" + name +
                                   "' must name a file relative to the export directory");
  }
  const std::string normal = std::filesystem::path(name).lexically_normal().string();
  if (inside && (normal == "." || normal == ".." || normal.rfind("../", 0) == 0)) {
    return Status::InvalidArgument(what + " '" + name + "' leads out of the export directory");
  }
  return Status::Ok();
}

Status CheckFile(const std::string& what, const ExportedFile& f) {
  return f.empty() ? Status::Ok() : RelativeName(what, f.file, true);
}

Status CheckDomain(const std::string& of, int version, const ExportedDomain& d) {
  if (d.empty() && d.uri.empty()) return Status::Ok();
  if (version < 3) {
    return Status::InvalidArgument(of + "a libvirt domain in a manifest of version " +
                                   std::to_string(version) + " (domains came with version 3)");
  }
  VMG_RETURN_IF_ERROR(CheckText(of + "the libvirt URI", d.uri, kMaxPathBytes));
  if (d.uri.empty() || d.empty()) {
    return Status::InvalidArgument(of + "a libvirt domain needs its URI and its definition");
  }
  VMG_RETURN_IF_ERROR(RelativeName(of + "the domain definition", d.definition.file, true));
  if (!d.image_dir.empty()) {
    VMG_RETURN_IF_ERROR(CheckClientPath(of + "the domain's image directory", d.image_dir));
  }
  return Status::Ok();
}

// Everything ParseManifest promises beyond the JSON's shape.
Status CheckManifest(const ExportManifest& m) {
  VMG_RETURN_IF_ERROR(Guid("the group's id", m.collection_id));
  VMG_RETURN_IF_ERROR(CheckName("the group's name", m.collection_name));
  VMG_RETURN_IF_ERROR(Guid("the snapshot's id", m.snapshot_id));
  VMG_RETURN_IF_ERROR(CheckText("the snapshot's name", m.snapshot_name, kMaxNameBytes));
  if (!m.base.empty()) {
    VMG_RETURN_IF_ERROR(RelativeName("the base export", m.base.directory, false));
    VMG_RETURN_IF_ERROR(Guid("the base export's snapshot", m.base.snapshot_id));
    if (!m.base.reference_point_id.empty()) {
      VMG_RETURN_IF_ERROR(Guid("the base reference point", m.base.reference_point_id));
    }
  }
  std::set<std::string> ids;
  for (const auto& vm : m.vms) {
    VMG_RETURN_IF_ERROR(Guid("a VM's id", vm.id));
    const std::string of = "VM " + vm.id + ": ";
    if (!ids.insert(vm.id).second) {
      return Status::InvalidArgument(of + "the manifest lists this VM twice");
    }
    VMG_RETURN_IF_ERROR(CheckName(of + "the name", vm.name));
    VMG_RETURN_IF_ERROR(Guid(of + "the member snapshot's id", vm.member_snapshot_id));
    VMG_RETURN_IF_ERROR(RelativeName(of + "the configuration", vm.config_file, true));
    VMG_RETURN_IF_ERROR(CheckFile(of + "the kernel", vm.kernel));
    VMG_RETURN_IF_ERROR(CheckFile(of + "the initrd", vm.initrd));
    VMG_RETURN_IF_ERROR(CheckDomain(of, m.version, vm.domain));
    if (vm.disks.size() > kMaxDisks) {
      return Status::InvalidArgument(of + std::to_string(vm.disks.size()) +
                                     " disks; a VM has at most " + std::to_string(kMaxDisks));
    }
    for (size_t i = 0; i < vm.disks.size(); ++i) {
      const ExportedDisk& d = vm.disks[i];
      if (d.index != static_cast<int>(i)) {
        return Status::InvalidArgument(
            of + "disk " + std::to_string(d.index) + " is listed where disk " + std::to_string(i) +
            " belongs; a VM's disks are listed once each, by index from 0 " + "without gaps");
      }
      const std::string disk = of + "disk " + std::to_string(i);
      if (m.storage == d.file.empty()) {
        return Status::InvalidArgument(
            disk + (m.storage ? " has no image file"
                              : " has an image file in an export without disk images"));
      }
      if (m.storage) VMG_RETURN_IF_ERROR(RelativeName(disk + ": the image", d.file, true));
      if (m.base.empty() != d.base_file.empty()) {
        return Status::InvalidArgument(
            disk + (m.base.empty() ? " names a base image in a full export"
                                   : " names no base image in an incremental export"));
      }
      if (!d.base_file.empty()) {
        VMG_RETURN_IF_ERROR(RelativeName(disk + ": the base image", d.base_file, false));
      }
    }
  }
  return Status::Ok();
}

ExportedFile ReadFile(const json& vm, const char* key) {
  auto f = vm.find(key);
  if (f == vm.end() || f->is_null()) return {};
  return {.file = f->at("file").get<std::string>(),
          .file_size = Count(*f, "file_size"),
          .checksum = f->at("checksum").get<std::string>()};
}

json FileToJson(const ExportedFile& f) {
  if (f.empty()) return nullptr;
  return {{"file", f.file}, {"file_size", f.file_size}, {"checksum", f.checksum}};
}

json DomainToJson(const ExportedDomain& d) {
  if (d.empty()) return nullptr;
  return {{"uri", d.uri}, {"definition", FileToJson(d.definition)}, {"image_dir", d.image_dir}};
}

ExportedDomain ReadDomain(const json& vm) {
  auto d = vm.find("libvirt");
  if (d == vm.end() || d->is_null()) return {};
  return {.uri = d->at("uri").get<std::string>(),
          .definition = ReadFile(*d, "definition"),
          .image_dir = d->at("image_dir").get<std::string>()};
}

}  // namespace

std::string ManifestToJson(const ExportManifest& m) {
  json vms = json::array();
  for (const auto& vm : m.vms) {
    json disks = json::array();
    for (const auto& d : vm.disks) {
      disks.push_back({{"index", d.index},
                       {"file", d.file},
                       {"virtual_size", d.virtual_size},
                       {"file_size", d.file_size},
                       {"checksum", d.checksum},
                       {"base_file", d.base_file}});
    }
    vms.push_back({{"id", vm.id},
                   {"name", vm.name},
                   {"member_snapshot_id", vm.member_snapshot_id},
                   {"config_file", vm.config_file},
                   {"config_checksum", vm.config_checksum},
                   {"kernel", FileToJson(vm.kernel)},
                   {"initrd", FileToJson(vm.initrd)},
                   {"disks", disks}});
    if (!vm.domain.empty()) vms.back()["libvirt"] = DomainToJson(vm.domain);
  }
  json doc = {{"format", kManifestFormat},
              {"version", m.version},
              {"exported_us", m.exported_us},
              {"collection", {{"id", m.collection_id}, {"name", m.collection_name}}},
              {"snapshot",
               {{"id", m.snapshot_id},
                {"name", m.snapshot_name},
                {"type", m.snapshot_type},
                {"created_us", m.snapshot_created_us}}},
              {"storage", m.storage},
              {"base",
               {{"reference_point_id", m.base.reference_point_id},
                {"snapshot_id", m.base.snapshot_id},
                {"directory", m.base.directory}}},
              {"vms", vms}};
  return Dump(doc);
}

Result<ExportManifest> ParseManifest(const std::string& text) {
  auto parsed =
      Parse<ExportManifest>(text, "the manifest", [](const json& doc) -> Result<ExportManifest> {
        if (doc.value("format", "") == kSpanningManifestFormat) {
          return Status::InvalidArgument(
              "the manifest is that of an export across hosts: each host's part is an export "
              "of its own, in the folder named for the host");
        }
        if (doc.value("format", "") != kManifestFormat) {
          return Status::InvalidArgument("the manifest is not a vmgroup export manifest");
        }
        ExportManifest m;
        const int64_t version = Whole(doc, "version");
        if (version < kOldestManifestVersion || version > kManifestVersion) {
          return Status::InvalidArgument(
              "the manifest has version " + std::to_string(version) + "; this vmgroup reads " +
              std::to_string(kOldestManifestVersion) + " to " + std::to_string(kManifestVersion));
        }
        m.version = static_cast<int>(version);
        m.exported_us = Whole(doc, "exported_us");
        m.collection_id = doc.at("collection").at("id").get<std::string>();
        m.collection_name = doc.at("collection").at("name").get<std::string>();
        const json& s = doc.at("snapshot");
        m.snapshot_id = s.at("id").get<std::string>();
        m.snapshot_name = s.at("name").get<std::string>();
        const int64_t type = Whole(s, "type");
        if (type < 0 || type > 0xffff) {
          return Status::InvalidArgument("the snapshot type " + std::to_string(type) +
                                         " is not a SnapshotType (0 to 65535)");
        }
        m.snapshot_type = static_cast<int>(type);
        m.snapshot_created_us = Whole(s, "created_us");
        m.storage = doc.at("storage").get<bool>();
        if (auto b = doc.find("base"); b != doc.end()) {
          m.base = {b->at("reference_point_id").get<std::string>(),
                    b->at("snapshot_id").get<std::string>(), b->at("directory").get<std::string>()};
        }
        for (const json& v : doc.at("vms")) {
          ExportedVm vm;
          vm.id = v.at("id").get<std::string>();
          vm.name = v.at("name").get<std::string>();
          vm.member_snapshot_id = v.at("member_snapshot_id").get<std::string>();
          vm.config_file = v.at("config_file").get<std::string>();
          vm.config_checksum = v.at("config_checksum").get<std::string>();
          vm.kernel = ReadFile(v, "kernel");
          vm.initrd = ReadFile(v, "initrd");
          vm.domain = ReadDomain(v);
          for (const json& d : v.at("disks")) {
            const int64_t index = Whole(d, "index");
            if (index < 0 || index >= static_cast<int64_t>(kMaxDisks)) {
              return Status::InvalidArgument("the manifest: VM " + Printable(vm.id) +
                                             ": disk index " + std::to_string(index) +
                                             " is not from 0 to " + std::to_string(kMaxDisks - 1));
            }
            vm.disks.push_back({.index = static_cast<int>(index),
                                .file = d.at("file").get<std::string>(),
                                .virtual_size = Count(d, "virtual_size"),
                                .file_size = Count(d, "file_size"),
                                .checksum = d.at("checksum").get<std::string>(),
                                .base_file = d.at("base_file").get<std::string>()});
          }
          m.vms.push_back(std::move(vm));
        }
        return m;
      });
  if (parsed.ok()) VMG_RETURN_IF_ERROR(CheckManifest(*parsed).Annotate("the manifest"));
  return parsed;
}

Result<ExportManifest> ReadManifestIn(const std::string& dir) {
  const std::string path = dir + "/" + kManifestFile;
  auto text = storage::ReadBounded(path, kMaxManifestBytes, "the manifest");
  if (text.status().code() == Code::kFileNotFound) {
    return Status::FileNotFound(dir + " holds no finished export (no " + kManifestFile + ")");
  }
  if (!text.ok()) return Status::InvalidArgument(text.status().message());
  auto m = ParseManifest(*text);
  if (!m.ok()) return m.status().Annotate(path);
  return m;
}

const ExportedDisk* FindDisk(const ExportManifest& m, const std::string& vm_id, int index) {
  for (const auto& vm : m.vms) {
    if (vm.id != vm_id) continue;
    for (const auto& d : vm.disks) {
      if (d.index == index && !d.file.empty()) return &d;
    }
  }
  return nullptr;
}

std::string ConfigToJson(const ExportedConfig& c) {
  const VmConfig& vm = c.config;
  json doc = {{"id", c.id},          {"name", c.name},      {"memory_mib", vm.memory_mib},
              {"vcpus", vm.vcpus},   {"kernel", vm.kernel}, {"initrd", vm.initrd},
              {"append", vm.append}, {"disks", c.disks}};
  // Written only when set: an ordinary VM's configuration reads as before.
  if (vm.hugepages) doc["hugepages"] = true;
  return Dump(doc);
}

Result<ExportedConfig> ParseConfig(const std::string& text) {
  return Parse<ExportedConfig>(
      text, "the VM configuration", [](const json& doc) -> Result<ExportedConfig> {
        if (auto extra = doc.find("extra_args");
            extra != doc.end() && !(extra->is_array() && extra->empty())) {
          return Status::InvalidArgument(
              "the VM configuration carries QEMU arguments (extra_args); they are never taken "
              "from an export");
        }
        ExportedConfig c;
        c.id = doc.at("id").get<std::string>();
        c.name = doc.at("name").get<std::string>();
        c.config.memory_mib = Whole(doc, "memory_mib");
        c.config.vcpus = Whole(doc, "vcpus");
        c.config.kernel = doc.at("kernel").get<std::string>();
        c.config.initrd = doc.at("initrd").get<std::string>();
        c.config.append = doc.at("append").get<std::string>();
        c.disks = Whole(doc, "disks");
        if (auto huge = doc.find("hugepages"); huge != doc.end()) {
          if (!huge->is_boolean()) {
            return Status::InvalidArgument(
                "the VM configuration's hugepages must be true or false");
          }
          c.config.hugepages = huge->get<bool>();
        }
        return c;
      });
}

}  // namespace vmgroup::engine
