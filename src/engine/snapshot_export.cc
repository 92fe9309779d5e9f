// SnapshotEngine::Export: a group snapshot copied out for backup.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <optional>

#include "base/validate.h"
#include "engine/export_images.h"
#include "engine/export_layout.h"
#include "engine/fault_points.h"
#include "engine/snapshot_engine.h"
#include "storage/checksum.h"
#include "storage/untrusted_files.h"

namespace vmgroup::engine {
namespace {

namespace fs = std::filesystem;

// An export holds whole disks: root and the admin group may read it, nobody
// else, from the moment its directory exists.
constexpr unsigned kExportDirMode = 0750, kExportFileMode = 0640;

// What an export has made so far, so that a failure can take it all away
// again: its files, then the directories that did not exist before, the
// last made first. Everything it makes gets the export's access.
class Written {
 public:
  Written(Env* env, int gid) : env_(env), gid_(gid) {}
  void File(const std::string& path) { files_.push_back(path); }
  // Gives a file written into the export the export's access.
  Status Seal(const std::string& path) { return storage::SetAccess(path, kExportFileMode, gid_); }
  // Creates `dir` and its missing parents, remembering each one it made,
  // and gives them and `dir` the export's access.
  Status Dirs(const std::string& dir) {
    std::vector<std::string> missing;
    for (std::string d = dir; !d.empty() && d != "/" && !env_->FileExists(d);
         d = d.substr(0, d.find_last_of('/'))) {
      missing.push_back(d);
    }
    VMG_RETURN_IF_ERROR(env_->CreateDirs(dir));
    dirs_.insert(dirs_.end(), missing.rbegin(), missing.rend());  // outermost first
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      VMG_RETURN_IF_ERROR(storage::SetAccess(*it, kExportDirMode, gid_));
    }
    return storage::SetAccess(dir, kExportDirMode, gid_);
  }
  // Removes everything recorded and returns `cause`, saying what could not
  // be removed.
  Status Undo(const Status& cause) {
    std::string left;
    for (auto it = files_.rbegin(); it != files_.rend(); ++it) {
      if (Status s = env_->RemoveFile(*it); !s.ok()) left += "; " + s.message();
    }
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      if (Status s = env_->RemoveDir(*it); !s.ok()) left += "; " + s.message();
    }
    return Status(cause.code(),
                  cause.message() + (left.empty() ? " (the partial export was removed)"
                                                  : " (the partial export was not removed "
                                                    "entirely" +
                                                        left + ")"));
  }

 private:
  Env* env_;
  int gid_;
  std::vector<std::string> files_, dirs_;
};

// The VM's definition as an export carries it: its kernel and initrd as the
// export's copies (`out`), and no extra QEMU arguments (a restore takes none).
ExportedConfig ConfigOf(const catalog::VmRecord& vm, const ExportedVm& out) {
  return {.id = vm.id,
          .name = vm.name,
          .memory_mib = vm.memory_mib,
          .vcpus = vm.vcpus,
          .kernel = out.kernel.file,
          .initrd = out.initrd.file,
          .append = vm.append,
          .disks = static_cast<int64_t>(vm.disks.size())};
}

// A base that cannot serve: the caller can still export in full.
Status Full(const std::string& why) { return Status::Failed(why + "; export in full"); }

