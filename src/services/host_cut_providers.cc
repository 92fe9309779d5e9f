// One host's part of a snapshot across hosts (vendor class; issue 20):
// Vmgroup_HostCutService takes each step of engine::HostCuts from the
// group's coordinator, another vmgroupd, over the same authenticated
// CIM-XML as any client. Each step of the cut answers when it is done (0)
// or refused (family A) and starts no job: it is short, and the coordinator
// must know at once that every host took it. ExportPart and ConvertPart run
// as jobs (4096), as ExportSnapshot and ConvertToReferencePoint do: copying
// a part's disks, or merging its overlays into its frozen images, can take
// longer than any HTTP call should stay open, and the coordinator follows
// the job as a client follows its own. The steps of a part of an apply
// across hosts (ValidateApplyPart, PrepareApplyPart, CommitApplyPart,
// AbortApplyPart) answer when done, as the cut's: stopping members and
// making overlays is short, and the coordinator decides on their answers.
#include "base/ids.h"
#include "services/job_method.h"
#include "services/providers.h"

namespace vmgroup::services {
namespace {

using HC = schema::HostCutService;

// A lease longer than this is no lease: a member could stay paused
// for a minute on the word of a coordinator that died.
constexpr int64_t kMaxLeaseMs = 60'000;
constexpr int64_t kMaxStepTimeoutMs = 600'000;
constexpr int64_t kDefaultStepTimeoutMs = 30'000;

// The out-parameters PauseCut and ResumeCut both declare.
std::vector<cim::ParamSpec> LeaseOut() {
  const auto out = [](const char* name, const char* type, bool array) {
    return cim::ParamSpec{.name = name, .type = type, .in = false, .out = true, .is_array = array};
  };
  return {out(HC::kVirtualSystemIdentifiers, "string", true),
          out(HC::kPausedAt, "uint64", true),
          out(HC::kPauseDurations, "uint64", true),
          out(HC::kCutTimes, "uint64", true),
          out(HC::kLeaseState, "string", false),
          out(HC::kUnguarded, "string", false),
          out(HC::kHostTime, "uint64", false)};
}

// `params` with SnapshotID first: the one in-parameter every method has.
std::vector<cim::ParamSpec> WithSnapshotId(std::vector<cim::ParamSpec> params) {
  params.insert(params.begin(), {.name = HC::kSnapshotID, .type = "string"});
  return params;
}

// The answer of PauseCut and ResumeCut: the members' timings by VM, and
// this host's clock as it answers; or the step's error.
cim::MethodResult LeaseAnswer(const Result<engine::HostCutStatus>& r) {
  if (!r.ok()) return Outcome(ReturnCodeA, r.status());
  std::vector<std::string> paused_at, pauses, cuts;
  for (const auto& t : r->lease.members) {
    paused_at.push_back(std::to_string(t.paused_at_us));
    pauses.push_back(std::to_string(t.pause_us));
    cuts.push_back(std::to_string(t.cut_time_us));
  }
  const std::string now = std::to_string(Env::Default()->NowMicros());
  cim::MethodResult done = Done();
  done.out = {
      {HC::kVirtualSystemIdentifiers, "string", cim::Value::Array(r->vm_ids)},
      {HC::kPausedAt, "uint64", cim::Value::Array(paused_at)},
      {HC::kPauseDurations, "uint64", cim::Value::Array(pauses)},
      {HC::kCutTimes, "uint64", cim::Value::Array(cuts)},
      {HC::kLeaseState, "string", cim::Value::Scalar(engine::LeaseStateName(r->lease.state))},
      {HC::kUnguarded, "string", cim::Value::Scalar(r->lease.unguarded)},
      {HC::kHostTime, "uint64", cim::Value::Scalar(now)}};
  return done;
}

// An integer in-parameter in [1, max] (milliseconds), or `fallback` when absent
// (0: required).
Result<Duration> Millis(const Args& a, const char* name, int64_t max, int64_t fallback) {
  if (!a.Has(name) && fallback == 0)
    return Status::InvalidArgument(std::string(name) + " is required");
  const int64_t ms = a.Int(name, fallback);
  if (ms < 1 || ms > max) {
    return Status::InvalidArgument(std::string(name) + " must be from 1 to " + std::to_string(max) +
                                   " milliseconds, not " + a.Str(name));
  }
  return Duration(std::chrono::milliseconds(ms));
}

// The directory in-parameter `name` of ExportPart and RemoveExportPart (the
// coordinator's DIR/<host>): a path as ExportSnapshot's ExportDirectory, and
// absolute, checked here so that a relative one starts no job.
Result<std::string> ExportDirectory(const Args& a, const char* name) {
  VMG_ASSIGN_OR_RETURN(std::string dir, a.Path(name));
  VMG_RETURN_IF_ERROR(engine::CheckClientPath(name, dir));
  return dir;
}

// ExportPart's arguments: the part, its directory, whether its disks go
// with it (CopyStorage; true unless false, as CopyVmStorage), and the
// reference point an incremental export builds on (none: in full).
Status ReadExportPart(const Args& a, engine::ExportRequest* req) {
  VMG_ASSIGN_OR_RETURN(req->snapshot_id, a.Required(HC::kSnapshotID));
  VMG_ASSIGN_OR_RETURN(req->directory, ExportDirectory(a, HC::ExportPart::kExportDirectory));
  req->copy_storage = !cim::NameEquals(a.Str(HC::ExportPart::kCopyStorage), "false");
  req->base = a.Str(HC::ExportPart::kBaseReferencePointID);
  if (!req->base.empty() && !IsGuid(req->base)) {
    return Status::InvalidArgument("BaseReferencePointID '" + req->base + "' is not a GUID");
  }
  return Status::Ok();
}

// ExportPart: checked at once, then a job of HostCuts::ExportPart whose
// affected elements are the part and its members.
Result<cim::MethodResult> StartExportPart(engine::Engine* e, JobManager* jobs, const Args& a) {
  engine::ExportRequest req;
  const Status check = ReadExportPart(a, &req);
  return StartJob(
      jobs, ReturnCodeA, check,
      [&]() -> Result<JobMethod> {
        return JobMethod{.type = kJobExportSnapshotCollection,
                         .description = "Export this host's part of snapshot " + req.snapshot_id +
                                        " to " + req.directory,
                         .subject = Affected(schema::SnapshotCollection::kClass, req.snapshot_id)};
      },
      [e, req](JobControl& control) mutable -> Result<std::vector<std::string>> {
        req.progress = [&control](int p) { control.Progress(p); };
        VMG_ASSIGN_OR_RETURN(auto m, e->snapshots().host_cuts().ExportPart(req));
        return AffectedBy(m);
      });
}

// ConvertPart: checked at once, then a job of HostCuts::ConvertPart whose
// affected elements are the reference point and its members.
Result<cim::MethodResult> StartConvertPart(engine::Engine* e, JobManager* jobs, const Args& a) {
  std::string snapshot_id, rp_id;
  const Status check = [&]() -> Status {
    VMG_ASSIGN_OR_RETURN(snapshot_id, a.Required(HC::kSnapshotID));
    VMG_ASSIGN_OR_RETURN(rp_id, a.Required(HC::kReferencePointID));
    if (!IsGuid(rp_id)) {
      return Status::InvalidArgument("ReferencePointID '" + rp_id + "' is not a GUID");
    }
    return e->snapshots().host_cuts().ValidateConvertPart(snapshot_id, rp_id);
  }();
  return StartJob(
      jobs, ReturnCodeA, check,
      [&]() -> Result<JobMethod> {
        return JobMethod{.type = kJobConvertToReferencePoint,
                         .description = "Convert this host's part of snapshot " + snapshot_id +
                                        " to reference point " + rp_id,
                         .subject = Affected(schema::SnapshotCollection::kClass, snapshot_id)};
      },
      [e, snapshot_id, rp_id](JobControl&) -> Result<std::vector<std::string>> {
        VMG_ASSIGN_OR_RETURN(auto rp, e->snapshots().host_cuts().ConvertPart(snapshot_id, rp_id));
        return AffectedBy(rp);
      });
}

class HostCutServiceProvider : public ServiceProvider {
  using Prepare = HC::PrepareCut;
  using Export = HC::ExportPart;
  using RemoveExport = HC::RemoveExportPart;
  using PartCall =
      std::function<cim::MethodResult(engine::HostCuts&, const std::string& id, const Args&)>;

