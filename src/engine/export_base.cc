#include "engine/export_base.h"

#include <algorithm>
#include <filesystem>

#include "engine/export_images.h"
#include "engine/member_checks.h"

namespace vmgroup::engine {
namespace {

namespace fs = std::filesystem;

// A base that cannot serve: the caller can still export in full.
Status Full(const std::string& why) { return Status::Failed(why + "; export in full"); }

// CheckBase for a base that is snapshot `b` of the group.
Result<IncrementalBase> CheckSnapshotBase(GroupParts& parts, const catalog::SnapshotRecord& b,
                                          const catalog::SnapshotRecord& s,
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
  VMG_RETURN_IF_ERROR(FindBaseExport(parts, b.id, "snapshot " + b.name, &base));
  return base;
}

}  // namespace

Result<IncrementalBase> CheckBase(GroupParts& parts, const ExportRequest& request,
                                  const catalog::SnapshotRecord& s,
                                  const std::vector<catalog::VmRecord>& vms) {
  if (!request.copy_storage) {
    return Status::InvalidArgument(
        "an incremental export copies disks: CopyVmStorage must be true");
  }
  auto rp = parts.catalog->GetReferencePoint(request.base);
  if (!rp.ok()) {
    auto snapshot = parts.catalog->GetSnapshot(request.base);
    if (snapshot.ok()) return CheckSnapshotBase(parts, *snapshot, s, vms);
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
    auto live = parts.vms->Live(vms[i].id);
    VMG_RETURN_IF_ERROR(RequireLive(vms[i], live.get(),
                                    "an incremental export reads the changes through its "
                                    "running QEMU: start it, or export in full"));
    base.live.push_back(std::move(live));
  }
  VMG_RETURN_IF_ERROR(FindBaseExport(parts, rp->snapshot_id, "reference point " + rp->name, &base));
  return base;
}

Status FindBaseExport(GroupParts& parts, const std::string& snapshot_id, const std::string& what,
                      IncrementalBase* base) {
  VMG_ASSIGN_OR_RETURN(auto dirs, parts.catalog->ExportsOf(snapshot_id));
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

Status CheckBaseImages(const IncrementalBase& base, const std::vector<catalog::VmRecord>& vms) {
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

Status CopyChanges(GroupParts& parts, const IncrementalBase& base, size_t member,
                   const catalog::SnapshotDisk& disk, const std::string& base_file,
                   const std::string& relative, const std::string& path) {
  if (!base.rp) {
    return parts.img.Convert(disk.frozen_image, path, storage::kDiskCopyTimeout, relative);
  }
  VMG_RETURN_IF_ERROR(parts.img.CreateOverlay(base_file, path, relative));
  Status s = base.live[member]->CopyMarked(disk.index, disk.frozen_image, base.rp->bitmap, path,
                                           parts.env->Now() + storage::kDiskCopyTimeout);
  const Code c = s.code();
  if (c == Code::kNotFound || c == Code::kInvalidArgument || c == Code::kInvalidState) {
    return Full("the change tracking of reference point " + base.rp->name + " is lost (" +
                s.message() + ")");
  }
  return s;
}

}  // namespace vmgroup::engine