// Writes libvirt domain `vm`'s definition, from `driver`, into the export
// `dir` and records it in `out`; returns it, with the files it boots.
Result<hypervisor::ExportedDefinition> ExportDomain(Env* env, storage::QemuImg& img,
                                                    hypervisor::Driver& driver,
                                                    const catalog::VmRecord& vm,
                                                    const catalog::MemberSnapshot& member,
                                                    const std::string& dir, Written& written,
                                                    ExportedVm& out) {
  auto definition = driver.ExportDefinition(vm.id);
  if (!definition.ok()) return definition.status().Annotate("VM " + vm.name + ": its definition");
  // The operator's definition may boot /boot/vmlinuz, a link to the kernel
  // of the day: what is copied is the file it leads to (the copy is read
  // through no link).
  for (std::string* boot : {&definition->kernel, &definition->initrd}) {
    if (boot->empty()) continue;
    std::error_code ec;
    const std::string target = fs::canonical(*boot, ec).string();
    if (ec) {
      return Status::FileNotFound("VM " + vm.name + ": its definition boots " + *boot + ": " +
                                  ec.message());
    }
    *boot = target;
  }
  // The domain as libvirt defines it now: its disks, and the devices a
  // restore defines it with again (export_restore.h judges them).
  out.domain = {
      .uri = vm.libvirt_uri, .definition = {.file = ExportDomainFile(vm.id)}, .image_dir = ""};
  const std::string path = dir + "/" + out.domain.definition.file;
  written.File(path);
  VMG_RETURN_IF_ERROR(env->WriteFile(path, definition->definition));
  VMG_RETURN_IF_ERROR(written.Seal(path));
  VMG_ASSIGN_OR_RETURN(auto digest, storage::DigestFile(path));
  out.domain.definition.file_size = digest.bytes;
  out.domain.definition.checksum = digest.checksum;
  // Where libvirt keeps the domain's own images: the base of its first
  // disk's chain (later snapshots' images lie in vmgroup's state directory).
  if (!member.disks.empty()) {
    auto chain = img.Chain(member.disks[0].frozen_image);
    if (chain.ok() && !chain->empty() && chain->back().filename.starts_with("/")) {
      out.domain.image_dir = fs::path(chain->back().filename).parent_path().string();
    }
  }
  return definition;
}

}  // namespace

Status SnapshotEngine::CheckExportDirectory(const std::string& dir) {
  VMG_RETURN_IF_ERROR(CheckClientPath("ExportDirectory", dir));
  // Where it leads, links followed: an export inside the state directory
  // could overwrite or expose what the daemon keeps there.
  std::error_code target_ec, state_ec;
  const fs::path target = fs::weakly_canonical(dir, target_ec);
  const fs::path state = fs::weakly_canonical(vms_->state_dir(), state_ec);
  if (target_ec || state_ec) {
    return Status::InvalidArgument("ExportDirectory " + dir + " cannot be used: " +
                                   (target_ec ? target_ec : state_ec).message());
  }
  const fs::path inside = target.lexically_relative(state);
  if (!inside.empty() && *inside.begin() != "..") {
    return Status::InvalidArgument("ExportDirectory " + dir +
                                   " lies inside vmgroup's state directory " + vms_->state_dir() +
                                   "; export elsewhere");
  }
  VMG_ASSIGN_OR_RETURN(storage::FileKind kind, storage::KindOf(dir));
  if (kind == storage::FileKind::kLink) {
    return Status::InvalidArgument("ExportDirectory " + dir +
                                   " is a symbolic link; name a real directory");
  }
  if (kind != storage::FileKind::kMissing && kind != storage::FileKind::kDirectory) {
    return Status::InvalidArgument("ExportDirectory " + dir + " is not a directory");
  }
  if (kind == storage::FileKind::kDirectory) {
    auto entries = env_->ListDir(dir);
    if (!entries.ok()) {
      return Status::InvalidArgument("ExportDirectory " + dir +
                                     " cannot be used: " + entries.status().message());
    }
    if (!entries->empty()) {
      return Status::AlreadyExists("ExportDirectory " + dir +
                                   " is not empty; an export goes into a new or empty directory");
    }
  }
  return Status::Ok();
}

