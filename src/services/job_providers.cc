// Msvm_ConcreteJob and Msvm_AffectedJobElement (reference §11).
#include "cim/xml_writer.h"
#include "services/providers.h"

namespace vmgroup::services {
namespace {

cim::ClassSpec JobSpec() {
  return {.name = "Msvm_ConcreteJob",
          .superclass = "CIM_ConcreteJob",
          .properties = {{.name = "InstanceID", .type = "string", .key = true},
                         {.name = "Name", .type = "string"},
                         {.name = "Caption", .type = "string"},
                         {.name = "Description", .type = "string"},
                         {.name = "ElementName", .type = "string"},
                         {.name = "JobType", .type = "uint16"},
                         {.name = "JobState", .type = "uint16"},
                         {.name = "JobStatus", .type = "string"},
                         {.name = "PercentComplete", .type = "uint16"},
                         {.name = "ErrorCode", .type = "uint16"},
                         {.name = "ErrorDescription", .type = "string"},
                         {.name = "ErrorSummaryDescription", .type = "string"},
                         {.name = "TimeSubmitted", .type = "datetime"},
                         {.name = "StartTime", .type = "datetime"},
                         {.name = "ElapsedTime", .type = "datetime"},
                         {.name = "TimeOfLastStateChange", .type = "datetime"},
                         {.name = "TimeBeforeRemoval", .type = "datetime"},
                         {.name = "DeleteOnCompletion", .type = "boolean"},
                         {.name = "Cancellable", .type = "boolean"},
                         {.name = "OperationalStatus", .type = "uint16", .is_array = true},
                         {.name = "StatusDescriptions", .type = "string", .is_array = true},
                         {.name = "HealthState", .type = "uint16"}},
          .methods = {{.name = "RequestStateChange",
                       .params = {{.name = "RequestedState", .type = "uint16"},
                                  {.name = "TimeoutPeriod", .type = "datetime"},
                                  ErrorOut()}},
                      {.name = "GetError",
                       .params = {{.name = "Error",
                                   .type = "string",
                                   .in = false,
                                   .out = true,
                                   .embedded_class = "Msvm_Error"}}},
                      {.name = "GetErrorEx",
                       .params = {{.name = "Errors",
                                   .type = "string",
                                   .in = false,
                                   .out = true,
                                   .is_array = true,
                                   .embedded_class = "Msvm_Error"}}}}};
}

}  // namespace

cim::ClassSpec ErrorClass() {
  return {.name = "Msvm_Error",
          .superclass = "CIM_Error",
          .properties = {{.name = "ErrorType", .type = "uint16"},
                         {.name = "OwningEntity", .type = "string"},
                         {.name = "MessageID", .type = "string"},
                         {.name = "Message", .type = "string"},
                         {.name = "PerceivedSeverity", .type = "uint16"},
                         {.name = "ErrorSource", .type = "string"},
                         {.name = "ErrorSourceFormat", .type = "uint16"},
                         {.name = "CIMStatusCode", .type = "uint32"},
                         {.name = "CIMStatusCodeDescription", .type = "string"}}};
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

cim::Instance JobInstance(const cim::ClassSpec& spec, const catalog::JobRecord& j, int64_t now) {
  const bool ended = j.ended_us > 0;
  cim::InstanceBuilder b(spec);
  b.Str("InstanceID", j.id)
      .Str("Name", j.description)
      .Str("Caption", j.description)
      .Str("Description", j.description)
      .Str("ElementName", j.description)
      .Int("JobType", j.type)
      .Int("JobState", static_cast<int>(j.state))
      .Str("JobStatus", StateName(j.state))
      .Int("PercentComplete", j.percent)
      .Int("ErrorCode", j.error_code)
      .Str("ErrorDescription", j.error_description)
      .Str("ErrorSummaryDescription", j.error_description)
      .Str("TimeSubmitted", CimTime(j.created_us))
      .Str("StartTime", CimTime(j.started_us))
      .Str("ElapsedTime", CimInterval((ended ? j.ended_us : now) - j.started_us))
      .Str("TimeOfLastStateChange", CimTime(ended ? j.ended_us : j.started_us))
      .Str("TimeBeforeRemoval",
           CimInterval(std::chrono::microseconds(JobManager::kRetention).count()))
      .Bool("DeleteOnCompletion", true)
      .Bool("Cancellable", j.cancellable && !ended)
      .Ints("OperationalStatus", {2})
      .Strs("StatusDescriptions", {"OK"})
      .Int("HealthState", 5);
  return b.Build();
}

// An Msvm_Error for a job that failed, as CIM-XML (GetError's Error).
std::string ErrorXml(const catalog::JobRecord& j) {
  return cim::InstanceXml(cim::InstanceBuilder(ErrorClass())
                              .Int("ErrorType", 4)  // Software
                              .Str("OwningEntity", "vmgroupd")
                              .Str("MessageID", "VMG" + std::to_string(j.error_code))
                              .Str("Message", j.error_description)
                              .Int("PerceivedSeverity", 6)  // Fatal/NonRecoverable
                              .Str("ErrorSource", j.id)
                              .Int("ErrorSourceFormat", 0)
                              .Int("CIMStatusCode", 1)
                              .Str("CIMStatusCodeDescription", "CIM_ERR_FAILED")
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
    VMG_ASSIGN_OR_RETURN(auto j, ctx_.jobs->Get(IdOf(path, "InstanceID")));
    return JobInstance(spec_, j, ctx_.jobs->env()->NowMicros());
  }

  // RequestStateChange: 4 Terminate / 5 Kill ask a cancellable job to stop
  // (answered 4096: the transition has started). Codes per reference §11.4.
  Result<cim::MethodResult> Invoke(const cim::MethodSpec& method, const cim::ObjectPath& target,
                                   const std::map<std::string, cim::Value>& raw) override {
    Args args(raw);
    const std::string id = IdOf(target, "InstanceID");
    VMG_ASSIGN_OR_RETURN(auto job, ctx_.jobs->Get(id));
    const bool failed = job.state == catalog::JobState::kException ||
                        job.state == catalog::JobState::kTerminated ||
                        job.state == catalog::JobState::kKilled;
    if (method.name == "GetError") {
      cim::MethodResult r = Done();
      if (failed) r.out.push_back({"Error", "string", cim::Value::Scalar(ErrorXml(job))});
      return r;
    }
    if (method.name == "GetErrorEx") {
      cim::MethodResult r = Done();
      if (failed) r.out.push_back({"Errors", "string", cim::Value::Array({ErrorXml(job)})});
      return r;
    }
    if (args.Has("TimeoutPeriod") && args.Str("TimeoutPeriod") != "00000000000000.000000:000") {
      return Refused(4098, "TimeoutPeriod is not supported");
    }
    const int64_t want = args.Int("RequestedState", -1);
    if (want != 4 && want != 5) {
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
  out.push_back(std::make_unique<ListProvider>(
      cim::ClassSpec{
          .name = "Msvm_AffectedJobElement",
          .superclass = "CIM_AffectedJobElement",
          .association = true,
          .properties = {{.name = "AffectedElement",
                          .type = "reference",
                          .key = true,
                          .reference_class = "CIM_ManagedElement"},
                         {.name = "AffectingElement",
                          .type = "reference",
                          .key = true,
                          .reference_class = "Msvm_ConcreteJob"},
                         {.name = "ElementEffects", .type = "uint16", .is_array = true}}},
      [jobs](const cim::ClassSpec& spec) -> Result<std::vector<cim::Instance>> {
        VMG_ASSIGN_OR_RETURN(auto all, jobs->List());
        std::vector<cim::Instance> rows;
        for (const auto& j : all) {
          for (const auto& a : j.affected) {
            rows.push_back(cim::InstanceBuilder(spec)
                               .Ref("AffectedElement", AffectedPath(a))
                               .Ref("AffectingElement", JobPath(j.id))
                               .Ints("ElementEffects", {5})  // Create
                               .Build());
          }
        }
        return rows;
      }));
  return out;
}

}  // namespace vmgroup::services
