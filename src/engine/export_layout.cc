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
  // The snapshot names the files. (An export holds its members until it
  // ends, so nothing destroys it meanwhile; were it gone all the same, its
  // files would stay, and the directories holding them.)
  auto s = catalog.GetSnapshot(intent.snapshot_id);
  if (!s.ok() && s.status().code() != Code::kNotFound) return s.status();
  std::vector<std::string> files = {kManifestFile};
  std::vector<std::string> dirs;  // innermost first
  for (const auto& m : s.ok() ? s->members : std::vector<catalog::MemberSnapshot>{}) {
    files.push_back(ExportConfigFile(m.vm_id));
    files.push_back(ExportBootFile(m.vm_id, "kernel"));
    files.push_back(ExportBootFile(m.vm_id, "initrd"));
    files.push_back(ExportDomainFile(m.vm_id));
    for (const auto& d : m.disks) files.push_back(ExportDiskFile(m.vm_id, d.index));
    dirs.push_back(dir + "/" + m.vm_id);
  }
  for (const auto& f : files) {
    for (const std::string& path : {dir + "/" + f, dir + "/" + f + ".tmp"}) {
      VMG_RETURN_IF_ERROR(env->RemoveFile(path));
    }
  }
  if (!intent.made.empty() && dir.starts_with(intent.made)) {
    for (std::string d = dir; d.size() >= intent.made.size(); d = d.substr(0, d.rfind('/'))) {
      dirs.push_back(d);
    }
  }
  for (const auto& d : dirs) {
    // Not empty: an operator's files are in it; it stays, with them.
    if (auto left = env->ListDir(d); left.ok() && left->empty()) {
      VMG_RETURN_IF_ERROR(env->RemoveDir(d));
    }
  }
  VMG_RETURN_IF_ERROR(catalog.DeleteExportIntent(dir));
  return true;
}

}  // namespace vmgroup::engine
