// Msvm_ConcreteJob and Msvm_AffectedJobElement (reference §11).
#include "cim/xml_writer.h"
#include "services/providers.h"

namespace vmgroup::services {
namespace {

using Job = schema::ConcreteJob;
using Error = schema::Error;

cim::ClassSpec JobSpec() {
  return {
      .name = Job::kClass,
      .superclass = "CIM_ConcreteJob",
      .properties = {{.name = Job::kInstanceID, .type = "string", .key = true},
                     {.name = Job::kName, .type = "string"},
                     {.name = Job::kCaption, .type = "string"},
                     {.name = Job::kDescription, .type = "string"},
                     {.name = Job::kElementName, .type = "string"},
                     {.name = Job::kJobType, .type = "uint16"},
                     {.name = Job::kJobState, .type = "uint16"},
                     {.name = Job::kJobStatus, .type = "string"},
                     {.name = Job::kPercentComplete, .type = "uint16"},
                     {.name = Job::kErrorCode, .type = "uint16"},
                     {.name = Job::kErrorDescription, .type = "string"},
                     {.name = Job::kErrorSummaryDescription, .type = "string"},
                     {.name = Job::kTimeSubmitted, .type = "datetime"},
                     {.name = Job::kStartTime, .type = "datetime"},
                     {.name = Job::kElapsedTime, .type = "datetime"},
                     {.name = Job::kTimeOfLastStateChange, .type = "datetime"},
                     {.name = Job::kTimeBeforeRemoval, .type = "datetime"},
                     {.name = Job::kDeleteOnCompletion, .type = "boolean"},
                     {.name = Job::kCancellable, .type = "boolean"},
                     {.name = Job::kOperationalStatus, .type = "uint16", .is_array = true},
                     {.name = Job::kStatusDescriptions, .type = "string", .is_array = true},
                     {.name = Job::kHealthState, .type = "uint16"}},
      .methods = {{.name = Job::RequestStateChange::kMethod,
                   .params = {{.name = Job::RequestStateChange::kRequestedState, .type = "uint16"},
                              {.name = Job::RequestStateChange::kTimeoutPeriod, .type = "datetime"},
                              ErrorOut()}},
                  {.name = Job::GetError::kMethod,
                   .params = {{.name = Job::GetError::kError,
                               .type = "string",
                               .in = false,
                               .out = true,
                               .embedded_class = Error::kClass}}},
                  {.name = Job::GetErrorEx::kMethod,
                   .params = {{.name = Job::GetErrorEx::kErrors,
                               .type = "string",
                               .in = false,
                               .out = true,
                               .is_array = true,
                               .embedded_class = Error::kClass}}}}};
}

}  // namespace

cim::ClassSpec ErrorClass() {
  return {.name = Error::kClass,
          .superclass = "CIM_Error",
          .properties = {{.name = Error::kErrorType, .type = "uint16"},
                         {.name = Error::kOwningEntity, .type = "string"},
                         {.name = Error::kMessageID, .type = "string"},
                         {.name = Error::kMessage, .type = "string"},
                         {.name = Error::kPerceivedSeverity, .type = "uint16"},
                         {.name = Error::kErrorSource, .type = "string"},
                         {.name = Error::kErrorSourceFormat, .type = "uint16"},
                         {.name = Error::kCIMStatusCode, .type = "uint32"},
                         {.name = Error::kCIMStatusCodeDescription, .type = "string"}}};
}

namespace {

const char* StateName(catalog::JobState s) {
  switch (s) {
    case catalog::JobState::kNew:
      return "New";
    case catalog::JobState::kStarting:
      return "Starting";
    case catalog::JobState::kRunning:
      return "Running";
    case catalog::JobState::kCompleted:
      return "Completed";
    case catalog::JobState::kTerminated:
      return "Terminated";
    case catalog::JobState::kKilled:
      return "Killed";
    case catalog::JobState::kException:
      return "Exception";
    case catalog::JobState::kCompletedWithWarnings:
      return "Completed with warnings";
  }
  return "Unknown";
}

// The catalog keeps a job's state as the number CIM shows: JobState is it, cast.
static_assert(static_cast<int>(catalog::JobState::kNew) == schema::JobState::kNew &&
              static_cast<int>(catalog::JobState::kStarting) == schema::JobState::kStarting &&
              static_cast<int>(catalog::JobState::kRunning) == schema::JobState::kRunning &&
              static_cast<int>(catalog::JobState::kCompleted) == schema::JobState::kCompleted &&
              static_cast<int>(catalog::JobState::kTerminated) == schema::JobState::kTerminated &&
              static_cast<int>(catalog::JobState::kKilled) == schema::JobState::kKilled &&
              static_cast<int>(catalog::JobState::kException) == schema::JobState::kException &&
              static_cast<int>(catalog::JobState::kCompletedWithWarnings) ==
                  schema::JobState::kCompletedWithWarnings);

cim::Instance JobInstance(const cim::ClassSpec& spec, const catalog::JobRecord& j, int64_t now) {
  const bool ended = j.ended_us > 0;
  cim::InstanceBuilder b(spec);
  b.Str(Job::kInstanceID, j.id)
      .Str(Job::kName, j.description)
      .Str(Job::kCaption, j.description)
      .Str(Job::kDescription, j.description)
      .Str(Job::kElementName, j.description)
      .Int(Job::kJobType, j.type)
      .Int(Job::kJobState, static_cast<int>(j.state))
      .Str(Job::kJobStatus, StateName(j.state))
      .Int(Job::kPercentComplete, j.percent)
      .Int(Job::kErrorCode, j.error_code)
      .Str(Job::kErrorDescription, j.error_description)
      .Str(Job::kErrorSummaryDescription, j.error_description)
      .Str(Job::kTimeSubmitted, CimTime(j.created_us))
      .Str(Job::kStartTime, CimTime(j.started_us))
      .Str(Job::kElapsedTime, CimInterval((ended ? j.ended_us : now) - j.started_us))
      .Str(Job::kTimeOfLastStateChange, CimTime(ended ? j.ended_us : j.started_us))
      .Str(Job::kTimeBeforeRemoval,
           CimInterval(std::chrono::microseconds(JobManager::kRetention).count()))
      .Bool(Job::kDeleteOnCompletion, true)
      .Bool(Job::kCancellable, j.cancellable && !ended)
      .Ints(Job::kOperationalStatus, {schema::OperationalStatus::kOk})
      .Strs(Job::kStatusDescriptions, {"OK"})
      .Int(Job::kHealthState, schema::HealthState::kOk);
  return b.Build();
}

// An Msvm_Error for a job that failed, as CIM-XML (GetError's Error).
std::string ErrorXml(const catalog::JobRecord& j) {
  return cim::InstanceXml(cim::InstanceBuilder(ErrorClass())
                              .Int(Error::kErrorType, 4)  // Software
                              .Str(Error::kOwningEntity, "vmgroupd")
                              .Str(Error::kMessageID, "VMG" + std::to_string(j.error_code))
                              .Str(Error::kMessage, j.error_description)
                              .Int(Error::kPerceivedSeverity, 6)  // Fatal/NonRecoverable
                              .Str(Error::kErrorSource, j.id)
                              .Int(Error::kErrorSourceFormat, 0)
                              .Int(Error::kCIMStatusCode, 1)
                              .Str(Error::kCIMStatusCodeDescription, "CIM_ERR_FAILED")
                              .Build());
}

class JobProvider : public cim::Provider {
 public:
  explicit JobProvider(const Context& ctx) : ctx_(ctx), spec_(JobSpec()) {}
  const cim::ClassSpec& spec() const override { return spec_; }
  Result<std::vector<cim::Instance>> Enumerate() override {
    VMG_ASSIGN_OR_RETURN(auto jobs, ctx_.jobs->List());
    const int64_t now = ctx_.jobs->env()->NowMicros();
    std::vector<cim::Instance> out;
    for (const auto& j : jobs) out.push_back(JobInstance(spec_, j, now));
    return out;
  }
  Result<cim::Instance> Get(const cim::ObjectPath& path) override {
    VMG_ASSIGN_OR_RETURN(auto j, ctx_.jobs->Get(IdOf(path, Job::kInstanceID)));
    return JobInstance(spec_, j, ctx_.jobs->env()->NowMicros());
  }

