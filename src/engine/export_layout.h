// Where an export puts its files, and the taking back of an export that a
// crash cut short. An export directory holds:
//   <dir>/manifest.json                 (export_manifest.h kManifestFile)
//   <dir>/<vm-id>/config.json           the VM's definition
//   <dir>/<vm-id>/kernel, initrd        its boot files, when it has them
//   <dir>/<vm-id>/disk<index>.qcow2     its disks (unless --no-storage)
// Files are written whole under "<name>.tmp" first where Env::WriteFile
// does so, then renamed.
//
// Thread-safe (free functions).
#pragma once

#include <string>
#include <vector>

#include "base/env.h"
#include "base/result.h"
#include "catalog/catalog.h"

namespace vmgroup::engine {

// An export holds whole disks: root and the admin group may read it, nobody
// else, from the moment its directory exists.
inline constexpr unsigned kExportDirMode = 0750, kExportFileMode = 0640;

// The names, relative to the export's directory, of a VM's files.
std::string ExportConfigFile(const std::string& vm_id);
std::string ExportBootFile(const std::string& vm_id, const char* name);  // "kernel", "initrd"
// A libvirt domain's definition: "<vm-id>/domain.xml".
std::string ExportDomainFile(const std::string& vm_id);
std::string ExportDiskFile(const std::string& vm_id, int index);

// The outermost of `dir` and its parents that does not exist yet, or ""
// when `dir` exists: what an export into `dir` creates, to record in its
// intent before it creates it.
std::string OutermostMissing(Env* env, const std::string& dir);

// `dir` and its parents up to `made` (the outermost directory an export
// into `dir` created, catalog::ExportIntent::made), innermost first; none
// when `made` is empty.
std::vector<std::string> MadeDirs(const std::string& dir, const std::string& made);
// Removes each of `dirs`, in order, that is empty: one holding an
// operator's files stays, with them.
Status RemoveEmptyDirs(Env* env, const std::vector<std::string>& dirs);

// What an export that `intent` records, cut short by a crash, left:
//   - if its manifest is there and names its snapshot, the export finished
//     (only the intent was left): it stays, and is recorded as an export
//     of the snapshot; returns false;
//   - otherwise every file the export may have written for the snapshot's
//     members is removed, then each VM's directory and the directories the
//     export created (`intent.made` and those below it on the way to the
//     export's directory), each only if empty: an operator's files are
//     never touched (nor, were the snapshot gone, the files it names).
//     Returns true: the same export can run again.
// Either way the intent is deleted. IoError naming what could not be
// removed (the intent then stays, for the next start).
Result<bool> TakeBackExport(Env* env, catalog::Catalog& catalog,
                            const catalog::ExportIntent& intent);

// Removes the finished export of snapshot `snapshot_id` in `dir` (an
// export across hosts taken back: each host removes its own part): only
// when the manifest there names that snapshot, and then only the files the
// export writes for the snapshot's members, each VM's directory and `dir`
// itself if that leaves them empty, as TakeBackExport does; the catalog
// forgets the export. OK when `dir` holds no export (nothing to remove);
// InvalidState when it holds another snapshot's, or an export into it is
// under way; IoError naming what could not be removed.
Status RemoveExport(Env* env, catalog::Catalog& catalog, const std::string& snapshot_id,
                    const std::string& dir);

}  // namespace vmgroup::engine