Result<std::pair<catalog::SnapshotRecord, std::vector<catalog::VmRecord>>>
SnapshotEngine::CheckExport(const ExportRequest& request) {
  VMG_RETURN_IF_ERROR(CheckExportDirectory(request.directory));
  VMG_ASSIGN_OR_RETURN(catalog::SnapshotRecord s, catalog_->GetSnapshot(request.snapshot_id));
  VMG_RETURN_IF_ERROR(RequireComplete(s));
  VMG_ASSIGN_OR_RETURN(auto vms, MembersOf(s));
  // A libvirt domain's frozen images are plain qcow2 files, read as our own
  // VMs' are, its changes since a reference point through its checkpoint
  // (Vm::CopyMarked); its definition comes from its connection.
  VMG_RETURN_IF_ERROR(RequireConnected(vms, "exporting a snapshot of it"));
  return std::make_pair(std::move(s), std::move(vms));
}

Result<SnapshotEngine::IncrementalBase> SnapshotEngine::CheckBase(
    const ExportRequest& request, const catalog::SnapshotRecord& s,
    const std::vector<catalog::VmRecord>& vms) {
  if (!request.copy_storage) {
    return Status::InvalidArgument(
        "an incremental export copies disks: CopyVmStorage must be true");
  }
  auto rp = catalog_->GetReferencePoint(request.base);
  if (!rp.ok()) {
    auto snapshot = catalog_->GetSnapshot(request.base);
    if (snapshot.ok()) return CheckSnapshotBase(*snapshot, s, vms);
    return Status::InvalidArgument("DifferentialBackupBase " + request.base +
                                   " is neither a reference point nor a group snapshot");
  }
  if (rp->collection_id != s.collection_id) {
    return Status::InvalidArgument("reference point " + rp->name + " belongs to another group");
  }
  IncrementalBase base{.rp = *rp, .snapshot_id = rp->snapshot_id};
  for (size_t i = 0; i < vms.size(); ++i) {
    const catalog::ReferencePointMember* member = nullptr;
    for (const auto& m : rp->members) {
      if (m.vm_id == vms[i].id) member = &m;
    }
    if (!member) return Full("VM " + vms[i].name + " is not in reference point " + rp->name);
    for (const auto& d : s.members[i].disks) {
      if (static_cast<size_t>(d.index) >= member->images.size() ||
          member->images[d.index] != d.frozen_image) {
        return Full("reference point " + rp->name + " does not lead up to snapshot " + s.name +
                    " on VM " + vms[i].name + " (another snapshot came between them)");
      }
    }
    auto live = vms_->Live(vms[i].id);
    VMG_RETURN_IF_ERROR(RequireLive(vms[i], live.get(),
                                    "an incremental export reads the changes through its "
                                    "running QEMU: start it, or export in full"));
    base.live.push_back(std::move(live));
  }
  VMG_RETURN_IF_ERROR(FindBaseExport(rp->snapshot_id, "reference point " + rp->name, &base));
  return base;
}

Result<SnapshotEngine::IncrementalBase> SnapshotEngine::CheckSnapshotBase(
    const catalog::SnapshotRecord& b, const catalog::SnapshotRecord& s,
    const std::vector<catalog::VmRecord>& vms) {
  if (b.collection_id != s.collection_id) {
    return Status::InvalidArgument("snapshot " + b.name + " belongs to another group");
  }
  if (b.id == s.id) {
    return Status::InvalidArgument("snapshot " + s.name + " cannot be its own base");
  }
  VMG_RETURN_IF_ERROR(RequireComplete(b));
  // Each of the snapshot's frozen images must be the overlay the base's cut
  // made: then it holds exactly what changed since the base.
  for (size_t i = 0; i < vms.size(); ++i) {
    const catalog::MemberSnapshot* member = nullptr;
    for (const auto& m : b.members) {
      if (m.vm_id == vms[i].id) member = &m;
    }
    if (!member) return Full("VM " + vms[i].name + " is not in snapshot " + b.name);
    for (const auto& d : s.members[i].disks) {
      const auto below = std::find_if(member->disks.begin(), member->disks.end(),
                                      [&](const auto& e) { return e.index == d.index; });
      if (below == member->disks.end() || below->overlay != d.frozen_image) {
        return Full("snapshot " + b.name + " is not the one right before snapshot " + s.name +
                    " on VM " + vms[i].name);
      }
    }
  }
  IncrementalBase base{.rp = std::nullopt, .snapshot_id = b.id};
  VMG_RETURN_IF_ERROR(FindBaseExport(b.id, "snapshot " + b.name, &base));
  return base;
}

