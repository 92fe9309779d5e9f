// SnapshotEngine::Export: a group snapshot copied out for backup.
#include <chrono>
#include <future>

#include "engine/snapshot_engine.h"
#include "storage/checksum.h"

namespace vmgroup::engine {
namespace {

// Longest one disk's copy may take: far beyond any disk vmgroup runs (a
// TiB at 200 MB/s is under 2 hours), so only a hung qemu-img reaches it.
constexpr Duration kDiskCopyTimeout = std::chrono::hours(12);

// What an export has made so far, so that a failure can take it all away
// again: its files, then the directories that did not exist before, the
// last made first.
class Written {
 public:
  explicit Written(Env* env) : env_(env) {}
  void File(const std::string& path) { files_.push_back(path); }
  // Creates `dir` and its missing parents, remembering each one it made.
  Status Dirs(const std::string& dir) {
    std::vector<std::string> missing;
    for (std::string d = dir; !d.empty() && d != "/" && !env_->FileExists(d);
         d = d.substr(0, d.find_last_of('/'))) {
      missing.push_back(d);
    }
    VMG_RETURN_IF_ERROR(env_->CreateDirs(dir));
    dirs_.insert(dirs_.end(), missing.rbegin(), missing.rend());  // outermost first
    return Status::Ok();
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
  std::vector<std::string> files_, dirs_;
};

ExportedConfig ConfigOf(const catalog::VmRecord& vm) {
  return {.id = vm.id,
          .name = vm.name,
          .memory_mib = vm.memory_mib,
          .vcpus = vm.vcpus,
          .kernel = vm.kernel,
          .initrd = vm.initrd,
          .append = vm.append,
          .extra_args = vm.extra_args,
          .disks = static_cast<int>(vm.disks.size())};
}

}  // namespace

Result<std::pair<catalog::SnapshotRecord, std::vector<catalog::VmRecord>>>
SnapshotEngine::CheckExport(const ExportRequest& request) {
  if (!request.base.empty()) {
    return Status::NotSupported(
        "differential exports (DifferentialBackupBase) are not supported yet; export in full");
  }
  const std::string& dir = request.directory;
  if (dir.empty() || dir[0] != '/') {
    return Status::InvalidArgument("ExportDirectory must be an absolute path, not '" + dir + "'");
  }
  if (env_->FileExists(dir)) {
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
  VMG_ASSIGN_OR_RETURN(catalog::SnapshotRecord s, catalog_->GetSnapshot(request.snapshot_id));
  VMG_RETURN_IF_ERROR(RequireComplete(s));
  VMG_ASSIGN_OR_RETURN(auto vms, MembersOf(s));
  return std::make_pair(std::move(s), std::move(vms));
}

Status SnapshotEngine::ValidateExport(const ExportRequest& request) {
  VMG_ASSIGN_OR_RETURN(auto checked, CheckExport(request));
  std::lock_guard lock(mu_);
  return CheckNotBusyLocked(checked.second);
}

Result<ExportManifest> SnapshotEngine::Export(const ExportRequest& request) {
  VMG_ASSIGN_OR_RETURN(auto checked, CheckExport(request));
  auto& [s, vms] = checked;
  VMG_RETURN_IF_ERROR(Claim(vms));
  const Releaser releaser{this, vms};
  VMG_ASSIGN_OR_RETURN(auto group, catalog_->GetCollection(s.collection_id));

  // The disks' sizes first: progress counts bytes copied of all of them.
  uint64_t total = 0, done = 0;
  std::vector<std::vector<uint64_t>> sizes(vms.size());
  for (size_t i = 0; i < vms.size(); ++i) {
    for (const auto& d : s.members[i].disks) {
      VMG_ASSIGN_OR_RETURN(auto info, img_.Info(d.frozen_image));
      sizes[i].push_back(info.virtual_size);
      total += info.virtual_size;
    }
  }

  ExportManifest m{.collection_id = group.id,
                   .collection_name = group.name,
                   .snapshot_id = s.id,
                   .snapshot_name = s.name,
                   .snapshot_type = s.type,
                   .snapshot_created_us = s.created_us,
                   .storage = request.copy_storage};
  Written written(env_);
  const std::string& dir = request.directory;
  if (Status st = written.Dirs(dir); !st.ok()) return written.Undo(st);
  for (size_t i = 0; i < vms.size(); ++i) {
    const catalog::VmRecord& vm = vms[i];
    const catalog::MemberSnapshot& member = s.members[i];
    ExportedVm out{.id = vm.id,
                   .name = vm.name,
                   .member_snapshot_id = member.id,
                   .config_file = vm.id + "/config.json"};
    auto export_vm = [&]() -> Status {
      VMG_RETURN_IF_ERROR(written.Dirs(dir + "/" + vm.id));
      const std::string config = dir + "/" + out.config_file;
      written.File(config);
      VMG_RETURN_IF_ERROR(env_->WriteFile(config, ConfigToJson(ConfigOf(vm))));
      VMG_ASSIGN_OR_RETURN(auto written_config, storage::DigestFile(config));
      out.config_checksum = written_config.checksum;
      for (size_t k = 0; k < member.disks.size(); ++k) {
        const catalog::SnapshotDisk& disk = member.disks[k];
        ExportedDisk e{.index = disk.index, .virtual_size = sizes[i][k]};
        if (request.copy_storage) {
          e.file = vm.id + "/disk" + std::to_string(disk.index) + ".qcow2";
          const std::string path = dir + "/" + e.file;
          written.File(path);
          VMG_RETURN_IF_ERROR(
              img_.Convert(disk.frozen_image, path, kDiskCopyTimeout)
                  .Annotate("VM " + vm.name + ": disk " + std::to_string(disk.index)));
          // A backup that reports done must be on disk; the checksum reads
          // the file (from the page cache) while the sync writes it.
          auto digest = std::async(std::launch::async, storage::DigestFile, path);
          Status synced = env_->SyncFile(path);
          auto image = digest.get();
          VMG_RETURN_IF_ERROR(synced);
          VMG_RETURN_IF_ERROR(image.status());
          e.file_size = image->bytes;
          e.checksum = image->checksum;
        }
        out.disks.push_back(std::move(e));
        done += sizes[i][k];
        if (request.progress && total > 0) {
          request.progress(static_cast<int>(done * 99 / total));
        }
      }
      return Status::Ok();
    };
    if (Status st = export_vm(); !st.ok()) return written.Undo(st);
    m.vms.push_back(std::move(out));
  }
  m.exported_us = env_->NowMicros();
  const std::string manifest = dir + "/" + kManifestFile;
  written.File(manifest);
  if (Status st = env_->WriteFile(manifest, ManifestToJson(m)); !st.ok()) return written.Undo(st);
  if (request.progress) request.progress(100);
  return m;
}

}  // namespace vmgroup::engine
