// A libvirt domain's XML, read and written: the facts vmgroup needs from a
// definition (DomainInfo), the <domainsnapshot> that switches chosen disks to
// overlays, and a definition whose disks are rewritten to other images.
// Pure functions from text to text or structs: no libvirt calls.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "hypervisor/driver.h"

namespace vmgroup::hypervisor::libvirt {

// One <disk> of a definition, as it reads.
struct DomainDisk {
  std::string target;      // <target dev>: "vda"
  std::string type;        // "file", "block", "network", "volume", ...
  std::string device;      // "disk", "cdrom", "floppy", "lun"
  std::string format;      // <driver type>: "qcow2", "raw"; may be empty
  std::string source;      // <source file> (type file); may be empty
  std::string protocol;    // <source protocol> (type network)
  bool read_only = false;  // <readonly/>
  bool shareable = false;  // <shareable/>
  // The <backingStore> chain libvirt shows, top down, files only (a live
  // definition; a persistent one may carry one too, or none).
  std::vector<std::string> backing;
};

struct DomainXml {
  DomainInfo info;  // uuid, name, memory, vcpus, disks, unsupported (state not set)
  std::vector<DomainDisk> all_disks;  // every <disk>, in document order
  // Index into all_disks of each snapshotted disk (info.disks' order).
  std::vector<size_t> snapshot_disks;
};

// InvalidArgument when `xml` is not a domain definition (no <domain>, no
// uuid or name, a disk without a target).
Result<DomainXml> ParseDomainXml(const std::string& xml);

// A disk-only external snapshot, for virDomainSnapshotCreateXML with
// REUSE_EXT: each disk in `overlays` (target -> overlay file, a qcow2 file
// that already names its backing) becomes external; every other disk of
// `disks` is left out of it (snapshot='no'). `name` names the snapshot.
std::string SnapshotXml(const std::string& name, const std::vector<DomainDisk>& disks,
                        const std::map<std::string, std::string>& overlays);

// `definition` (a domain's inactive XML) with the source of snapshotted disk
// i replaced by `images[i]` and every <backingStore> of every disk removed:
// libvirt then opens each image's chain from its header, whereas a
// <backingStore> left in would hand QEMU the old chain explicitly (silent
// corruption). InvalidArgument when `images` does not have one image per
// snapshotted disk, or when `definition` does not parse.
Result<std::string> RewriteDisks(const std::string& definition,
                                 const std::vector<std::string>& images);

// --- Export and restore (issue 15) ---

// The host files `definition` boots (<os><kernel>, <os><initrd>; "" for
// none): an export carries copies of them. InvalidArgument when it does
// not parse.
Result<ExportedDefinition> BootFilesOf(const std::string& definition);

// `r.definition`, an exported domain's XML (data from outside), made fit to
// define on this host, or InvalidArgument naming what is refused:
// - refused: any element of another namespace, or namespace declaration,
//   outside <metadata> (<qemu:commandline>, <qemu:override>...:
//   instructions to QEMU), a
//   <hostdev> or an <interface type='hostdev'> (host devices), a
//   <filesystem> (a host directory), a guest-written disk that is not one
//   of the snapshotted disks `r.disks` replaces, <os><dtb>, a <loader>
//   outside /usr/share/ (the distribution's firmware), a kernel or initrd
//   the export does not carry, and, after the rewriting below, any
//   attribute or element text that still names an absolute host path
//   (a chardev on a host device or pipe, a vhost-user socket, a script,
//   a passthrough TPM...), but for /dev/urandom and /dev/random as an
//   <rng> backend;
// - rewritten: <uuid> and <name>; each snapshotted disk's <source file>
//   to its restored copy, with every <backingStore> removed (a stale one
//   hands QEMU a wrong chain); the kernel and initrd to their copies;
//   cdrom and floppy media ejected (their <source> removed: a host file the
//   guest would read); chardevs and logs written to host files (type
//   'file', <log file>) sent to `r.files_prefix` + "-console<N>.log"; the
//   path of unix-socket chardevs dropped (libvirt chooses one); <nvram>
//   dropped (libvirt makes fresh variables from the loader's template);
//   <emulator> dropped (libvirt's default QEMU for the machine);
//   <seclabel> dropped everywhere (the host's security driver decides);
//   with `r.as_new`, every <mac> and <genid> dropped (libvirt makes new
//   ones: the restored VM sits beside the original);
// - kept: networks (<interface> of type network, bridge, direct, user,
//   ethernet without a script...), as an operator restoring a VM expects.
Result<std::string> SanitizeRestored(const RestoredDefinition& r);

}  // namespace vmgroup::hypervisor::libvirt

// --- Change tracking (checkpoints) ---
namespace vmgroup::hypervisor::libvirt {

// A checkpoint for virDomainCheckpointCreateXML named `name`: a bitmap on
// each disk whose target is in `tracked`, every other disk of `disks` left
// out (checkpoint='no').
std::string CheckpointXml(const std::string& name, const std::vector<DomainDisk>& disks,
                          const std::vector<std::string>& tracked);

// True for the names of the checkpoints vmgroup makes ("vmgroup-<tag>"):
// every other checkpoint (virtnbdbackup's, an operator's) is never touched.
bool IsOwnCheckpoint(const std::string& name);

}  // namespace vmgroup::hypervisor::libvirt
