#include "services/jobs.h"

#include <algorithm>

#include "base/ids.h"
#include "base/log.h"
#include "base/validate.h"
#include "schema/classes.h"

namespace vmgroup::services {

void JobControl::Progress(int percent) { manager_->SetProgress(id_, percent); }

JobManager::JobManager(Env* env, catalog::Catalog* catalog, std::chrono::microseconds retention)
    : env_(env), catalog_(catalog), retention_(retention) {}

JobManager::~JobManager() {
  std::map<std::string, std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& [id, t] : threads) t.join();
}

Result<std::string> JobManager::Start(int type, std::string description, bool cancellable,
                                      ErrorCodeOf code_of, JobWork work, std::string subject) {
  catalog::JobRecord job;
  job.id = NewGuid();
  job.type = type;
  job.description = std::move(description);
  job.cancellable = cancellable;
  // Running before the caller answers 4096: naive clients poll only while
  // JobState is 4 (reference linux-anchors §6).
  job.state = catalog::JobState::kRunning;
  job.created_us = job.started_us = env_->NowMicros();
  if (!subject.empty()) job.affected.push_back(std::move(subject));
  VMG_RETURN_IF_ERROR(catalog_->InsertJob(job));
  auto stop = std::make_shared<std::atomic<bool>>(false);
  std::vector<std::thread> finished;
  std::lock_guard lock(mu_);
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (running_.count(it->first)) {
      ++it;
    } else {
      finished.push_back(std::move(it->second));
      it = threads_.erase(it);
    }
  }
  for (auto& t : finished) t.join();  // past its work: at most a catalog write away
  running_[job.id] = stop;
  const std::string id = job.id;
  threads_[id] = std::thread([this, job = std::move(job), code_of, work = std::move(work), stop] {
    Run(job, code_of, work, stop);
  });
  return id;
}

void JobManager::Run(catalog::JobRecord job, ErrorCodeOf code_of, JobWork work,
                     std::shared_ptr<std::atomic<bool>> stop) {
  JobControl control(this, job.id, stop);
  Result<std::vector<std::string>> result = work(control);
  {
    std::lock_guard lock(mu_);
    running_.erase(job.id);
  }
  // Re-read: progress was recorded meanwhile.
  if (auto current = catalog_->GetJob(job.id); current.ok()) job = *current;
  job.ended_us = env_->NowMicros();
  if (result.ok()) {
    job.state = control.warnings_.empty() ? catalog::JobState::kCompleted
                                          : catalog::JobState::kCompletedWithWarnings;
    job.percent = 100;
    job.affected = *result;
    for (const auto& w : control.warnings_) {
      job.error_description += (job.error_description.empty() ? "" : "; ") + w;
    }
  } else {
    const Status& s = result.status();
    job.state = s.code() == Code::kCancelled ? catalog::JobState::kTerminated
                                             : catalog::JobState::kException;
    job.error_code = static_cast<int>(code_of(s));
    job.error_description = s.message();
    job.affected.clear();  // its subject, which the failed work did not make or change
  }
  RecordEnd(std::move(job), code_of);
}

Status JobManager::Write(const catalog::JobRecord& job) {
  VMG_RETURN_IF_ERROR(env_->Hit(kJobStateWrite, job.id));
  return catalog_->UpdateJob(job);
}

void JobManager::RecordEnd(catalog::JobRecord job, ErrorCodeOf code_of) {
  // Descriptions hold names stored before names were checked: one log line each.
  const std::string what = "job " + job.id + " (" + Printable(job.description) + ")";
  auto record = [&] {
    if (job.state == catalog::JobState::kException) {
      Log(LogLevel::kWarning, what + " failed: " + Printable(job.error_description));
    }
    return Write(job);
  };
  Status written = record();
  if (written.ok()) return;
  // What the work reached is not what the catalog says: the job failed.
  std::string reached = "completed";
  if (job.state == catalog::JobState::kTerminated) reached = "was cancelled";
  if (job.state == catalog::JobState::kException) {
    reached = "failed (" + job.error_description + ")";
  }
  job.state = catalog::JobState::kException;
  job.error_code = static_cast<int>(code_of(written));
  job.error_description =
      "the job's work " + reached + ", but vmgroupd could not record its end: " + written.message();
  written = record();
  if (written.ok()) return;
  Log(LogLevel::kError, what + ": its end is kept in memory until the catalog takes it: " +
                            Printable(written.message()));
  std::lock_guard lock(unrecorded_mu_);
  unrecorded_[job.id] = std::move(job);
}

void JobManager::SetProgress(const std::string& id, int percent) {
  auto job = catalog_->GetJob(id);
  if (!job.ok() || job->state != catalog::JobState::kRunning) return;
  job->percent = std::clamp(percent, 0, 100);
  // Progress only informs; the job's end is recorded however this goes.
  if (Status s = Write(*job); !s.ok()) {
    Log(LogLevel::kWarning, "job " + id + ": progress not recorded: " + Printable(s.message()));
  }
}

