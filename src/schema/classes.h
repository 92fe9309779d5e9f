// The names of the CIM schema vmgroupd serves and the vmgroup CLI reads:
// every Msvm_* class, its properties and its methods with their
// parameters, spelt once. services/ declares and fills the classes with
// these names and cli/ reads them back with the same ones, so a name
// misspelt on either side does not compile instead of reading as an
// empty column; services/schema_test.cc checks that each class here lists
// exactly the properties its declaration in services/ has.
//
// A layer of its own, below services/ and cli/ and beside cim/, because
// it is VM-specific (cim/ knows nothing of VMs) and both need it (cli/
// may not include services/). Names only: types, keys and what a class
// does stay with its declaration in services/, as libvirt-cim's class
// tables name what the providers implement.
//
// One struct per class: kClass, a constant per property (kVmgroup* for
// the vendor ones), kProperties listing them all, and a struct per method
// with kMethod and its parameters. A struct holds only what its class
// declares, so reading a property of the wrong class does not compile
// either; a base struct is shared only by classes declaring all of it.
// Constants are char arrays: they become std::string (declarations,
// paths) and std::string_view (instances) without a cast.
#pragma once

#include <array>
#include <span>
#include <string_view>

namespace vmgroup::schema {

inline constexpr char kNamespace[] = "root/virtualization/v2";

// Out-parameters of every service method: the job it started, and the
// vendor reason of a refusal (Hyper-V gives only the code).
struct MethodOut {
  static constexpr char kJob[] = "Job";
  static constexpr char kErrorDescription[] = "Vmgroup_ErrorDescription";
};

// ---- Virtual machines ----

struct ComputerSystem {
  static constexpr char kClass[] = "Msvm_ComputerSystem";
  static constexpr char kCreationClassName[] = "CreationClassName";
  static constexpr char kName[] = "Name";  // the VM's id
  static constexpr char kElementName[] = "ElementName";
  static constexpr char kCaption[] = "Caption";
  static constexpr char kDescription[] = "Description";
  static constexpr char kEnabledState[] = "EnabledState";
  static constexpr char kRequestedState[] = "RequestedState";
  static constexpr char kHealthState[] = "HealthState";
  static constexpr char kOperationalStatus[] = "OperationalStatus";
  static constexpr char kStatusDescriptions[] = "StatusDescriptions";
  static constexpr char kProcessID[] = "ProcessID";
  static constexpr char kVmgroupLibvirtURI[] = "Vmgroup_LibvirtURI";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kCreationClassName, kName, kElementName, kCaption, kDescription, kEnabledState,
       kRequestedState, kHealthState, kOperationalStatus, kStatusDescriptions, kProcessID,
       kVmgroupLibvirtURI});

  struct RequestStateChange {
    static constexpr char kMethod[] = "RequestStateChange";
    static constexpr char kRequestedState[] = "RequestedState";
    static constexpr char kTimeoutPeriod[] = "TimeoutPeriod";
    static constexpr char kVmgroupForce[] = "Vmgroup_Force";
  };
};

// A VM's configuration, or one of its per-VM snapshots.
struct VirtualSystemSettingData {
  static constexpr char kClass[] = "Msvm_VirtualSystemSettingData";
  static constexpr char kInstanceID[] = "InstanceID";
  static constexpr char kElementName[] = "ElementName";
  static constexpr char kDescription[] = "Description";
  static constexpr char kVirtualSystemIdentifier[] = "VirtualSystemIdentifier";
  static constexpr char kVirtualSystemType[] = "VirtualSystemType";
  static constexpr char kCreationTime[] = "CreationTime";
  static constexpr char kParent[] = "Parent";
  static constexpr char kIsSaved[] = "IsSaved";
  static constexpr char kVmgroupMemoryMB[] = "Vmgroup_MemoryMB";
  static constexpr char kVmgroupProcessorCount[] = "Vmgroup_ProcessorCount";
  static constexpr char kVmgroupDiskImages[] = "Vmgroup_DiskImages";
  static constexpr char kVmgroupKernel[] = "Vmgroup_Kernel";
  static constexpr char kVmgroupInitrd[] = "Vmgroup_Initrd";
  static constexpr char kVmgroupKernelCommandLine[] = "Vmgroup_KernelCommandLine";
  static constexpr char kVmgroupSnapshotCollectionID[] = "Vmgroup_SnapshotCollectionID";
  static constexpr char kVmgroupCutTime[] = "Vmgroup_CutTime";
  static constexpr char kVmgroupPauseMicroseconds[] = "Vmgroup_PauseMicroseconds";
  static constexpr char kVmgroupConsistencyLevel[] = "Vmgroup_ConsistencyLevel";
  static constexpr char kVmgroupHugePages[] = "Vmgroup_HugePages";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kInstanceID, kElementName, kDescription, kVirtualSystemIdentifier, kVirtualSystemType,
       kCreationTime, kParent, kIsSaved, kVmgroupMemoryMB, kVmgroupProcessorCount,
       kVmgroupDiskImages, kVmgroupKernel, kVmgroupInitrd, kVmgroupKernelCommandLine,
       kVmgroupSnapshotCollectionID, kVmgroupCutTime, kVmgroupPauseMicroseconds,
       kVmgroupConsistencyLevel, kVmgroupHugePages});
};