Status SnapshotEngine::FindBaseExport(const std::string& snapshot_id, const std::string& what,
                                      IncrementalBase* base) {
  VMG_ASSIGN_OR_RETURN(auto dirs, catalog_->ExportsOf(snapshot_id));
  for (const auto& d : dirs) {
    auto m = ReadManifestIn(d);
    if (m.ok() && m->snapshot_id == snapshot_id && m->storage) {
      base->directory = d;
      base->manifest = std::move(*m);
      return Status::Ok();
    }
  }
  return Full("no export of " + what + "'s data is left to build on (" +
              (dirs.empty() ? std::string("it was never exported") : "looked in " + dirs[0]) + ")");
}

Status SnapshotEngine::CopyChanges(const IncrementalBase& base, size_t member,
                                   const catalog::SnapshotDisk& disk, const std::string& base_file,
                                   const std::string& relative, const std::string& path) {
  if (!base.rp) {
    return img_.Convert(disk.frozen_image, path, storage::kDiskCopyTimeout, relative);
  }
  VMG_RETURN_IF_ERROR(img_.CreateOverlay(base_file, path, relative));
  Status s = base.live[member]->CopyMarked(disk.index, disk.frozen_image, base.rp->bitmap, path,
                                           Clock::now() + storage::kDiskCopyTimeout);
  const Code c = s.code();
  if (c == Code::kNotFound || c == Code::kInvalidArgument || c == Code::kInvalidState) {
    return Full("the change tracking of reference point " + base.rp->name + " is lost (" +
                s.message() + ")");
  }
  return s;
}

Status SnapshotEngine::CheckBaseImages(const IncrementalBase& base,
                                       const std::vector<catalog::VmRecord>& vms) {
  // The base export's images become backing files that qemu-img and QEMU
  // open: they are judged first, like a restore's (export_images.h).
  std::error_code ec;
  const std::string dir = fs::canonical(base.directory, ec).string();
  if (ec) return Full("the base export " + base.directory + " cannot be read: " + ec.message());
  ExportImages images;
  for (const auto& vm : vms) {
    for (size_t index = 0; index < vm.disks.size(); ++index) {
      const ExportedDisk* below = FindDisk(base.manifest, vm.id, static_cast<int>(index));
      if (!below) continue;  // Export says so when it comes to the disk
      if (Status c = images.Chain(dir, base.manifest, vm.id, *below).status(); !c.ok()) {
        return Full("the base export cannot serve: " + c.message());
      }
    }
  }
  return Status::Ok();
}

Status SnapshotEngine::ValidateExport(const ExportRequest& request) {
  VMG_ASSIGN_OR_RETURN(auto checked, CheckExport(request));
  if (!request.base.empty()) {
    VMG_ASSIGN_OR_RETURN(IncrementalBase base, CheckBase(request, checked.first, checked.second));
    VMG_RETURN_IF_ERROR(CheckBaseImages(base, checked.second));
  }
  std::lock_guard lock(mu_);
  return CheckNotBusyLocked(checked.second);
}

