// JobManager: the life of an Msvm_ConcreteJob (reference §11, DESIGN §6).
// A long method records its job as Running before it answers 4096, then
// the work runs on its own thread and ends the job in exactly one of
// Completed, Terminated (cancelled), Killed or Exception, with
// PercentComplete, ErrorCode and ErrorDescription filled; work that succeeded
// but warned ends Completed with warnings (32768), its warnings in
// ErrorDescription. Jobs live in the
// catalog, so they survive a restart of the daemon; a job the daemon was
// running when it died is ended at the next start by EndInterrupted, with
// what recovery did to its work. Finished jobs stay queryable for
// `retention` (TimeBeforeRemoval, 5 minutes).
//
// No end goes unrecorded: when the catalog refuses a job's end, the job
// ends in Exception saying why (written again as such); when even that
// write fails, the end is kept in memory, where Get and List find it,
// logged as an error, and written by a later List once the catalog takes
// it (if the daemon stops first, EndInterrupted ends the catalog's
// Running record at the next start). Failed jobs, and jobs recovery ended,
// are logged as warnings (shown at the daemon's default level, info).
//
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/env.h"
#include "base/result.h"
#include "catalog/catalog.h"
#include "engine/recovery.h"

namespace vmgroup::services {

// Fault point (Env::Hit) before each write of a job's state; subject: the
// job id. An error there stands for the catalog refusing the write.
inline constexpr std::string_view kJobStateWrite = "job.state_write";

// What the work of a job may ask and tell.
class JobControl {
 public:
  // True once a client asked the job to stop.
  bool StopRequested() const { return stop_->load(); }
  // Records how far the job is, 0..100.
  void Progress(int percent);
  // Records something the caller should know of work that succeeds anyway;
  // the job then ends Completed with warnings. Called from the job's thread.
  void Warn(std::string warning) { warnings_.push_back(std::move(warning)); }

 private:
  friend class JobManager;
  JobControl(class JobManager* m, std::string id, std::shared_ptr<std::atomic<bool>> stop)
      : manager_(m), id_(std::move(id)), stop_(std::move(stop)) {}
  class JobManager* manager_;
  std::string id_;
  std::shared_ptr<std::atomic<bool>> stop_;
  std::vector<std::string> warnings_;
};

// The work of a job: returns what it created or touched, as
// "<CIM class>:<id>" (they become Msvm_AffectedJobElement links). An error
// ends the job in Exception, or Terminated if it is Cancelled.
using JobWork = std::function<Result<std::vector<std::string>>(JobControl&)>;
// The method's return-code family, to turn an error into the job's ErrorCode.
using ErrorCodeOf = uint32_t (*)(const Status&);

class JobManager {
 public:
  static constexpr std::chrono::minutes kRetention{5};

  JobManager(Env* env, catalog::Catalog* catalog, std::chrono::microseconds retention = kRetention);
  ~JobManager();  // waits for the jobs still running

  // Records a Running job and starts `work` on its own thread; returns the
  // job's id. `cancellable` jobs honour RequestStop. `subject`, when given,
  // is the group snapshot the job works on ("Msvm_SnapshotCollection:<id>",
  // made, applied, destroyed or exported): kept as the job's affected
  // element while it runs, so that EndInterrupted can tell what recovery
  // did to it; a job that fails drops it.
  Result<std::string> Start(int type, std::string description, bool cancellable,
                            ErrorCodeOf code_of, JobWork work, std::string subject = "");

  // Asks a running job to stop. NotSupported if it is not cancellable,
  // InvalidState if it already ended, NotFound if there is no such job.
  Status RequestStop(const std::string& id);

  Result<catalog::JobRecord> Get(const std::string& id);
  // Every job still kept, oldest first (forgets those past retention).
  Result<std::vector<catalog::JobRecord>> List();

  // At start-up, before any job runs: each job a previous daemon left
  // running is ended by what `recovery` did to its subject — Completed with
  // warnings (32768) when
  // recovery finished its work (a snapshot whose cut had happened, a
  // destroy, an export that had only its intent left), Killed when it took
  // the work back (a snapshot rolled back, an apply undone, a partial
  // export removed) or when the job had no subject — its description
  // saying "ended by recovery after a daemon restart: <what>", and logged
  // as a warning.
  Status EndInterrupted(const engine::RecoveryReport& recovery);

  Env* env() const { return env_; }

 private:
  friend class JobControl;
  void Run(catalog::JobRecord job, ErrorCodeOf code_of, JobWork work,
           std::shared_ptr<std::atomic<bool>> stop);
  void SetProgress(const std::string& id, int percent);
  // Writes a job's state to the catalog, through the kJobStateWrite point.
  Status Write(const catalog::JobRecord& job);
  // Records the end of `job` (see the file comment for what a failed write
  // leads to).
  void RecordEnd(catalog::JobRecord job, ErrorCodeOf code_of);

  Env* env_;
  catalog::Catalog* catalog_;
  const std::chrono::microseconds retention_;

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> running_;  // guarded by mu_
  // Every job thread not yet joined, by job id; finished ones are joined
  // at the next Start.
  std::map<std::string, std::thread> threads_;  // guarded by mu_
  // Ended jobs whose end the catalog could not record yet, by job id; List
  // tries again. Its own mutex: a job thread that Start joins while it
  // holds mu_ may be putting its end here.
  std::mutex unrecorded_mu_;
  std::map<std::string, catalog::JobRecord> unrecorded_;  // guarded by unrecorded_mu_
};

}  // namespace vmgroup::services
