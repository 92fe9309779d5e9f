// The Msvm_* classes vmgroupd serves, grouped as Hyper-V groups them. Each
// function returns the providers of its family; Register() hands all of
// them, and the declared-only classes clients embed, to a dispatcher.
#pragma once

#include <memory>
#include <vector>

#include "cim/dispatcher.h"
#include "services/common.h"

namespace vmgroup::services {

using Providers = std::vector<std::unique_ptr<cim::Provider>>;

// Msvm_ComputerSystem (with RequestStateChange), Msvm_VirtualSystemSettingData,
// Msvm_SettingsDefineState, Msvm_SnapshotOfVirtualSystem, the snapshot tree
// (Msvm_ParentChildSettingData, Msvm_LastAppliedSnapshot,
// Msvm_MostCurrentSnapshotInBranch) and the
// Msvm_VirtualSystemManagementService subset (DefineSystem, DestroySystem).
Providers VmProviders(const Context& ctx);
// Msvm_VirtualSystemCollection, Msvm_ManagementCollection, their membership
// associations and Msvm_CollectionManagementService.
Providers CollectionProviders(const Context& ctx);
// Msvm_CollectionSnapshotService (CreateSnapshot, ApplySnapshot,
// DestroySnapshot, ExportSnapshot, ConvertToReferencePoint),
// Msvm_SnapshotCollection and its associations.
Providers SnapshotProviders(const Context& ctx);
// Msvm_ReferencePointCollection, Msvm_VirtualSystemReferencePoint, their
// associations and Msvm_CollectionReferencePointService.
Providers ReferencePointProviders(const Context& ctx);
// The id a base parameter names (DifferentialBackupBase,
// BaseReferencePointCollection): the CollectionID of the object path of an
// Msvm_ReferencePointCollection or Msvm_SnapshotCollection, or a bare id.
std::string CollectionIdIn(const std::string& text);
// Vmgroup_BackupService (BeginBackup, EndBackup, GetVirtualDiskChanges),
// Vmgroup_BackupSession and Vmgroup_BackupDisk.
Providers BackupProviders(const Context& ctx);
// Vmgroup_HostCutService: this host's part of a snapshot across hosts, step
// by step on its coordinator's word (engine/host_cuts.h).
Providers HostCutProviders(const Context& ctx);
// Msvm_ConcreteJob and Msvm_AffectedJobElement.
Providers JobProviders(const Context& ctx);
// Msvm_Error, the embedded instance GetError returns.
cim::ClassSpec ErrorClass();
// Classes clients build or receive as embedded instances.
std::vector<cim::ClassSpec> EmbeddedClasses();

// Every provider family above, in the order Register hands them on.
Providers AllProviders(const Context& ctx);

// Everything above, on `d`.
void Register(cim::Dispatcher& d, const Context& ctx);

}  // namespace vmgroup::services
