// Writes what docs/export-format.md lays out; WrittenExport takes it back.
#include "engine/snapshot_export.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>

#include "engine/export_layout.h"
#include "engine/fault_points.h"
#include "engine/member_checks.h"
#include "storage/checksum.h"
#include "storage/untrusted_files.h"

namespace vmgroup::engine {
namespace {

namespace fs = std::filesystem;

}  // namespace

// What an export has made so far, so that a failure can take it all away
// again: its files, then the directories that did not exist before, the
// last made first. Everything it makes gets the export's access.
class WrittenExport {
 public:
  WrittenExport(Env* env, int gid) : env_(env), gid_(gid) {}
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

namespace {

// The VM's definition as an export carries it: its kernel and initrd as the
// export's copies (`out`), and no extra QEMU arguments (a restore takes none).
ExportedConfig ConfigOf(const catalog::VmRecord& vm, const ExportedVm& out) {
  ExportedConfig c{.id = vm.id,
                   .name = vm.name,
                   .config = vm.config,
                   .disks = static_cast<int64_t>(vm.disks.size())};
  c.config.kernel = out.kernel.file;
  c.config.initrd = out.initrd.file;
  c.config.extra_args.clear();
  return c;
}

// Writes libvirt domain `vm`'s definition, from `driver`, into the export
// `dir` and records it in `out`; returns it, with the files it boots.
Result<hypervisor::ExportedDefinition> ExportDomain(Env* env, storage::QemuImg& img,
                                                    hypervisor::Driver& driver,
                                                    const catalog::VmRecord& vm,
                                                    const catalog::MemberSnapshot& member,
                                                    const std::string& dir, WrittenExport& written,
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
  VMG_ASSIGN_OR_RETURN(auto digest, storage::DigestFile(env, path));
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

SnapshotExport::SnapshotExport(GroupParts& parts, const ExportRequest& request)
    : parts_(parts), request_(request) {}

SnapshotExport::~SnapshotExport() = default;

Status SnapshotExport::Check() {
  VMG_RETURN_IF_ERROR(CheckExportDirectory(parts_, request_.directory));
  VMG_ASSIGN_OR_RETURN(s_, parts_.catalog->GetSnapshot(request_.snapshot_id));
  VMG_RETURN_IF_ERROR(RequireComplete(s_));
  VMG_ASSIGN_OR_RETURN(members_, MembersOf(parts_, s_));
  // A libvirt domain's frozen images are plain qcow2 files, read as our own
  // VMs' are, its changes since a reference point through its checkpoint
  // (Vm::CopyMarked); its definition comes from its connection.
  VMG_RETURN_IF_ERROR(RequireConnected(parts_, members_, "exporting a snapshot of it"));
  if (request_.base.empty()) return Status::Ok();
  VMG_ASSIGN_OR_RETURN(base_, CheckBase(parts_, request_, s_, members_));
  return CheckBaseImages(*base_, members_);
}

Status SnapshotExport::RecordIntent() {
  const catalog::SnapshotRecord& s = s_;
  VMG_ASSIGN_OR_RETURN(auto group, parts_.catalog->GetCollection(s.collection_id));

  // The disks' sizes first: progress counts bytes copied of all of them.
  // (An incremental export knows them from its base, without a qemu-img
  // run per disk: it is meant to take milliseconds.)
  sizes_.assign(members_.size(), {});
  for (size_t i = 0; i < members_.size(); ++i) {
    for (const auto& d : s.members[i].disks) {
      const ExportedDisk* below =
          base_ ? FindDisk(base_->manifest, members_[i].id, d.index) : nullptr;
      uint64_t size = below ? below->virtual_size : 0;
      if (size == 0) {
        VMG_ASSIGN_OR_RETURN(auto info, parts_.img.Info(d.frozen_image));
        size = info.virtual_size;
      }
      sizes_[i].push_back(size);
      total_ += size;
    }
  }

  m_ = {.collection_id = group.id,
        .collection_name = group.name,
        .snapshot_id = s.id,
        .snapshot_name = s.name,
        .snapshot_type = s.type,
        .snapshot_created_us = s.created_us,
        .storage = request_.copy_storage};
  if (base_) {
    m_.base = {
        .reference_point_id = base_->rp ? base_->rp->id : "",
        .snapshot_id = base_->snapshot_id,
        .directory = fs::path(base_->directory).lexically_relative(request_.directory).string()};
  }
  written_ = std::make_unique<WrittenExport>(parts_.env, parts_.options.admin_gid);
  const std::string& dir = request_.directory;
  // Recorded before anything is made: recovery takes back what a crash
  // leaves of it (export_layout.h TakeBackExport).
  return parts_.catalog->InsertExportIntent(
      {.directory = dir, .snapshot_id = s.id, .made = OutermostMissing(parts_.env, dir)});
}

Status SnapshotExport::Undo(const Status& cause) {
  Status undone = written_->Undo(cause);
  // What is left, if anything, is said in `undone`.
  (void)parts_.catalog->DeleteExportIntent(request_.directory);
  return undone;
}

Status SnapshotExport::Work() {
  const std::string& dir = request_.directory;
  VMG_RETURN_IF_ERROR(written_->Dirs(dir));
  for (size_t i = 0; i < members_.size(); ++i) {
    const catalog::VmRecord& vm = members_[i];
    ExportedVm out{.id = vm.id,
                   .name = vm.name,
                   .member_snapshot_id = s_.members[i].id,
                   .config_file = ExportConfigFile(vm.id)};
    VMG_RETURN_IF_ERROR(ExportVm(i, out));
    m_.vms.push_back(std::move(out));
  }
  const bool domains = std::any_of(m_.vms.begin(), m_.vms.end(),
                                   [](const ExportedVm& v) { return !v.domain.empty(); });
  m_.version = domains ? kManifestVersion : kOwnVmsManifestVersion;
  m_.exported_us = parts_.env->NowMicros();
  const std::string manifest = dir + "/" + kManifestFile;
  written_->File(manifest);
  VMG_RETURN_IF_ERROR(parts_.env->WriteFile(manifest, ManifestToJson(m_)));
  return written_->Seal(manifest);
}

Status SnapshotExport::ExportVm(size_t i, ExportedVm& out) {
  Env* env = parts_.env;
  WrittenExport& written = *written_;
  const std::string& dir = request_.directory;
  const catalog::VmRecord& vm = members_[i];
  const catalog::MemberSnapshot& member = s_.members[i];
  VMG_RETURN_IF_ERROR(written.Dirs(dir + "/" + vm.id));
  hypervisor::ExportedDefinition domain{.kernel = vm.config.kernel, .initrd = vm.config.initrd};
  if (!vm.libvirt_uri.empty()) {
    hypervisor::Driver* driver = parts_.vms->Connection(vm.libvirt_uri);
    if (!driver) VMG_RETURN_IF_ERROR(RequireConnected(parts_, {vm}, "exporting a snapshot of it"));
    VMG_ASSIGN_OR_RETURN(domain,
                         ExportDomain(env, parts_.img, *driver, vm, member, dir, written, out));
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
  VMG_RETURN_IF_ERROR(env->WriteFile(config, ConfigToJson(ConfigOf(vm, out))));
  VMG_RETURN_IF_ERROR(written.Seal(config));
  VMG_ASSIGN_OR_RETURN(auto written_config, storage::DigestFile(env, config));
  out.config_checksum = written_config.checksum;
  for (size_t k = 0; k < member.disks.size(); ++k) {
    const catalog::SnapshotDisk& disk = member.disks[k];
    ExportedDisk e{.index = disk.index, .virtual_size = sizes_[i][k]};
    if (request_.copy_storage) {
      e.file = ExportDiskFile(vm.id, disk.index);
      const std::string path = dir + "/" + e.file;
      written.File(path);
      if (base_) {
        const ExportedDisk* below = FindDisk(base_->manifest, vm.id, disk.index);
        if (!below) {
          return Status::Failed("the base export has no disk " + std::to_string(disk.index) +
                                "; export in full");
        }
        e.base_file = (fs::path(m_.base.directory) / below->file).string();
        const std::string base_path = fs::path(dir + "/" + e.base_file).lexically_normal().string();
        // The chain must survive the backups being moved together: the
        // header names its base relative to the image's own directory.
        const std::string relative =
            fs::path(base_path).lexically_relative(fs::path(path).parent_path()).string();
        VMG_RETURN_IF_ERROR(
            CopyChanges(parts_, *base_, i, disk, base_path, relative, path)
                .Annotate("VM " + vm.name + ": disk " + std::to_string(disk.index)));
      } else {
        VMG_RETURN_IF_ERROR(
            parts_.img.Convert(disk.frozen_image, path, storage::kDiskCopyTimeout)
                .Annotate("VM " + vm.name + ": disk " + std::to_string(disk.index)));
      }
      // A backup that reports done must be on disk; the checksum reads
      // the file (from the page cache) while the sync writes it.
      auto digest = std::async(std::launch::async, storage::DigestFile, env, path);
      Status synced = env->SyncFile(path);
      auto image = digest.get();
      VMG_RETURN_IF_ERROR(synced);
      VMG_RETURN_IF_ERROR(image.status());
      VMG_RETURN_IF_ERROR(written.Seal(path));
      e.file_size = image->bytes;
      e.checksum = image->checksum;
      VMG_RETURN_IF_ERROR(env->Hit(fault::kExportDiskCopied, vm.name));
    }
    out.disks.push_back(std::move(e));
    done_ += sizes_[i][k];
    if (request_.progress && total_ > 0) {
      request_.progress(static_cast<int>(done_ * 99 / total_));
    }
  }
  return Status::Ok();
}

Status SnapshotExport::Finish() {
  // Where a later incremental export of a reference point made from this
  // snapshot finds its base. The export itself is done and stays (an intent
  // left behind finds the manifest, and recovery keeps the export).
  if (request_.copy_storage) {
    (void)parts_.catalog->RecordExport(s_.id, request_.directory, m_.exported_us);
  }
  (void)parts_.catalog->DeleteExportIntent(request_.directory);
  if (request_.progress) request_.progress(100);
  return Status::Ok();
}

}  // namespace vmgroup::engine
