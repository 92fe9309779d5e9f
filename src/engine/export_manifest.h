// The manifest of an export directory (docs/export-format.md): what a group
// snapshot's export holds — the group, the snapshot, and for every VM its
// configuration, kernel and initrd, and disk images with their sizes and
// checksums. The manifest is written last, so a directory without one holds
// no finished export.
//
// An export may have sat anywhere and anyone able to write there may have
// changed it, checksums included: it is read as data from outside. Both
// files are read with a bound, and a manifest or configuration that parses
// is well-formed (names, ids, indexes, the export's own file names).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/vm_config.h"

namespace vmgroup::engine {

inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kManifestFormat = "vmgroup-export";
// Version 2 added each VM's kernel and initrd as files of the export and
// dropped extra QEMU arguments from the configuration. Version 1 exports are
// still read; restore refuses those that name host files (export_restore.h).
// Version 3 added libvirt domains (ExportedVm::domain): a reader of version
// 2 would restore them as vmgroupd's own VMs, without their definition, so
// an export holding one is version 3; one of vmgroupd's own VMs only is
// still written as version 2.
inline constexpr int kManifestVersion = 3;
inline constexpr int kOwnVmsManifestVersion = 2;
inline constexpr int kOldestManifestVersion = 1;
// A domain definition is read only up to 1 MiB (libvirt's own XML of a
// large domain is tens of KiB).
inline constexpr uint64_t kMaxDomainXmlBytes = uint64_t{1} << 20;
// Bounds on the JSON files read: far above what any group's export holds
// (a manifest lists about 300 bytes per disk), far below what would hurt.
inline constexpr uint64_t kMaxManifestBytes = uint64_t{16} << 20;
inline constexpr uint64_t kMaxConfigBytes = uint64_t{1} << 20;

// A file of the export besides the disk images (a kernel, an initrd).
struct ExportedFile {
  std::string file;  // relative to the export directory; empty for none
  uint64_t file_size = 0;
  std::string checksum;  // of `file` (storage/checksum.h)
  bool empty() const { return file.empty(); }
};

struct ExportedDisk {
  int index = 0;     // 0 .. kMaxDisks - 1
  std::string file;  // relative to the export directory; empty without storage
  uint64_t virtual_size = 0;
  uint64_t file_size = 0;
  std::string checksum;  // of `file` (storage/checksum.h)
  // For an incremental image, the image of the base export it is a qcow2
  // overlay of, relative to this export's directory (as its header names
  // it, relative to its own directory); empty for a full image.
  std::string base_file;
};

// A VM that was a libvirt domain (version 3).
struct ExportedDomain {
  std::string uri;          // the libvirt connection it was exported from
  ExportedFile definition;  // its inactive domain XML, as libvirt gave it
  // The directory of its first disk's image at export time: where a
  // restore puts its copies when libvirt keeps other domains' images there.
  std::string image_dir;
  bool empty() const { return definition.empty(); }
};

struct ExportedVm {
  std::string id, name;
  std::string member_snapshot_id;  // the VM's snapshot inside the group snapshot
  std::string config_file;         // relative: the VM's definition (ExportedConfig)
  std::string config_checksum;
  ExportedFile kernel, initrd;      // what the VM boots, when it boots a kernel
  ExportedDomain domain;            // empty for one of vmgroupd's own VMs
  std::vector<ExportedDisk> disks;  // in index order: 0, 1, ...
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

// A VM's definition as exported: enough to define it again, and nothing
// QEMU would take as an instruction (no extra arguments).
struct ExportedConfig {
  std::string id, name;
  // Memory and vCPUs as written in the file (the VM bounds are
  // VmRegistry's to check). kernel and initrd: the files of the export
  // (ExportedVm::kernel, ::initrd) the VM boots, or empty; in a version 1
  // export, the host's files it booted. extra_args: always empty.
  VmConfig config;
  int64_t disks = 0;
};

std::string ManifestToJson(const ExportManifest& m);
// The manifest of the export in directory `dir`, read as a regular file
// through no symbolic link and refused unread past kMaxManifestBytes:
// FileNotFound when there is none (no finished export), InvalidArgument
// for one that cannot be read so, else ParseManifest's answer.
Result<ExportManifest> ReadManifestIn(const std::string& dir);
// Disk `index` of VM `vm_id` in `m`, or null when the export has no image of it.
const ExportedDisk* FindDisk(const ExportManifest& m, const std::string& vm_id, int index);
// InvalidArgument, naming what is wrong, for anything but a well-formed
// manifest of a version this build reads: every id a GUID (VM ids unique),
// the group's and the VMs' names valid names (base/validate.h CheckName),
// the snapshot's name printable text; each VM's disks indexed 0, 1, ... up
// to at most kMaxDisks, each index once, in order; the export's own files
// (configurations, images, kernels, initrds) named relative to it, inside
// it (no leading '/', no '..' out of it, printable); the base export and
// base images named relatively; file names only with disk images; a
// libvirt domain only in version 3, with a printable URI, its definition a
// file of the export and its image directory absolute or empty.
Result<ExportManifest> ParseManifest(const std::string& text);

// A VM's configuration file, without extra arguments (version 2); RAM on
// huge pages as "hugepages": true, absent for ordinary RAM.
std::string ConfigToJson(const ExportedConfig& c);
// InvalidArgument for anything but a well-formed configuration: the
// numbers whole numbers, "hugepages" absent (ordinary RAM) or a boolean,
// and no QEMU arguments ("extra_args", which version 1 wrote, must be
// absent or empty: an export is data).
Result<ExportedConfig> ParseConfig(const std::string& text);

}  // namespace vmgroup::engine
