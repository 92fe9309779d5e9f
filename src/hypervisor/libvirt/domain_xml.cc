#include "hypervisor/libvirt/domain_xml.h"

#include <algorithm>
#include <cstdint>
#include <pugixml.hpp>
#include <sstream>

namespace vmgroup::hypervisor::libvirt {
namespace {

// Bytes per unit of libvirt's scaled integers (<memory unit=...>); 0 if unknown.
uint64_t UnitBytes(std::string unit) {
  if (unit.empty() || unit == "k" || unit == "KiB") return 1024;
  if (unit == "b" || unit == "bytes") return 1;
  if (unit == "KB") return 1000;
  if (unit == "M" || unit == "MiB") return uint64_t{1} << 20;
  if (unit == "MB") return 1000 * 1000;
  if (unit == "G" || unit == "GiB") return uint64_t{1} << 30;
  if (unit == "GB") return uint64_t{1000} * 1000 * 1000;
  if (unit == "T" || unit == "TiB") return uint64_t{1} << 40;
  if (unit == "TB") return uint64_t{1000} * 1000 * 1000 * 1000;
  return 0;
}

int MemoryMib(const pugi::xml_node& memory) {
  const uint64_t unit = UnitBytes(memory.attribute("unit").value());
  const uint64_t bytes = memory.text().as_ullong() * unit;
  return static_cast<int>(bytes >> 20);
}

DomainDisk ReadDisk(const pugi::xml_node& d) {
  DomainDisk disk;
  disk.target = d.child("target").attribute("dev").value();
  disk.type = d.attribute("type").as_string("file");
  disk.device = d.attribute("device").as_string("disk");
  disk.format = d.child("driver").attribute("type").value();
  disk.source = d.child("source").attribute("file").value();
  disk.protocol = d.child("source").attribute("protocol").value();
  disk.read_only = static_cast<bool>(d.child("readonly"));
  disk.shareable = static_cast<bool>(d.child("shareable"));
  for (auto b = d.child("backingStore"); b && b.child("source"); b = b.child("backingStore")) {
    disk.backing.push_back(b.child("source").attribute("file").value());
  }
  return disk;
}

// Why vmgroup cannot snapshot `d`, a disk the guest writes; empty if it can.
std::string WhyNot(const DomainDisk& d) {
  const std::string what = "disk " + d.target + " is ";
  const std::string only = ": only file-backed qcow2 disks are snapshotted";
  if (d.device == "lun") return what + "a SCSI LUN passed through" + only;
  if (d.type == "network") {
    return what + "a network disk (" + (d.protocol.empty() ? "unknown" : d.protocol) + ")" + only;
  }
  if (d.type != "file") return what + "a " + d.type + " disk" + only;
  if (d.source.empty()) return what + "empty (no source file)" + only;
  if (d.format != "qcow2") {
    return what + "a " + (d.format.empty() ? "format-less" : d.format) + " image" + only;
  }
  if (d.shareable) return what + "shared with other domains: a snapshot of it would not be one";
  return "";
}

// cdroms and floppies are media the guest does not write: not snapshotted.
bool GuestWrites(const DomainDisk& d) {
  return (d.device == "disk" || d.device == "lun") && !d.read_only;
}

Result<pugi::xml_document> Parse(const std::string& xml) {
  pugi::xml_document doc;
  const auto parsed = doc.load_string(xml.c_str());
  if (!parsed) {
    return Status::InvalidArgument(std::string("domain XML does not parse: ") +
                                   parsed.description());
  }
  if (!doc.child("domain")) return Status::InvalidArgument("domain XML has no <domain>");
  return doc;
}

std::string Print(const pugi::xml_document& doc) {
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_raw | pugi::format_no_declaration);
  return out.str();
}

}  // namespace

