// Reference points: Msvm_ReferencePointCollection and its per-VM
// Msvm_VirtualSystemReferencePoint, and Msvm_CollectionReferencePointService
// (reference §4.6, §7, §8). vmgroup's reference points track changes with
// persistent dirty bitmaps: ReferencePointType 2 (RCT based, Hyper-V's
// equivalent), never with a log.
#include <functional>
#include <optional>
#include <regex>

#include "base/ids.h"
#include "cim/xml_reader.h"
#include "services/job_method.h"
#include "services/providers.h"

namespace vmgroup::services {
namespace {

using RPC = schema::ReferencePointCollection;
using VSRP = schema::VirtualSystemReferencePoint;
using CRPS = schema::CollectionReferencePointService;
using schema::ReferencePointType;
constexpr int kJobCreateReferencePointOnCollection = 205;
constexpr int kJobExportReferencePointOnCollection = 206;
constexpr int kJobDestroyReferencePointOnCollection = 208;

// The embedded settings `text` as an instance of `class_name`, or
// InvalidArgument saying what it is instead. Empty text: no settings.
Result<std::optional<cim::Instance>> Settings(const std::string& text, const char* class_name) {
  if (text.empty()) return std::optional<cim::Instance>();
  VMG_ASSIGN_OR_RETURN(cim::Instance inst, cim::ParseEmbeddedInstance(text));
  if (!cim::NameEquals(inst.class_name, class_name)) {
    return Status::InvalidArgument(std::string("must be a ") + class_name + ", not " +
                                   inst.class_name);
  }
  return std::optional<cim::Instance>(std::move(inst));
}

// CreateReferencePoint's inputs: the type, which must be RCT based (or left
// to vmgroup: 0), and the settings, whose ElementName names the point.
Status ReadCreateSettings(const Args& a, std::string* name) {
  using Create = CRPS::CreateReferencePoint;
  const int64_t type = a.Int(Create::kReferencePointType, 0);
  if (type == ReferencePointType::kLogBased) {
    return Status::NotSupported(
        "log-based reference points (ReferencePointType 1, Hyper-V Replica) are not supported; "
        "use 2 (RCT based)");
  }
  if (type != 0 && type != ReferencePointType::kRctBased) {
    return Status::InvalidArgument("ReferencePointType must be 0, 1 or 2, not " +
                                   std::to_string(type));
  }
  auto settings = Settings(a.Str(Create::kReferencePointSettings),
                           schema::CollectionReferencePointSettingData::kClass);
  if (!settings.ok()) return settings.status().Annotate(Create::kReferencePointSettings);
  if (!*settings) return Status::Ok();
  auto named = ElementNameOf(**settings, "reference point name");
  if (!named.ok()) return named.status().Annotate(Create::kReferencePointSettings);
  *name = *named;
  auto level = ReadConsistencyLevel(**settings);
  if (!level.ok()) return level.status().Annotate(Create::kReferencePointSettings);
  if (*level == catalog::Consistency::kApplication) {
    return Status::NotSupported(
        "ReferencePointSettings: reference points are made crash consistent (ConsistencyLevel "
        "2); for an application-consistent one, take an application-consistent recovery "
        "snapshot and convert it (ConvertToReferencePoint)");
  }
  return Status::Ok();
}

// ExportReferencePoint's settings: the base, if any. Every disk of every
// member is exported: a selection of disks is refused, not half-honoured.
Status ReadExportSettings(const std::string& text, engine::ExportRequest* req) {
  using Export = schema::CollectionReferencePointExportSettingData;
  VMG_ASSIGN_OR_RETURN(auto settings, Settings(text, Export::kClass));
  if (!settings) return Status::Ok();
  if (const cim::Property* p = settings->Find(Export::kVirtualMachinesToDisksToExport);
      p && !p->value.array.empty()) {
    return Status::NotSupported(
        "VirtualMachinesToDisksToExport: vmgroup exports every disk of every member; leave it "
        "empty");
  }
  if (const cim::Property* p = settings->Find(Export::kBaseReferencePointCollection);
      p && p->value.kind == cim::Value::Kind::kScalar) {
    req->base = CollectionIdIn(p->value.scalar);
  }
  return Status::Ok();
}

// The reference point parameter `param` names.
Result<catalog::ReferencePointRecord> Named(engine::Engine* e, const Args& a, const char* param) {
  VMG_ASSIGN_OR_RETURN(std::string id, a.RefId(param, RPC::kCollectionID, "a reference point"));
  return e->snapshots().GetReferencePoint(id);
}

class ReferencePointServiceProvider : public ServiceProvider {
  using Create = CRPS::CreateReferencePoint;
  using Export = CRPS::ExportReferencePoint;
  using OnPoint = CRPS::OnReferencePoint;  // DestroyReferencePoint, RemoveAssociatedData

