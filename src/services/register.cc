// The whole namespace: every provider family and the embedded classes.
#include "services/providers.h"

namespace vmgroup::services {

std::vector<cim::ClassSpec> EmbeddedClasses() {
  using SnapshotSettings = schema::VirtualSystemSnapshotSettingData;
  using SnapshotExport = schema::CollectionSnapshotExportSettingData;
  using PointSettings = schema::CollectionReferencePointSettingData;
  using PointExport = schema::CollectionReferencePointExportSettingData;
  using Storage = schema::StorageAllocationSettingData;
  // Memory and processors: a count.
  auto quantity = [](const char* name) -> cim::ClassSpec {
    using Q = schema::QuantitySettingData;
    return {.name = name,
            .superclass = "CIM_ResourceAllocationSettingData",
            .properties = {{.name = Q::kInstanceID, .type = "string", .key = true},
                           {.name = Q::kVirtualQuantity, .type = "uint64"}}};
  };
  // Memory also says whether it is on huge pages.
  cim::ClassSpec memory = quantity(schema::MemorySettingData::kClass);
  memory.properties.push_back(
      {.name = schema::MemorySettingData::kVmgroupHugePages, .type = "boolean"});
  return {
      ErrorClass(),
      {.name = SnapshotSettings::kClass,
       .superclass = "CIM_SettingData",
       .properties = {{.name = SnapshotSettings::kInstanceID, .type = "string", .key = true},
                      {.name = SnapshotSettings::kElementName, .type = "string"},
                      {.name = SnapshotSettings::kConsistencyLevel, .type = "uint8"},
                      {.name = SnapshotSettings::kIgnoreNonSnapshottableDisks, .type = "boolean"},
                      {.name = SnapshotSettings::kGuestBackupType, .type = "uint8"},
                      {.name = SnapshotSettings::kVmgroupAllowCrashConsistentFallback,
                       .type = "boolean"}}},
      {.name = SnapshotExport::kClass,
       .superclass = "CIM_SettingData",
       .properties = {{.name = SnapshotExport::kInstanceID, .type = "string", .key = true},
                      {.name = SnapshotExport::kElementName, .type = "string"},
                      {.name = SnapshotExport::kCopyVmStorage, .type = "boolean"},
                      {.name = SnapshotExport::kDifferentialBackupBase, .type = "string"},
                      {.name = SnapshotExport::kBackupIntent, .type = "uint16"}}},
      {.name = PointSettings::kClass,
       .superclass = "CIM_SettingData",
       .properties = {{.name = PointSettings::kInstanceID, .type = "string", .key = true},
                      {.name = PointSettings::kElementName, .type = "string"},
                      {.name = PointSettings::kConsistencyLevel, .type = "uint8"}}},
      {.name = PointExport::kClass,
       .superclass = "CIM_SettingData",
       .properties = {{.name = PointExport::kInstanceID, .type = "string", .key = true},
                      {.name = PointExport::kElementName, .type = "string"},
                      {.name = PointExport::kBaseReferencePointCollection, .type = "string"},
                      {.name = PointExport::kVirtualMachinesToDisksToExport,
                       .type = "string",
                       .is_array = true}}},
      std::move(memory),
      quantity(schema::ProcessorSettingData::kClass),
      {.name = Storage::kClass,
       .superclass = "CIM_ResourceAllocationSettingData",
       .properties = {{.name = Storage::kInstanceID, .type = "string", .key = true},
                      {.name = Storage::kHostResource, .type = "string", .is_array = true},
                      {.name = Storage::kVmgroupNewSizeBytes, .type = "uint64"}}}};
}

Providers AllProviders(const Context& ctx) {
  Providers all;
  for (auto* family :
       {&VmProviders, &CollectionProviders, &SnapshotProviders, &ReferencePointProviders,
        &BackupProviders, &HostCutProviders, &JobProviders}) {
    for (auto& p : (*family)(ctx)) all.push_back(std::move(p));
  }
  return all;
}

void Register(cim::Dispatcher& d, const Context& ctx) {
  for (auto& p : AllProviders(ctx)) d.Register(std::move(p));
  for (auto& spec : EmbeddedClasses()) d.Declare(std::move(spec));
}

}  // namespace vmgroup::services