Result<DomainXml> ParseDomainXml(const std::string& xml) {
  VMG_ASSIGN_OR_RETURN(auto doc, Parse(xml));
  const auto domain = doc.child("domain");
  DomainXml out;
  out.info.uuid = domain.child_value("uuid");
  out.info.name = domain.child_value("name");
  if (out.info.uuid.empty() || out.info.name.empty()) {
    return Status::InvalidArgument("domain XML has no uuid or no name");
  }
  out.info.memory_mib = MemoryMib(domain.child("memory"));
  out.info.vcpus = domain.child("vcpu").text().as_int();
  for (auto d : domain.child("devices").children("disk")) {
    DomainDisk disk = ReadDisk(d);
    if (disk.target.empty()) return Status::InvalidArgument("domain XML has a disk without target");
    if (GuestWrites(disk)) {
      const std::string why = WhyNot(disk);
      if (why.empty()) {
        out.snapshot_disks.push_back(out.all_disks.size());
        out.info.disks.push_back(disk.source);
      } else if (out.info.unsupported.empty()) {
        out.info.unsupported = why;
      }
    }
    out.all_disks.push_back(std::move(disk));
  }
  return out;
}

std::string SnapshotXml(const std::string& name, const std::vector<DomainDisk>& disks,
                        const std::map<std::string, std::string>& overlays) {
  pugi::xml_document doc;
  auto snap = doc.append_child("domainsnapshot");
  snap.append_child("name").text() = name.c_str();
  snap.append_child("memory").append_attribute("snapshot") = "no";
  auto list = snap.append_child("disks");
  for (const auto& d : disks) {
    auto disk = list.append_child("disk");
    disk.append_attribute("name") = d.target.c_str();
    const auto it = overlays.find(d.target);
    if (it == overlays.end()) {
      disk.append_attribute("snapshot") = "no";
      continue;
    }
    disk.append_attribute("snapshot") = "external";
    disk.append_attribute("type") = "file";
    disk.append_child("driver").append_attribute("type") = "qcow2";
    disk.append_child("source").append_attribute("file") = it->second.c_str();
  }
  return Print(doc);
}

Result<std::string> RewriteDisks(const std::string& definition,
                                 const std::vector<std::string>& images) {
  VMG_ASSIGN_OR_RETURN(auto parsed, ParseDomainXml(definition));
  if (images.size() != parsed.snapshot_disks.size()) {
    return Status::InvalidArgument("the domain has " +
                                   std::to_string(parsed.snapshot_disks.size()) +
                                   " snapshotted disks, not " + std::to_string(images.size()));
  }
  VMG_ASSIGN_OR_RETURN(auto doc, Parse(definition));
  size_t index = 0, next = 0;
  for (auto d : doc.child("domain").child("devices").children("disk")) {
    while (auto b = d.child("backingStore")) d.remove_child(b);
    if (next < parsed.snapshot_disks.size() && parsed.snapshot_disks[next] == index) {
      d.child("source").attribute("file").set_value(images[next].c_str());
      ++next;
    }
    ++index;
  }
  return Print(doc);
}

}  // namespace vmgroup::hypervisor::libvirt

// --- Change tracking (checkpoints) ---
namespace vmgroup::hypervisor::libvirt {

std::string CheckpointXml(const std::string& name, const std::vector<DomainDisk>& disks,
                          const std::vector<std::string>& tracked) {
  pugi::xml_document doc;
  auto cp = doc.append_child("domaincheckpoint");
  cp.append_child("name").text() = name.c_str();
  cp.append_child("description").text() = "vmgroup: change tracking of a recovery snapshot";
  auto list = cp.append_child("disks");
  for (const auto& d : disks) {
    auto disk = list.append_child("disk");
    disk.append_attribute("name") = d.target.c_str();
    const bool on = std::find(tracked.begin(), tracked.end(), d.target) != tracked.end();
    disk.append_attribute("checkpoint") = on ? "bitmap" : "no";
  }
  return Print(doc);
}

bool IsOwnCheckpoint(const std::string& name) {
  constexpr std::string_view kPrefix = "vmgroup-";
  return name.size() > kPrefix.size() && name.starts_with(kPrefix);
}

}  // namespace vmgroup::hypervisor::libvirt