 public:
  explicit ReferencePointServiceProvider(const Context& ctx)
      : ServiceProvider(
            ctx, CRPS::kClass, "CollectionReferencePointService",
            "Hyper-V Collection Reference Point Service",
            {{.name = Create::kMethod,
              .params = {RefIn(Create::kCollection, schema::VirtualSystemCollection::kClass),
                         {.name = Create::kReferencePointSettings,
                          .type = "string",
                          .embedded_class = schema::CollectionReferencePointSettingData::kClass},
                         {.name = Create::kReferencePointType, .type = "uint16"},
                         RefInOut(Create::kResultingReferencePointCollection, "CIM_Collection"),
                         JobOut()}},
             {.name = Export::kMethod,
              .params = {RefIn(Export::kReferencePointCollection, "CIM_Collection"),
                         {.name = Export::kExportDirectory, .type = "string"},
                         {.name = Export::kExportSettingData,
                          .type = "string",
                          .embedded_class =
                              schema::CollectionReferencePointExportSettingData::kClass},
                         JobOut()}},
             {.name = CRPS::DestroyReferencePoint::kMethod,
              .params = {RefIn(OnPoint::kAffectedReferencePointCollection, "CIM_Collection"),
                         JobOut()}},
             {.name = CRPS::RemoveAssociatedData::kMethod,
              .params = {RefIn(OnPoint::kAffectedReferencePointCollection, "CIM_Collection"),
                         JobOut()}}}) {
    engine::Engine* e = ctx.engine;
    JobManager* jobs = ctx.jobs;
    On(Create::kMethod, [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto collection = a.RefId(Create::kCollection, schema::VirtualSystemCollection::kCollectionID,
                                "a VM group");
      if (!collection.ok()) return Outcome(ReturnCodeA, collection.status());
      const std::string group_id = *collection, rp_id = NewGuid();
      std::string name;
      if (Status s = ReadCreateSettings(a, &name); !s.ok()) return Outcome(ReturnCodeA, s);
      return StartJob(
          jobs, ReturnCodeA, e->snapshots().ValidateCreateReferencePoint(group_id),
          [&]() -> Result<JobMethod> {
            VMG_ASSIGN_OR_RETURN(auto group, e->catalog().GetCollection(group_id));
            return JobMethod{.type = kJobCreateReferencePointOnCollection,
                             .description = "Create a reference point of VM group " + group.name,
                             .out = {{Create::kResultingReferencePointCollection, "reference",
                                      cim::Value::Reference(ReferencePointPath(
                                          {.id = rp_id, .collection_id = group_id}))}}};
          },
          [e, group_id, name, rp_id](JobControl&) -> Result<std::vector<std::string>> {
            VMG_ASSIGN_OR_RETURN(auto rp,
                                 e->snapshots().CreateReferencePoint(group_id, name, rp_id));
            return AffectedBy(rp);
          });
    });
    On(Export::kMethod, [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto rp = Named(e, a, Export::kReferencePointCollection);
      if (!rp.ok()) return Outcome(ReturnCodeA, rp.status());
      auto dir = a.Path(Export::kExportDirectory);
      if (!dir.ok()) return Outcome(ReturnCodeA, dir.status());
      engine::ExportRequest req{.directory = *dir};
      if (Status s = ReadExportSettings(a.Str(Export::kExportSettingData), &req); !s.ok()) {
        return Refused(ReturnCodeA(s), "ExportSettingData: " + s.message());
      }
      return StartJob(
          jobs, ReturnCodeA, e->snapshots().ValidateExportReferencePoint(rp->id, req),
          [&]() -> Result<JobMethod> {
            return JobMethod{
                .type = kJobExportReferencePointOnCollection,
                .description = "Export reference point " + rp->name + " to " + req.directory};
          },
          [e, req, point = *rp](JobControl& control) mutable -> Result<std::vector<std::string>> {
            req.progress = [&control](int p) { control.Progress(p); };
            // Across hosts, every host exports its part (engine/spanning_snapshots.h).
            auto& spanning = e->snapshots().spanning();
            VMG_RETURN_IF_ERROR(spanning.HasReferencePoint(point.id)
                                    ? spanning.ExportReferencePoint(point.id, req).status()
                                    : e->snapshots().ExportReferencePoint(point.id, req).status());
            return AffectedBy(point);
          });
    });
    On(CRPS::DestroyReferencePoint::kMethod, [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto rp = Named(e, a, OnPoint::kAffectedReferencePointCollection);
      if (!rp.ok()) return Outcome(ReturnCodeA, rp.status());
      const std::string id = rp->id;
      // Nothing to check but that the reference point exists (Named, above).
      return StartJob(
          jobs, ReturnCodeA, Status::Ok(),
          [&]() -> Result<JobMethod> {
            return JobMethod{.type = kJobDestroyReferencePointOnCollection,
                             .description = "Delete reference point " + rp->name};
          },
          [e, id](JobControl&) -> Result<std::vector<std::string>> {
            VMG_RETURN_IF_ERROR(e->snapshots().DestroyReferencePoint(id));
            return std::vector<std::string>{};
          });
    });
    On(CRPS::RemoveAssociatedData::kMethod, [e](const Args& a) -> Result<cim::MethodResult> {
      auto rp = Named(e, a, OnPoint::kAffectedReferencePointCollection);
      if (!rp.ok()) return Outcome(ReturnCodeA, rp.status());
      return Refused(kRcNotSupported,
                     "reference point " + rp->name +
                         " tracks changes with bitmaps (RCT based) and holds no log data");
    });
  }
};

// An association with a row for each member of every reference point: from
// `left` of the point and member to the member's per-VM reference point.
std::unique_ptr<cim::Provider> PerMemberLink(
    engine::Engine* e, cim::ClassSpec spec,
    std::function<cim::ObjectPath(const catalog::ReferencePointRecord&,
                                  const catalog::ReferencePointMember&)>
        left) {
  return std::make_unique<ListProvider>(
      std::move(spec), [e, left](const cim::ClassSpec& s) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto rps, e->snapshots().ListReferencePoints());
        std::vector<cim::Instance> rows;
        for (const auto& rp : rps) {
          for (const auto& m : rp.members) {
            rows.push_back(cim::InstanceBuilder(s)
                               .Ref(s.properties[0].name, left(rp, m))
                               .Ref(s.properties[1].name, MemberReferencePointPath(m))
                               .Build());
          }
        }
        return rows;
      });
}

}  // namespace

