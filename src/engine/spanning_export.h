// The manifest of an export across hosts (issue 20; docs/export-format.md
// "Exports across hosts"): each host exports its part of the snapshot, an
// ordinary export (export_manifest.h), into a folder of the export
// directory named for the host, and the coordinator writes this manifest
// into the directory itself, last, naming every host's folder and VMs. A
// directory without it holds no finished export across hosts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace vmgroup::engine {

inline constexpr const char* kSpanningManifestFormat = "vmgroup-export-across-hosts";
inline constexpr int kSpanningManifestVersion = 1;

// One host's part: an ordinary export in `folder`.
struct ExportedPart {
  std::string host;    // the peer's name; empty for the coordinator's own part
  std::string folder;  // relative to the export directory: the host's name
  std::vector<std::string> vm_ids;
};

// Each part's own manifest says the rest (the group's name, the
// snapshot's type and time, every VM and disk).
struct SpanningExportManifest {
  int version = kSpanningManifestVersion;
  int64_t exported_us = 0;
  std::string collection_id;  // the group's
  std::string snapshot_id, snapshot_name;
  int64_t cut_spread_us = 0;  // how far apart the hosts' cuts can be
  bool storage = true;        // CopyVmStorage: disk images included
  // An incremental export: the reference point across hosts each part
  // builds on (each part's own manifest names its base export); empty for
  // a full export.
  std::string base_reference_point_id;
  std::vector<ExportedPart> parts;
};

std::string SpanningManifestToJson(const SpanningExportManifest& m);
// InvalidArgument, naming what is wrong, for anything but a manifest across
// hosts of a version this build reads, with a snapshot id and each part's
// folder and VM ids.
Result<SpanningExportManifest> ParseSpanningManifest(const std::string& text);

}  // namespace vmgroup::engine