// Resource settings a DefineSystem call embeds. Memory and processors
// carry their count in VirtualQuantity.
struct QuantitySettingData {
  static constexpr char kInstanceID[] = "InstanceID";
  static constexpr char kVirtualQuantity[] = "VirtualQuantity";
  static constexpr auto kProperties =
      std::to_array<std::string_view>({kInstanceID, kVirtualQuantity});
};
struct MemorySettingData : QuantitySettingData {
  static constexpr char kClass[] = "Msvm_MemorySettingData";
  // Vendor: guest RAM on the host's 2 MiB huge pages.
  static constexpr char kVmgroupHugePages[] = "Vmgroup_HugePages";
  static constexpr auto kProperties =
      std::to_array<std::string_view>({kInstanceID, kVirtualQuantity, kVmgroupHugePages});
};
struct ProcessorSettingData : QuantitySettingData {
  static constexpr char kClass[] = "Msvm_ProcessorSettingData";
};
struct StorageAllocationSettingData {
  static constexpr char kClass[] = "Msvm_StorageAllocationSettingData";
  static constexpr char kInstanceID[] = "InstanceID";
  static constexpr char kHostResource[] = "HostResource";
  static constexpr char kVmgroupNewSizeBytes[] = "Vmgroup_NewSizeBytes";
  static constexpr auto kProperties =
      std::to_array<std::string_view>({kInstanceID, kHostResource, kVmgroupNewSizeBytes});
};

// The singleton services: each declares these properties.
struct Service {
  static constexpr char kCreationClassName[] = "CreationClassName";
  static constexpr char kName[] = "Name";
  static constexpr char kSystemCreationClassName[] = "SystemCreationClassName";
  static constexpr char kSystemName[] = "SystemName";
  static constexpr char kElementName[] = "ElementName";
  static constexpr char kCaption[] = "Caption";
  static constexpr char kEnabledState[] = "EnabledState";
  static constexpr char kHealthState[] = "HealthState";
  static constexpr char kStarted[] = "Started";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kCreationClassName, kName, kSystemCreationClassName, kSystemName, kElementName, kCaption,
       kEnabledState, kHealthState, kStarted});
};

struct VirtualSystemManagementService : Service {
  static constexpr char kClass[] = "Msvm_VirtualSystemManagementService";
  // Read-only: the accelerator QEMU runs VMs under, "kvm" or "tcg" (what
  // vmgroupd's --accel resolved to at start).
  static constexpr char kVmgroupAccelerator[] = "Vmgroup_Accelerator";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kCreationClassName, kName, kSystemCreationClassName, kSystemName, kElementName, kCaption,
       kEnabledState, kHealthState, kStarted, kVmgroupAccelerator});
  struct DefineSystem {
    static constexpr char kMethod[] = "DefineSystem";
    static constexpr char kSystemSettings[] = "SystemSettings";
    static constexpr char kResourceSettings[] = "ResourceSettings";
    static constexpr char kReferenceConfiguration[] = "ReferenceConfiguration";
    static constexpr char kResultingSystem[] = "ResultingSystem";
  };
  struct DestroySystem {
    static constexpr char kMethod[] = "DestroySystem";
    static constexpr char kAffectedSystem[] = "AffectedSystem";
  };
};

// Associations: two key references, named by their roles.
struct Dependency {
  static constexpr char kAntecedent[] = "Antecedent";
  static constexpr char kDependent[] = "Dependent";
  static constexpr auto kProperties = std::to_array<std::string_view>({kAntecedent, kDependent});
};
struct CollectedMSEs {
  static constexpr char kCollection[] = "Collection";
  static constexpr char kMember[] = "Member";
  static constexpr auto kProperties = std::to_array<std::string_view>({kCollection, kMember});
};

struct SettingsDefineState {
  static constexpr char kClass[] = "Msvm_SettingsDefineState";
  static constexpr char kManagedElement[] = "ManagedElement";
  static constexpr char kSettingData[] = "SettingData";
  static constexpr auto kProperties =
      std::to_array<std::string_view>({kManagedElement, kSettingData});
};
struct SnapshotOfVirtualSystem : Dependency {
  static constexpr char kClass[] = "Msvm_SnapshotOfVirtualSystem";
};
struct ParentChildSettingData {
  static constexpr char kClass[] = "Msvm_ParentChildSettingData";
  static constexpr char kParent[] = "Parent";
  static constexpr char kChild[] = "Child";
  static constexpr auto kProperties = std::to_array<std::string_view>({kParent, kChild});
};
struct LastAppliedSnapshot : Dependency {
  static constexpr char kClass[] = "Msvm_LastAppliedSnapshot";
};
struct MostCurrentSnapshotInBranch : Dependency {
  static constexpr char kClass[] = "Msvm_MostCurrentSnapshotInBranch";
};