Status JobManager::RequestStop(const std::string& id) {
  VMG_ASSIGN_OR_RETURN(catalog::JobRecord job, catalog_->GetJob(id));
  std::lock_guard lock(mu_);
  auto it = running_.find(id);
  if (it == running_.end()) return Status::InvalidState("job " + id + " has already ended");
  if (!job.cancellable) return Status::NotSupported("job " + id + " cannot be cancelled");
  it->second->store(true);
  return Status::Ok();
}

Result<catalog::JobRecord> JobManager::Get(const std::string& id) {
  Result<catalog::JobRecord> job = [&]() -> Result<catalog::JobRecord> {
    std::lock_guard lock(unrecorded_mu_);
    if (auto it = unrecorded_.find(id); it != unrecorded_.end()) return it->second;
    return catalog_->GetJob(id);
  }();
  if (!job.ok()) return job;
  if (job->ended_us > 0 && job->ended_us < env_->NowMicros() - retention_.count()) {
    return Status::NotFound("job " + id + " ended more than its retention ago and was removed");
  }
  return job;
}

Result<std::vector<catalog::JobRecord>> JobManager::List() {
  const int64_t cutoff = env_->NowMicros() - retention_.count();
  VMG_RETURN_IF_ERROR(catalog_->DeleteJobsEndedBefore(cutoff));
  VMG_ASSIGN_OR_RETURN(auto jobs, catalog_->ListJobs());
  std::lock_guard lock(unrecorded_mu_);
  for (auto& job : jobs) {
    if (auto it = unrecorded_.find(job.id); it != unrecorded_.end()) job = it->second;
  }
  std::erase_if(jobs,
                [&](const catalog::JobRecord& j) { return j.ended_us > 0 && j.ended_us < cutoff; });
  // Ends kept in memory go to the catalog as soon as it takes them.
  std::erase_if(unrecorded_, [&](const auto& entry) {
    if (!Write(entry.second).ok()) return false;
    Log(LogLevel::kInfo, "job " + entry.first + ": its end is recorded now");
    return true;
  });
  return jobs;
}

namespace {

// What recovery did to the work on snapshot `id`: the job's end state and
// what to say. Killed, with recovery's summary, when it is not known.
std::pair<catalog::JobState, std::string> OutcomeFor(const engine::RecoveryReport& r,
                                                     const std::string& id) {
  using catalog::JobState;
  const auto has = [&](const std::vector<std::string>& ids) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  for (const auto& e : r.exports_taken_back) {
    if (e.snapshot_id == id) {
      return {JobState::kKilled,
              "the partial export in " + e.directory + " was removed; run the export again"};
    }
  }
  for (const auto& e : r.exports_kept) {
    if (e.snapshot_id == id) {
      return {JobState::kCompletedWithWarnings,
              "the export in " + e.directory + " had finished; it is kept"};
    }
  }
  if (has(r.completed)) {
    return {JobState::kCompletedWithWarnings,
            "the cut had happened on every VM; the snapshot was completed"};
  }
  if (has(r.rolled_back)) {
    return {JobState::kKilled, "the snapshot was rolled back; nothing of it is left"};
  }
  if (has(r.applies_undone)) {
    return {JobState::kKilled, "the apply was undone; the VMs are as they were before it"};
  }
  if (has(r.applies_finished)) {
    return {JobState::kCompletedWithWarnings,
            "the apply had committed; the libvirt domains that ran before it run again"};
  }
  if (has(r.destroyed)) {
    return {JobState::kCompletedWithWarnings, "the destroy of the snapshot was finished"};
  }
  return {JobState::kKilled, r.Summary()};
}

}  // namespace

Status JobManager::EndInterrupted(const engine::RecoveryReport& recovery) {
  VMG_ASSIGN_OR_RETURN(auto jobs, catalog_->ListJobs());
  for (auto& job : jobs) {
    if (job.ended_us != 0) continue;
    // The group snapshot the job works on: its "Class:id" entry (Affected).
    const std::string snapshot = std::string(schema::SnapshotCollection::kClass) + ":";
    std::string subject;
    for (const auto& a : job.affected) {
      if (a.starts_with(snapshot)) subject = a.substr(snapshot.size());
    }
    auto [state, what] = subject.empty() ? std::pair{catalog::JobState::kKilled, recovery.Summary()}
                                         : OutcomeFor(recovery, subject);
    job.state = state;
    job.ended_us = env_->NowMicros();
    if (state == catalog::JobState::kCompletedWithWarnings) {
      job.percent = 100;
    } else {
      job.error_code = 32768;  // Failed
      job.affected.clear();
    }
    job.error_description = "ended by recovery after a daemon restart: " + what;
    Log(LogLevel::kWarning, "job " + job.id + " (" + Printable(job.description) + ") " +
                                Printable(job.error_description));
    VMG_RETURN_IF_ERROR(catalog_->UpdateJob(job));
  }
  return Status::Ok();
}

}  // namespace vmgroup::services
