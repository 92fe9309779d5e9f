#include "engine/export_layout.h"

#include "engine/export_manifest.h"

namespace vmgroup::engine {

std::string ExportConfigFile(const std::string& vm_id) { return vm_id + "/config.json"; }

std::string ExportBootFile(const std::string& vm_id, const char* name) {
  return vm_id + "/" + name;
}

std::string ExportDomainFile(const std::string& vm_id) { return vm_id + "/domain.xml"; }

std::string ExportDiskFile(const std::string& vm_id, int index) {
  return vm_id + "/disk" + std::to_string(index) + ".qcow2";
}

std::string OutermostMissing(Env* env, const std::string& dir) {
  std::string outermost;
  for (std::string d = dir; !d.empty() && d != "/" && !env->FileExists(d);
       d = d.substr(0, d.find_last_of('/'))) {
    outermost = d;
  }
  return outermost;
}

namespace {

// Removes what an export of snapshot `snapshot_id` into `dir` writes (each
// member's files, then its manifest, finished or ".tmp"), then each member's
// directory and `dirs` (innermost first), each only if empty: an
// operator's files are never touched (nor, were the snapshot gone, the
// files it names).
Status RemoveExportFiles(Env* env, catalog::Catalog& catalog, const std::string& snapshot_id,
                         const std::string& dir, const std::vector<std::string>& dirs) {
  // The snapshot names the files. (An export holds its members until it
  // ends, so nothing destroys it meanwhile; were it gone all the same, its
  // files would stay, and the directories holding them.)
  auto s = catalog.GetSnapshot(snapshot_id);
  if (!s.ok() && s.status().code() != Code::kNotFound) return s.status();
  std::vector<std::string> files;
  std::vector<std::string> empty_ones;  // innermost first
  for (const auto& m : s.ok() ? s->members : std::vector<catalog::MemberSnapshot>{}) {
    files.push_back(ExportConfigFile(m.vm_id));
    files.push_back(ExportBootFile(m.vm_id, "kernel"));
    files.push_back(ExportBootFile(m.vm_id, "initrd"));
    files.push_back(ExportDomainFile(m.vm_id));
    for (const auto& d : m.disks) files.push_back(ExportDiskFile(m.vm_id, d.index));
    empty_ones.push_back(dir + "/" + m.vm_id);
  }
  files.push_back(kManifestFile);  // last: an export cut short by a crash still has it
  for (const auto& f : files) {
    for (const std::string& path : {dir + "/" + f, dir + "/" + f + ".tmp"}) {
      VMG_RETURN_IF_ERROR(env->RemoveFile(path));
    }
  }
  empty_ones.insert(empty_ones.end(), dirs.begin(), dirs.end());
  return RemoveEmptyDirs(env, empty_ones);
}

}  // namespace

std::vector<std::string> MadeDirs(const std::string& dir, const std::string& made) {
  std::vector<std::string> dirs;
  if (made.empty() || !dir.starts_with(made)) return dirs;
  for (std::string d = dir; d.size() >= made.size(); d = d.substr(0, d.rfind('/'))) {
    dirs.push_back(d);
  }
  return dirs;
}

Status RemoveEmptyDirs(Env* env, const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) {
    // Not empty: an operator's files are in it; it stays, with them.
    if (auto left = env->ListDir(d); left.ok() && left->empty()) {
      VMG_RETURN_IF_ERROR(env->RemoveDir(d));
    }
  }
  return Status::Ok();
}

Result<bool> TakeBackExport(Env* env, catalog::Catalog& catalog,
                            const catalog::ExportIntent& intent) {
  const std::string& dir = intent.directory;
  auto manifest = ReadManifestIn(dir);
  if (manifest.ok() && manifest->snapshot_id == intent.snapshot_id) {
    if (manifest->storage) {
      VMG_RETURN_IF_ERROR(catalog.RecordExport(intent.snapshot_id, dir, manifest->exported_us));
    }
    VMG_RETURN_IF_ERROR(catalog.DeleteExportIntent(dir));
    return false;
  }
  VMG_RETURN_IF_ERROR(
      RemoveExportFiles(env, catalog, intent.snapshot_id, dir, MadeDirs(dir, intent.made)));
  VMG_RETURN_IF_ERROR(catalog.DeleteExportIntent(dir));
  return true;
}

Status RemoveExport(Env* env, catalog::Catalog& catalog, const std::string& snapshot_id,
                    const std::string& dir) {
  VMG_ASSIGN_OR_RETURN(auto intents, catalog.ListExportIntents());
  for (const auto& i : intents) {
    if (i.directory == dir) return Status::InvalidState("an export into " + dir + " is under way");
  }
  auto manifest = ReadManifestIn(dir);
  if (manifest.status().code() == Code::kFileNotFound) return Status::Ok();
  VMG_RETURN_IF_ERROR(manifest.status());
  if (manifest->snapshot_id != snapshot_id) {
    return Status::InvalidState(dir + " holds an export of snapshot " + manifest->snapshot_id +
                                ", not of " + snapshot_id + ": left as it is");
  }
  VMG_RETURN_IF_ERROR(RemoveExportFiles(env, catalog, snapshot_id, dir, {dir}));
  return catalog.ForgetExport(snapshot_id, dir);
}

}  // namespace vmgroup::engine
