// VM groups (Msvm_VirtualSystemCollection), groups of groups
// (Msvm_ManagementCollection), their membership and the service that
// manages them (reference §3–§5).
#include <functional>

#include "base/validate.h"
#include "services/job_method.h"
#include "services/providers.h"

namespace vmgroup::services {
namespace {

// Importing a group defines one: JobType 190, Define Collection (reference §11).
constexpr int kJobDefineCollection = 190;

using catalog::CollectionType;
// DefineCollection's Type is the catalog's collection type, cast.
static_assert(static_cast<int>(CollectionType::kVirtualSystems) ==
                  schema::CollectionType::kVirtualSystems &&
              static_cast<int>(CollectionType::kCollections) ==
                  schema::CollectionType::kCollections);
using Group = schema::CollectionOfMSEs;
using Members = schema::CollectedMSEs;
using CMS = schema::CollectionManagementService;

cim::ClassSpec CollectionSpec(const char* name) {
  return {.name = name,
          .superclass = "CIM_CollectionOfMSEs",
          .properties = {{.name = Group::kCollectionID, .type = "string", .key = true},
                         {.name = Group::kElementName, .type = "string"},
                         {.name = Group::kCaption, .type = "string"},
                         {.name = Group::kDescription, .type = "string"},
                         // Replica state Hyper-V reports; vmgroup does not replicate.
                         {.name = Group::kReplicationMode, .type = "uint16"},
                         {.name = Group::kReplicationState, .type = "uint16"},
                         // Vendor: when the group was defined.
                         {.name = Group::kVmgroupCreationTime, .type = "datetime"}}};
}

cim::ClassSpec MembershipSpec(const char* name, const char* collection, const char* member) {
  return {
      .name = name,
      .superclass = "CIM_CollectedMSEs",
      .association = true,
      .properties = {
          {.name = Members::kCollection,
           .type = "reference",
           .key = true,
           .reference_class = collection},
          {.name = Members::kMember, .type = "reference", .key = true, .reference_class = member}}};
}

// The collections of one type, as instances or as membership links.
ListProvider::Lister CollectionLister(engine::Engine* e, CollectionType type) {
  return [e, type](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
    VMG_ASSIGN_OR_RETURN(auto all, e->catalog().ListCollections());
    std::vector<cim::Instance> out;
    for (const auto& c : all) {
      if (c.type != type) continue;
      out.push_back(cim::InstanceBuilder(spec)
                        .Str(Group::kCollectionID, c.id)
                        .Str(Group::kElementName, c.name)
                        .Str(Group::kCaption, type == CollectionType::kVirtualSystems
                                                  ? "Virtual Machine Group"
                                                  : "Management Group")
                        .Int(Group::kReplicationMode, 0)
                        .Int(Group::kReplicationState, 0)
                        .Str(Group::kVmgroupCreationTime, CimTime(c.created_us))
                        .Build());
    }
    return out;
  };
}

ListProvider::Lister MembershipLister(engine::Engine* e, CollectionType type) {
  return [e, type](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
    VMG_ASSIGN_OR_RETURN(auto all, e->catalog().ListCollections());
    std::map<std::string, const catalog::CollectionRecord*> by_id;
    for (const auto& c : all) by_id[c.id] = &c;
    std::vector<cim::Instance> out;
    for (const auto& c : all) {
      if (c.type != type) continue;
      const auto link = [&](cim::ObjectPath member) {
        out.push_back(cim::InstanceBuilder(spec)
                          .Ref(Members::kCollection, CollectionPath(c))
                          .Ref(Members::kMember, std::move(member))
                          .Build());
      };
      for (const auto& m : c.members) {
        link(type == CollectionType::kVirtualSystems ? VmPath(m) : CollectionPath(*by_id.at(m)));
      }
      // A VM on another host: its path names that host (HOST of its
      // INSTANCEPATH), as DMTF's object paths do.
      for (const auto& m : c.remote_members) link(RemoteVmPath(m));
    }
    return out;
  };
}

// The id a Member reference names: a VM's Name or a collection's CollectionID.
std::string MemberId(const cim::ObjectPath& p) {
  return cim::NameEquals(p.class_name, schema::ComputerSystem::kClass)
             ? IdOf(p, schema::ComputerSystem::kName)
             : IdOf(p, Group::kCollectionID);
}

// What a Member reference names: a VM or group here (host empty), or a VM
// of another host (its path's HOST, a peer's name).
struct MemberRef {
  std::string host;
  std::string id;
};

class CollectionServiceProvider : public ServiceProvider {
  using Define = CMS::DefineCollection;
  using Destroy = CMS::DestroyCollection;
  using Rename = CMS::RenameCollection;
  using Membership = CMS::Membership;  // AddMember, RemoveMember
  using RemoveById = CMS::RemoveMemberById;
  using Import = CMS::ImportCollection;

