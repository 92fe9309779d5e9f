#include "hypervisor/libvirt/domain_xml.h"

#include <algorithm>
#include <cstdint>
#include <pugixml.hpp>
#include <set>
#include <sstream>
#include <string_view>

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

// --- Export and restore (issue 15) ---

namespace vmgroup::hypervisor::libvirt {
namespace {

// Attributes that name a host file or socket whatever their value looks like.
bool NamesHostFile(std::string_view attribute) {
  return attribute == "file" || attribute == "path" || attribute == "socket" ||
         attribute == "dir" || attribute == "script";
}

// "<serial type='dev'>" for a message about `n`.
std::string Describe(const pugi::xml_node& n) {
  std::string out = std::string("<") + n.name();
  if (auto type = n.attribute("type")) out += std::string(" type='") + type.value() + "'";
  return out + ">";
}

Status Refuse(const std::string& what, const std::string& why) {
  return Status::InvalidArgument("the exported domain definition " + what + ": " + why +
                                 "; a restore defines nothing of the kind from an export");
}

void RemoveAll(pugi::xml_node parent, const char* name) {
  while (auto c = parent.child(name)) parent.remove_child(c);
}

// Removes every element named `name` at any depth below `node`.
void RemoveDeep(pugi::xml_node node, const char* name) {
  RemoveAll(node, name);
  for (auto c : node.children()) {
    if (c.type() == pugi::node_element) RemoveDeep(c, name);
  }
}

// Refuses any element of another namespace (qemu:commandline, ...) below
// `node`, but inside <metadata>, which libvirt never interprets, and any
// namespace declaration: libvirt finds its extensions by namespace, so
// <commandline xmlns='...qemu/1.0'> would be one without a prefix.
Status CheckNamespaces(const pugi::xml_node& node) {
  for (auto c : node.children()) {
    if (c.type() != pugi::node_element || std::string_view(c.name()) == "metadata") continue;
    if (std::string_view(c.name()).find(':') != std::string_view::npos) {
      return Refuse(std::string("carries <") + c.name() + ">",
                    "an element of another namespace instructs the hypervisor directly");
    }
    VMG_RETURN_IF_ERROR(CheckNamespaces(c));
  }
  for (auto a : node.attributes()) {
    const std::string_view name = a.name();
    if (name == "xmlns" || name.starts_with("xmlns:")) {
      return Refuse(
          std::string("declares the namespace ") + a.value() + " on <" + node.name() + ">",
          "elements of another namespace instruct the hypervisor directly");
    }
  }
  return Status::Ok();
}

// Any host path left below `node` that is not in `allowed`.
Status CheckNoHostPaths(const pugi::xml_node& node, const std::set<std::string>& allowed) {
  for (auto c : node.children()) {
    if (c.type() != pugi::node_element) continue;
    const std::string_view name = c.name();
    if (name == "metadata" || name == "description" || name == "title" || name == "cmdline") {
      continue;
    }
    for (auto a : c.attributes()) {
      const std::string value = a.value();
      if ((NamesHostFile(a.name()) || value.starts_with("/")) && !value.empty() &&
          !allowed.count(value)) {
        return Refuse(
            "names the host path '" + value + "' in " + Describe(c) + " (" + a.name() + ")",
            "a restore cannot vouch for files of this host it did not make");
      }
    }
    const std::string text = c.text().get();
    if (text.starts_with("/") && !allowed.count(text)) {
      return Refuse("names the host path '" + text + "' in <" + std::string(name) + ">",
                    "a restore cannot vouch for files of this host it did not make");
    }
    VMG_RETURN_IF_ERROR(CheckNoHostPaths(c, allowed));
  }
  return Status::Ok();
}

}  // namespace

Result<ExportedDefinition> BootFilesOf(const std::string& definition) {
  VMG_ASSIGN_OR_RETURN(auto doc, Parse(definition));
  const auto os = doc.child("domain").child("os");
  return ExportedDefinition{.definition = definition,
                            .kernel = os.child_value("kernel"),
                            .initrd = os.child_value("initrd")};
}

Result<std::string> SanitizeRestored(const RestoredDefinition& r) {
  VMG_ASSIGN_OR_RETURN(auto parsed, ParseDomainXml(r.definition));
  if (!parsed.info.unsupported.empty()) {
    return Refuse("has a disk vmgroup did not export", parsed.info.unsupported);
  }
  if (parsed.snapshot_disks.size() != r.disks.size()) {
    return Status::InvalidArgument(
        "the exported domain definition has " + std::to_string(parsed.snapshot_disks.size()) +
        " snapshotted disks, but the export holds " + std::to_string(r.disks.size()));
  }
  VMG_ASSIGN_OR_RETURN(auto doc, Parse(r.definition));
  auto domain = doc.child("domain");
  VMG_RETURN_IF_ERROR(CheckNamespaces(domain));
  std::set<std::string> allowed(r.disks.begin(), r.disks.end());

  domain.child("uuid").text().set(r.uuid.c_str());
  domain.child("name").text().set(r.name.c_str());
  if (r.as_new) RemoveAll(domain, "genid");
  RemoveDeep(domain, "seclabel");
  if (auto part = domain.child("resource").child("partition");
      part && std::string_view(part.text().get()) == "/machine") {
    allowed.insert("/machine");  // libvirt's default cgroup partition
  }

  auto os = domain.child("os");
  if (os.child("dtb")) return Refuse("boots a device tree (<dtb>)", "a host file");
  const struct {
    const char* element;
    const std::string& copy;
  } boot[] = {{"kernel", r.kernel}, {"initrd", r.initrd}};
  for (const auto& b : boot) {
    auto e = os.child(b.element);
    if (!e) continue;
    if (b.copy.empty()) {
      return Refuse(std::string("boots the host file '") + e.text().get() + "' as its " + b.element,
                    "the export does not carry it");
    }
    e.text().set(b.copy.c_str());
    allowed.insert(b.copy);
  }
  if (auto loader = os.child("loader")) {
    const std::string path = loader.text().get();
    if (!path.starts_with("/usr/share/") || path.find("..") != std::string::npos) {
      return Refuse("boots the firmware '" + path + "'",
                    "only the distribution's firmware under /usr/share/ is used");
    }
    allowed.insert(path);
  }
  RemoveAll(os, "nvram");

  auto devices = domain.child("devices");
  RemoveAll(devices, "emulator");
  std::map<std::string, std::string> logs;  // a host file a chardev writes -> its new place
  auto log_of = [&](const std::string& old) {
    auto [it, added] = logs.emplace(old, "");
    if (added) it->second = r.files_prefix + "-console" + std::to_string(logs.size() - 1) + ".log";
    allowed.insert(it->second);
    return it->second;
  };
  size_t index = 0, next = 0;
  for (auto d : devices.children()) {
    if (d.type() != pugi::node_element) continue;
    const std::string_view kind = d.name();
    const std::string_view type = d.attribute("type").value();
    if (kind == "hostdev" || (kind == "interface" && type == "hostdev")) {
      return Refuse("passes a host device through (" + Describe(d) + ")",
                    "host devices are this host's, not the export's");
    }
    if (kind == "filesystem") {
      return Refuse("shares a host directory (<filesystem>)", "a host directory");
    }
    if (kind == "interface" && r.as_new) RemoveAll(d, "mac");
    if (kind == "disk") {
      RemoveDeep(d, "backingStore");
      if (next < parsed.snapshot_disks.size() && parsed.snapshot_disks[next] == index) {
        d.child("source").attribute("file").set_value(r.disks[next].c_str());
        ++next;
      } else {
        const std::string_view device = d.attribute("device").as_string("disk");
        if (device != "cdrom" && device != "floppy") {
          return Refuse("has disk " + std::string(d.child("target").attribute("dev").value()) +
                            ", which vmgroup did not export (read-only or not a qcow2 file)",
                        "its image is a file of the host it came from");
        }
        RemoveAll(d, "source");  // the medium is ejected
      }
      ++index;
      continue;
    }
    if (kind == "serial" || kind == "console" || kind == "parallel" || kind == "channel") {
      for (auto source : d.children("source")) {
        if (type == "file") {
          source.attribute("path").set_value(log_of(source.attribute("path").value()).c_str());
        } else if (type == "unix") {
          source.remove_attribute("path");
        }
      }
      if (auto log = d.child("log"); log && log.attribute("file")) {
        log.attribute("file").set_value(log_of(log.attribute("file").value()).c_str());
      }
    }
    if (kind == "rng") {
      const std::string backend = d.child_value("backend");
      if (backend == "/dev/urandom" || backend == "/dev/random") allowed.insert(backend);
    }
  }
  VMG_RETURN_IF_ERROR(CheckNoHostPaths(domain, allowed));
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
  return name.size() > kTrackingPrefix.size() && name.starts_with(kTrackingPrefix);
}

}  // namespace vmgroup::hypervisor::libvirt
