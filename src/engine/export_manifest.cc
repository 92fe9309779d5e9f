#include "engine/export_manifest.h"

#include <nlohmann/json.hpp>

namespace vmgroup::engine {
namespace {

using nlohmann::json;

// Reads a JSON document whose shape `read` checks; any mismatch of names or
// types is one InvalidArgument naming `what`.
template <typename T, typename Read>
Result<T> Parse(const std::string& text, const char* what, Read read) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return Status::InvalidArgument(std::string(what) + " is not a JSON object");
  try {
    return read(doc);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string(what) + " is malformed: " + e.what());
  }
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
                   {"disks", disks}});
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
  return doc.dump(2) + "\n";
}

Result<ExportManifest> ParseManifest(const std::string& text) {
  return Parse<ExportManifest>(text, "the manifest", [](const json& doc) -> Result<ExportManifest> {
    if (doc.value("format", "") != kManifestFormat) {
      return Status::InvalidArgument("the manifest is not a vmgroup export manifest");
    }
    ExportManifest m;
    m.version = doc.at("version").get<int>();
    if (m.version != kManifestVersion) {
      return Status::InvalidArgument("the manifest has version " + std::to_string(m.version) +
                                     "; this vmgroup reads version " +
                                     std::to_string(kManifestVersion));
    }
    m.exported_us = doc.at("exported_us").get<int64_t>();
    m.collection_id = doc.at("collection").at("id").get<std::string>();
    m.collection_name = doc.at("collection").at("name").get<std::string>();
    const json& s = doc.at("snapshot");
    m.snapshot_id = s.at("id").get<std::string>();
    m.snapshot_name = s.at("name").get<std::string>();
    m.snapshot_type = s.at("type").get<int>();
    m.snapshot_created_us = s.at("created_us").get<int64_t>();
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
      for (const json& d : v.at("disks")) {
        vm.disks.push_back({.index = d.at("index").get<int>(),
                            .file = d.at("file").get<std::string>(),
                            .virtual_size = d.at("virtual_size").get<uint64_t>(),
                            .file_size = d.at("file_size").get<uint64_t>(),
                            .checksum = d.at("checksum").get<std::string>(),
                            .base_file = d.at("base_file").get<std::string>()});
      }
      m.vms.push_back(std::move(vm));
    }
    return m;
  });
}

Result<ExportManifest> ReadManifestIn(Env* env, const std::string& dir) {
  auto text = env->ReadFile(dir + "/" + kManifestFile);
  if (!text.ok()) {
    return Status::FileNotFound(dir + " holds no finished export (no readable " + kManifestFile +
                                ")");
  }
  return ParseManifest(*text);
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
  json doc = {{"id", c.id},         {"name", c.name},     {"memory_mib", c.memory_mib},
              {"vcpus", c.vcpus},   {"kernel", c.kernel}, {"initrd", c.initrd},
              {"append", c.append}, {"disks", c.disks},   {"extra_args", c.extra_args}};
  return doc.dump(2) + "\n";
}

Result<ExportedConfig> ParseConfig(const std::string& text) {
  return Parse<ExportedConfig>(
      text, "the VM configuration", [](const json& doc) -> Result<ExportedConfig> {
        ExportedConfig c;
        c.id = doc.at("id").get<std::string>();
        c.name = doc.at("name").get<std::string>();
        c.memory_mib = doc.at("memory_mib").get<int>();
        c.vcpus = doc.at("vcpus").get<int>();
        c.kernel = doc.at("kernel").get<std::string>();
        c.initrd = doc.at("initrd").get<std::string>();
        c.append = doc.at("append").get<std::string>();
        c.disks = doc.at("disks").get<int>();
        c.extra_args = doc.at("extra_args").get<std::vector<std::string>>();
        return c;
      });
}

}  // namespace vmgroup::engine
