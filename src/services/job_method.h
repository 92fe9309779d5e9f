// The one path of a service method that runs as a job (reference §11):
// its check refuses it with the method's return code, or its job starts and
// it answers 4096. A handler then reads as its arguments, its check, its
// job's description and its work.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "cim/provider.h"
#include "services/jobs.h"

namespace vmgroup::services {

// The job a method starts, as JobManager::Start records it, and what the
// method answers beside the job's reference.
struct JobMethod {
  int type = 0;              // JobType
  std::string description;   // for people
  bool cancellable = false;  // honours RequestStop
  std::string subject;       // JobManager::Start's subject; empty for none
  // Out-parameters after Job, e.g. the reference of what the job makes.
  std::vector<cim::OutParam> out;
};

// Answers a method that runs as a job. When `check` (what the method
// validated before anything starts) is not OK: refused with `family`'s code
// for it and its message; `describe` is not called, nothing starts. Else
// `describe` gives the job (its error is the call's, and nothing starts),
// `work` runs on the job's own thread (JobManager::Start; its failures end
// the job with `family`'s codes), and the answer is 4096 with the job's
// reference, then the job's out-parameters. An error when the job cannot be
// recorded.
// REQUIRES: `jobs` is not null.
Result<cim::MethodResult> StartJob(JobManager* jobs, ErrorCodeOf family, const Status& check,
                                   const std::function<Result<JobMethod>()>& describe,
                                   JobWork work);

}  // namespace vmgroup::services