  // Registers `method` as `call` on the part its SnapshotID names.
  void OnPart(const char* method, engine::Engine* e, PartCall call) {
    On(method, [e, call](const Args& a) -> Result<cim::MethodResult> {
      auto id = a.Required(HC::kSnapshotID);
      if (!id.ok()) return Outcome(ReturnCodeA, id.status());
      return call(e->snapshots().host_cuts(), *id, a);
    });
  }
  // Registers `method` as `step` of the apply part its SnapshotID names.
  void OnApplyPart(const char* method, engine::Engine* e,
                   Status (engine::HostApplies::*step)(const std::string&)) {
    OnPart(method, e, [e, step](engine::HostCuts&, const std::string& id, const Args&) {
      return Outcome(ReturnCodeA, (e->snapshots().host_applies().*step)(id));
    });
  }

 public:
  explicit HostCutServiceProvider(const Context& ctx)
      : ServiceProvider(
            ctx, HC::kClass, "HostCutService", "vmgroup Host Cut Service",
            {{.name = Prepare::kMethod,
              .params = WithSnapshotId(
                  {RefIn(Prepare::kCollection, schema::VirtualSystemCollection::kClass),
                   {.name = Prepare::kSnapshotType, .type = "uint16"},
                   {.name = Prepare::kElementName, .type = "string"},
                   {.name = Prepare::kStepTimeout, .type = "uint32"},
                   {.name = Prepare::kConsistencyLevel, .type = "uint16"},
                   {.name = Prepare::kAllowCrashConsistentFallback, .type = "boolean"}})},
             {.name = HC::PauseCut::kMethod,
              .params =
                  [] {
                    auto p = WithSnapshotId(LeaseOut());
                    p.insert(p.begin() + 1,
                             {{.name = HC::PauseCut::kLease, .type = "uint32"},
                              {.name = HC::PauseCut::kCutAtOnce, .type = "boolean"}});
                    return p;
                  }()},
             {.name = HC::Cut::kMethod, .params = WithSnapshotId({})},
             {.name = HC::ResumeCut::kMethod, .params = WithSnapshotId(LeaseOut())},
             {.name = HC::CommitCut::kMethod, .params = WithSnapshotId({})},
             {.name = HC::AbortCut::kMethod, .params = WithSnapshotId({})},
             {.name = Export::kMethod,
              .params = WithSnapshotId({{.name = Export::kExportDirectory, .type = "string"},
                                        {.name = Export::kCopyStorage, .type = "boolean"},
                                        {.name = Export::kBaseReferencePointID, .type = "string"},
                                        JobOut()})},
             {.name = RemoveExport::kMethod,
              .params =
                  WithSnapshotId({{.name = RemoveExport::kExportDirectory, .type = "string"}})},
             {.name = HC::ValidateConvertPart::kMethod, .params = WithSnapshotId({})},
             {.name = HC::ConvertPart::kMethod,
              .params =
                  WithSnapshotId({{.name = HC::kReferencePointID, .type = "string"}, JobOut()})},
             {.name = HC::DestroyReferencePointPart::kMethod,
              .params = {{.name = HC::kReferencePointID, .type = "string"}}},
             {.name = HC::ValidateApplyPart::kMethod, .params = WithSnapshotId({})},
             {.name = HC::PrepareApplyPart::kMethod, .params = WithSnapshotId({})},
             {.name = HC::CommitApplyPart::kMethod, .params = WithSnapshotId({})},
             {.name = HC::AbortApplyPart::kMethod, .params = WithSnapshotId({})}}) {
    engine::Engine* e = ctx.engine;
    JobManager* jobs = ctx.jobs;
    On(Prepare::kMethod, [e](const Args& a) -> Result<cim::MethodResult> {
      engine::HostCutRequest req;
      auto read = [&]() -> Status {
        VMG_ASSIGN_OR_RETURN(req.snapshot_id, a.Required(HC::kSnapshotID));
        VMG_ASSIGN_OR_RETURN(
            req.collection_id,
            a.RefId(Prepare::kCollection, schema::VirtualSystemCollection::kCollectionID,
                    "this host's part of the VM group"));
        req.type = static_cast<int>(a.Int(Prepare::kSnapshotType, engine::kSnapshotRecovery));
        req.name = a.Str(Prepare::kElementName);
        VMG_ASSIGN_OR_RETURN(req.step_timeout, Millis(a, Prepare::kStepTimeout, kMaxStepTimeoutMs,
                                                      kDefaultStepTimeoutMs));
        switch (a.Int(Prepare::kConsistencyLevel, schema::ConsistencyLevel::kCrash)) {
          case schema::ConsistencyLevel::kApplication:
            req.consistency = catalog::Consistency::kApplication;
            break;
          case schema::ConsistencyLevel::kUnknown:
          case schema::ConsistencyLevel::kCrash:
            break;
          default:
            return Status::InvalidArgument(std::string(Prepare::kConsistencyLevel) +
                                           " must be 0, 1 or 2");
        }
        req.fallback = cim::NameEquals(a.Str(Prepare::kAllowCrashConsistentFallback), "true");
        return Status::Ok();
      };
      if (Status s = read(); !s.ok()) return Outcome(ReturnCodeA, s);
      return Outcome(ReturnCodeA, e->snapshots().host_cuts().Prepare(req));
    });
    OnPart(HC::PauseCut::kMethod, e,
           [](engine::HostCuts& cuts, const std::string& id, const Args& a) {
             auto lease = Millis(a, HC::PauseCut::kLease, kMaxLeaseMs, 0);
             if (!lease.ok()) return Outcome(ReturnCodeA, lease.status());
             const bool cut = cim::NameEquals(a.Str(HC::PauseCut::kCutAtOnce), "true");
             return LeaseAnswer(cuts.Pause(id, *lease, cut));
           });
    OnPart(HC::Cut::kMethod, e, [](engine::HostCuts& cuts, const std::string& id, const Args&) {
      return Outcome(ReturnCodeA, cuts.Cut(id));
    });
    OnPart(HC::ResumeCut::kMethod, e,
           [](engine::HostCuts& cuts, const std::string& id, const Args&) {
             return LeaseAnswer(cuts.Resume(id));
           });
    OnPart(HC::CommitCut::kMethod, e,
           [](engine::HostCuts& cuts, const std::string& id, const Args&) {
             return Outcome(ReturnCodeA, cuts.Commit(id));
           });
    OnPart(HC::AbortCut::kMethod, e,
           [](engine::HostCuts& cuts, const std::string& id, const Args&) {
             return Outcome(ReturnCodeA, cuts.Abort(id));
           });
    On(Export::kMethod, [e, jobs](const Args& a) { return StartExportPart(e, jobs, a); });
    OnPart(RemoveExport::kMethod, e,
           [](engine::HostCuts& cuts, const std::string& id, const Args& a) {
             auto dir = ExportDirectory(a, RemoveExport::kExportDirectory);
             if (!dir.ok()) return Outcome(ReturnCodeA, dir.status());
             return Outcome(ReturnCodeA, cuts.RemoveExportPart(id, *dir));
           });
    OnPart(HC::ValidateConvertPart::kMethod, e,
           [](engine::HostCuts& cuts, const std::string& id, const Args&) {
             return Outcome(ReturnCodeA, cuts.ValidateConvertPart(id));
           });
    On(HC::ConvertPart::kMethod, [e, jobs](const Args& a) { return StartConvertPart(e, jobs, a); });
    On(HC::DestroyReferencePointPart::kMethod, [e](const Args& a) -> Result<cim::MethodResult> {
      auto id = a.Required(HC::kReferencePointID);
      if (!id.ok()) return Outcome(ReturnCodeA, id.status());
      return Outcome(ReturnCodeA, e->snapshots().host_cuts().DestroyReferencePointPart(*id));
    });
    OnApplyPart(HC::ValidateApplyPart::kMethod, e, &engine::HostApplies::Validate);
    OnApplyPart(HC::PrepareApplyPart::kMethod, e, &engine::HostApplies::Prepare);
    OnApplyPart(HC::CommitApplyPart::kMethod, e, &engine::HostApplies::Commit);
    OnApplyPart(HC::AbortApplyPart::kMethod, e, &engine::HostApplies::Abort);
  }
};

}  // namespace

Providers HostCutProviders(const Context& ctx) {
  Providers out;
  out.push_back(std::make_unique<HostCutServiceProvider>(ctx));
  return out;
}

}  // namespace vmgroup::services
