#include "engine/snapshot_plan.h"

#include <ctime>

namespace vmgroup::engine {

std::string DefaultSnapshotName(const std::string& group_name, int64_t us) {
  std::time_t t = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return group_name + " - " + buf;
}

Status CheckSnapshotType(int type) {
  if (type == kSnapshotStandard || type == kSnapshotRecovery || type == kSnapshotDiskOnly) {
    return Status::Ok();
  }
  if (type < 0 || type > 65535) {
    return Status::InvalidArgument("SnapshotType " + std::to_string(type) + " is out of range");
  }
  if (type < 32768) {
    return Status::InvalidArgument("SnapshotType " + std::to_string(type) +
                                   " is not valid: use 1 (Standard), 2 (Recovery) or 32768 "
                                   "(Standard without memory state)");
  }
  return Status::InvalidType("SnapshotType " + std::to_string(type) +
                             " is a vendor type this service does not know");
}

std::string BitmapFor(int type, const std::string& tag) {
  return type == kSnapshotRecovery ? std::string(hypervisor::kTrackingPrefix) + tag : "";
}

catalog::Consistency AchievedConsistency(const catalog::SnapshotRecord& s) {
  for (const auto& m : s.members) {
    if (m.consistency != catalog::Consistency::kApplication) return catalog::Consistency::kCrash;
  }
  return s.members.empty() ? catalog::Consistency::kCrash : catalog::Consistency::kApplication;
}

std::string OverlayPath(const std::string& run_dir, int index, const std::string& tag) {
  return run_dir + "/disk" + std::to_string(index) + "-" + tag + ".qcow2";
}

std::string MemoryStatePath(const std::string& run_dir, const std::string& tag) {
  return run_dir + "/memory-" + tag + ".vmstate";
}

bool IsSnapshotFileName(const std::string& name) {
  auto shaped = [&](const char* prefix, const char* suffix) {
    const std::string p = prefix, x = suffix;
    return name.size() > p.size() + x.size() && name.starts_with(p) && name.ends_with(x) &&
           name.find('-') != std::string::npos;
  };
  return shaped("disk", ".qcow2") || shaped("memory-", ".vmstate");
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
    if (type == kSnapshotStandard && vm.power == catalog::Power::kRunning) {
      m.memory_state = MemoryStatePath(members[i].run_dir, tag);
    }
    s.members.push_back(std::move(m));
  }
  return s;
}

std::vector<hypervisor::Overlay> OverlaysOf(const catalog::MemberSnapshot& m,
                                            const std::string& tag) {
  std::vector<hypervisor::Overlay> out;
  for (const auto& d : m.disks) out.push_back({d.index, d.overlay, tag, d.frozen_image});
  return out;
}

}  // namespace vmgroup::engine
