// Group snapshots: Msvm_CollectionSnapshotService.CreateSnapshot, the
// Msvm_SnapshotCollection it makes and the associations that place it
// (reference §5.2, §6).
#include <functional>
#include <set>

#include "base/ids.h"
#include "cim/xml_reader.h"
#include "engine/snapshot_plan.h"
#include "services/job_method.h"
#include "services/providers.h"

namespace vmgroup::services {
namespace {

constexpr int kJobSnapshotCollection = 198;
// Hyper-V documents no JobType for applying a group snapshot; 199 is the gap
// its list leaves after 198 (docs/api.md).
constexpr int kJobApplySnapshotCollection = 199;
// Nor for destroying one: 72 is what the per-VM DestroySnapshot stamps, the
// same work done on every member.
constexpr int kJobDestroySnapshotCollection = 72;

using SC = schema::SnapshotCollection;
using CSS = schema::CollectionSnapshotService;

cim::ClassSpec SnapshotCollectionSpec() {
  return {.name = SC::kClass,
          .superclass = "CIM_Collection",
          .properties = {{.name = SC::kCollectionID, .type = "string", .key = true},
                         {.name = SC::kElementName, .type = "string"},
                         // Vendor: what Hyper-V keeps only on the members.
                         {.name = SC::kVmgroupVirtualSystemCollectionID, .type = "string"},
                         {.name = SC::kVmgroupSnapshotType, .type = "uint16"},
                         {.name = SC::kVmgroupCreationTime, .type = "datetime"},
                         {.name = SC::kVmgroupPauseWindowMicroseconds, .type = "uint64"},
                         {.name = SC::kVmgroupDurationMicroseconds, .type = "uint64"},
                         // Vendor: what the group got (1 application consistent
                         // only when every member did, else 2) and how long its
                         // guests stayed frozen.
                         {.name = SC::kVmgroupConsistencyLevel, .type = "uint16"},
                         {.name = SC::kVmgroupFreezeWindowMicroseconds, .type = "uint64"},
                         // Vendor: the snapshot tree at group level.
                         {.name = SC::kVmgroupParentSnapshotCollectionID, .type = "string"},
                         {.name = SC::kVmgroupIsCurrent, .type = "boolean"},
                         // Vendor: a snapshot across hosts, this host its
                         // coordinator: each host's part (HostLines), and
                         // how far apart the cuts can be.
                         {.name = SC::kVmgroupHosts, .type = "string", .is_array = true},
                         {.name = SC::kVmgroupCutSpreadMicroseconds, .type = "uint64"}}};
}

// Every complete group snapshot; one in progress is not shown. Of one
// across hosts, coordinated here, this host's part only once every host
// committed; and the snapshot itself when this host has no part of it.
// `across`, when given, gets the records across hosts, by id.
Result<std::vector<catalog::SnapshotRecord>> CompleteSnapshots(
    engine::Engine* e, std::map<std::string, catalog::SpanningSnapshotRecord>* across = nullptr) {
  VMG_ASSIGN_OR_RETURN(auto all, e->catalog().ListSnapshots());
  VMG_ASSIGN_OR_RETURN(auto spanning, e->catalog().ListSpanning());
  std::map<std::string, catalog::SpanningSnapshotRecord> by_id;
  for (auto& s : spanning) by_id[s.id] = std::move(s);
  const auto committed = [&](const std::string& id) {
    auto it = by_id.find(id);
    return it == by_id.end() || catalog::IsComplete(it->second);
  };
  std::vector<catalog::SnapshotRecord> out;
  std::set<std::string> here;
  for (auto& s : all) {
    here.insert(s.id);
    if (committed(s.id) && s.state == catalog::SnapshotState::kComplete) {
      out.push_back(std::move(s));
    }
  }
  for (const auto& [id, s] : by_id) {
    if (here.count(id) == 0 && catalog::IsComplete(s)) {
      out.push_back(engine::SpanningSnapshots::AsGroupSnapshot(s));
    }
  }
  if (across != nullptr) *across = std::move(by_id);
  return out;
}

// "db1: 2 VMs, cut 0-180 us after the first, longest pause 950 us" for each
// host's part of `s` ("this host" for ours), the cuts on the coordinator's
// clock from the earliest any host's can be.
std::vector<std::string> HostLines(const catalog::SpanningSnapshotRecord& s) {
  int64_t first = 0;
  for (const auto& p : s.parts) {
    if (p.earliest_cut_us > 0 && (first == 0 || p.earliest_cut_us < first)) {
      first = p.earliest_cut_us;
    }
  }
  std::vector<std::string> lines;
  for (const auto& p : s.parts) {
    std::string line = (p.host.empty() ? std::string("this host") : p.host) + ": " +
                       std::to_string(p.vm_ids.size()) + " VM" + (p.vm_ids.size() == 1 ? "" : "s");
    if (p.latest_cut_us > 0) {
      line += ", cut " + std::to_string(p.earliest_cut_us - first) + "-" +
              std::to_string(p.latest_cut_us - first) + " us after the first, longest pause " +
              std::to_string(p.longest_pause_us) + " us";
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

// SnapshotSettings: empty, or an embedded Msvm_VirtualSystemSnapshotSettingData
// whose ElementName names the snapshot and whose ConsistencyLevel asks for
// application (1) or crash (2, 0 or none) consistency. The vendor
// Vmgroup_AllowCrashConsistentFallback lets members whose guest cannot
// freeze be cut crash consistent instead of failing the snapshot (Hyper-V's
// production checkpoint with fallback, a per-VM setting there).
Status ReadSettings(const std::string& text, engine::SnapshotRequest* req) {
  if (text.empty()) return Status::Ok();
  VMG_ASSIGN_OR_RETURN(cim::Instance inst, cim::ParseEmbeddedInstance(text));
  using Settings = schema::VirtualSystemSnapshotSettingData;
  if (!cim::NameEquals(inst.class_name, Settings::kClass)) {
    return Status::InvalidArgument(
        "SnapshotSettings must be a Msvm_VirtualSystemSnapshotSettingData, not " + inst.class_name);
  }
  VMG_ASSIGN_OR_RETURN(req->name, ElementNameOf(inst, "snapshot name"));
  if (const cim::Property* p = inst.Find(Settings::kVmgroupAllowCrashConsistentFallback); p) {
    req->fallback = cim::NameEquals(p->value.scalar, "true");
  }
  VMG_ASSIGN_OR_RETURN(req->consistency, ReadConsistencyLevel(inst));
  return Status::Ok();
}

// ExportSettingData: empty (a full export with the disks), or an embedded
// Msvm_CollectionSnapshotExportSettingData. BackupIntent (1 preserve chain,
// 2 merge) only shapes differential exports; a full one is the same either way.
Status ReadExportSettings(const std::string& text, engine::ExportRequest* req) {
  if (text.empty()) return Status::Ok();
  VMG_ASSIGN_OR_RETURN(cim::Instance inst, cim::ParseEmbeddedInstance(text));
  using Settings = schema::CollectionSnapshotExportSettingData;
  if (!cim::NameEquals(inst.class_name, Settings::kClass)) {
    return Status::InvalidArgument(
        "ExportSettingData must be a Msvm_CollectionSnapshotExportSettingData, not " +
        inst.class_name);
  }
  auto scalar = [&](const char* name) -> const std::string* {
    const cim::Property* p = inst.Find(name);
    return p && p->value.kind == cim::Value::Kind::kScalar ? &p->value.scalar : nullptr;
  };
  if (const std::string* v = scalar(Settings::kCopyVmStorage)) {
    if (!cim::NameEquals(*v, "true") && !cim::NameEquals(*v, "false")) {
      return Status::InvalidArgument("CopyVmStorage must be true or false, not " + *v);
    }
    req->copy_storage = cim::NameEquals(*v, "true");
  }
  if (const std::string* v = scalar(Settings::kBackupIntent); v && *v != "1" && *v != "2") {
    return Status::InvalidArgument("BackupIntent must be 1 (preserve chain) or 2 (merge), not " +
                                   *v);
  }
  if (const std::string* v = scalar(Settings::kDifferentialBackupBase)) {
    req->base = CollectionIdIn(*v);
  }
  return Status::Ok();
}

// ApplySnapshot and DestroySnapshot: the group snapshot that parameter
// `ref` names is checked at once (`validate`: a refusal is the method's
// return code), then worked on by a job whose affected elements are the
// member VMs.
Result<cim::MethodResult> OnSnapshot(
    engine::Engine* e, JobManager* jobs, const Args& a, const char* ref, int job_type,
    const std::string& verb, std::function<Status(const std::string&)> validate,
    std::function<Result<catalog::SnapshotRecord>(const std::string&)> work) {
  auto named = a.RefId(ref, SC::kCollectionID, "a group snapshot");
  if (!named.ok()) return Outcome(ReturnCodeA, named.status());
  const std::string id = *named;
  return StartJob(
      jobs, ReturnCodeA, validate(id),
      [&]() -> Result<JobMethod> {
        VMG_ASSIGN_OR_RETURN(auto record, e->snapshots().Get(id));
        return JobMethod{.type = job_type,
                         .description = verb + " group snapshot " + record.name,
                         .subject = Affected(SC::kClass, id)};
      },
      [id, work](JobControl&) -> Result<std::vector<std::string>> {
        VMG_ASSIGN_OR_RETURN(auto s, work(id));
        std::vector<std::string> touched;
        for (const auto& m : s.members) {
          touched.push_back(Affected(schema::ComputerSystem::kClass, m.vm_id));
        }
        return touched;
      });
}

class SnapshotServiceProvider : public ServiceProvider {
  using Create = CSS::CreateSnapshot;
  using Apply = CSS::ApplySnapshot;
  using Destroy = CSS::DestroySnapshot;
  using Convert = CSS::ConvertToReferencePoint;
  using Export = CSS::ExportSnapshot;

 public:
  explicit SnapshotServiceProvider(const Context& ctx)
      : ServiceProvider(
            ctx, CSS::kClass, "CollectionSnapshotService", "Hyper-V Collection Snapshot Service",
            {{.name = Create::kMethod,
              .params = {RefIn(Create::kCollection, "CIM_CollectionOfMSEs"),
                         {.name = Create::kSnapshotSettings,
                          .type = "string",
                          .embedded_class = schema::VirtualSystemSnapshotSettingData::kClass},
                         {.name = Create::kSnapshotType, .type = "uint16"},
                         RefInOut(Create::kResultingSnapshotCollection, "CIM_Collection"),
                         JobOut()}},
             {.name = Apply::kMethod,
              .params = {RefIn(Apply::kSnapshotCollection, "CIM_Collection"), JobOut()}},
             {.name = Destroy::kMethod,
              .params = {RefIn(Destroy::kAffectedSnapshotCollection, "CIM_Collection"), JobOut()}},
             {.name = Convert::kMethod,
              .params = {RefIn(Convert::kAffectedSnapshotCollection, SC::kClass),
                         RefInOut(Convert::kResultingReferencePointCollection,
                                  schema::ReferencePointCollection::kClass),
                         JobOut()}},
             {.name = Export::kMethod,
              .params = {RefIn(Export::kSnapshotCollection, "CIM_Collection"),
                         {.name = Export::kExportDirectory, .type = "string"},
                         {.name = Export::kExportSettingData,
                          .type = "string",
                          .embedded_class = schema::CollectionSnapshotExportSettingData::kClass},
                         JobOut()}}}) {
    engine::Engine* e = ctx.engine;
    JobManager* jobs = ctx.jobs;
    On(Apply::kMethod, [e, jobs](const Args& a) {
      return OnSnapshot(
          e, jobs, a, Apply::kSnapshotCollection, kJobApplySnapshotCollection, "Apply",
          [e](const std::string& id) { return e->snapshots().ValidateApply({id}); },
          [e](const std::string& id) -> Result<catalog::SnapshotRecord> {
            return e->snapshots().Apply({id});
          });
    });
    On(Destroy::kMethod, [e, jobs](const Args& a) {
      return OnSnapshot(
          e, jobs, a, Destroy::kAffectedSnapshotCollection, kJobDestroySnapshotCollection,
          "Destroy", [e](const std::string& id) { return e->snapshots().ValidateDestroy({id}); },
          [e](const std::string& id) -> Result<catalog::SnapshotRecord> {
            VMG_ASSIGN_OR_RETURN(auto s, e->snapshots().Get(id));
            VMG_RETURN_IF_ERROR(e->snapshots().Destroy({id}));
            return s;
          });
    });
    On(Convert::kMethod, [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto named =
          a.RefId(Convert::kAffectedSnapshotCollection, SC::kCollectionID, "a group snapshot");
      if (!named.ok()) return Outcome(ReturnCodeA, named.status());
      const std::string id = *named, rp_id = NewGuid();
      return StartJob(
          jobs, ReturnCodeA, e->snapshots().ValidateConvert(id, rp_id),
          [&]() -> Result<JobMethod> {
            VMG_ASSIGN_OR_RETURN(auto record, e->snapshots().Get(id));
            return JobMethod{
                .type = kJobConvertToReferencePoint,
                .description = "Convert group snapshot " + record.name + " to a reference point",
                .out = {{Convert::kResultingReferencePointCollection, "reference",
                         cim::Value::Reference(ReferencePointPath(
                             {.id = rp_id, .collection_id = record.collection_id}))}}};
          },
          [e, id, rp_id](JobControl&) -> Result<std::vector<std::string>> {
            VMG_ASSIGN_OR_RETURN(auto rp, e->snapshots().ConvertToReferencePoint(id, rp_id));
            return AffectedBy(rp);
          });
    });
    On(Export::kMethod, [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto snap = a.RefId(Export::kSnapshotCollection, SC::kCollectionID, "a group snapshot");
      if (!snap.ok()) return Outcome(ReturnCodeA, snap.status());
      auto dir = a.Path(Export::kExportDirectory);
      if (!dir.ok()) return Outcome(ReturnCodeA, dir.status());
      engine::ExportRequest req{.snapshot_id = *snap, .directory = *dir};
      if (Status s = ReadExportSettings(a.Str(Export::kExportSettingData), &req); !s.ok()) {
        return Refused(ReturnCodeA(s), "ExportSettingData: " + s.message());
      }
      return StartJob(
          jobs, ReturnCodeA, e->snapshots().ValidateExport(req),
          [&]() -> Result<JobMethod> {
            VMG_ASSIGN_OR_RETURN(auto record, e->snapshots().Get(req.snapshot_id));
            return JobMethod{
                .type = kJobExportSnapshotCollection,
                .description = "Export group snapshot " + record.name + " to " + req.directory,
                .subject = Affected(SC::kClass, record.id)};
          },
          [e, req](JobControl& control) mutable -> Result<std::vector<std::string>> {
            req.progress = [&control](int p) { control.Progress(p); };
            // Across hosts, every host exports its part (engine/spanning_snapshots.h).
            if (e->snapshots().spanning().Has(req.snapshot_id)) {
              VMG_ASSIGN_OR_RETURN(auto m, e->snapshots().spanning().Export(req));
              return AffectedBy(m);
            }
            VMG_ASSIGN_OR_RETURN(auto m, e->snapshots().Export(req));
            return AffectedBy(m);
          });
    });
    On(Create::kMethod, [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto collection = a.RefId(Create::kCollection, schema::VirtualSystemCollection::kCollectionID,
                                "a VM group");
      if (!collection.ok()) return Outcome(ReturnCodeA, collection.status());
      engine::SnapshotRequest req;
      req.collection_id = *collection;
      req.type = static_cast<int>(a.Int(Create::kSnapshotType, 0));
      req.id = NewGuid();
      if (Status s = ReadSettings(a.Str(Create::kSnapshotSettings), &req); !s.ok()) {
        return Refused(ReturnCodeA(s), "SnapshotSettings: " + s.message());
      }
      return StartJob(
          jobs, ReturnCodeA, e->snapshots().Validate(req),
          [&]() -> Result<JobMethod> {
            VMG_ASSIGN_OR_RETURN(auto group, e->catalog().GetCollection(req.collection_id));
            return JobMethod{.type = kJobSnapshotCollection,
                             .description = "Snapshot of VM group " + group.name,
                             .cancellable = true,
                             .subject = Affected(SC::kClass, req.id),
                             .out = {{Create::kResultingSnapshotCollection, "reference",
                                      cim::Value::Reference(SnapshotCollectionPath(req.id))}}};
          },
          [e, req](JobControl& control) mutable -> Result<std::vector<std::string>> {
            req.cancelled = [&control] { return control.StopRequested(); };
            req.progress = [&control](int p) { control.Progress(p); };
            req.warning = [&control](const std::string& w) { control.Warn(w); };
            VMG_ASSIGN_OR_RETURN(auto s, e->snapshots().Create(req));
            std::vector<std::string> made = {Affected(SC::kClass, s.id)};
            for (const auto& m : s.members) {
              made.push_back(Affected(schema::VirtualSystemSettingData::kClass, m.id));
            }
            return made;
          });
    });
  }
};

// A group snapshot: `parent`, the group snapshot its members' parents
// belong to ("" for none); `is_current` when it is every member's newest
// snapshot (the group is "now" in it).
cim::Instance SnapshotCollectionInstance(const cim::ClassSpec& spec,
                                         const catalog::SnapshotRecord& s,
                                         const std::string& parent, bool is_current,
                                         const catalog::SpanningSnapshotRecord* across) {
  cim::InstanceBuilder b(spec);
  if (across != nullptr) {
    b.Strs(SC::kVmgroupHosts, HostLines(*across))
        .Int(SC::kVmgroupCutSpreadMicroseconds, across->cut_spread_us);
  }
  return b.Str(SC::kVmgroupParentSnapshotCollectionID, parent)
      .Bool(SC::kVmgroupIsCurrent, is_current)
      .Str(SC::kCollectionID, s.id)
      .Str(SC::kElementName, s.name)
      .Str(SC::kVmgroupVirtualSystemCollectionID, s.collection_id)
      .Int(SC::kVmgroupSnapshotType, s.type)
      .Str(SC::kVmgroupCreationTime, CimTime(s.created_us))
      .Int(SC::kVmgroupPauseWindowMicroseconds, s.pause_window_us)
      .Int(SC::kVmgroupDurationMicroseconds, s.duration_us)
      .Int(SC::kVmgroupConsistencyLevel, static_cast<int>(engine::AchievedConsistency(s)))
      .Int(SC::kVmgroupFreezeWindowMicroseconds, s.freeze_window_us)
      .Build();
}

class SnapshotCollectionProvider : public cim::Provider {
 public:
  explicit SnapshotCollectionProvider(engine::Engine* e) : e_(e), spec_(SnapshotCollectionSpec()) {}
  const cim::ClassSpec& spec() const override { return spec_; }

  Result<std::vector<cim::Instance>> Enumerate() override {
    std::map<std::string, catalog::SpanningSnapshotRecord> across;
    VMG_ASSIGN_OR_RETURN(auto snaps, CompleteSnapshots(e_, &across));
    VMG_ASSIGN_OR_RETURN(auto vms, e_->catalog().ListVms());
    std::map<std::string, std::string> current;  // VM -> its newest snapshot
    for (const auto& vm : vms) current[vm.id] = vm.current_snapshot;
    std::map<std::string, std::string> owner;  // member snapshot -> group snapshot
    for (const auto& s : snaps) {
      for (const auto& m : s.members) owner[m.id] = s.id;
    }
    std::vector<cim::Instance> rows;
    for (const auto& s : snaps) {
      const std::string parent = s.members.empty() ? "" : owner[s.members[0].parent_id];
      bool is_current = !s.members.empty();
      for (const auto& m : s.members) is_current = is_current && current[m.vm_id] == m.id;
      auto it = across.find(s.id);
      rows.push_back(SnapshotCollectionInstance(spec_, s, parent, is_current,
                                                it == across.end() ? nullptr : &it->second));
    }
    return rows;
  }

  // The instance Enumerate would find, looked up by its id: a job's
  // affected elements get theirs one by one, and the default (a scan of
  // Enumerate) read every snapshot of the catalog for each.
  Result<cim::Instance> Get(const cim::ObjectPath& path) override {
    const cim::KeyBinding* key = path.Key(SC::kCollectionID);
    if (!key || key->kind == cim::KeyBinding::Kind::kReference) return NotFound();
    catalog::Catalog& c = e_->catalog();
    auto across = c.GetSpanning(key->value);
    if (!across.ok() && across.status().code() != Code::kNotFound) return across.status();
    if (across.ok() && !catalog::IsComplete(*across)) return NotFound();
    const catalog::SpanningSnapshotRecord* spanning = across.ok() ? &*across : nullptr;
    auto s = c.GetSnapshot(key->value);
    if (!s.ok() && s.status().code() != Code::kNotFound) return s.status();
    if (!s.ok() && spanning) {
      return SnapshotCollectionInstance(spec_, engine::SpanningSnapshots::AsGroupSnapshot(*across),
                                        "", false, spanning);
    }
    if (!s.ok() || s->state != catalog::SnapshotState::kComplete) return NotFound();
    std::string parent;
    if (!s->members.empty() && !s->members[0].parent_id.empty()) {
      auto p = c.SnapshotOfMember(s->members[0].parent_id);
      if (!p.ok() && p.status().code() != Code::kNotFound) return p.status();
      if (p.ok() && p->state == catalog::SnapshotState::kComplete) parent = p->id;
    }
    bool is_current = !s->members.empty();
    for (const auto& m : s->members) {
      auto vm = c.GetVm(m.vm_id);
      if (!vm.ok() && vm.status().code() != Code::kNotFound) return vm.status();
      is_current = is_current && vm.ok() && vm->current_snapshot == m.id;
    }
    return SnapshotCollectionInstance(spec_, *s, parent, is_current, spanning);
  }

 private:
  Status NotFound() const {
    return Status::NotFound("no " + spec_.name + " instance has those keys");
  }

  engine::Engine* e_;
  cim::ClassSpec spec_;
};

}  // namespace

Providers SnapshotProviders(const Context& ctx) {
  Providers out;
  engine::Engine* e = ctx.engine;
  out.push_back(std::make_unique<SnapshotServiceProvider>(ctx));
  out.push_back(std::make_unique<SnapshotCollectionProvider>(e));
  using Collected = schema::CollectedSnapshots;
  out.push_back(std::make_unique<ListProvider>(
      LinkSpec(Collected::kClass, "CIM_CollectedMSEs", Collected::kCollection, SC::kClass,
               Collected::kMember, schema::VirtualSystemSettingData::kClass),
      [e](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto snaps, CompleteSnapshots(e));
        std::vector<cim::Instance> rows;
        for (const auto& s : snaps) {
          for (const auto& m : s.members) {
            rows.push_back(cim::InstanceBuilder(spec)
                               .Ref(Collected::kCollection, SnapshotCollectionPath(s.id))
                               .Ref(Collected::kMember, SettingsPath(m.id))
                               .Build());
          }
        }
        return rows;
      }));
  using SnapshotOf = schema::SnapshotOfVirtualSystemCollection;
  out.push_back(std::make_unique<ListProvider>(
      LinkSpec(SnapshotOf::kClass, "CIM_Dependency", SnapshotOf::kAntecedent,
               "CIM_CollectionOfMSEs", SnapshotOf::kDependent, "CIM_Collection"),
      [e](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto snaps, CompleteSnapshots(e));
        std::vector<cim::Instance> rows;
        for (const auto& s : snaps) {
          auto group = e->catalog().GetCollection(s.collection_id);
          if (!group.ok()) continue;
          rows.push_back(cim::InstanceBuilder(spec)
                             .Ref(SnapshotOf::kAntecedent, CollectionPath(*group))
                             .Ref(SnapshotOf::kDependent, SnapshotCollectionPath(s.id))
                             .Build());
        }
        return rows;
      }));
  return out;
}

}  // namespace vmgroup::services
