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
#include "services/providers.h"

namespace vmgroup::services {
namespace {

constexpr int kRctBased = 2;
constexpr int kCrashConsistent = 2;  // as the family's other enums count (reference §4.6)
constexpr int kLogBased = 1;
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
  const int64_t type = a.Int("ReferencePointType", 0);
  if (type == kLogBased) {
    return Status::NotSupported(
        "log-based reference points (ReferencePointType 1, Hyper-V Replica) are not supported; "
        "use 2 (RCT based)");
  }
  if (type != 0 && type != kRctBased) {
    return Status::InvalidArgument("ReferencePointType must be 0, 1 or 2, not " +
                                   std::to_string(type));
  }
  auto settings =
      Settings(a.Str("ReferencePointSettings"), "Msvm_CollectionReferencePointSettingData");
  if (!settings.ok()) return settings.status().Annotate("ReferencePointSettings");
  if (!*settings) return Status::Ok();
  auto named = ElementNameOf(**settings, "reference point name");
  if (!named.ok()) return named.status().Annotate("ReferencePointSettings");
  *name = *named;
  auto level = ReadConsistencyLevel(**settings);
  if (!level.ok()) return level.status().Annotate("ReferencePointSettings");
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
  VMG_ASSIGN_OR_RETURN(auto settings,
                       Settings(text, "Msvm_CollectionReferencePointExportSettingData"));
  if (!settings) return Status::Ok();
  if (const cim::Property* p = settings->Find("VirtualMachinesToDisksToExport");
      p && !p->value.array.empty()) {
    return Status::NotSupported(
        "VirtualMachinesToDisksToExport: vmgroup exports every disk of every member; leave it "
        "empty");
  }
  if (const cim::Property* p = settings->Find("BaseReferencePointCollection");
      p && p->value.kind == cim::Value::Kind::kScalar) {
    req->base = CollectionIdIn(p->value.scalar);
  }
  return Status::Ok();
}

// The reference point parameter `param` names.
Result<catalog::ReferencePointRecord> Named(engine::Engine* e, const Args& a, const char* param) {
  VMG_ASSIGN_OR_RETURN(std::string id, a.RefId(param, "CollectionID", "a reference point"));
  return e->catalog().GetReferencePoint(id);
}

class ReferencePointServiceProvider : public ServiceProvider {
 public:
  explicit ReferencePointServiceProvider(const Context& ctx)
      : ServiceProvider(
            ctx, "Msvm_CollectionReferencePointService", "CollectionReferencePointService",
            "Hyper-V Collection Reference Point Service",
            {{.name = "CreateReferencePoint",
              .params = {RefIn("Collection", "Msvm_VirtualSystemCollection"),
                         {.name = "ReferencePointSettings",
                          .type = "string",
                          .embedded_class = "Msvm_CollectionReferencePointSettingData"},
                         {.name = "ReferencePointType", .type = "uint16"},
                         RefInOut("ResultingReferencePointCollection", "CIM_Collection"),
                         JobOut()}},
             {.name = "ExportReferencePoint",
              .params = {RefIn("ReferencePointCollection", "CIM_Collection"),
                         {.name = "ExportDirectory", .type = "string"},
                         {.name = "ExportSettingData",
                          .type = "string",
                          .embedded_class = "Msvm_CollectionReferencePointExportSettingData"},
                         JobOut()}},
             {.name = "DestroyReferencePoint",
              .params = {RefIn("AffectedReferencePointCollection", "CIM_Collection"), JobOut()}},
             {.name = "RemoveAssociatedData",
              .params = {RefIn("AffectedReferencePointCollection", "CIM_Collection"), JobOut()}}}) {
    engine::Engine* e = ctx.engine;
    JobManager* jobs = ctx.jobs;
    On("CreateReferencePoint", [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto collection = a.RefId("Collection", "CollectionID", "a VM group");
      if (!collection.ok()) return Outcome(ReturnCodeA, collection.status());
      const std::string group_id = *collection, rp_id = NewGuid();
      std::string name;
      if (Status s = ReadCreateSettings(a, &name); !s.ok()) return Outcome(ReturnCodeA, s);
      if (Status s = e->snapshots().ValidateCreateReferencePoint(group_id); !s.ok()) {
        return Outcome(ReturnCodeA, s);
      }
      VMG_ASSIGN_OR_RETURN(auto group, e->catalog().GetCollection(group_id));
      VMG_ASSIGN_OR_RETURN(
          std::string job,
          jobs->Start(kJobCreateReferencePointOnCollection,
                      "Create a reference point of VM group " + group.name,
                      /*cancellable=*/false, ReturnCodeA,
                      [e, group_id, name, rp_id](JobControl&) -> Result<std::vector<std::string>> {
                        VMG_ASSIGN_OR_RETURN(
                            auto rp, e->snapshots().CreateReferencePoint(group_id, name, rp_id));
                        return AffectedBy(rp);
                      }));
      cim::MethodResult r = JobStarted(job);
      r.out.push_back(
          {"ResultingReferencePointCollection", "reference",
           cim::Value::Reference(ReferencePointPath({.id = rp_id, .collection_id = group_id}))});
      return r;
    });
    On("ExportReferencePoint", [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto rp = Named(e, a, "ReferencePointCollection");
      if (!rp.ok()) return Outcome(ReturnCodeA, rp.status());
      auto dir = a.Path("ExportDirectory");
      if (!dir.ok()) return Outcome(ReturnCodeA, dir.status());
      engine::ExportRequest req{.directory = *dir};
      if (Status s = ReadExportSettings(a.Str("ExportSettingData"), &req); !s.ok()) {
        return Refused(ReturnCodeA(s), "ExportSettingData: " + s.message());
      }
      if (Status s = e->snapshots().ValidateExportReferencePoint(rp->id, req); !s.ok()) {
        return Outcome(ReturnCodeA, s);
      }
      VMG_ASSIGN_OR_RETURN(
          std::string job,
          jobs->Start(
              kJobExportReferencePointOnCollection,
              "Export reference point " + rp->name + " to " + req.directory,
              /*cancellable=*/false, ReturnCodeA,
              [e, req,
               point = *rp](JobControl& control) mutable -> Result<std::vector<std::string>> {
                req.progress = [&control](int p) { control.Progress(p); };
                VMG_RETURN_IF_ERROR(e->snapshots().ExportReferencePoint(point.id, req).status());
                return AffectedBy(point);
              }));
      return JobStarted(job);
    });
    On("DestroyReferencePoint", [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto rp = Named(e, a, "AffectedReferencePointCollection");
      if (!rp.ok()) return Outcome(ReturnCodeA, rp.status());
      const std::string id = rp->id;
      VMG_ASSIGN_OR_RETURN(
          std::string job,
          jobs->Start(kJobDestroyReferencePointOnCollection, "Delete reference point " + rp->name,
                      /*cancellable=*/false, ReturnCodeA,
                      [e, id](JobControl&) -> Result<std::vector<std::string>> {
                        VMG_RETURN_IF_ERROR(e->snapshots().DestroyReferencePoint(id));
                        return std::vector<std::string>{};
                      }));
      return JobStarted(job);
    });
    On("RemoveAssociatedData", [e](const Args& a) -> Result<cim::MethodResult> {
      auto rp = Named(e, a, "AffectedReferencePointCollection");
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
        VMG_ASSIGN_OR_RETURN(auto rps, e->catalog().ListReferencePoints());
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
          .name = "Msvm_ReferencePointCollection",
          .superclass = "CIM_Collection",
          .properties = {{.name = "CollectionID", .type = "string", .key = true},
                         {.name = "VirtualSystemCollectionId", .type = "string", .key = true},
                         {.name = "ElementName", .type = "string"},
                         {.name = "ReferencePointType", .type = "uint16"},
                         {.name = "ConsistencyLevel", .type = "uint16"},
                         {.name = "HasAssociatedLog", .type = "boolean"},
                         {.name = "Vmgroup_CutTime", .type = "datetime"},
                         {.name = "Vmgroup_CreationTime", .type = "datetime"},
                         {.name = "Vmgroup_SnapshotCollectionID", .type = "string"}}},
      [e](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto rps, e->catalog().ListReferencePoints());
        std::vector<cim::Instance> rows;
        for (const auto& rp : rps) {
          rows.push_back(cim::InstanceBuilder(spec)
                             .Str("CollectionID", rp.id)
                             .Str("VirtualSystemCollectionId", rp.collection_id)
                             .Str("ElementName", rp.name)
                             .Int("ReferencePointType", kRctBased)
                             .Int("ConsistencyLevel", kCrashConsistent)
                             .Bool("HasAssociatedLog", false)
                             .Str("Vmgroup_CutTime", CimTime(rp.cut_us))
                             .Str("Vmgroup_CreationTime", CimTime(rp.created_us))
                             .Str("Vmgroup_SnapshotCollectionID", rp.snapshot_id)
                             .Build());
        }
        return rows;
      }));
  out.push_back(std::make_unique<ListProvider>(
      cim::ClassSpec{
          .name = "Msvm_VirtualSystemReferencePoint",
          .superclass = "CIM_ManagedElement",
          .properties =
              {{.name = "InstanceID", .type = "string", .key = true},
               {.name = "VirtualSystemIdentifier", .type = "string", .key = true},
               {.name = "ReferencePointType", .type = "uint16"},
               {.name = "ConsistencyLevel", .type = "uint16"},
               {.name = "HasAssociatedData", .type = "boolean"},
               {.name = "VirtualDiskIdentifiers", .type = "string", .is_array = true},
               {.name = "ResilientChangeTrackingIdentifiers", .type = "string", .is_array = true},
               {.name = "Vmgroup_ReferencePointCollectionID", .type = "string"}}},
      [e](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto rps, e->catalog().ListReferencePoints());
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
                               .Str("InstanceID", SettingsId(m.id))
                               .Str("VirtualSystemIdentifier", m.vm_id)
                               .Int("ReferencePointType", kRctBased)
                               .Int("ConsistencyLevel", kCrashConsistent)
                               .Bool("HasAssociatedData", false)
                               .Strs("VirtualDiskIdentifiers", disks)
                               .Strs("ResilientChangeTrackingIdentifiers", tracking)
                               .Str("Vmgroup_ReferencePointCollectionID", rp.id)
                               .Build());
          }
        }
        return rows;
      }));
  // The associations that place them (reference §5.2, §5.3).
  out.push_back(std::make_unique<ListProvider>(
      LinkSpec("Msvm_ReferencePointOfVirtualSystemCollection", "CIM_Dependency", "Antecedent",
               "CIM_CollectionOfMSEs", "Dependent", "CIM_Collection"),
      [e](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto rps, e->catalog().ListReferencePoints());
        std::vector<cim::Instance> rows;
        for (const auto& rp : rps) {
          auto group = e->catalog().GetCollection(rp.collection_id);
          if (!group.ok()) continue;
          rows.push_back(cim::InstanceBuilder(spec)
                             .Ref("Antecedent", CollectionPath(*group))
                             .Ref("Dependent", ReferencePointPath(rp))
                             .Build());
        }
        return rows;
      }));
  out.push_back(PerMemberLink(
      e,
      LinkSpec("Msvm_CollectedReferencePoints", "CIM_CollectedMSEs", "Collection",
               "Msvm_ReferencePointCollection", "Member", "Msvm_VirtualSystemReferencePoint"),
      [](const auto& rp, const auto&) { return ReferencePointPath(rp); }));
  out.push_back(PerMemberLink(
      e,
      LinkSpec("Msvm_ReferencePointOfVirtualSystem", "CIM_Dependency", "Antecedent",
               "Msvm_ComputerSystem", "Dependent", "Msvm_VirtualSystemReferencePoint"),
      [](const auto&, const auto& m) { return VmPath(m.vm_id); }));
  return out;
}

}  // namespace vmgroup::services
