// The checks group operations share on their members and their snapshot.
// Each reads only; OK when the check passes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "engine/group_operation.h"
#include "hypervisor/driver.h"

namespace vmgroup::engine {

// How long a member's QEMU may take to answer a check.
inline constexpr auto kCheckTimeout = std::chrono::seconds(5);
// How long keeping or dropping a tracking may take: one quick QMP command
// or libvirt call.
inline constexpr auto kTrackingTimeout = std::chrono::seconds(30);

// A member of a new snapshot: FileNotFound for a missing disk image;
// InvalidState unless its live VM answers in the state its record says.
// Returns the live VM, null when the VM is off.
Result<std::shared_ptr<hypervisor::Vm>> CheckMember(GroupParts& parts, const catalog::VmRecord& vm);

// A libvirt domain as a member of a new snapshot of `type`: NotSupported
// with the reason when vmgroup cannot snapshot its disks, or for a type
// other than disk-only.
Status CheckDomain(GroupParts& parts, const catalog::VmRecord& vm, int type);

// Unavailable, naming the first libvirt domain among `vms` whose
// connection is not open, for an operation (`what`) that must redefine it.
Status RequireConnected(GroupParts& parts, const std::vector<catalog::VmRecord>& vms,
                        const std::string& what);

// NotSupported, saying "VM <name> is off; <why>", unless `vm` has a live
// QEMU (`live`): the work that needs it reads or keeps bitmaps there.
Status RequireLive(const catalog::VmRecord& vm, const hypervisor::Vm* live, const std::string& why);

// NotSupported, saying to start it, when VM `vm` is off (no `live` QEMU)
// and its trackings are made only while it runs (a libvirt domain's are
// checkpoints); OK otherwise: a VM of vmgroupd's own that is off keeps its
// tracking through its driver, offline (hypervisor::Driver::KeepTracking).
Status RequireTrackable(const catalog::VmRecord& vm, const hypervisor::Vm* live);

// InvalidState unless `s` is Complete (neither being taken nor destroyed).
Status RequireComplete(const catalog::SnapshotRecord& s);

// The VM of each member of `s`, in member order; FileNotFound if one of
// the snapshot's images is missing.
Result<std::vector<catalog::VmRecord>> MembersOf(GroupParts& parts,
                                                 const catalog::SnapshotRecord& s);

// The export directory checks: absolute and printable, not inside the
// state directory, and new, or an empty directory that is no link.
Status CheckExportDirectory(GroupParts& parts, const std::string& dir);

}  // namespace vmgroup::engine
