// The manifest of an export directory (docs/export-format.md): what a group
// snapshot's export holds — the group, the snapshot, and for every VM its
// configuration and disk images with their sizes and checksums. The manifest
// is written last, so a directory without one holds no finished export.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/result.h"

namespace vmgroup::engine {

inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kManifestFormat = "vmgroup-export";
inline constexpr int kManifestVersion = 1;

struct ExportedDisk {
  int index = 0;
  std::string file;  // relative to the export directory; empty without storage
  uint64_t virtual_size = 0;
  uint64_t file_size = 0;
  std::string checksum;  // of `file` (storage/checksum.h)
  // For an incremental image, the image of the base export it is a qcow2
  // overlay of, relative to this export's directory (as its header names
  // it, relative to its own directory); empty for a full image.
  std::string base_file;
};

struct ExportedVm {
  std::string id, name;
  std::string member_snapshot_id;  // the VM's snapshot inside the group snapshot
  std::string config_file;         // relative: the VM's definition (ExportedConfig)
  std::string config_checksum;
  std::vector<ExportedDisk> disks;
};

// What an incremental export builds on: the export of the snapshot a
// reference point was made from. Empty for a full export.
struct ExportBase {
  std::string reference_point_id;
  std::string snapshot_id;  // the base export's snapshot
  std::string directory;    // the base export, relative to this one
  bool empty() const { return directory.empty(); }
};

struct ExportManifest {
  int version = kManifestVersion;
  int64_t exported_us = 0;
  std::string collection_id, collection_name;
  std::string snapshot_id, snapshot_name;
  int snapshot_type = 0;
  int64_t snapshot_created_us = 0;
  bool storage = true;  // CopyVmStorage: disk images included
  ExportBase base;
  std::vector<ExportedVm> vms;
};

// A VM's definition as exported: enough to define it again.
struct ExportedConfig {
  std::string id, name;
  int memory_mib = 0, vcpus = 0;
  std::string kernel, initrd, append;
  std::vector<std::string> extra_args;
  int disks = 0;
};

std::string ManifestToJson(const ExportManifest& m);
// The manifest of the export in directory `dir`: FileNotFound when it holds
// none (no finished export), else ParseManifest's answer.
Result<ExportManifest> ReadManifestIn(Env* env, const std::string& dir);
// Disk `index` of VM `vm_id` in `m`, or null when the export has no image of it.
const ExportedDisk* FindDisk(const ExportManifest& m, const std::string& vm_id, int index);
// InvalidArgument, naming what is wrong, for anything but a manifest of a
// version this build reads.
Result<ExportManifest> ParseManifest(const std::string& text);

std::string ConfigToJson(const ExportedConfig& c);
Result<ExportedConfig> ParseConfig(const std::string& text);

}  // namespace vmgroup::engine