// ---- Groups ----

// A VM group and a group of groups declare the same properties.
struct CollectionOfMSEs {
  static constexpr char kCollectionID[] = "CollectionID";
  static constexpr char kElementName[] = "ElementName";
  static constexpr char kCaption[] = "Caption";
  static constexpr char kDescription[] = "Description";
  static constexpr char kReplicationMode[] = "ReplicationMode";
  static constexpr char kReplicationState[] = "ReplicationState";
  static constexpr char kVmgroupCreationTime[] = "Vmgroup_CreationTime";
  static constexpr auto kProperties =
      std::to_array<std::string_view>({kCollectionID, kElementName, kCaption, kDescription,
                                       kReplicationMode, kReplicationState, kVmgroupCreationTime});
};
struct VirtualSystemCollection : CollectionOfMSEs {
  static constexpr char kClass[] = "Msvm_VirtualSystemCollection";
};
struct ManagementCollection : CollectionOfMSEs {
  static constexpr char kClass[] = "Msvm_ManagementCollection";
};
struct CollectedVirtualSystems : CollectedMSEs {
  static constexpr char kClass[] = "Msvm_CollectedVirtualSystems";
};
struct CollectedCollections : CollectedMSEs {
  static constexpr char kClass[] = "Msvm_CollectedCollections";
};

struct CollectionManagementService : Service {
  static constexpr char kClass[] = "Msvm_CollectionManagementService";
  struct DefineCollection {
    static constexpr char kMethod[] = "DefineCollection";
    static constexpr char kName[] = "Name";
    static constexpr char kId[] = "Id";
    static constexpr char kType[] = "Type";
    static constexpr char kDefinedCollection[] = "DefinedCollection";
  };
  struct DestroyCollection {
    static constexpr char kMethod[] = "DestroyCollection";
    static constexpr char kCollection[] = "Collection";
  };
  struct RenameCollection {
    static constexpr char kMethod[] = "RenameCollection";
    static constexpr char kCollection[] = "Collection";
    static constexpr char kNewName[] = "NewName";
  };
  // AddMember and RemoveMember.
  struct Membership {
    static constexpr char kMember[] = "Member";
    static constexpr char kCollection[] = "Collection";
  };
  struct AddMember : Membership {
    static constexpr char kMethod[] = "AddMember";
  };
  struct RemoveMember : Membership {
    static constexpr char kMethod[] = "RemoveMember";
  };
  struct RemoveMemberById {
    static constexpr char kMethod[] = "RemoveMemberById";
    static constexpr char kMember[] = "Member";
    static constexpr char kCollectionId[] = "CollectionId";
  };
  // Vendor: a group back from an export directory.
  struct ImportCollection {
    static constexpr char kMethod[] = "Vmgroup_ImportCollection";
    static constexpr char kImportDirectory[] = "ImportDirectory";
    static constexpr char kGenerateNewID[] = "GenerateNewID";
  };
};

// ---- Group snapshots ----

struct SnapshotCollection {
  static constexpr char kClass[] = "Msvm_SnapshotCollection";
  static constexpr char kCollectionID[] = "CollectionID";
  static constexpr char kElementName[] = "ElementName";
  static constexpr char kVmgroupVirtualSystemCollectionID[] = "Vmgroup_VirtualSystemCollectionID";
  static constexpr char kVmgroupSnapshotType[] = "Vmgroup_SnapshotType";
  static constexpr char kVmgroupCreationTime[] = "Vmgroup_CreationTime";
  static constexpr char kVmgroupPauseWindowMicroseconds[] = "Vmgroup_PauseWindowMicroseconds";
  static constexpr char kVmgroupDurationMicroseconds[] = "Vmgroup_DurationMicroseconds";
  static constexpr char kVmgroupConsistencyLevel[] = "Vmgroup_ConsistencyLevel";
  static constexpr char kVmgroupFreezeWindowMicroseconds[] = "Vmgroup_FreezeWindowMicroseconds";
  static constexpr char kVmgroupParentSnapshotCollectionID[] = "Vmgroup_ParentSnapshotCollectionID";
  static constexpr char kVmgroupIsCurrent[] = "Vmgroup_IsCurrent";
  static constexpr char kVmgroupHosts[] = "Vmgroup_Hosts";
  static constexpr char kVmgroupCutSpreadMicroseconds[] = "Vmgroup_CutSpreadMicroseconds";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kCollectionID, kElementName, kVmgroupVirtualSystemCollectionID, kVmgroupSnapshotType,
       kVmgroupCreationTime, kVmgroupPauseWindowMicroseconds, kVmgroupDurationMicroseconds,
       kVmgroupConsistencyLevel, kVmgroupFreezeWindowMicroseconds,
       kVmgroupParentSnapshotCollectionID, kVmgroupIsCurrent, kVmgroupHosts,
       kVmgroupCutSpreadMicroseconds});
};
struct CollectedSnapshots : CollectedMSEs {
  static constexpr char kClass[] = "Msvm_CollectedSnapshots";
};
struct SnapshotOfVirtualSystemCollection : Dependency {
  static constexpr char kClass[] = "Msvm_SnapshotOfVirtualSystemCollection";
};

