#include "engine/managed_images.h"

#include <sys/stat.h>

#include <filesystem>

#include "base/validate.h"
#include "engine/export_manifest.h"

namespace vmgroup::engine {
namespace {

namespace fs = std::filesystem;

bool IdentityOf(const std::string& path, std::pair<uint64_t, uint64_t>* id) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  *id = {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  return true;
}

}  // namespace

void ManagedImages::Note(const std::string& path, std::string owner) {
  Identity id;
  if (!path.empty() && IdentityOf(path, &id)) owners_.emplace(id, std::move(owner));
}

Result<ManagedImages> ManagedImages::Load(catalog::Catalog& catalog, const std::string& state_dir,
                                          const std::string& own_run_dir) {
  ManagedImages m;
  m.state_dir_ = state_dir;
  m.own_run_dir_ = own_run_dir;
  VMG_ASSIGN_OR_RETURN(auto vms, catalog.ListVms());
  std::map<std::string, std::string> names;  // VM id -> name
  for (const auto& vm : vms) {
    names[vm.id] = vm.name;
    for (size_t i = 0; i < vm.disks.size(); ++i) {
      m.Note(vm.disks[i], "is VM " + vm.name + "'s active disk " + std::to_string(i));
    }
  }
  VMG_ASSIGN_OR_RETURN(auto snapshots, catalog.ListSnapshots());
  for (const auto& s : snapshots) {
    for (const auto& member : s.members) {
      const std::string of = " of VM " + names[member.vm_id] + " in snapshot " + s.name;
      for (const auto& d : member.disks) {
        const std::string disk = "disk " + std::to_string(d.index);
        m.Note(d.frozen_image, "is the frozen image of " + disk + of);
        m.Note(d.overlay, "is the overlay of " + disk + of);
      }
      m.Note(member.memory_state, "is the memory state" + of);
    }
  }
  VMG_ASSIGN_OR_RETURN(auto points, catalog.ListReferencePoints());
  for (const auto& rp : points) {
    for (const auto& member : rp.members) {
      for (size_t i = 0; i < member.images.size(); ++i) {
        m.Note(member.images[i], "holds disk " + std::to_string(i) + " of VM " +
                                     names[member.vm_id] + " for reference point " + rp.name);
      }
    }
  }
  return m;
}

Status ManagedImages::Refuse(const std::string& path) const {
  Identity id;
  if (!IdentityOf(path, &id)) return Status::Ok();
  const std::string image = "image " + Printable(path);
  const auto refuse = [&](const std::string& why) {
    return Status::InvalidArgument(image + " " + why +
                                   "; vmgroup manages it, so no new VM may use it as a disk "
                                   "(copy it, or make an overlay of a copy)");
  };
  if (auto it = owners_.find(id); it != owners_.end()) return refuse(it->second);
  // Where it lies, by identity of each directory above it: a bind mount or
  // a link to the state directory is the state directory.
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (ec) return Status::Ok();  // gone since the stat: nothing to run on
  Identity state{}, own{};
  const bool have_state = IdentityOf(state_dir_, &state);
  const bool have_own = IdentityOf(own_run_dir_, &own);
  int depth = 0;
  for (fs::path dir = real.parent_path();; dir = dir.parent_path(), ++depth) {
    Identity here;
    if (!IdentityOf(dir, &here)) break;
    if (have_own && here == own) break;  // the new VM's own run directory
    if (have_state && here == state) {
      return refuse("lies in vmgroup's state directory " + Printable(state_dir_));
    }
    if (depth < 2 && IdentityOf(dir / kManifestFile, &here)) {
      return refuse("belongs to the export in " + Printable(dir.string()) +
                    " (it holds a vmgroup manifest)");
    }
    if (dir == dir.root_path()) break;
  }
  return Status::Ok();
}

}  // namespace vmgroup::engine
