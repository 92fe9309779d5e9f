// The whole namespace: every provider family and the embedded classes.
#include "services/providers.h"

namespace vmgroup::services {

std::vector<cim::ClassSpec> EmbeddedClasses() {
  return {ErrorClass(),
          {.name = "Msvm_VirtualSystemSnapshotSettingData",
           .superclass = "CIM_SettingData",
           .properties = {{.name = "InstanceID", .type = "string", .key = true},
                          {.name = "ElementName", .type = "string"},
                          {.name = "ConsistencyLevel", .type = "uint8"},
                          {.name = "IgnoreNonSnapshottableDisks", .type = "boolean"},
                          {.name = "GuestBackupType", .type = "uint8"},
                          {.name = "Vmgroup_AllowCrashConsistentFallback", .type = "boolean"}}},
          {.name = "Msvm_CollectionSnapshotExportSettingData",
           .superclass = "CIM_SettingData",
           .properties = {{.name = "InstanceID", .type = "string", .key = true},
                          {.name = "ElementName", .type = "string"},
                          {.name = "CopyVmStorage", .type = "boolean"},
                          {.name = "DifferentialBackupBase", .type = "string"},
                          {.name = "BackupIntent", .type = "uint16"}}},
          {.name = "Msvm_CollectionReferencePointSettingData",
           .superclass = "CIM_SettingData",
           .properties = {{.name = "InstanceID", .type = "string", .key = true},
                          {.name = "ElementName", .type = "string"},
                          {.name = "ConsistencyLevel", .type = "uint8"}}},
          {.name = "Msvm_CollectionReferencePointExportSettingData",
           .superclass = "CIM_SettingData",
           .properties = {{.name = "InstanceID", .type = "string", .key = true},
                          {.name = "ElementName", .type = "string"},
                          {.name = "BaseReferencePointCollection", .type = "string"},
                          {.name = "VirtualMachinesToDisksToExport",
                           .type = "string",
                           .is_array = true}}},
          {.name = "Msvm_MemorySettingData",
           .superclass = "CIM_ResourceAllocationSettingData",
           .properties = {{.name = "InstanceID", .type = "string", .key = true},
                          {.name = "VirtualQuantity", .type = "uint64"}}},
          {.name = "Msvm_ProcessorSettingData",
           .superclass = "CIM_ResourceAllocationSettingData",
           .properties = {{.name = "InstanceID", .type = "string", .key = true},
                          {.name = "VirtualQuantity", .type = "uint64"}}},
          {.name = "Msvm_StorageAllocationSettingData",
           .superclass = "CIM_ResourceAllocationSettingData",
           .properties = {{.name = "InstanceID", .type = "string", .key = true},
                          {.name = "HostResource", .type = "string", .is_array = true},
                          {.name = "Vmgroup_NewSizeBytes", .type = "uint64"}}}};
}

void Register(cim::Dispatcher& d, const Context& ctx) {
  for (auto* family : {&VmProviders, &CollectionProviders, &SnapshotProviders,
                       &ReferencePointProviders, &JobProviders}) {
    for (auto& p : (*family)(ctx)) d.Register(std::move(p));
  }
  for (auto& spec : EmbeddedClasses()) d.Declare(std::move(spec));
}

}  // namespace vmgroup::services