// The settings of a method that makes a cut (a snapshot, a reference
// point): its name and the consistency asked for.
struct CutSettingData {
  static constexpr char kInstanceID[] = "InstanceID";
  static constexpr char kElementName[] = "ElementName";
  static constexpr char kConsistencyLevel[] = "ConsistencyLevel";
  static constexpr auto kProperties =
      std::to_array<std::string_view>({kInstanceID, kElementName, kConsistencyLevel});
};

// The settings CreateSnapshot embeds.
struct VirtualSystemSnapshotSettingData : CutSettingData {
  static constexpr char kClass[] = "Msvm_VirtualSystemSnapshotSettingData";
  static constexpr char kIgnoreNonSnapshottableDisks[] = "IgnoreNonSnapshottableDisks";
  static constexpr char kGuestBackupType[] = "GuestBackupType";
  static constexpr char kVmgroupAllowCrashConsistentFallback[] =
      "Vmgroup_AllowCrashConsistentFallback";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kInstanceID, kElementName, kConsistencyLevel, kIgnoreNonSnapshottableDisks, kGuestBackupType,
       kVmgroupAllowCrashConsistentFallback});
};

// The settings ExportSnapshot embeds.
struct CollectionSnapshotExportSettingData {
  static constexpr char kClass[] = "Msvm_CollectionSnapshotExportSettingData";
  static constexpr char kInstanceID[] = "InstanceID";
  static constexpr char kElementName[] = "ElementName";
  static constexpr char kCopyVmStorage[] = "CopyVmStorage";
  static constexpr char kDifferentialBackupBase[] = "DifferentialBackupBase";
  static constexpr char kBackupIntent[] = "BackupIntent";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kInstanceID, kElementName, kCopyVmStorage, kDifferentialBackupBase, kBackupIntent});
};

struct CollectionSnapshotService : Service {
  static constexpr char kClass[] = "Msvm_CollectionSnapshotService";
  struct CreateSnapshot {
    static constexpr char kMethod[] = "CreateSnapshot";
    static constexpr char kCollection[] = "Collection";
    static constexpr char kSnapshotSettings[] = "SnapshotSettings";
    static constexpr char kSnapshotType[] = "SnapshotType";
    static constexpr char kResultingSnapshotCollection[] = "ResultingSnapshotCollection";
  };
  struct ApplySnapshot {
    static constexpr char kMethod[] = "ApplySnapshot";
    static constexpr char kSnapshotCollection[] = "SnapshotCollection";
  };
  struct DestroySnapshot {
    static constexpr char kMethod[] = "DestroySnapshot";
    static constexpr char kAffectedSnapshotCollection[] = "AffectedSnapshotCollection";
  };
  struct ConvertToReferencePoint {
    static constexpr char kMethod[] = "ConvertToReferencePoint";
    static constexpr char kAffectedSnapshotCollection[] = "AffectedSnapshotCollection";
    static constexpr char kResultingReferencePointCollection[] =
        "ResultingReferencePointCollection";
  };
  struct ExportSnapshot {
    static constexpr char kMethod[] = "ExportSnapshot";
    static constexpr char kSnapshotCollection[] = "SnapshotCollection";
    static constexpr char kExportDirectory[] = "ExportDirectory";
    static constexpr char kExportSettingData[] = "ExportSettingData";
  };
};

// ---- Reference points ----

struct ReferencePointCollection {
  static constexpr char kClass[] = "Msvm_ReferencePointCollection";
  static constexpr char kCollectionID[] = "CollectionID";
  static constexpr char kVirtualSystemCollectionId[] = "VirtualSystemCollectionId";
  static constexpr char kElementName[] = "ElementName";
  static constexpr char kReferencePointType[] = "ReferencePointType";
  static constexpr char kConsistencyLevel[] = "ConsistencyLevel";
  static constexpr char kHasAssociatedLog[] = "HasAssociatedLog";
  static constexpr char kVmgroupCutTime[] = "Vmgroup_CutTime";
  static constexpr char kVmgroupCreationTime[] = "Vmgroup_CreationTime";
  static constexpr char kVmgroupSnapshotCollectionID[] = "Vmgroup_SnapshotCollectionID";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kCollectionID, kVirtualSystemCollectionId, kElementName, kReferencePointType,
       kConsistencyLevel, kHasAssociatedLog, kVmgroupCutTime, kVmgroupCreationTime,
       kVmgroupSnapshotCollectionID});
};