  // RequestStateChange: 4 Terminate / 5 Kill ask a cancellable job to stop
  // (answered 4096: the transition has started). Codes per reference §11.4.
  Result<cim::MethodResult> Invoke(const cim::MethodSpec& method, const cim::ObjectPath& target,
                                   const std::map<std::string, cim::Value>& raw) override {
    Args args(raw);
    const std::string id = IdOf(target, Job::kInstanceID);
    VMG_ASSIGN_OR_RETURN(auto job, ctx_.jobs->Get(id));
    const bool failed = job.state == catalog::JobState::kException ||
                        job.state == catalog::JobState::kTerminated ||
                        job.state == catalog::JobState::kKilled;
    if (method.name == Job::GetError::kMethod) {
      cim::MethodResult r = Done();
      if (failed) {
        r.out.push_back({Job::GetError::kError, "string", cim::Value::Scalar(ErrorXml(job))});
      }
      return r;
    }
    if (method.name == Job::GetErrorEx::kMethod) {
      cim::MethodResult r = Done();
      if (failed) {
        r.out.push_back({Job::GetErrorEx::kErrors, "string", cim::Value::Array({ErrorXml(job)})});
      }
      return r;
    }
    using Change = Job::RequestStateChange;
    if (args.Has(Change::kTimeoutPeriod) &&
        args.Str(Change::kTimeoutPeriod) != "00000000000000.000000:000") {
      return Refused(4098, "TimeoutPeriod is not supported");
    }
    const int64_t want = args.Int(Change::kRequestedState, -1);
    if (want != schema::JobRequestedState::kTerminate && want != schema::JobRequestedState::kKill) {
      return Refused(want >= 2 && want <= 6 ? 1 : 5,
                     "only 4 (Terminate) and 5 (Kill) can be requested of a job");
    }
    Status s = ctx_.jobs->RequestStop(id);
    if (s.code() == Code::kInvalidState) return Refused(4097, s.message());
    if (s.code() == Code::kNotSupported) return Refused(1, s.message());
    if (!s.ok()) return Refused(4, s.message());
    return Done(4096);
  }

