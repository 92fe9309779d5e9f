// Backup sessions (vendor classes; issue 17): Vmgroup_BackupService begins
// and ends sessions that serve a group's frozen disks over NBD and answers
// GetVirtualDiskChanges as Hyper-V's Msvm_ImageManagementService does for
// RCT; Vmgroup_BackupSession and Vmgroup_BackupDisk show what a session
// serves: per disk the NBD URI, export name, size and, since a reference
// point, the metadata context of the changes.
#include "base/ids.h"
#include "services/job_method.h"
#include "services/providers.h"

namespace vmgroup::services {
namespace {

using BS = schema::BackupService;
using Session = schema::BackupSession;
using Disk = schema::BackupDisk;
// Vendor job types: a session's life, and its end.
constexpr int kJobBackupSession = 32768;
constexpr int kJobEndBackupSession = 32769;
// How long a session may go without a connected reader before it ends.
constexpr int64_t kDefaultIdleSeconds = 600;
constexpr int64_t kMaxIdleSeconds = 7 * 24 * 3600;

cim::ObjectPath SessionPath(const std::string& id) {
  return KeyPath(Session::kClass, Session::kInstanceID, id);
}

// Vmgroup_BackupSession.State.
const char* StateName(engine::BackupState state) {
  switch (state) {
    case engine::BackupState::kServing:
      return "Serving";
    case engine::BackupState::kEnding:
      return "Ending";
    case engine::BackupState::kStopped:
      return "Stopped";
  }
  return "Unknown";
}

bool IsTrue(const Args& a, const char* name) { return cim::NameEquals(a.Str(name), "true"); }

// The sessions of this host's groups and those across hosts this host
// coordinates, as one list.
std::vector<engine::BackupSession> AllSessions(engine::Engine* e) {
  std::vector<engine::BackupSession> all = e->snapshots().backups().List();
  for (auto& s : e->snapshots().spanning_backups().List()) all.push_back(std::move(s));
  return all;
}

// BeginBackup's arguments as the engine's request; InvalidArgument naming
// the parameter that is wrong.
Status ReadBegin(const Args& a, engine::BackupRequest* req, int64_t* idle_seconds) {
  using Begin = BS::BeginBackup;
  VMG_ASSIGN_OR_RETURN(
      req->collection_id,
      a.RefId(Begin::kCollection, schema::VirtualSystemCollection::kCollectionID, "a VM group"));
  if (a.Ref(Begin::kSnapshotCollection)) {
    VMG_ASSIGN_OR_RETURN(req->snapshot_id,
                         a.RefId(Begin::kSnapshotCollection,
                                 schema::SnapshotCollection::kCollectionID, "a group snapshot"));
  }
  if (a.Ref(Begin::kBaseReferencePointCollection)) {
    VMG_ASSIGN_OR_RETURN(
        req->incremental_from,
        a.RefId(Begin::kBaseReferencePointCollection,
                schema::ReferencePointCollection::kCollectionID, "a reference point"));
  }
  const int64_t level = a.Int(Begin::kConsistencyLevel, schema::ConsistencyLevel::kCrash);
  if (level == schema::ConsistencyLevel::kApplication) {
    req->consistency = catalog::Consistency::kApplication;
  } else if (level != 0 && level != schema::ConsistencyLevel::kCrash) {
    return Status::InvalidArgument(std::string(Begin::kConsistencyLevel) +
                                   " must be 1 (application) or 2 (crash consistent), not " +
                                   std::to_string(level));
  }
  if (!req->snapshot_id.empty() && a.Has(Begin::kConsistencyLevel)) {
    return Status::InvalidArgument(std::string(Begin::kConsistencyLevel) +
                                   " is the cut's: a session on an existing snapshot takes none");
  }
  req->fallback = IsTrue(a, Begin::kAllowCrashConsistentFallback);
  const int64_t transport = a.Int(Begin::kTransport, schema::BackupTransport::kUnix);
  if (transport == schema::BackupTransport::kTcp) {
    req->transport = engine::BackupTransport::kTcp;
  } else if (transport != 0 && transport != schema::BackupTransport::kUnix) {
    return Status::InvalidArgument(std::string(Begin::kTransport) +
                                   " must be 1 (unix socket) or 2 (TCP with TLS), not " +
                                   std::to_string(transport));
  }
  *idle_seconds = a.Int(Begin::kIdleTimeout, kDefaultIdleSeconds);
  if (*idle_seconds < 1 || *idle_seconds > kMaxIdleSeconds) {
    return Status::InvalidArgument(std::string(Begin::kIdleTimeout) + " must be 1.." +
                                   std::to_string(kMaxIdleSeconds) + " seconds, not " +
                                   std::to_string(*idle_seconds));
  }
  return Status::Ok();
}

class BackupServiceProvider : public ServiceProvider {
  using Begin = BS::BeginBackup;
  using End = BS::EndBackup;
  using Changes = BS::GetVirtualDiskChanges;