// A member VM's part of a reference point.
struct VirtualSystemReferencePoint {
  static constexpr char kClass[] = "Msvm_VirtualSystemReferencePoint";
  static constexpr char kInstanceID[] = "InstanceID";
  static constexpr char kVirtualSystemIdentifier[] = "VirtualSystemIdentifier";
  static constexpr char kReferencePointType[] = "ReferencePointType";
  static constexpr char kConsistencyLevel[] = "ConsistencyLevel";
  static constexpr char kHasAssociatedData[] = "HasAssociatedData";
  static constexpr char kVirtualDiskIdentifiers[] = "VirtualDiskIdentifiers";
  static constexpr char kResilientChangeTrackingIdentifiers[] =
      "ResilientChangeTrackingIdentifiers";
  static constexpr char kVmgroupReferencePointCollectionID[] = "Vmgroup_ReferencePointCollectionID";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kInstanceID, kVirtualSystemIdentifier, kReferencePointType, kConsistencyLevel,
       kHasAssociatedData, kVirtualDiskIdentifiers, kResilientChangeTrackingIdentifiers,
       kVmgroupReferencePointCollectionID});
};

struct ReferencePointOfVirtualSystemCollection : Dependency {
  static constexpr char kClass[] = "Msvm_ReferencePointOfVirtualSystemCollection";
};
struct CollectedReferencePoints : CollectedMSEs {
  static constexpr char kClass[] = "Msvm_CollectedReferencePoints";
};
struct ReferencePointOfVirtualSystem : Dependency {
  static constexpr char kClass[] = "Msvm_ReferencePointOfVirtualSystem";
};

// The settings CreateReferencePoint embeds.
struct CollectionReferencePointSettingData : CutSettingData {
  static constexpr char kClass[] = "Msvm_CollectionReferencePointSettingData";
};

// The settings ExportReferencePoint embeds.
struct CollectionReferencePointExportSettingData {
  static constexpr char kClass[] = "Msvm_CollectionReferencePointExportSettingData";
  static constexpr char kInstanceID[] = "InstanceID";
  static constexpr char kElementName[] = "ElementName";
  static constexpr char kBaseReferencePointCollection[] = "BaseReferencePointCollection";
  static constexpr char kVirtualMachinesToDisksToExport[] = "VirtualMachinesToDisksToExport";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kInstanceID, kElementName, kBaseReferencePointCollection, kVirtualMachinesToDisksToExport});
};

struct CollectionReferencePointService : Service {
  static constexpr char kClass[] = "Msvm_CollectionReferencePointService";
  struct CreateReferencePoint {
    static constexpr char kMethod[] = "CreateReferencePoint";
    static constexpr char kCollection[] = "Collection";
    static constexpr char kReferencePointSettings[] = "ReferencePointSettings";
    static constexpr char kReferencePointType[] = "ReferencePointType";
    static constexpr char kResultingReferencePointCollection[] =
        "ResultingReferencePointCollection";
  };
  struct ExportReferencePoint {
    static constexpr char kMethod[] = "ExportReferencePoint";
    static constexpr char kReferencePointCollection[] = "ReferencePointCollection";
    static constexpr char kExportDirectory[] = "ExportDirectory";
    static constexpr char kExportSettingData[] = "ExportSettingData";
  };
  // DestroyReferencePoint and RemoveAssociatedData.
  struct OnReferencePoint {
    static constexpr char kAffectedReferencePointCollection[] = "AffectedReferencePointCollection";
  };
  struct DestroyReferencePoint : OnReferencePoint {
    static constexpr char kMethod[] = "DestroyReferencePoint";
  };
  struct RemoveAssociatedData : OnReferencePoint {
    static constexpr char kMethod[] = "RemoveAssociatedData";
  };
};

// ---- Backup sessions (vendor: Hyper-V's backup products read checkpoints
// through RCT and the VHDX; vmgroup's readers pull over NBD) ----