 private:
  Context ctx_;
  cim::ClassSpec spec_;
};

}  // namespace

Providers JobProviders(const Context& ctx) {
  Providers out;
  out.push_back(std::make_unique<JobProvider>(ctx));
  JobManager* jobs = ctx.jobs;
  using Affects = schema::AffectedJobElement;
  out.push_back(std::make_unique<ListProvider>(
      cim::ClassSpec{
          .name = Affects::kClass,
          .superclass = "CIM_AffectedJobElement",
          .association = true,
          .properties = {{.name = Affects::kAffectedElement,
                          .type = "reference",
                          .key = true,
                          .reference_class = "CIM_ManagedElement"},
                         {.name = Affects::kAffectingElement,
                          .type = "reference",
                          .key = true,
                          .reference_class = Job::kClass},
                         {.name = Affects::kElementEffects, .type = "uint16", .is_array = true}}},
      [jobs](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto all, jobs->List());
        std::vector<cim::Instance> rows;
        for (const auto& j : all) {
          for (const auto& a : j.affected) {
            rows.push_back(cim::InstanceBuilder(spec)
                               .Ref(Affects::kAffectedElement, AffectedPath(a))
                               .Ref(Affects::kAffectingElement, JobPath(j.id))
                               .Ints(Affects::kElementEffects, {5})  // Create
                               .Build());
          }
        }
        return rows;
      }));
  return out;
}

}  // namespace vmgroup::services
