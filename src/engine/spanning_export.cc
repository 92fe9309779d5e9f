#include "engine/spanning_export.h"

#include <nlohmann/json.hpp>

#include "base/validate.h"

namespace vmgroup::engine {

std::string SpanningManifestToJson(const SpanningExportManifest& m) {
  using nlohmann::json;
  json parts = json::array();
  for (const auto& p : m.parts) {
    parts.push_back({{"host", p.host}, {"folder", p.folder}, {"vm_ids", p.vm_ids}});
  }
  const json doc = {
      {"format", kSpanningManifestFormat},
      {"version", m.version},
      {"exported_us", m.exported_us},
      {"collection_id", m.collection_id},
      {"snapshot",
       {{"id", m.snapshot_id}, {"name", m.snapshot_name}, {"cut_spread_us", m.cut_spread_us}}},
      {"storage", m.storage},
      {"base_reference_point_id", m.base_reference_point_id},
      {"parts", parts}};
  // A byte that is not UTF-8 becomes U+FFFD rather than an exception, as
  // in an export's own manifest.
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<SpanningExportManifest> ParseSpanningManifest(const std::string& text) {
  using nlohmann::json;
  try {
    const json doc = json::parse(text);
    if (doc.value("format", "") != kSpanningManifestFormat) {
      return Status::InvalidArgument("not the manifest of an export across hosts");
    }
    SpanningExportManifest m;
    m.version = doc.at("version").get<int>();
    if (m.version != kSpanningManifestVersion) {
      return Status::InvalidArgument("manifest across hosts of version " +
                                     std::to_string(m.version) +
                                     ", which this build does not read");
    }
    m.exported_us = doc.at("exported_us").get<int64_t>();
    m.collection_id = doc.at("collection_id").get<std::string>();
    const json& snapshot = doc.at("snapshot");
    m.snapshot_id = snapshot.at("id").get<std::string>();
    m.snapshot_name = snapshot.at("name").get<std::string>();
    m.cut_spread_us = snapshot.at("cut_spread_us").get<int64_t>();
    m.storage = doc.at("storage").get<bool>();
    // Absent from the manifests of full exports written before it existed.
    m.base_reference_point_id = doc.value("base_reference_point_id", "");
    for (const json& p : doc.at("parts")) {
      m.parts.push_back({.host = p.at("host").get<std::string>(),
                         .folder = p.at("folder").get<std::string>(),
                         .vm_ids = p.at("vm_ids").get<std::vector<std::string>>()});
    }
    return m;
  } catch (const json::exception& e) {
    // Printable: the reader's message quotes what it read.
    return Status::InvalidArgument(std::string("the manifest across hosts is malformed: ") +
                                   Printable(e.what()));
  }
}

}  // namespace vmgroup::engine