// A session serving a group snapshot's frozen disks (backup_sessions.h).
struct BackupSession {
  static constexpr char kClass[] = "Vmgroup_BackupSession";
  static constexpr char kInstanceID[] = "InstanceID";
  static constexpr char kVirtualSystemCollectionId[] = "VirtualSystemCollectionId";
  static constexpr char kSnapshotCollectionID[] = "SnapshotCollectionID";
  static constexpr char kBaseReferencePointCollectionID[] = "BaseReferencePointCollectionID";
  static constexpr char kTookSnapshot[] = "TookSnapshot";
  static constexpr char kStartTime[] = "StartTime";
  // "Serving", "Ending", or "Stopped" (serving stopped, its end failed after: end it again).
  static constexpr char kState[] = "State";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kInstanceID, kVirtualSystemCollectionId, kSnapshotCollectionID,
       kBaseReferencePointCollectionID, kTookSnapshot, kStartTime, kState});
};

// One disk a session serves: where and how a reader reads it.
struct BackupDisk {
  static constexpr char kClass[] = "Vmgroup_BackupDisk";
  static constexpr char kInstanceID[] = "InstanceID";
  static constexpr char kSessionID[] = "SessionID";
  static constexpr char kVirtualSystemIdentifier[] = "VirtualSystemIdentifier";
  static constexpr char kVirtualSystemName[] = "VirtualSystemName";
  static constexpr char kDiskIndex[] = "DiskIndex";
  static constexpr char kExportName[] = "ExportName";
  static constexpr char kURI[] = "URI";
  static constexpr char kSocketPath[] = "SocketPath";
  static constexpr char kSize[] = "Size";
  static constexpr char kMetadataContext[] = "MetadataContext";
  static constexpr char kFullReadReason[] = "FullReadReason";
  // The peer that serves it, in a session across hosts; "" for this host.
  static constexpr char kHost[] = "Host";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kInstanceID, kSessionID, kVirtualSystemIdentifier, kVirtualSystemName, kDiskIndex,
       kExportName, kURI, kSocketPath, kSize, kMetadataContext, kFullReadReason, kHost});
};

struct BackupService : Service {
  static constexpr char kClass[] = "Vmgroup_BackupService";
  struct BeginBackup {
    static constexpr char kMethod[] = "BeginBackup";
    static constexpr char kCollection[] = "Collection";
    static constexpr char kSnapshotCollection[] = "SnapshotCollection";
    static constexpr char kBaseReferencePointCollection[] = "BaseReferencePointCollection";
    static constexpr char kConsistencyLevel[] = "ConsistencyLevel";
    static constexpr char kAllowCrashConsistentFallback[] = "AllowCrashConsistentFallback";
    static constexpr char kIdleTimeout[] = "IdleTimeout";  // seconds
    static constexpr char kTransport[] = "Transport";      // values.h BackupTransport
    static constexpr char kResultingBackupSession[] = "ResultingBackupSession";
  };
  struct EndBackup {
    static constexpr char kMethod[] = "EndBackup";
    static constexpr char kBackupSession[] = "BackupSession";
    static constexpr char kToReferencePoint[] = "ToReferencePoint";
    static constexpr char kResultingReferencePointCollection[] =
        "ResultingReferencePointCollection";
  };
  // As Msvm_ImageManagementService.GetVirtualDiskChanges answers, for a
  // disk a session serves.
  struct GetVirtualDiskChanges {
    static constexpr char kMethod[] = "GetVirtualDiskChanges";
    static constexpr char kBackupSession[] = "BackupSession";
    static constexpr char kVirtualSystemIdentifier[] = "VirtualSystemIdentifier";
    static constexpr char kDiskIndex[] = "DiskIndex";
    static constexpr char kByteOffset[] = "ByteOffset";
    static constexpr char kByteLength[] = "ByteLength";
    static constexpr char kChangedByteOffsets[] = "ChangedByteOffsets";
    static constexpr char kChangedByteLengths[] = "ChangedByteLengths";
    static constexpr char kProcessedByteLength[] = "ProcessedByteLength";
  };
};

