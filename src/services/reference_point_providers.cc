// Reference points: Msvm_ReferencePointCollection and its per-VM
// Msvm_VirtualSystemReferencePoint, and Msvm_CollectionReferencePointService
// (reference §4.6, §7, §8). vmgroup's reference points track changes with
// persistent dirty bitmaps: ReferencePointType 2 (RCT based, Hyper-V's
// equivalent), never with a log.
#include <regex>

#include "services/providers.h"

namespace vmgroup::services {
namespace {

constexpr int kRctBased = 2;
constexpr int kCrashConsistent = 2;  // as the family's other enums count (reference §4.6)
constexpr int kJobDestroyReferencePointOnCollection = 208;

class ReferencePointServiceProvider : public ServiceProvider {
 public:
  explicit ReferencePointServiceProvider(const Context& ctx)
      : ServiceProvider(
            ctx, "Msvm_CollectionReferencePointService", "CollectionReferencePointService",
            "Hyper-V Collection Reference Point Service",
            {{.name = "DestroyReferencePoint",
              .params = {RefIn("AffectedReferencePointCollection", "CIM_Collection"), JobOut()}},
             {.name = "RemoveAssociatedData",
              .params = {RefIn("AffectedReferencePointCollection", "CIM_Collection"), JobOut()}}}) {
    engine::Engine* e = ctx.engine;
    JobManager* jobs = ctx.jobs;
    auto named = [e](const Args& a) -> Result<catalog::ReferencePointRecord> {
      const cim::ObjectPath* p = a.Ref("AffectedReferencePointCollection");
      if (!p) {
        return Status::InvalidArgument("AffectedReferencePointCollection names no reference point");
      }
      return e->catalog().GetReferencePoint(IdOf(*p, "CollectionID"));
    };
    On("DestroyReferencePoint", [e, jobs, named](const Args& a) -> Result<cim::MethodResult> {
      auto rp = named(a);
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
    On("RemoveAssociatedData", [named](const Args& a) -> Result<cim::MethodResult> {
      auto rp = named(a);
      if (!rp.ok()) return Outcome(ReturnCodeA, rp.status());
      return Refused(kRcNotSupported,
                     "reference point " + rp->name +
                         " tracks changes with bitmaps (RCT based) and holds no log data");
    });
  }
};

}  // namespace

std::string ReferencePointIdOf(const std::string& text) {
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
  return out;
}

}  // namespace vmgroup::services