 public:
  explicit CollectionServiceProvider(const Context& ctx)
      : ServiceProvider(
            ctx, CMS::kClass, "CollectionManagementService",
            "Hyper-V Collection Management Service",
            {{.name = Define::kMethod,
              .params = {{.name = Define::kName, .type = "string"},
                         {.name = Define::kId, .type = "string"},
                         {.name = Define::kType, .type = "uint16"},
                         RefOut(Define::kDefinedCollection, "CIM_CollectionOfMSEs"),
                         JobOut()}},
             {.name = Destroy::kMethod,
              .params = {RefIn(Destroy::kCollection, "CIM_CollectionOfMSEs"), JobOut()}},
             {.name = Rename::kMethod,
              .params = {RefIn(Rename::kCollection, "CIM_CollectionOfMSEs"),
                         {.name = Rename::kNewName, .type = "string"},
                         JobOut()}},
             {.name = CMS::AddMember::kMethod,
              .params = {RefIn(Membership::kMember, "CIM_ManagedElement"),
                         RefIn(Membership::kCollection, "CIM_CollectionOfMSEs"), JobOut()}},
             {.name = CMS::RemoveMember::kMethod,
              .params = {RefIn(Membership::kMember, "CIM_ManagedElement"),
                         RefIn(Membership::kCollection, "CIM_CollectionOfMSEs"), JobOut()}},
             {.name = RemoveById::kMethod,
              .params = {RefIn(RemoveById::kMember, "CIM_ManagedElement"),
                         {.name = RemoveById::kCollectionId, .type = "string"},
                         JobOut()}},
             // Vendor: a group back from an ExportSnapshot
             // directory, as ImportVirtualSystem does for one VM.
             {.name = Import::kMethod,
              .params = {{.name = Import::kImportDirectory, .type = "string"},
                         {.name = Import::kGenerateNewID, .type = "boolean"},
                         JobOut()}}}) {
    engine::CollectionManager* m = &ctx.engine->collections();
    engine::Engine* e = ctx.engine;
    // Every method is quick: each answers 0 with no job (reference §3.1).
    On(Define::kMethod, [m, e](const Args& a) -> Result<cim::MethodResult> {
      const int64_t type = a.Int(Define::kType, schema::CollectionType::kVirtualSystems);
      if (type != schema::CollectionType::kVirtualSystems &&
          type != schema::CollectionType::kCollections) {
        return Refused(kRcBInvalidParameter, "Type must be 0 (VMs) or 1 (collections)");
      }
      // Left out, the name is a default one (reference §3.2); given, it is checked.
      if (a.Has(Define::kName)) {
        if (Status s = CheckName("group name (Name)", a.Str(Define::kName)); !s.ok()) {
          return Outcome(ReturnCodeB, s);
        }
      }
      auto id = m->DefineCollection(a.Str(Define::kName), a.Str(Define::kId),
                                    static_cast<CollectionType>(type));
      if (!id.ok()) return Refused(ReturnCodeB(id.status()), id.status().message());
      VMG_ASSIGN_OR_RETURN(auto c, e->catalog().GetCollection(*id));
      cim::MethodResult r = Done();
      r.out.push_back(
          {Define::kDefinedCollection, "reference", cim::Value::Reference(CollectionPath(c))});
      return r;
    });
    // The ids the Collection and Member references name; a refusal when absent.
    auto collection = [](const Args& a) {
      return a.RefId(Membership::kCollection, Group::kCollectionID, "a group");
    };
    auto member = [](const Args& a) -> Result<MemberRef> {
      const cim::ObjectPath* p = a.Ref(Membership::kMember);
      const std::string id = p ? MemberId(*p) : "";
      if (id.empty()) return Status::InvalidArgument("Member must name a VM or a group");
      if (IsThisHost(p->host)) return MemberRef{"", id};
      if (!cim::NameEquals(p->class_name, schema::ComputerSystem::kClass)) {
        return Status::InvalidArgument("Member names a group on host " + p->host +
                                       ": only VMs of other hosts join a group");
      }
      return MemberRef{p->host, id};
    };
    JobManager* jobs = ctx.jobs;
    On(Import::kMethod, [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto dir = a.Path(Import::kImportDirectory);
      if (!dir.ok()) return Outcome(ReturnCodeB, dir.status());
      engine::RestoreRequest req{.directory = *dir,
                                 .as_new = cim::NameEquals(a.Str(Import::kGenerateNewID), "true")};
      return StartJob(
          jobs, ReturnCodeB, e->restorer().Validate(req),
          [&]() -> Result<JobMethod> {
            return JobMethod{.type = kJobDefineCollection,
                             .description = "Import VM group from " + req.directory};
          },
          [e, req](JobControl& control) mutable -> Result<std::vector<std::string>> {
            req.progress = [&control](int p) { control.Progress(p); };
            VMG_ASSIGN_OR_RETURN(auto group, e->restorer().Restore(req));
            std::vector<std::string> made = {
                Affected(schema::VirtualSystemCollection::kClass, group.collection_id)};
            for (const auto& id : group.vm_ids) {
              made.push_back(Affected(schema::ComputerSystem::kClass, id));
            }
            return made;
          });
    });
    // A quick method: done, or refused with the family-B code of what went wrong.
    auto quick = [](std::function<Status(const Args&)> act) {
      return [act](const Args& a) -> Result<cim::MethodResult> {
        return Outcome(ReturnCodeB, act(a));
      };
    };
    On(Destroy::kMethod, quick([=](const Args& a) -> Status {
         VMG_ASSIGN_OR_RETURN(std::string c, collection(a));
         return m->DestroyCollection(c);
       }));
    On(Rename::kMethod, quick([=](const Args& a) -> Status {
         VMG_ASSIGN_OR_RETURN(std::string c, collection(a));
         VMG_ASSIGN_OR_RETURN(std::string name, a.Required(Rename::kNewName));
         VMG_RETURN_IF_ERROR(CheckName("group name (NewName)", name));
         return m->RenameCollection(c, name);
       }));
    On(CMS::AddMember::kMethod, quick([=](const Args& a) -> Status {
         VMG_ASSIGN_OR_RETURN(MemberRef ref, member(a));
         VMG_ASSIGN_OR_RETURN(std::string c, collection(a));
         if (!ref.host.empty()) return m->AddRemoteMember({ref.host, ref.id}, c);
         return m->AddMember(ref.id, c);
       }));
    On(CMS::RemoveMember::kMethod, quick([=](const Args& a) -> Status {
         VMG_ASSIGN_OR_RETURN(MemberRef ref, member(a));
         VMG_ASSIGN_OR_RETURN(std::string c, collection(a));
         if (!ref.host.empty()) return m->RemoveRemoteMember({ref.host, ref.id}, c);
         return m->RemoveMember(ref.id, c);
       }));
    On(RemoveById::kMethod, quick([=](const Args& a) -> Status {
         VMG_ASSIGN_OR_RETURN(MemberRef ref, member(a));
         VMG_ASSIGN_OR_RETURN(std::string c, a.Required(RemoveById::kCollectionId));
         if (!ref.host.empty()) {
           Status removed = m->RemoveRemoteMember({ref.host, ref.id}, c);
           return removed.code() == Code::kNotFound ? Status::Ok() : removed;
         }
         return m->RemoveMemberById(ref.id, c);
       }));
  }
};

}  // namespace

Providers CollectionProviders(const Context& ctx) {
  Providers out;
  engine::Engine* e = ctx.engine;
  out.push_back(
      std::make_unique<ListProvider>(CollectionSpec(schema::VirtualSystemCollection::kClass),
                                     CollectionLister(e, CollectionType::kVirtualSystems)));
  out.push_back(std::make_unique<ListProvider>(CollectionSpec(schema::ManagementCollection::kClass),
                                               CollectionLister(e, CollectionType::kCollections)));
  out.push_back(std::make_unique<ListProvider>(
      MembershipSpec(schema::CollectedVirtualSystems::kClass,
                     schema::VirtualSystemCollection::kClass, schema::ComputerSystem::kClass),
      MembershipLister(e, CollectionType::kVirtualSystems)));
  out.push_back(std::make_unique<ListProvider>(
      MembershipSpec(schema::CollectedCollections::kClass, schema::ManagementCollection::kClass,
                     "CIM_CollectionOfMSEs"),
      MembershipLister(e, CollectionType::kCollections)));
  out.push_back(std::make_unique<CollectionServiceProvider>(ctx));
  return out;
}

}  // namespace vmgroup::services