// One host's part of a snapshot across hosts (issue 20), step by step on
// the word of the group's coordinator, another vmgroupd
// (engine/host_cuts.h). Every method names the part by SnapshotID, the
// group snapshot's id; PauseCut and ResumeCut answer the same out
// parameters, by member: what the coordinator records with the round trip
// it measured.
struct HostCutService : Service {
  static constexpr char kClass[] = "Vmgroup_HostCutService";
  static constexpr char kSnapshotID[] = "SnapshotID";
  struct PrepareCut {
    static constexpr char kMethod[] = "PrepareCut";
    static constexpr char kCollection[] = "Collection";  // this host's part of the group
    static constexpr char kSnapshotType[] = "SnapshotType";
    static constexpr char kElementName[] = "ElementName";
    static constexpr char kStepTimeout[] = "StepTimeout";  // milliseconds
    // 1: the guests frozen from the prepare to the resume; 2 (or 0, or
    // none): crash consistent.
    static constexpr char kConsistencyLevel[] = "ConsistencyLevel";
    static constexpr char kAllowCrashConsistentFallback[] = "AllowCrashConsistentFallback";
  };
  struct PauseCut {
    static constexpr char kMethod[] = "PauseCut";
    static constexpr char kLease[] = "Lease";          // milliseconds
    static constexpr char kCutAtOnce[] = "CutAtOnce";  // boolean: Cut as well, still paused
  };
  struct Cut {
    static constexpr char kMethod[] = "Cut";
  };
  struct ResumeCut {
    static constexpr char kMethod[] = "ResumeCut";
  };
  struct CommitCut {
    static constexpr char kMethod[] = "CommitCut";
  };
  struct AbortCut {
    static constexpr char kMethod[] = "AbortCut";
  };
  // Exporting a committed part: this host's folder of an export across hosts.
  struct ExportPart {
    static constexpr char kMethod[] = "ExportPart";
    static constexpr char kExportDirectory[] = "ExportDirectory";  // absolute
    static constexpr char kCopyStorage[] = "CopyStorage";          // boolean: with the disks
    // The reference point across hosts an incremental export builds on.
    static constexpr char kBaseReferencePointID[] = "BaseReferencePointID";
  };
  struct RemoveExportPart {
    static constexpr char kMethod[] = "RemoveExportPart";
    static constexpr char kExportDirectory[] = "ExportDirectory";
  };
  // A committed part becoming reference point ReferencePointID of its
  // snapshot across hosts (checked alone first: ValidateConvertPart), and
  // that reference point's destruction.
  static constexpr char kReferencePointID[] = "ReferencePointID";
  struct ValidateConvertPart {
    static constexpr char kMethod[] = "ValidateConvertPart";
  };
  struct ConvertPart {
    static constexpr char kMethod[] = "ConvertPart";
  };
  struct DestroyReferencePointPart {
    static constexpr char kMethod[] = "DestroyReferencePointPart";
  };
  // This host's part of an apply across hosts of a committed part
  // (engine/host_applies.h): its checks alone, its prepare (held until
  // the coordinator's word), and that word.
  struct ValidateApplyPart {
    static constexpr char kMethod[] = "ValidateApplyPart";
  };
  struct PrepareApplyPart {
    static constexpr char kMethod[] = "PrepareApplyPart";
  };
  struct CommitApplyPart {
    static constexpr char kMethod[] = "CommitApplyPart";
  };
  struct AbortApplyPart {
    static constexpr char kMethod[] = "AbortApplyPart";
  };
  // PauseCut's and ResumeCut's answer.
  static constexpr char kVirtualSystemIdentifiers[] = "VirtualSystemIdentifiers";
  static constexpr char kPausedAt[] = "PausedAt";  // microseconds since 1970, host's clock
  static constexpr char kPauseDurations[] = "PauseDurations";  // microseconds (0 while paused)
  static constexpr char kCutTimes[] = "CutTimes";              // microseconds since 1970 (0: none)
  static constexpr char kLeaseState[] = "LeaseState";          // engine::LeaseStateName
  static constexpr char kUnguarded[] = "Unguarded";            // why no resume guard ("": guarded)
  static constexpr char kHostTime[] = "HostTime";  // microseconds since 1970, when it answered
};

// ---- Jobs ----

struct ConcreteJob {
  static constexpr char kClass[] = "Msvm_ConcreteJob";
  static constexpr char kInstanceID[] = "InstanceID";
  static constexpr char kName[] = "Name";
  static constexpr char kCaption[] = "Caption";
  static constexpr char kDescription[] = "Description";
  static constexpr char kElementName[] = "ElementName";
  static constexpr char kJobType[] = "JobType";
  static constexpr char kJobState[] = "JobState";
  static constexpr char kJobStatus[] = "JobStatus";
  static constexpr char kPercentComplete[] = "PercentComplete";
  static constexpr char kErrorCode[] = "ErrorCode";
  static constexpr char kErrorDescription[] = "ErrorDescription";
  static constexpr char kErrorSummaryDescription[] = "ErrorSummaryDescription";
  static constexpr char kTimeSubmitted[] = "TimeSubmitted";
  static constexpr char kStartTime[] = "StartTime";
  static constexpr char kElapsedTime[] = "ElapsedTime";
  static constexpr char kTimeOfLastStateChange[] = "TimeOfLastStateChange";
  static constexpr char kTimeBeforeRemoval[] = "TimeBeforeRemoval";
  static constexpr char kDeleteOnCompletion[] = "DeleteOnCompletion";
  static constexpr char kCancellable[] = "Cancellable";
  static constexpr char kOperationalStatus[] = "OperationalStatus";
  static constexpr char kStatusDescriptions[] = "StatusDescriptions";
  static constexpr char kHealthState[] = "HealthState";
  static constexpr auto kProperties = std::to_array<std::string_view>({kInstanceID,
                                                                       kName,
                                                                       kCaption,
                                                                       kDescription,
                                                                       kElementName,
                                                                       kJobType,
                                                                       kJobState,
                                                                       kJobStatus,
                                                                       kPercentComplete,
                                                                       kErrorCode,
                                                                       kErrorDescription,
                                                                       kErrorSummaryDescription,
                                                                       kTimeSubmitted,
                                                                       kStartTime,
                                                                       kElapsedTime,
                                                                       kTimeOfLastStateChange,
                                                                       kTimeBeforeRemoval,
                                                                       kDeleteOnCompletion,
                                                                       kCancellable,
                                                                       kOperationalStatus,
                                                                       kStatusDescriptions,
                                                                       kHealthState});