 public:
  explicit BackupServiceProvider(const Context& ctx)
      : ServiceProvider(
            ctx, BS::kClass, "BackupService", "vmgroup Backup Service",
            {{.name = Begin::kMethod,
              .params = {RefIn(Begin::kCollection, schema::VirtualSystemCollection::kClass),
                         RefIn(Begin::kSnapshotCollection, schema::SnapshotCollection::kClass),
                         RefIn(Begin::kBaseReferencePointCollection,
                               schema::ReferencePointCollection::kClass),
                         {.name = Begin::kConsistencyLevel, .type = "uint16"},
                         {.name = Begin::kAllowCrashConsistentFallback, .type = "boolean"},
                         {.name = Begin::kIdleTimeout, .type = "uint32"},
                         {.name = Begin::kTransport, .type = "uint16"},
                         RefOut(Begin::kResultingBackupSession, Session::kClass),
                         JobOut()}},
             {.name = End::kMethod,
              .params = {RefIn(End::kBackupSession, Session::kClass),
                         {.name = End::kToReferencePoint, .type = "boolean"},
                         RefOut(End::kResultingReferencePointCollection,
                                schema::ReferencePointCollection::kClass),
                         JobOut()}},
             {.name = Changes::kMethod,
              .params = {RefIn(Changes::kBackupSession, Session::kClass),
                         {.name = Changes::kVirtualSystemIdentifier, .type = "string"},
                         {.name = Changes::kDiskIndex, .type = "uint32"},
                         {.name = Changes::kByteOffset, .type = "uint64"},
                         {.name = Changes::kByteLength, .type = "uint64"},
                         {.name = Changes::kChangedByteOffsets,
                          .type = "uint64",
                          .in = false,
                          .out = true,
                          .is_array = true},
                         {.name = Changes::kChangedByteLengths,
                          .type = "uint64",
                          .in = false,
                          .out = true,
                          .is_array = true},
                         {.name = Changes::kProcessedByteLength,
                          .type = "uint64",
                          .in = false,
                          .out = true}}}}) {
    engine::Engine* e = ctx.engine;
    JobManager* jobs = ctx.jobs;
    On(Begin::kMethod, [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      engine::BackupRequest req{.id = NewGuid()};
      int64_t idle_seconds = 0;
      if (Status s = ReadBegin(a, &req, &idle_seconds); !s.ok()) return Outcome(ReturnCodeA, s);
      engine::BackupSessions& backups = e->snapshots().backups();
      engine::SpanningBackups& spanning = e->snapshots().spanning_backups();
      // A group with members on other hosts: a session of every host's.
      const bool across = e->snapshots().spanning().Spans(req.collection_id);
      return StartJob(
          jobs, ReturnCodeA, across ? spanning.Validate(req) : backups.Validate(req),
          [&]() -> Result<JobMethod> {
            VMG_ASSIGN_OR_RETURN(auto group, e->catalog().GetCollection(req.collection_id));
            return JobMethod{
                .type = kJobBackupSession,
                .description = "Backup session " + req.id + " of VM group " + group.name,
                .cancellable = true,
                .out = {{Begin::kResultingBackupSession, "reference",
                         cim::Value::Reference(SessionPath(req.id))}}};
          },
          [&backups, &spanning, across, req,
           idle_seconds](JobControl& control) mutable -> Result<std::vector<std::string>> {
            req.warning = [&control](const std::string& w) { control.Warn(w); };
            const auto idle = std::chrono::seconds(idle_seconds);
            VMG_ASSIGN_OR_RETURN(engine::BackupSession s,
                                 across ? spanning.Begin(req, idle) : backups.Begin(req));
            control.Progress(50);  // serving; it ends with the session
            auto stop = [&control] { return control.StopRequested(); };
            // Across hosts each host's session idles out by itself; the
            // group's once all have.
            VMG_ASSIGN_OR_RETURN(engine::BackupEnding how, across
                                                               ? spanning.Serve(s.id, stop)
                                                               : backups.Serve(s.id, idle, stop));
            if (how == engine::BackupEnding::kIdle) {
              control.Warn("no reader was connected for " + std::to_string(idle_seconds) +
                           " s: the session ended by itself");
            }
            if (how == engine::BackupEnding::kStopped) {
              return Status::Cancelled("backup session " + s.id + " ended on request");
            }
            std::vector<std::string> affected;
            for (const auto& m : s.members) {
              affected.push_back(Affected(schema::ComputerSystem::kClass, m.vm_id));
            }
            return affected;
          });
    });
    On(End::kMethod, [e, jobs](const Args& a) -> Result<cim::MethodResult> {
      auto id = a.RefId(End::kBackupSession, Session::kInstanceID, "a backup session");
      if (!id.ok()) return Outcome(ReturnCodeA, id.status());
      engine::BackupSessions& backups = e->snapshots().backups();
      engine::SpanningBackups& spanning = e->snapshots().spanning_backups();
      const bool across = spanning.Has(*id);
      auto session = across ? spanning.Get(*id) : backups.Get(*id);
      if (!session.ok()) return Outcome(ReturnCodeA, session.status());
      const engine::BackupEndRequest req{.id = *id,
                                         .to_reference_point = IsTrue(a, End::kToReferencePoint),
                                         .reference_point_id = NewGuid()};
      std::vector<cim::OutParam> out;
      if (req.to_reference_point) {
        out.push_back(
            {End::kResultingReferencePointCollection, "reference",
             cim::Value::Reference(ReferencePointPath(
                 {.id = req.reference_point_id, .collection_id = session->collection_id}))});
      }
      // Ending twice at once is refused by the engine (InvalidState).
      return StartJob(
          jobs, ReturnCodeA, Status::Ok(),
          [&]() -> Result<JobMethod> {
            return JobMethod{.type = kJobEndBackupSession,
                             .description = "End backup session " + req.id,
                             .out = out};
          },
          [&backups, &spanning, across, req](JobControl&) -> Result<std::vector<std::string>> {
            VMG_ASSIGN_OR_RETURN(auto rp, across ? spanning.End(req) : backups.End(req));
            if (!rp) return std::vector<std::string>{};
            return AffectedBy(*rp);
          });
    });
    On(Changes::kMethod, [e](const Args& a) -> Result<cim::MethodResult> {
      auto id = a.RefId(Changes::kBackupSession, Session::kInstanceID, "a backup session");
      if (!id.ok()) return Outcome(ReturnCodeA, id.status());
      auto vm = a.Required(Changes::kVirtualSystemIdentifier);
      if (!vm.ok()) return Outcome(ReturnCodeA, vm.status());
      const int64_t disk = a.Int(Changes::kDiskIndex, 0);
      const int64_t offset = a.Int(Changes::kByteOffset, 0);
      const int64_t length = a.Int(Changes::kByteLength, 0);
      if (disk < 0 || offset < 0 || length < 0) {
        return Refused(kRcInvalidParameter, "DiskIndex, ByteOffset and ByteLength are unsigned");
      }
      engine::SpanningBackups& spanning = e->snapshots().spanning_backups();
      auto changes =
          (spanning.Has(*id)
               ? spanning.Changes(*id, *vm, static_cast<int>(disk), static_cast<uint64_t>(offset),
                                  static_cast<uint64_t>(length))
               : e->snapshots().backups().Changes(*id, *vm, static_cast<int>(disk),
                                                  static_cast<uint64_t>(offset),
                                                  static_cast<uint64_t>(length)));
      if (!changes.ok()) return Outcome(ReturnCodeA, changes.status());
      std::vector<std::string> offsets, lengths;
      for (const auto& r : changes->ranges) {
        offsets.push_back(std::to_string(r.offset));
        lengths.push_back(std::to_string(r.length));
      }
      cim::MethodResult done = Done();
      done.out = {{Changes::kChangedByteOffsets, "uint64", cim::Value::Array(offsets)},
                  {Changes::kChangedByteLengths, "uint64", cim::Value::Array(lengths)},
                  {Changes::kProcessedByteLength, "uint64",
                   cim::Value::Scalar(std::to_string(changes->processed))}};
      return done;
    });
  }
};

}  // namespace

Providers BackupProviders(const Context& ctx) {
  Providers out;
  engine::Engine* e = ctx.engine;
  out.push_back(std::make_unique<BackupServiceProvider>(ctx));
  out.push_back(std::make_unique<ListProvider>(
      cim::ClassSpec{
          .name = Session::kClass,
          .superclass = "CIM_ManagedElement",
          .properties = {{.name = Session::kInstanceID, .type = "string", .key = true},
                         {.name = Session::kVirtualSystemCollectionId, .type = "string"},
                         {.name = Session::kSnapshotCollectionID, .type = "string"},
                         {.name = Session::kBaseReferencePointCollectionID, .type = "string"},
                         {.name = Session::kTookSnapshot, .type = "boolean"},
                         {.name = Session::kStartTime, .type = "datetime"},
                         {.name = Session::kState, .type = "string"}}},
      [e](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        std::vector<cim::Instance> rows;
        for (const auto& s : AllSessions(e)) {
          rows.push_back(cim::InstanceBuilder(spec)
                             .Str(Session::kInstanceID, s.id)
                             .Str(Session::kVirtualSystemCollectionId, s.collection_id)
                             .Str(Session::kSnapshotCollectionID, s.snapshot_id)
                             .Str(Session::kBaseReferencePointCollectionID, s.incremental_from)
                             .Bool(Session::kTookSnapshot, s.took_snapshot)
                             .Str(Session::kStartTime, CimTime(s.began_us))
                             .Str(Session::kState, StateName(s.state))
                             .Build());
        }
        return rows;
      }));
  out.push_back(std::make_unique<ListProvider>(
      cim::ClassSpec{.name = Disk::kClass,
                     .superclass = "CIM_ManagedElement",
                     .properties = {{.name = Disk::kInstanceID, .type = "string", .key = true},
                                    {.name = Disk::kSessionID, .type = "string"},
                                    {.name = Disk::kVirtualSystemIdentifier, .type = "string"},
                                    {.name = Disk::kVirtualSystemName, .type = "string"},
                                    {.name = Disk::kDiskIndex, .type = "uint32"},
                                    {.name = Disk::kExportName, .type = "string"},
                                    {.name = Disk::kURI, .type = "string"},
                                    {.name = Disk::kSocketPath, .type = "string"},
                                    {.name = Disk::kSize, .type = "uint64"},
                                    {.name = Disk::kMetadataContext, .type = "string"},
                                    {.name = Disk::kFullReadReason, .type = "string"},
                                    {.name = Disk::kHost, .type = "string"}}},
      [e](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        std::vector<cim::Instance> rows;
        for (const auto& s : AllSessions(e)) {
          for (const auto& m : s.members) {
            for (const auto& d : m.disks) {
              rows.push_back(
                  cim::InstanceBuilder(spec)
                      .Str(Disk::kInstanceID, s.id + "/" + m.vm_id + "/" + std::to_string(d.index))
                      .Str(Disk::kSessionID, s.id)
                      .Str(Disk::kVirtualSystemIdentifier, m.vm_id)
                      .Str(Disk::kVirtualSystemName, m.vm_name)
                      .Int(Disk::kDiskIndex, d.index)
                      .Str(Disk::kExportName, d.export_name)
                      .Str(Disk::kURI, d.uri)
                      .Str(Disk::kSocketPath, d.socket)
                      .Int(Disk::kSize, static_cast<int64_t>(d.size))
                      .Str(Disk::kMetadataContext, d.context)
                      .Str(Disk::kFullReadReason, d.full_read_reason)
                      .Str(Disk::kHost, m.host)
                      .Build());
            }
          }
        }
        return rows;
      }));
  return out;
}

}  // namespace vmgroup::services
