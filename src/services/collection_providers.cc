// VM groups (Msvm_VirtualSystemCollection), groups of groups
// (Msvm_ManagementCollection), their membership and the service that
// manages them (reference §3–§5).
#include <functional>

#include "base/validate.h"
#include "services/providers.h"

namespace vmgroup::services {
namespace {

// Importing a group defines one: JobType 190, Define Collection (reference §11).
constexpr int kJobDefineCollection = 190;

using catalog::CollectionType;

cim::ClassSpec CollectionSpec(const char* name) {
  return {.name = name,
          .superclass = "CIM_CollectionOfMSEs",
          .properties = {{.name = "CollectionID", .type = "string", .key = true},
                         {.name = "ElementName", .type = "string"},
                         {.name = "Caption", .type = "string"},
                         {.name = "Description", .type = "string"},
                         // Replica state Hyper-V reports; vmgroup does not replicate.
                         {.name = "ReplicationMode", .type = "uint16"},
                         {.name = "ReplicationState", .type = "uint16"},
                         // Vendor: when the group was defined.
                         {.name = "Vmgroup_CreationTime", .type = "datetime"}}};
}

cim::ClassSpec MembershipSpec(const char* name, const char* collection, const char* member) {
  return {
      .name = name,
      .superclass = "CIM_CollectedMSEs",
      .association = true,
      .properties = {
          {.name = "Collection", .type = "reference", .key = true, .reference_class = collection},
          {.name = "Member", .type = "reference", .key = true, .reference_class = member}}};
}

// The collections of one type, as instances or as membership links.
ListProvider::Lister CollectionLister(engine::Engine* e, CollectionType type) {
  return [e, type](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
    VMG_ASSIGN_OR_RETURN(auto all, e->catalog().ListCollections());
    std::vector<cim::Instance> out;
    for (const auto& c : all) {
      if (c.type != type) continue;
      out.push_back(cim::InstanceBuilder(spec)
                        .Str("CollectionID", c.id)
                        .Str("ElementName", c.name)
                        .Str("Caption", type == CollectionType::kVirtualSystems
                                            ? "Virtual Machine Group"
                                            : "Management Group")
                        .Int("ReplicationMode", 0)
                        .Int("ReplicationState", 0)
                        .Str("Vmgroup_CreationTime", CimTime(c.created_us))
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
      for (const auto& m : c.members) {
        cim::ObjectPath member =
            type == CollectionType::kVirtualSystems ? VmPath(m) : CollectionPath(*by_id.at(m));
        out.push_back(cim::InstanceBuilder(spec)
                          .Ref("Collection", CollectionPath(c))
                          .Ref("Member", std::move(member))
                          .Build());
      }
    }
    return out;
  };
}

// The id a Member reference names: a VM's Name or a collection's CollectionID.
std::string MemberId(const cim::ObjectPath& p) {
  return cim::NameEquals(p.class_name, "Msvm_ComputerSystem") ? IdOf(p, "Name")
                                                              : IdOf(p, "CollectionID");
}

class CollectionServiceProvider : public ServiceProvider {
 public:
  explicit CollectionServiceProvider(const Context& ctx)
      : ServiceProvider(ctx, "Msvm_CollectionManagementService", "CollectionManagementService",
                        "Hyper-V Collection Management Service",
                        {{.name = "DefineCollection",
                          .params = {{.name = "Name", .type = "string"},
                                     {.name = "Id", .type = "string"},
                                     {.name = "Type", .type = "uint16"},
                                     RefOut("DefinedCollection", "CIM_CollectionOfMSEs"),
                                     JobOut()}},
                         {.name = "DestroyCollection",
                          .params = {RefIn("Collection", "CIM_CollectionOfMSEs"), JobOut()}},
                         {.name = "RenameCollection",
                          .params = {RefIn("Collection", "CIM_CollectionOfMSEs"),
                                     {.name = "NewName", .type = "string"},
                                     JobOut()}},
                         {.name = "AddMember",
                          .params = {RefIn("Member", "CIM_ManagedElement"),
                                     RefIn("Collection", "CIM_CollectionOfMSEs"), JobOut()}},
                         {.name = "RemoveMember",
                          .params = {RefIn("Member", "CIM_ManagedElement"),
                                     RefIn("Collection", "CIM_CollectionOfMSEs"), JobOut()}},
                         {.name = "RemoveMemberById",
                          .params = {RefIn("Member", "CIM_ManagedElement"),
                                     {.name = "CollectionId", .type = "string"},
                                     JobOut()}},
                         // Vendor: a group back from an ExportSnapshot
                         // directory, as ImportVirtualSystem does for one VM.
                         {.name = "Vmgroup_ImportCollection",
                          .params = {{.name = "ImportDirectory", .type = "string"},
                                     {.name = "GenerateNewID", .type = "boolean"},
                                     JobOut()}}}) {
    engine::CollectionManager* m = &ctx.engine->collections();
    engine::Engine* e = ctx.engine;
    // Every method is quick: each answers 0 with no job (reference §3.1).
    On("DefineCollection", [m, e](const Args& a) -> Result<cim::MethodResult> {
      const int64_t type = a.Int("Type", 0);
      if (type != 0 && type != 1) {
        return Refused(kRcBInvalidParameter, "Type must be 0 (VMs) or 1 (collections)");
      }
      // Left out, the name is a default one (reference §3.2); given, it is checked.
      if (a.Has("Name")) {
        if (Status s = CheckName("group name (Name)", a.Str("Name")); !s.ok()) {
          return Outcome(ReturnCodeB, s);
        }
      }
      auto id = m->DefineCollection(a.Str("Name"), a.Str("Id"), static_cast<CollectionType>(type));
      if (!id.ok()) return Refused(ReturnCodeB(id.status()), id.status().message());
      VMG_ASSIGN_OR_RETURN(auto c, e->catalog().GetCollection(*id));
      cim::MethodResult r = Done();
      r.out.push_back({"DefinedCollection", "reference", cim::Value::Reference(CollectionPath(c))});
      return r;
    });
    // The ids the Collection and Member references name; a refusal when absent.
    auto collection = [](const Args& a) {
      return a.RefId("Collection", "CollectionID", "a group");
    };
    auto member = [](const Args& a) -> Result<std::string> {
      const cim::ObjectPath* p = a.Ref("Member");
      const std::string id = p ? MemberId(*p) : "";
      if (id.empty()) return Status::InvalidArgument("Member must name a VM or a group");
      return id;
    };
    JobManager* jobs = ctx.jobs;
    On("Vmgroup_ImportCollection", [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto dir = a.Path("ImportDirectory");
      if (!dir.ok()) return Outcome(ReturnCodeB, dir.status());
      engine::RestoreRequest req{.directory = *dir,
                                 .as_new = cim::NameEquals(a.Str("GenerateNewID"), "true")};
      if (Status s = e->restorer().Validate(req); !s.ok()) return Outcome(ReturnCodeB, s);
      VMG_ASSIGN_OR_RETURN(
          std::string job,
          jobs->Start(kJobDefineCollection, "Import VM group from " + req.directory,
                      /*cancellable=*/false, ReturnCodeB,
                      [e, req](JobControl& control) mutable -> Result<std::vector<std::string>> {
                        req.progress = [&control](int p) { control.Progress(p); };
                        VMG_ASSIGN_OR_RETURN(auto group, e->restorer().Restore(req));
                        std::vector<std::string> made = {
                            Affected("Msvm_VirtualSystemCollection", group.collection_id)};
                        for (const auto& id : group.vm_ids) {
                          made.push_back(Affected("Msvm_ComputerSystem", id));
                        }
                        return made;
                      }));
      return JobStarted(job);
    });
    // A quick method: done, or refused with the family-B code of what went wrong.
    auto quick = [](std::function<Status(const Args&)> act) {
      return [act](const Args& a) -> Result<cim::MethodResult> {
        return Outcome(ReturnCodeB, act(a));
      };
    };
    On("DestroyCollection", quick([=](const Args& a) -> Status {
         VMG_ASSIGN_OR_RETURN(std::string c, collection(a));
         return m->DestroyCollection(c);
       }));
    On("RenameCollection", quick([=](const Args& a) -> Status {
         VMG_ASSIGN_OR_RETURN(std::string c, collection(a));
         VMG_ASSIGN_OR_RETURN(std::string name, a.Required("NewName"));
         VMG_RETURN_IF_ERROR(CheckName("group name (NewName)", name));
         return m->RenameCollection(c, name);
       }));
    On("AddMember", quick([=](const Args& a) -> Status {
         VMG_ASSIGN_OR_RETURN(std::string id, member(a));
         VMG_ASSIGN_OR_RETURN(std::string c, collection(a));
         return m->AddMember(id, c);
       }));
    On("RemoveMember", quick([=](const Args& a) -> Status {
         VMG_ASSIGN_OR_RETURN(std::string id, member(a));
         VMG_ASSIGN_OR_RETURN(std::string c, collection(a));
         return m->RemoveMember(id, c);
       }));
    On("RemoveMemberById", quick([=](const Args& a) -> Status {
         VMG_ASSIGN_OR_RETURN(std::string id, member(a));
         VMG_ASSIGN_OR_RETURN(std::string c, a.Required("CollectionId"));
         return m->RemoveMemberById(id, c);
       }));
  }
};

}  // namespace

Providers CollectionProviders(const Context& ctx) {
  Providers out;
  engine::Engine* e = ctx.engine;
  out.push_back(
      std::make_unique<ListProvider>(CollectionSpec("Msvm_VirtualSystemCollection"),
                                     CollectionLister(e, CollectionType::kVirtualSystems)));
  out.push_back(std::make_unique<ListProvider>(CollectionSpec("Msvm_ManagementCollection"),
                                               CollectionLister(e, CollectionType::kCollections)));
  out.push_back(std::make_unique<ListProvider>(
      MembershipSpec("Msvm_CollectedVirtualSystems", "Msvm_VirtualSystemCollection",
                     "Msvm_ComputerSystem"),
      MembershipLister(e, CollectionType::kVirtualSystems)));
  out.push_back(std::make_unique<ListProvider>(
      MembershipSpec("Msvm_CollectedCollections", "Msvm_ManagementCollection",
                     "CIM_CollectionOfMSEs"),
      MembershipLister(e, CollectionType::kCollections)));
  out.push_back(std::make_unique<CollectionServiceProvider>(ctx));
  return out;
}

}  // namespace vmgroup::services