std::string CollectionIdIn(const std::string& text) {
  // The key of both classes: schema::ReferencePointCollection::kCollectionID
  // and schema::SnapshotCollection::kCollectionID.
  static const std::regex kKey(R"(CollectionID\s*=\s*"([^"]*)\")", std::regex::icase);
  std::smatch m;
  return std::regex_search(text, m, kKey) ? m[1].str() : text;
}

Providers ReferencePointProviders(const Context& ctx) {
  Providers out;
  engine::Engine* e = ctx.engine;
  out.push_back(std::make_unique<ReferencePointServiceProvider>(ctx));
  out.push_back(std::make_unique<ListProvider>(
      cim::ClassSpec{
          .name = RPC::kClass,
          .superclass = "CIM_Collection",
          .properties = {{.name = RPC::kCollectionID, .type = "string", .key = true},
                         {.name = RPC::kVirtualSystemCollectionId, .type = "string", .key = true},
                         {.name = RPC::kElementName, .type = "string"},
                         {.name = RPC::kReferencePointType, .type = "uint16"},
                         {.name = RPC::kConsistencyLevel, .type = "uint16"},
                         {.name = RPC::kHasAssociatedLog, .type = "boolean"},
                         {.name = RPC::kVmgroupCutTime, .type = "datetime"},
                         {.name = RPC::kVmgroupCreationTime, .type = "datetime"},
                         {.name = RPC::kVmgroupSnapshotCollectionID, .type = "string"}}},
      [e](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto rps, e->snapshots().ListReferencePoints());
        std::vector<cim::Instance> rows;
        for (const auto& rp : rps) {
          rows.push_back(cim::InstanceBuilder(spec)
                             .Str(RPC::kCollectionID, rp.id)
                             .Str(RPC::kVirtualSystemCollectionId, rp.collection_id)
                             .Str(RPC::kElementName, rp.name)
                             .Int(RPC::kReferencePointType, ReferencePointType::kRctBased)
                             .Int(RPC::kConsistencyLevel, static_cast<int>(rp.consistency))
                             .Bool(RPC::kHasAssociatedLog, false)
                             .Str(RPC::kVmgroupCutTime, CimTime(rp.cut_us))
                             .Str(RPC::kVmgroupCreationTime, CimTime(rp.created_us))
                             .Str(RPC::kVmgroupSnapshotCollectionID, rp.snapshot_id)
                             .Build());
        }
        return rows;
      }));
  out.push_back(std::make_unique<ListProvider>(
      cim::ClassSpec{
          .name = VSRP::kClass,
          .superclass = "CIM_ManagedElement",
          .properties =
              {{.name = VSRP::kInstanceID, .type = "string", .key = true},
               {.name = VSRP::kVirtualSystemIdentifier, .type = "string", .key = true},
               {.name = VSRP::kReferencePointType, .type = "uint16"},
               {.name = VSRP::kConsistencyLevel, .type = "uint16"},
               {.name = VSRP::kHasAssociatedData, .type = "boolean"},
               {.name = VSRP::kVirtualDiskIdentifiers, .type = "string", .is_array = true},
               {.name = VSRP::kResilientChangeTrackingIdentifiers,
                .type = "string",
                .is_array = true},
               {.name = VSRP::kVmgroupReferencePointCollectionID, .type = "string"}}},
      [e](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto rps, e->snapshots().ListReferencePoints());
        std::vector<cim::Instance> rows;
        for (const auto& rp : rps) {
          for (const auto& m : rp.members) {
            // A disk is known by its VM and index; its change tracking by
            // the bitmap's name (the same on each of the VM's disks).
            std::vector<std::string> disks, tracking;
            for (size_t d = 0; d < m.images.size(); ++d) {
              disks.push_back(m.vm_id + "/disk" + std::to_string(d));
              tracking.push_back(rp.bitmap);
            }
            rows.push_back(cim::InstanceBuilder(spec)
                               .Str(VSRP::kInstanceID, SettingsId(m.id))
                               .Str(VSRP::kVirtualSystemIdentifier, m.vm_id)
                               .Int(VSRP::kReferencePointType, ReferencePointType::kRctBased)
                               .Int(VSRP::kConsistencyLevel, static_cast<int>(rp.consistency))
                               .Bool(VSRP::kHasAssociatedData, false)
                               .Strs(VSRP::kVirtualDiskIdentifiers, disks)
                               .Strs(VSRP::kResilientChangeTrackingIdentifiers, tracking)
                               .Str(VSRP::kVmgroupReferencePointCollectionID, rp.id)
                               .Build());
          }
        }
        return rows;
      }));
  // The associations that place them (reference §5.2, §5.3).
  using OfGroup = schema::ReferencePointOfVirtualSystemCollection;
  out.push_back(std::make_unique<ListProvider>(
      LinkSpec(OfGroup::kClass, "CIM_Dependency", OfGroup::kAntecedent, "CIM_CollectionOfMSEs",
               OfGroup::kDependent, "CIM_Collection"),
      [e](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto rps, e->snapshots().ListReferencePoints());
        std::vector<cim::Instance> rows;
        for (const auto& rp : rps) {
          auto group = e->catalog().GetCollection(rp.collection_id);
          if (!group.ok()) continue;
          rows.push_back(cim::InstanceBuilder(spec)
                             .Ref(OfGroup::kAntecedent, CollectionPath(*group))
                             .Ref(OfGroup::kDependent, ReferencePointPath(rp))
                             .Build());
        }
        return rows;
      }));
  out.push_back(
      PerMemberLink(e,
                    LinkSpec(schema::CollectedReferencePoints::kClass, "CIM_CollectedMSEs",
                             schema::CollectedReferencePoints::kCollection, RPC::kClass,
                             schema::CollectedReferencePoints::kMember, VSRP::kClass),
                    [](const auto& rp, const auto&) { return ReferencePointPath(rp); }));
  out.push_back(PerMemberLink(
      e,
      LinkSpec(schema::ReferencePointOfVirtualSystem::kClass, "CIM_Dependency",
               schema::ReferencePointOfVirtualSystem::kAntecedent, schema::ComputerSystem::kClass,
               schema::ReferencePointOfVirtualSystem::kDependent, VSRP::kClass),
      [](const auto&, const auto& m) { return VmPath(m.vm_id); }));
  return out;
}

}  // namespace vmgroup::services
