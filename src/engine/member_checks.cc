#include "engine/member_checks.h"

#include <filesystem>

#include "base/validate.h"
#include "engine/snapshot_plan.h"
#include "storage/untrusted_files.h"

namespace vmgroup::engine {

namespace fs = std::filesystem;

Result<std::shared_ptr<hypervisor::Vm>> CheckMember(GroupParts& parts,
                                                    const catalog::VmRecord& vm) {
  for (size_t i = 0; i < vm.disks.size(); ++i) {
    if (!parts.env->FileExists(vm.disks[i])) {
      return Status::FileNotFound("VM " + vm.name + ": disk " + std::to_string(i) + " image " +
                                  vm.disks[i] + " is missing");
    }
  }
  if (vm.power == catalog::Power::kOff) return std::shared_ptr<hypervisor::Vm>();
  auto live = parts.vms->Live(vm.id);
  if (!live) return Status::InvalidState("VM " + vm.name + " is not attached; restart the service");
  auto state = live->State(parts.env->Now() + kCheckTimeout);
  if (!state.ok()) {
    return Status::InvalidState("VM " + vm.name + " does not answer: " + state.status().message());
  }
  if (*state == hypervisor::RunState::kIoError) {
    // Its images may lack writes the guest was told failed or still waits
    // for: no consistent cut can be taken of it.
    auto why = parts.vms->IoError(vm.id, parts.env->Now() + kCheckTimeout);
    return Status::InvalidState("VM " + vm.name + " is paused by QEMU on an I/O error (" +
                                (why.ok() ? *why : "cause unknown: " + why.status().message()) +
                                "); make room for its disk and resume it (vm resume " + vm.name +
                                ") first");
  }
  const auto expected = vm.power == catalog::Power::kRunning ? hypervisor::RunState::kRunning
                                                             : hypervisor::RunState::kPaused;
  if (*state != expected) {
    return Status::InvalidState("VM " + vm.name + " should be " + catalog::PowerName(vm.power) +
                                " but is " + hypervisor::RunStateName(*state));
  }
  return live;
}

Status CheckDomain(GroupParts& parts, const catalog::VmRecord& vm, int type) {
  if (std::string why = parts.vms->Unsupported(vm.id); !why.empty()) {
    return Status::NotSupported("VM " + vm.name + " cannot be snapshotted: " + why);
  }
  if (type == kSnapshotStandard) {
    return Status::NotSupported(
        "VM " + vm.name +
        " is a libvirt domain: Standard snapshots (with memory) of libvirt domains are not "
        "supported; take a disk-only (type 32768, --type disk) or recovery (type 2) snapshot");
  }
  return Status::Ok();
}

Status RequireConnected(GroupParts& parts, const std::vector<catalog::VmRecord>& vms,
                        const std::string& what) {
  for (const auto& vm : vms) {
    if (vm.libvirt_uri.empty() || parts.vms->Connection(vm.libvirt_uri)) continue;
    return Status::Unavailable("VM " + vm.name + " is a domain of libvirt at " + vm.libvirt_uri +
                               ", and vmgroupd has no connection there: " + what +
                               " needs one (start vmgroupd with --libvirt " + vm.libvirt_uri + ")");
  }
  return Status::Ok();
}

Status RequireLive(const catalog::VmRecord& vm, const hypervisor::Vm* live,
                   const std::string& why) {
  if (live) return Status::Ok();
  return Status::NotSupported("VM " + vm.name + " is off; " + why);
}

Status RequireTrackable(const catalog::VmRecord& vm, const hypervisor::Vm* live) {
  if (vm.libvirt_uri.empty()) return Status::Ok();
  return RequireLive(vm, live,
                     "a libvirt domain's change tracking is a checkpoint, made only while it "
                     "runs: start it first");
}

Status RequireComplete(const catalog::SnapshotRecord& s) {
  switch (s.state) {
    case catalog::SnapshotState::kComplete:
      return Status::Ok();
    case catalog::SnapshotState::kDestroying:
      return Status::InvalidState("snapshot " + s.name + " is being destroyed");
    case catalog::SnapshotState::kIncomplete:
      break;
  }
  return Status::InvalidState("snapshot " + s.name + " is still being taken");
}

Result<std::vector<catalog::VmRecord>> MembersOf(GroupParts& parts,
                                                 const catalog::SnapshotRecord& s) {
  std::vector<catalog::VmRecord> vms;
  for (const auto& m : s.members) {
    VMG_ASSIGN_OR_RETURN(catalog::VmRecord vm, parts.catalog->GetVm(m.vm_id));
    for (const auto& d : m.disks) {
      if (!parts.env->FileExists(d.frozen_image)) {
        return Status::FileNotFound("snapshot " + s.name + ": image " + d.frozen_image + " of VM " +
                                    vm.name + " is missing");
      }
    }
    vms.push_back(std::move(vm));
  }
  return vms;
}

Status CheckExportDirectory(GroupParts& parts, const std::string& dir) {
  VMG_RETURN_IF_ERROR(CheckClientPath("ExportDirectory", dir));
  // Where it leads, links followed: an export inside the state directory
  // could overwrite or expose what the daemon keeps there.
  std::error_code target_ec, state_ec;
  const fs::path target = fs::weakly_canonical(dir, target_ec);
  const fs::path state = fs::weakly_canonical(parts.vms->state_dir(), state_ec);
  if (target_ec || state_ec) {
    return Status::InvalidArgument("ExportDirectory " + dir + " cannot be used: " +
                                   (target_ec ? target_ec : state_ec).message());
  }
  const fs::path inside = target.lexically_relative(state);
  if (!inside.empty() && *inside.begin() != "..") {
    return Status::InvalidArgument("ExportDirectory " + dir +
                                   " lies inside vmgroup's state directory " +
                                   parts.vms->state_dir() + "; export elsewhere");
  }
  VMG_ASSIGN_OR_RETURN(storage::FileKind kind, storage::KindOf(dir));
  if (kind == storage::FileKind::kLink) {
    return Status::InvalidArgument("ExportDirectory " + dir +
                                   " is a symbolic link; name a real directory");
  }
  if (kind != storage::FileKind::kMissing && kind != storage::FileKind::kDirectory) {
    return Status::InvalidArgument("ExportDirectory " + dir + " is not a directory");
  }
  if (kind == storage::FileKind::kDirectory) {
    auto entries = parts.env->ListDir(dir);
    if (!entries.ok()) {
      return Status::InvalidArgument("ExportDirectory " + dir +
                                     " cannot be used: " + entries.status().message());
    }
    if (!entries->empty()) {
      return Status::AlreadyExists("ExportDirectory " + dir +
                                   " is not empty; an export goes into a new or empty directory");
    }
  }
  return Status::Ok();
}

}  // namespace vmgroup::engine