Result<ExportManifest> SnapshotEngine::Export(const ExportRequest& request) {
  VMG_ASSIGN_OR_RETURN(auto checked, CheckExport(request));
  auto& [s, vms] = checked;
  std::optional<IncrementalBase> base;
  if (!request.base.empty()) {
    VMG_ASSIGN_OR_RETURN(base, CheckBase(request, s, vms));
    VMG_RETURN_IF_ERROR(CheckBaseImages(*base, vms));
  }
  VMG_RETURN_IF_ERROR(Claim(vms));
  const Releaser releaser{this, vms};
  VMG_ASSIGN_OR_RETURN(auto group, catalog_->GetCollection(s.collection_id));

  // The disks' sizes first: progress counts bytes copied of all of them.
  // (An incremental export knows them from its base, without a qemu-img
  // run per disk: it is meant to take milliseconds.)
  uint64_t total = 0, done = 0;
  std::vector<std::vector<uint64_t>> sizes(vms.size());
  for (size_t i = 0; i < vms.size(); ++i) {
    for (const auto& d : s.members[i].disks) {
      const ExportedDisk* below = base ? FindDisk(base->manifest, vms[i].id, d.index) : nullptr;
      uint64_t size = below ? below->virtual_size : 0;
      if (size == 0) {
        VMG_ASSIGN_OR_RETURN(auto info, img_.Info(d.frozen_image));
        size = info.virtual_size;
      }
      sizes[i].push_back(size);
      total += size;
    }
  }

  ExportManifest m{.collection_id = group.id,
                   .collection_name = group.name,
                   .snapshot_id = s.id,
                   .snapshot_name = s.name,
                   .snapshot_type = s.type,
                   .snapshot_created_us = s.created_us,
                   .storage = request.copy_storage};
  if (base) {
    m.base = {
        .reference_point_id = base->rp ? base->rp->id : "",
        .snapshot_id = base->snapshot_id,
        .directory = fs::path(base->directory).lexically_relative(request.directory).string()};
  }
  Written written(env_, options_.admin_gid);
  const std::string& dir = request.directory;
  // Recorded before anything is made: recovery takes back what a crash
  // leaves of it (export_layout.h TakeBackExport).
  VMG_RETURN_IF_ERROR(catalog_->InsertExportIntent(
      {.directory = dir, .snapshot_id = s.id, .made = OutermostMissing(env_, dir)}));
  auto fail = [&](const Status& cause) {
    Status undone = written.Undo(cause);
    (void)catalog_->DeleteExportIntent(dir);  // what is left, if anything, is said in `undone`
    return undone;
  };
  if (Status st = written.Dirs(dir); !st.ok()) return fail(st);
  for (size_t i = 0; i < vms.size(); ++i) {
    const catalog::VmRecord& vm = vms[i];
    const catalog::MemberSnapshot& member = s.members[i];
    ExportedVm out{.id = vm.id,
                   .name = vm.name,
                   .member_snapshot_id = member.id,
                   .config_file = ExportConfigFile(vm.id)};
    auto export_vm = [&]() -> Status {
      VMG_RETURN_IF_ERROR(written.Dirs(dir + "/" + vm.id));
      hypervisor::ExportedDefinition domain{.kernel = vm.kernel, .initrd = vm.initrd};
      if (!vm.libvirt_uri.empty()) {
        hypervisor::Driver* driver = vms_->Connection(vm.libvirt_uri);
        if (!driver) VMG_RETURN_IF_ERROR(RequireConnected({vm}, "exporting a snapshot of it"));
        VMG_ASSIGN_OR_RETURN(domain,
                             ExportDomain(env_, img_, *driver, vm, member, dir, written, out));
      }
      // The kernel and initrd travel with the VM: a restore boots only
      // files of the export, never a path of whatever host it lands on.
      const struct {
        const std::string& host;
        const char* name;
        ExportedFile& entry;
      } boot[] = {{domain.kernel, "kernel", out.kernel}, {domain.initrd, "initrd", out.initrd}};
      for (const auto& b : boot) {
        if (b.host.empty()) continue;
        b.entry.file = ExportBootFile(vm.id, b.name);
        const std::string path = dir + "/" + b.entry.file;
        written.File(path);
        auto copied = storage::CopyRegular(b.host, path);
        if (!copied.ok()) return copied.status().Annotate("VM " + vm.name + ": the " + b.name);
        VMG_RETURN_IF_ERROR(written.Seal(path));
        b.entry.file_size = copied->bytes;
        b.entry.checksum = copied->checksum;
      }
      const std::string config = dir + "/" + out.config_file;
      written.File(config);
      VMG_RETURN_IF_ERROR(env_->WriteFile(config, ConfigToJson(ConfigOf(vm, out))));
      VMG_RETURN_IF_ERROR(written.Seal(config));
      VMG_ASSIGN_OR_RETURN(auto written_config, storage::DigestFile(config));
      out.config_checksum = written_config.checksum;
      for (size_t k = 0; k < member.disks.size(); ++k) {
        const catalog::SnapshotDisk& disk = member.disks[k];
        ExportedDisk e{.index = disk.index, .virtual_size = sizes[i][k]};
        if (request.copy_storage) {
          e.file = ExportDiskFile(vm.id, disk.index);
          const std::string path = dir + "/" + e.file;
          written.File(path);
          if (base) {
            const ExportedDisk* below = FindDisk(base->manifest, vm.id, disk.index);
            if (!below) {
              return Status::Failed("the base export has no disk " + std::to_string(disk.index) +
                                    "; export in full");
            }
            e.base_file = (fs::path(m.base.directory) / below->file).string();
            const std::string base_path =
                fs::path(dir + "/" + e.base_file).lexically_normal().string();
            // The chain must survive the backups being moved together: the
            // header names its base relative to the image's own directory.
            const std::string relative =
                fs::path(base_path).lexically_relative(fs::path(path).parent_path()).string();
            VMG_RETURN_IF_ERROR(
                CopyChanges(*base, i, disk, base_path, relative, path)
                    .Annotate("VM " + vm.name + ": disk " + std::to_string(disk.index)));
          } else {
            VMG_RETURN_IF_ERROR(
                img_.Convert(disk.frozen_image, path, storage::kDiskCopyTimeout)
                    .Annotate("VM " + vm.name + ": disk " + std::to_string(disk.index)));
          }
          // A backup that reports done must be on disk; the checksum reads
          // the file (from the page cache) while the sync writes it.
          auto digest = std::async(std::launch::async, storage::DigestFile, path);
          Status synced = env_->SyncFile(path);
          auto image = digest.get();
          VMG_RETURN_IF_ERROR(synced);
          VMG_RETURN_IF_ERROR(image.status());
          VMG_RETURN_IF_ERROR(written.Seal(path));
          e.file_size = image->bytes;
          e.checksum = image->checksum;
          VMG_RETURN_IF_ERROR(env_->Hit(fault::kExportDiskCopied, vm.name));
        }
        out.disks.push_back(std::move(e));
        done += sizes[i][k];
        if (request.progress && total > 0) {
          request.progress(static_cast<int>(done * 99 / total));
        }
      }
      return Status::Ok();
    };
    if (Status st = export_vm(); !st.ok()) return fail(st);
    m.vms.push_back(std::move(out));
  }
  const bool domains = std::any_of(m.vms.begin(), m.vms.end(),
                                   [](const ExportedVm& v) { return !v.domain.empty(); });
  m.version = domains ? kManifestVersion : kOwnVmsManifestVersion;
  m.exported_us = env_->NowMicros();
  const std::string manifest = dir + "/" + kManifestFile;
  written.File(manifest);
  Status wrote = env_->WriteFile(manifest, ManifestToJson(m));
  if (wrote.ok()) wrote = written.Seal(manifest);
  if (!wrote.ok()) return fail(wrote);
  // Where a later incremental export of a reference point made from this
  // snapshot finds its base. The export itself is done and stays (an intent
  // left behind finds the manifest, and recovery keeps the export).
  if (request.copy_storage) (void)catalog_->RecordExport(s.id, dir, m.exported_us);
  (void)catalog_->DeleteExportIntent(dir);
  if (request.progress) request.progress(100);
  return m;
}

}  // namespace vmgroup::engine
