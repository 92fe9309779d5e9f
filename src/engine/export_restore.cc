#include "engine/export_restore.h"

#include <filesystem>

#include "base/ids.h"
#include "storage/checksum.h"
#include "storage/qemu_img.h"

namespace vmgroup::engine {
namespace {

std::string Suffixed(const std::string& name, bool as_new) {
  return as_new ? name + "-restored" : name;
}

// `file` of the export at `dir` has `checksum` (and `bytes`, when known).
Status Matches(const std::string& dir, const std::string& file, const std::string& checksum,
               uint64_t bytes, bool check_bytes) {
  const std::string path = dir + "/" + file;
  auto d = storage::DigestFile(path);
  if (!d.ok()) {
    return Status::Failed("the export is damaged: " + file + " cannot be read (" +
                          d.status().message() + ")");
  }
  if (d->checksum != checksum || (check_bytes && d->bytes != bytes)) {
    return Status::Failed("the export is damaged: " + file +
                          " does not match its checksum in the manifest (" + checksum + ", read " +
                          d->checksum + ")");
  }
  return Status::Ok();
}

}  // namespace

Result<ExportManifest> ExportRestorer::ReadManifest(const RestoreRequest& request) {
  const std::string& dir = request.directory;
  if (dir.empty() || dir[0] != '/') {
    return Status::InvalidArgument("the export directory must be an absolute path, not '" + dir +
                                   "'");
  }
  auto read = ReadManifestIn(env_, dir);
  if (!read.ok()) return Status::InvalidArgument(read.status().message());
  ExportManifest m = std::move(*read);
  if (!m.storage) {
    return Status::InvalidArgument("the export in " + dir +
                                   " was made without disk images; there is nothing to restore");
  }
  return m;
}

Status ExportRestorer::Validate(const RestoreRequest& request) {
  VMG_ASSIGN_OR_RETURN(ExportManifest m, ReadManifest(request));
  return CheckIdsFree(m, request.as_new);
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

Status ExportRestorer::Verify(const std::string& dir, const ExportManifest& m,
                              const std::function<void(uint64_t)>& checked) {
  for (const auto& vm : m.vms) {
    VMG_RETURN_IF_ERROR(Matches(dir, vm.config_file, vm.config_checksum, 0, false));
    for (const auto& d : vm.disks) {
      VMG_RETURN_IF_ERROR(VerifyChain(dir, m, vm.id, d, 0));
      checked(d.virtual_size);
    }
  }
  return Status::Ok();
}

Status ExportRestorer::VerifyChain(const std::string& dir, const ExportManifest& m,
                                   const std::string& vm_id, const ExportedDisk& d, int depth) {
  VMG_RETURN_IF_ERROR(Matches(dir, d.file, d.checksum, d.file_size, true));
  if (d.base_file.empty()) return Status::Ok();
  // An incremental image: the export it builds on must be there and whole.
  const std::string base_dir =
      std::filesystem::path(dir + "/" + m.base.directory).lexically_normal().string();
  auto read = ReadManifestIn(env_, base_dir);
  if (read.status().code() == Code::kFileNotFound || depth > 1000) {
    return Status::Failed("the export " + base_dir + " that " + d.file +
                          " builds on is missing; restore needs the whole chain");
  }
  VMG_RETURN_IF_ERROR(read.status());
  const ExportManifest& base = *read;
  if (base.snapshot_id != m.base.snapshot_id) {
    return Status::Failed("the export in " + base_dir + " is not the one " + d.file +
                          " builds on (it holds snapshot " + base.snapshot_id + ", not " +
                          m.base.snapshot_id + ")");
  }
  if (const ExportedDisk* below = FindDisk(base, vm_id, d.index)) {
    return VerifyChain(base_dir, base, vm_id, *below, depth + 1);
  }
  return Status::Failed("the export in " + base_dir + " lacks the disk " + d.file + " builds on");
}

Result<RestoredGroup> ExportRestorer::Restore(const RestoreRequest& request) {
  VMG_ASSIGN_OR_RETURN(ExportManifest m, ReadManifest(request));
  VMG_RETURN_IF_ERROR(CheckIdsFree(m, request.as_new));
  const std::string& dir = request.directory;

  // Progress: half for checking every image, half for copying it.
  uint64_t total = 0, done = 0;
  for (const auto& vm : m.vms) {
    for (const auto& d : vm.disks) total += 2 * d.virtual_size;
  }
  auto advance = [&](uint64_t bytes) {
    done += bytes;
    if (request.progress && total > 0) request.progress(static_cast<int>(done * 99 / total));
  };
  VMG_RETURN_IF_ERROR(Verify(dir, m, advance));

  storage::QemuImg img(env_);
  RestoredGroup out;
  std::vector<std::string> copies;
  auto undo = [&](const Status& cause) -> Status {
    std::string left;
    if (!out.collection_id.empty()) {
      for (const auto& id : out.vm_ids) {
        (void)collections_->RemoveMemberById(id, out.collection_id);
      }
      if (Status s = collections_->DestroyCollection(out.collection_id); !s.ok()) {
        left += "; " + s.message();
      }
    }
    for (const auto& id : out.vm_ids) {
      if (Status s = vms_->Undefine(id); !s.ok()) left += "; " + s.message();
    }
    for (const auto& path : copies) (void)env_->RemoveFile(path);
    return left.empty() ? cause
                        : Status(cause.code(), cause.message() +
                                                   " (not all of the restore "
                                                   "could be taken back" +
                                                   left + ")");
  };

  std::vector<std::pair<std::string, VmDefinition>> defs;
  for (const auto& vm : m.vms) {
    auto config = env_->ReadFile(dir + "/" + vm.config_file);
    if (!config.ok()) return undo(config.status());
    auto c = ParseConfig(*config);
    if (!c.ok()) return undo(c.status().Annotate(vm.config_file));
    VmDefinition def{.name = Suffixed(c->name, request.as_new),
                     .id = request.as_new ? NewGuid() : vm.id,
                     .memory_mib = c->memory_mib,
                     .vcpus = c->vcpus,
                     .kernel = c->kernel,
                     .initrd = c->initrd,
                     .append = c->append,
                     .extra_args = c->extra_args};
    // The restored images belong to the VM: in its run directory, they go
    // when it is deleted.
    const std::string run = vms_->RunDir(def.id);
    if (Status s = env_->CreateDirs(run); !s.ok()) return undo(s);
    for (const auto& d : vm.disks) {
      const std::string copy = run + "/restored-d" + std::to_string(d.index) + ".qcow2";
      copies.push_back(copy);
      if (Status s = img.Convert(dir + "/" + d.file, copy, storage::kDiskCopyTimeout); !s.ok()) {
        return undo(s.Annotate("VM " + vm.name + ": disk " + std::to_string(d.index)));
      }
      def.disks.emplace_back(copy);
      advance(d.virtual_size);
    }
    auto id = vms_->Define(def);
    if (!id.ok()) return undo(id.status());
    out.vm_ids.push_back(*id);
  }
  auto group = collections_->DefineCollection(Suffixed(m.collection_name, request.as_new),
                                              request.as_new ? "" : m.collection_id,
                                              catalog::CollectionType::kVirtualSystems);
  if (!group.ok()) return undo(group.status());
  out.collection_id = *group;
  for (const auto& id : out.vm_ids) {
    if (Status s = collections_->AddMember(id, out.collection_id); !s.ok()) return undo(s);
  }
  if (request.progress) request.progress(100);
  return out;
}

}  // namespace vmgroup::engine
