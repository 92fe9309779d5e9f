#include "services/job_method.h"

#include "services/common.h"

namespace vmgroup::services {

Result<cim::MethodResult> StartJob(JobManager* jobs, ErrorCodeOf family, const Status& check,
                                   const std::function<Result<JobMethod>()>& describe,
                                   JobWork work) {
  if (!check.ok()) return Outcome(family, check);
  VMG_ASSIGN_OR_RETURN(JobMethod m, describe());
  VMG_ASSIGN_OR_RETURN(std::string job, jobs->Start(m.type, std::move(m.description), m.cancellable,
                                                    family, std::move(work), std::move(m.subject)));
  cim::MethodResult r = JobStarted(job);
  for (auto& p : m.out) r.out.push_back(std::move(p));
  return r;
}

}  // namespace vmgroup::services