  struct RequestStateChange {
    static constexpr char kMethod[] = "RequestStateChange";
    static constexpr char kRequestedState[] = "RequestedState";
    static constexpr char kTimeoutPeriod[] = "TimeoutPeriod";
  };
  struct GetError {
    static constexpr char kMethod[] = "GetError";
    static constexpr char kError[] = "Error";
  };
  struct GetErrorEx {
    static constexpr char kMethod[] = "GetErrorEx";
    static constexpr char kErrors[] = "Errors";
  };
};

struct AffectedJobElement {
  static constexpr char kClass[] = "Msvm_AffectedJobElement";
  static constexpr char kAffectedElement[] = "AffectedElement";
  static constexpr char kAffectingElement[] = "AffectingElement";
  static constexpr char kElementEffects[] = "ElementEffects";
  static constexpr auto kProperties =
      std::to_array<std::string_view>({kAffectedElement, kAffectingElement, kElementEffects});
};

// What GetError returns, embedded.
struct Error {
  static constexpr char kClass[] = "Msvm_Error";
  static constexpr char kErrorType[] = "ErrorType";
  static constexpr char kOwningEntity[] = "OwningEntity";
  static constexpr char kMessageID[] = "MessageID";
  static constexpr char kMessage[] = "Message";
  static constexpr char kPerceivedSeverity[] = "PerceivedSeverity";
  static constexpr char kErrorSource[] = "ErrorSource";
  static constexpr char kErrorSourceFormat[] = "ErrorSourceFormat";
  static constexpr char kCIMStatusCode[] = "CIMStatusCode";
  static constexpr char kCIMStatusCodeDescription[] = "CIMStatusCodeDescription";
  static constexpr auto kProperties = std::to_array<std::string_view>(
      {kErrorType, kOwningEntity, kMessageID, kMessage, kPerceivedSeverity, kErrorSource,
       kErrorSourceFormat, kCIMStatusCode, kCIMStatusCodeDescription});
};

// ---- Every class, for checks ----

struct ClassNames {
  std::string_view name;
  std::span<const std::string_view> properties;
};
template <typename C>
constexpr ClassNames NamesOf() {
  return {C::kClass, C::kProperties};
}

inline constexpr ClassNames kClasses[] = {
    NamesOf<ComputerSystem>(),
    NamesOf<VirtualSystemSettingData>(),
    NamesOf<MemorySettingData>(),
    NamesOf<ProcessorSettingData>(),
    NamesOf<StorageAllocationSettingData>(),
    NamesOf<VirtualSystemManagementService>(),
    NamesOf<SettingsDefineState>(),
    NamesOf<SnapshotOfVirtualSystem>(),
    NamesOf<ParentChildSettingData>(),
    NamesOf<LastAppliedSnapshot>(),
    NamesOf<MostCurrentSnapshotInBranch>(),
    NamesOf<VirtualSystemCollection>(),
    NamesOf<ManagementCollection>(),
    NamesOf<CollectedVirtualSystems>(),
    NamesOf<CollectedCollections>(),
    NamesOf<CollectionManagementService>(),
    NamesOf<SnapshotCollection>(),
    NamesOf<CollectedSnapshots>(),
    NamesOf<SnapshotOfVirtualSystemCollection>(),
    NamesOf<VirtualSystemSnapshotSettingData>(),
    NamesOf<CollectionSnapshotExportSettingData>(),
    NamesOf<CollectionSnapshotService>(),
    NamesOf<ReferencePointCollection>(),
    NamesOf<VirtualSystemReferencePoint>(),
    NamesOf<ReferencePointOfVirtualSystemCollection>(),
    NamesOf<CollectedReferencePoints>(),
    NamesOf<ReferencePointOfVirtualSystem>(),
    NamesOf<CollectionReferencePointSettingData>(),
    NamesOf<CollectionReferencePointExportSettingData>(),
    NamesOf<CollectionReferencePointService>(),
    NamesOf<BackupSession>(),
    NamesOf<BackupDisk>(),
    NamesOf<BackupService>(),
    NamesOf<HostCutService>(),
    NamesOf<ConcreteJob>(),
    NamesOf<AffectedJobElement>(),
    NamesOf<Error>(),
};

}  // namespace vmgroup::schema
