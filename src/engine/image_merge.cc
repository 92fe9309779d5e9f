#include "engine/image_merge.h"

#include <algorithm>
#include <map>

#include "engine/fault_points.h"

namespace vmgroup::engine {
namespace {

constexpr auto kQueryTimeout = std::chrono::seconds(10);
// A live merge copies what the child holds; generous, as a destroy that is
// cut short is finished later anyway.
constexpr auto kMergeTimeout = std::chrono::hours(6);

// Every image of `vm` that a record names, with the backing file its
// header names.
Result<std::map<std::string, std::string>> ImageTree(catalog::Catalog& catalog,
                                                     storage::QemuImg& img,
                                                     const catalog::VmRecord& vm) {
  std::vector<std::string> known = vm.disks;
  VMG_ASSIGN_OR_RETURN(auto snapshots, catalog.ListSnapshots());
  for (const auto& s : snapshots) {
    for (const auto& m : s.members) {
      if (m.vm_id != vm.id) continue;
      for (const auto& d : m.disks) known.insert(known.end(), {d.frozen_image, d.overlay});
    }
  }
  std::map<std::string, std::string> backing_of;
  for (const auto& path : known) {
    if (path.empty() || backing_of.count(path)) continue;
    VMG_ASSIGN_OR_RETURN(storage::ImageInfo info, img.Info(path));
    backing_of[path] = info.backing_filename;
  }
  return backing_of;
}

std::vector<std::string> ChildrenOf(const std::map<std::string, std::string>& tree,
                                    const std::string& image) {
  std::vector<std::string> children;
  for (const auto& [path, backing] : tree) {
    if (backing == image) children.push_back(path);
  }
  return children;
}

bool Contains(const std::vector<storage::ImageInfo>& chain, const std::string& path) {
  return std::any_of(chain.begin(), chain.end(),
                     [&](const storage::ImageInfo& i) { return i.filename == path; });
}

// Merges `m.child` into `m.frozen_image` and points the child's children at it.
Status MergeChild(Env* env, VmRegistry& vms, storage::QemuImg& img,
                  const std::map<std::string, std::string>& tree, const catalog::DiskMerge& m) {
  bool merged = false;
  if (auto live = vms.Live(m.vm_id)) {
    VMG_ASSIGN_OR_RETURN(auto active, live->ActiveImages(env->Now() + kQueryTimeout));
    if (static_cast<size_t>(m.index) >= active.size()) {
      return Status::Internal("the VM has no disk " + std::to_string(m.index));
    }
    VMG_ASSIGN_OR_RETURN(auto chain, img.Chain(active[m.index]));
    if (Contains(chain, m.child)) {
      VMG_RETURN_IF_ERROR(
          live->CommitImage(m.index, m.child, m.frozen_image, env->Now() + kMergeTimeout));
      merged = true;
    } else {
      // Out of the chain it runs through while the frozen image is in it:
      // an earlier run of this merge already took it out.
      merged = Contains(chain, m.frozen_image);
    }
  }
  if (!merged) VMG_RETURN_IF_ERROR(img.Commit(m.child));
  // The frozen image now reads as the child did: only headers change. The
  // image a live merge took the child out from under was re-pointed by the
  // hypervisor (and is in use).
  for (const auto& grandchild : ChildrenOf(tree, m.child)) {
    VMG_ASSIGN_OR_RETURN(storage::ImageInfo info, img.Info(grandchild));
    if (info.backing_filename == m.frozen_image) continue;
    VMG_RETURN_IF_ERROR(img.Rebase(grandchild, m.frozen_image, /*unsafe=*/true));
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<catalog::DiskMerge>> PlanMerges(catalog::Catalog& catalog, storage::QemuImg& img,
                                                   const catalog::SnapshotRecord& s) {
  std::vector<catalog::DiskMerge> merges;
  for (const auto& member : s.members) {
    VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog.GetVm(member.vm_id));
    VMG_ASSIGN_OR_RETURN(auto tree, ImageTree(catalog, img, vm));
    for (const auto& d : member.disks) {
      catalog::DiskMerge m{member.vm_id, d.index, d.frozen_image, "", {}};
      m.others = ChildrenOf(tree, d.frozen_image);
      VMG_ASSIGN_OR_RETURN(auto in_use, img.Chain(vm.disks.at(d.index)));
      auto through = std::find_if(m.others.begin(), m.others.end(),
                                  [&](const std::string& c) { return Contains(in_use, c); });
      if (through == m.others.end()) through = m.others.begin();
      if (through != m.others.end()) {
        m.child = *through;
        m.others.erase(through);
      }
      merges.push_back(std::move(m));
    }
  }
  return merges;
}

Status DetachOthers(storage::QemuImg& img, const std::vector<catalog::DiskMerge>& merges) {
  for (const auto& m : merges) {
    if (m.others.empty()) continue;
    VMG_ASSIGN_OR_RETURN(storage::ImageInfo frozen, img.Info(m.frozen_image));
    for (const auto& other : m.others) {
      VMG_ASSIGN_OR_RETURN(storage::ImageInfo info, img.Info(other));
      if (info.backing_filename != m.frozen_image) continue;  // done by an earlier run
      VMG_RETURN_IF_ERROR(img.Rebase(other, frozen.backing_filename, /*unsafe=*/false));
    }
  }
  return Status::Ok();
}

Status MergeAndFinish(Env* env, VmRegistry& vms, catalog::Catalog& catalog, storage::QemuImg& img,
                      const std::string& snapshot_id,
                      const std::vector<catalog::DiskMerge>& merges) {
  std::map<std::string, std::vector<const catalog::DiskMerge*>> by_vm;
  for (const auto& m : merges) by_vm[m.vm_id].push_back(&m);
  for (const auto& [vm_id, disks] : by_vm) {
    VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, catalog.GetVm(vm_id));
    VMG_ASSIGN_OR_RETURN(auto tree, ImageTree(catalog, img, vm));
    for (const auto* m : disks) {
      if (m->child.empty()) continue;
      VMG_RETURN_IF_ERROR(MergeChild(env, vms, img, tree, *m)
                              .Annotate("VM " + vm.name + " disk " + std::to_string(m->index)));
    }
    if (!vms.Live(vm_id)) {
      // Merged offline: a libvirt domain is redefined on the images that
      // remain before the catalog forgets the snapshot and the merged
      // children are deleted, so that virsh never names a removed image
      // (after a crash here, the next run redefines it again).
      std::vector<std::string> remain = vm.disks;
      for (const auto* m : disks) {
        if (m->child.empty()) continue;
        std::replace(remain.begin(), remain.end(), m->child, m->frozen_image);
      }
      VMG_RETURN_IF_ERROR(vms.DefineDisks(vm_id, remain));
    }
    VMG_RETURN_IF_ERROR(env->Hit(fault::kDestroyMemberMerged, vm.name).Annotate("VM " + vm.name));
  }
  VMG_ASSIGN_OR_RETURN(catalog::SnapshotRecord s, catalog.GetSnapshot(snapshot_id));
  VMG_RETURN_IF_ERROR(catalog.FinishDestroy(snapshot_id));
  (void)env->Hit(fault::kDestroyCommitted, snapshot_id);  // past the commit nothing is undone
  // Only files vmgroup made are deleted; one left behind by a crash here is
  // an orphan that recovery removes.
  for (const auto& m : merges) {
    const std::string& unused = m.child.empty() ? m.frozen_image : m.child;
    if (unused.starts_with(vms.RunDir(m.vm_id) + "/")) (void)env->RemoveFile(unused);
  }
  for (const auto& m : s.members) {
    if (!m.memory_state.empty()) (void)env->RemoveFile(m.memory_state);
  }
  return Status::Ok();
}

}  // namespace vmgroup::engine
