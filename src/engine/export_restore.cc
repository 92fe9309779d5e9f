#include "engine/export_restore.h"

#include <unistd.h>

#include <filesystem>
#include <set>

#include "base/huge_pages.h"
#include "base/ids.h"
#include "base/validate.h"
#include "engine/domain_sync.h"
#include "engine/export_images.h"
#include "engine/fault_points.h"
#include "storage/checksum.h"
#include "storage/image_check.h"
#include "storage/qemu_img.h"
#include "storage/untrusted_files.h"

namespace vmgroup::engine {

// A file of the export and the copy restore makes of it.
struct FileCopy {
  std::string from, to;
  uint64_t bytes = 0;       // its size in the manifest
  std::string checksum;     // its checksum in the manifest
  bool image = false;       // a disk image: the copy's header is judged again
  std::string backing;      // an image's backing name, as judged in the export
  std::string rebase_onto;  // for an image with a backing file: the copy of that file
};

struct ExportRestorer::VmPlan {
  VmDefinition def;  // its disks, kernel and initrd: the copies
  std::string run_dir;
  // Where its copies go: run_dir + "/restored", or, for a libvirt domain
  // restored beside its images, "<dir>/<id>-restored".
  std::string prefix;
  bool beside = false;      // the copies lie outside run_dir
  std::string libvirt_uri;  // a libvirt domain: the connection it is defined on
  std::string definition;   // and its sanitised definition
  // The kernel, the initrd, then each disk's chain from its full image up:
  // in this order each copy's backing is there when it is rebased.
  std::vector<FileCopy> files;
};

struct ExportRestorer::Plan {
  ExportManifest manifest;
  std::string collection_id;  // chosen before anything is made: the intent names it
  std::string collection_name;
  std::vector<VmPlan> vms;
  uint64_t bytes = 0;  // to copy, in all
};

namespace {

std::string Suffixed(const std::string& name, bool as_new) {
  return as_new ? name + "-restored" : name;
}

Status Damaged(const std::string& file, const std::string& checksum, const std::string& read) {
  return Status::Failed("the export is damaged: " + file +
                        " does not match its checksum in the manifest (" + checksum + ", read " +
                        read + ")");
}

// Where image `k` of disk `index`'s chain (0: the top) is copied.
std::string CopyOf(const std::string& prefix, int index, size_t k) {
  const std::string disk = prefix + "-d" + std::to_string(index);
  return k == 0 ? disk + ".qcow2" : disk + "." + std::to_string(k) + ".qcow2";
}

// Copies `f` and checks the copy against the manifest and, for an image,
// its header against what was judged in the export: the copy is what the
// VM will open, whatever the export turned into meanwhile.
Status Copy(const FileCopy& f) {
  VMG_ASSIGN_OR_RETURN(storage::FileDigest d, storage::CopyRegular(f.from, f.to));
  if (d.checksum != f.checksum || d.bytes != f.bytes) {
    return Damaged(f.from, f.checksum, d.checksum);
  }
  if (!f.image) return Status::Ok();
  auto copy = storage::InspectImage(f.to, storage::BackingNames::kRelativeOnly);
  if (!copy.ok() || copy->header.backing_file != f.backing) {
    return Status::Failed("the export changed while it was restored: " + f.from +
                          " no longer reads as it did when it was checked");
  }
  return Status::Ok();
}

}  // namespace

Result<ExportRestorer::Plan> ExportRestorer::MakePlan(const RestoreRequest& request) {
  const std::string& given = request.directory;
  VMG_RETURN_IF_ERROR(CheckClientPath("the export directory", given));
  // The directory is taken as the operator names it; inside it, and in its
  // base exports, no symbolic link is followed (untrusted_files.h).
  std::error_code ec;
  const std::string dir = std::filesystem::canonical(given, ec).string();
  if (ec) {
    return Status::InvalidArgument("the export directory " + given +
                                   " cannot be used: " + ec.message());
  }
  auto read = ReadManifestIn(dir);
  if (!read.ok()) return Status::InvalidArgument(read.status().message());
  Plan plan{.manifest = std::move(read).value()};
  const ExportManifest& m = plan.manifest;
  if (!m.storage) {
    return Status::InvalidArgument("the export in " + dir +
                                   " was made without disk images; there is nothing to restore");
  }
  VMG_RETURN_IF_ERROR(CheckIdsFree(m, request.as_new));
  plan.collection_id = request.as_new ? NewGuid() : m.collection_id;
  plan.collection_name = Suffixed(m.collection_name, request.as_new);
  VMG_RETURN_IF_ERROR(CheckName("the restored group's name", plan.collection_name)
                          .Annotate(dir + "/" + kManifestFile));
  ExportImages images;
  for (const auto& vm : m.vms) {
    VMG_ASSIGN_OR_RETURN(VmPlan v, PlanVm(dir, m, vm, request, images));
    for (const auto& f : v.files) plan.bytes += f.bytes;
    plan.vms.push_back(std::move(v));
  }
  return plan;
}

Result<ExportRestorer::VmPlan> ExportRestorer::PlanVm(const std::string& dir,
                                                      const ExportManifest& m, const ExportedVm& vm,
                                                      const RestoreRequest& request,
                                                      ExportImages& images) {
  const bool as_new = request.as_new;
  const std::string config_path = dir + "/" + vm.config_file;
  VMG_ASSIGN_OR_RETURN(std::string text,
                       storage::ReadBounded(config_path, kMaxConfigBytes, "the VM configuration"));
  // What is parsed is what was checksummed.
  storage::Digester digester;
  digester.Update(text.data(), text.size());
  const std::string read = digester.Digest().checksum;
  if (read != vm.config_checksum) return Damaged(config_path, vm.config_checksum, read);
  auto c = ParseConfig(text);
  if (!c.ok()) return c.status().Annotate(config_path);
  if (c->id != vm.id || c->name != vm.name || c->disks != static_cast<int64_t>(vm.disks.size())) {
    return Status::InvalidArgument(config_path +
                                   " does not match the manifest (the VM's id, name or number "
                                   "of disks differ)");
  }
  VmPlan p{.def = {.name = Suffixed(c->name, as_new),
                   .id = as_new ? NewGuid() : vm.id,
                   // Its kernel and initrd name files of the export: the
                   // restored copies take their place below.
                   .config = c->config}};
  p.run_dir = vms_->RunDir(p.def.id);
  p.prefix = p.run_dir + "/restored";
  std::string boot_prefix = p.run_dir + "/";
  if (!vm.domain.empty()) {
    p.libvirt_uri = request.libvirt_uri.empty() ? vm.domain.uri : request.libvirt_uri;
    if (const std::string beside = DomainImageDir(p.libvirt_uri, vm.domain.image_dir);
        !beside.empty()) {
      p.beside = true;
      p.prefix = beside + "/" + p.def.id + "-restored";
    }
    boot_prefix = p.prefix + "-";
  }

  const struct {
    const char* what;
    const std::string& named;
    const ExportedFile& listed;
    std::string& copy;
  } boot[] = {{"kernel", c->config.kernel, vm.kernel, p.def.config.kernel},
              {"initrd", c->config.initrd, vm.initrd, p.def.config.initrd}};
  for (const auto& b : boot) {
    if (b.named.empty() && b.listed.empty()) continue;
    if (b.named != b.listed.file) {
      const std::string named = "'" + Printable(b.named) + "'";
      return Status::InvalidArgument(
          config_path + (!b.named.empty() && b.named[0] == '/'
                             ? " names the host file " + named + " as the VM's " + b.what +
                                   "; a restored VM boots only files of its export"
                             : " names " + named + " as the VM's " + b.what +
                                   ", but the manifest lists '" + Printable(b.listed.file) + "'"));
    }
    const std::string from = dir + "/" + b.listed.file;
    VMG_RETURN_IF_ERROR(storage::OpenRegular(from).status());  // no link, no device
    b.copy = boot_prefix + b.what;
    p.files.push_back(
        {.from = from, .to = b.copy, .bytes = b.listed.file_size, .checksum = b.listed.checksum});
  }

  for (const auto& d : vm.disks) {
    auto chain = images.Chain(dir, m, vm.id, d);
    if (!chain.ok()) {
      return chain.status().Annotate("VM " + vm.name + ": disk " + std::to_string(d.index));
    }
    for (size_t k = chain->size(); k-- > 0;) {
      const ExportedImage& image = (*chain)[k];
      p.files.push_back(
          {.from = image.path,
           .to = CopyOf(p.prefix, d.index, k),
           .bytes = image.disk.file_size,
           .checksum = image.disk.checksum,
           .image = true,
           .backing = image.backing,
           .rebase_onto = k + 1 < chain->size() ? CopyOf(p.prefix, d.index, k + 1) : ""});
    }
    p.def.disks.emplace_back(CopyOf(p.prefix, d.index, 0));
  }
  VMG_RETURN_IF_ERROR(VmRegistry::CheckBounds(p.def).Annotate(config_path));
  // As Define would refuse it, but before a byte is copied.
  if (p.def.config.hugepages && vm.domain.empty()) {
    VMG_RETURN_IF_ERROR(CheckHugePagesFree(env_, "VM " + p.def.name, p.def.config.memory_mib));
  }
  if (!vm.domain.empty()) VMG_RETURN_IF_ERROR(PlanDomain(dir, vm, request, p));
  return p;
}

std::string ExportRestorer::DomainImageDir(const std::string& uri, const std::string& exported) {
  // An export is data: the directory it names is used only when libvirt
  // keeps images of a domain vmgroup knows on the same connection there, so
  // that a crafted export cannot have files written where they would be
  // taken as instructions (a directory of configuration files).
  if (exported.empty()) return "";
  std::set<std::string> dirs;
  auto parent = [](const std::string& f) {
    return std::filesystem::path(f).parent_path().string();
  };
  auto vms = catalog_->ListVms();
  auto snapshots = catalog_->ListSnapshots();
  if (!vms.ok() || !snapshots.ok()) return "";
  std::set<std::string> on_uri;
  for (const auto& vm : *vms) {
    if (vm.libvirt_uri != uri) continue;
    on_uri.insert(vm.id);
    for (const auto& d : vm.disks) dirs.insert(parent(d));
  }
  for (const auto& s : *snapshots) {
    for (const auto& m : s.members) {
      if (!on_uri.count(m.vm_id)) continue;
      for (const auto& d : m.disks) dirs.insert(parent(d.frozen_image));
    }
  }
  std::error_code ec;
  const auto state = std::filesystem::weakly_canonical(vms_->state_dir(), ec).string();
  auto kind = storage::KindOf(exported);
  const bool real = !ec && kind.ok() && *kind == storage::FileKind::kDirectory &&
                    std::filesystem::canonical(exported, ec).string() == exported && !ec &&
                    ::access(exported.c_str(), W_OK) == 0;
  if (!real || !dirs.count(exported) || exported == state || exported.starts_with(state + "/")) {
    return "";
  }
  return exported;
}

Status ExportRestorer::PlanDomain(const std::string& dir, const ExportedVm& vm,
                                  const RestoreRequest& request, VmPlan& p) {
  hypervisor::Driver* driver = vms_->Connection(p.libvirt_uri);
  if (!driver) {
    return Status::Unavailable("VM " + vm.name + " was a domain of libvirt at " + p.libvirt_uri +
                               ", and vmgroupd has no connection there: restoring it needs one "
                               "(start vmgroupd with --libvirt " +
                               p.libvirt_uri + ")");
  }
  const std::string xml_path = dir + "/" + vm.domain.definition.file;
  VMG_ASSIGN_OR_RETURN(std::string xml,
                       storage::ReadBounded(xml_path, kMaxDomainXmlBytes, "the domain definition"));
  storage::Digester digester;
  digester.Update(xml.data(), xml.size());
  const std::string read = digester.Digest().checksum;
  if (read != vm.domain.definition.checksum) {
    return Damaged(xml_path, vm.domain.definition.checksum, read);
  }
  auto vms = catalog_->ListVms();
  if (!vms.ok()) return vms.status();
  for (const auto& other : *vms) {
    if (other.name == p.def.name) {
      return Status::AlreadyExists("VM " + p.def.name + " (" + other.id +
                                   ") exists; rename or delete it first, or restore as new");
    }
  }
  if (p.beside) {
    for (const auto& f : p.files) {
      if (env_->FileExists(f.to)) {
        return Status::AlreadyExists("restoring VM " + p.def.name + " would replace " + f.to);
      }
    }
  }
  std::vector<std::string> disks;
  for (const auto& d : p.def.disks) disks.push_back(d.path);
  auto sanitized = driver->PrepareRestore({.definition = xml,
                                           .uuid = p.def.id,
                                           .name = p.def.name,
                                           .as_new = request.as_new,
                                           .disks = disks,
                                           .kernel = p.def.config.kernel,
                                           .initrd = p.def.config.initrd,
                                           .files_prefix = p.prefix});
  if (!sanitized.ok()) return sanitized.status().Annotate(xml_path);
  p.definition = std::move(sanitized).value();
  return Status::Ok();
}

Status ExportRestorer::Validate(const RestoreRequest& request) {
  return MakePlan(request).status();
}

Status ExportRestorer::CheckIdsFree(const ExportManifest& m, bool as_new) {
  if (as_new) return Status::Ok();
  if (catalog_->GetCollection(m.collection_id).ok()) {
    return Status::AlreadyExists("group " + m.collection_name + " (" + m.collection_id +
                                 ") exists; delete it first or restore as new");
  }
  for (const auto& vm : m.vms) {
    if (catalog_->GetVm(vm.id).ok()) {
      return Status::AlreadyExists("VM " + vm.name + " (" + vm.id +
                                   ") exists; delete it first or restore as new");
    }
  }
  return Status::Ok();
}

Result<RestoredGroup> ExportRestorer::Restore(const RestoreRequest& request) {
  VMG_ASSIGN_OR_RETURN(Plan plan, MakePlan(request));
  catalog::RestoreIntent intent{.collection_id = plan.collection_id};
  for (const VmPlan& v : plan.vms) {
    intent.vm_ids.push_back(v.def.id);
    intent.libvirt_uris.push_back(v.libvirt_uri);
    if (!v.beside) continue;
    for (const FileCopy& f : v.files) intent.files.push_back(f.to);
  }
  // Recorded before anything is made: a crash from here on leaves recovery
  // the list of what to take back.
  VMG_RETURN_IF_ERROR(catalog_->InsertRestoreIntent(intent));
  auto undo = [&](const Status& cause) -> Status {
    Status s = TakeBackRestore(env_, *vms_, *catalog_, intent);
    return s.ok()
               ? cause
               : Status(cause.code(),
                        cause.message() +
                            " (not all of the restore could be taken back: " + s.message() + ")");
  };

  storage::QemuImg img(env_);
  RestoredGroup out;
  uint64_t done = 0;
  for (const VmPlan& v : plan.vms) {
    if (!v.beside) {
      if (Status s = env_->CreateDirs(v.run_dir); !s.ok()) return undo(s);
    }
    for (const FileCopy& f : v.files) {
      Status s = Copy(f);
      if (s.ok() && !f.rebase_onto.empty()) s = img.Rebase(f.to, f.rebase_onto, /*unsafe=*/true);
      if (s.ok()) s = env_->Hit(fault::kRestoreFileCopied, v.def.name);
      if (!s.ok()) return undo(s.Annotate("VM " + v.def.name));
      done += f.bytes;
      if (request.progress && plan.bytes > 0) {
        request.progress(static_cast<int>(done * 99 / plan.bytes));
      }
    }
    auto id = v.libvirt_uri.empty() ? vms_->Define(v.def) : DefineDomain(v);
    if (!id.ok()) return undo(id.status().Annotate("VM " + v.def.name));
    out.vm_ids.push_back(*id);
    if (Status f = env_->Hit(fault::kRestoreVmDefined, v.def.name); !f.ok()) return undo(f);
  }
  auto group = collections_->DefineCollection(plan.collection_name, plan.collection_id,
                                              catalog::CollectionType::kVirtualSystems);
  if (!group.ok()) return undo(group.status());
  out.collection_id = *group;
  for (const auto& id : out.vm_ids) {
    if (Status s = collections_->AddMember(id, out.collection_id); !s.ok()) return undo(s);
  }
  if (Status s = catalog_->DeleteRestoreIntent(intent.collection_id); !s.ok()) return undo(s);
  if (request.progress) request.progress(100);
  return out;
}

Result<std::string> ExportRestorer::DefineDomain(const VmPlan& v) {
  hypervisor::Driver* driver = vms_->Connection(v.libvirt_uri);
  if (!driver)
    return Status::Unavailable("the connection to libvirt at " + v.libvirt_uri + " closed");
  VMG_ASSIGN_OR_RETURN(hypervisor::DomainInfo info, driver->DefineRestored(v.definition));
  // As DomainSync records it; its listing may have been first.
  vms_->SetUnsupported(info.uuid, info.unsupported);
  auto was = catalog_->GetVm(info.uuid);
  const catalog::VmRecord record = RecordOfDomain(info, v.libvirt_uri, was.ok() ? &*was : nullptr);
  Status recorded = was.ok() ? catalog_->UpdateDomain(record) : catalog_->InsertVm(record);
  // Or between the look and the insert (the define's event woke it).
  if (recorded.code() == Code::kAlreadyExists) recorded = catalog_->UpdateDomain(record);
  VMG_RETURN_IF_ERROR(recorded);
  return info.uuid;
}

Status TakeBackRestore(Env* env, VmRegistry& vms, catalog::Catalog& catalog,
                       const catalog::RestoreIntent& intent) {
  std::string left, unavailable;
  auto note = [&](const Status& s) {
    if (!s.ok()) left += (left.empty() ? "" : "; ") + s.message();
  };
  if (catalog.GetCollection(intent.collection_id).ok()) {
    note(catalog.DeleteCollection(intent.collection_id));  // its memberships go with it
  }
  for (size_t i = 0; i < intent.vm_ids.size(); ++i) {
    const std::string& id = intent.vm_ids[i];
    const std::string uri = i < intent.libvirt_uris.size() ? intent.libvirt_uris[i] : "";
    if (!uri.empty()) {
      // A domain the restore defined: undefined through its connection
      // (none defined yet: nothing to do), and only then forgotten.
      hypervisor::Driver* driver = vms.Connection(uri);
      if (!driver) {
        unavailable = "libvirt domain " + id + " of a restore cut short is on " + uri +
                      ", and vmgroupd has no connection there: start vmgroupd with --libvirt " +
                      uri + " to take it back";
        continue;
      }
      if (Status s = driver->UndefineRestored(id); !s.ok()) {
        note(s);
        continue;
      }
      if (catalog.GetVm(id).ok()) note(vms.ForgetDomain(id));
    } else if (catalog.GetVm(id).ok()) {
      note(vms.Undefine(id));
    }
    // The run directory was made for the restore (the VM's id was free):
    // everything in it is a copy the restore made.
    const std::string dir = vms.RunDir(id);
    if (!env->FileExists(dir)) continue;
    if (auto files = env->ListDir(dir); files.ok()) {
      for (const auto& f : *files) note(env->RemoveFile(dir + "/" + f));
    }
    note(env->RemoveDir(dir));
  }
  // Copies beside libvirt's images: each was new (the plan refused to
  // replace a file), so each is the restore's. Kept while a domain that may
  // name them is still defined.
  for (const auto& f : unavailable.empty() ? intent.files : std::vector<std::string>{}) {
    if (env->FileExists(f)) note(env->RemoveFile(f));
  }
  if (!unavailable.empty()) {
    return Status::Unavailable(unavailable + (left.empty() ? "" : " (also: " + left + ")"));
  }
  if (!left.empty()) return Status::Failed(left);
  return catalog.DeleteRestoreIntent(intent.collection_id);
}

}  // namespace vmgroup::engine
