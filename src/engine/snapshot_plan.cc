#include "engine/snapshot_plan.h"

namespace vmgroup::engine {

Status CheckSnapshotType(int type) {
  if (type == kSnapshotRecovery || type == kSnapshotDiskOnly) return Status::Ok();
  if (type == kSnapshotStandard) {
    return Status::NotSupported(
        "SnapshotType 1 (Standard, with memory state) is not available yet; use 32768 for a "
        "disk-only standard snapshot or 2 for a recovery snapshot");
  }
  if (type < 0 || type > 65535) {
    return Status::InvalidArgument("SnapshotType " + std::to_string(type) + " is out of range");
  }
  if (type < 32768) {
    return Status::InvalidArgument("SnapshotType " + std::to_string(type) +
                                   " is not valid: use 2 (Recovery) or 32768 (disk-only)");
  }
  return Status::InvalidType("SnapshotType " + std::to_string(type) +
                             " is a vendor type this service does not know");
}

std::string BitmapFor(int type, const std::string& tag) {
  return type == kSnapshotRecovery ? "vmgroup-" + tag : "";
}

std::string OverlayPath(const std::string& run_dir, int index, const std::string& tag) {
  return run_dir + "/disk" + std::to_string(index) + "-" + tag + ".qcow2";
}

catalog::SnapshotRecord PlanSnapshot(const std::string& id, const std::string& tag,
                                     const std::string& collection_id, const std::string& name,
                                     int type, int64_t now_us,
                                     const std::vector<PlannedMember>& members,
                                     const std::vector<std::string>& member_ids) {
  catalog::SnapshotRecord s{.id = id,
                            .collection_id = collection_id,
                            .name = name,
                            .tag = tag,
                            .type = type,
                            .state = catalog::SnapshotState::kIncomplete,
                            .created_us = now_us};
  for (size_t i = 0; i < members.size(); ++i) {
    const catalog::VmRecord& vm = *members[i].vm;
    catalog::MemberSnapshot m{.id = member_ids[i],
                              .vm_id = vm.id,
                              .parent_id = vm.current_snapshot,
                              .power_at_cut = vm.power};
    for (size_t d = 0; d < vm.disks.size(); ++d) {
      const int index = static_cast<int>(d);
      m.disks.push_back({index, vm.disks[d], OverlayPath(members[i].run_dir, index, tag)});
    }
    s.members.push_back(std::move(m));
  }
  return s;
}

std::vector<hypervisor::Overlay> OverlaysOf(const catalog::MemberSnapshot& m,
                                            const std::string& tag) {
  std::vector<hypervisor::Overlay> out;
  for (const auto& d : m.disks) out.push_back({d.index, d.overlay, tag});
  return out;
}

}  // namespace vmgroup::engine
