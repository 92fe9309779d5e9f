#include "engine/spanning_cut.h"

#include <algorithm>
#include <limits>

#include "engine/fault_points.h"
#include "engine/parallel.h"

namespace vmgroup::engine {
namespace {

// This host's answer to Pause or Resume, stamped with its clock.
Result<HostLease> LeaseOf(Result<HostCutStatus> answered) {
  VMG_ASSIGN_OR_RETURN(HostCutStatus s, std::move(answered));
  return HostLease{.vm_ids = s.vm_ids,
                   .members = s.lease.members,
                   .lease_state = LeaseStateName(s.lease.state),
                   .unguarded = s.lease.unguarded,
                   .host_time_us = Env::Default()->NowMicros()};
}

// Takes the part back on every host; the aborts that failed, by host.
std::string AbortAll(const std::vector<CutHost*>& hosts, const std::string& snapshot_id) {
  const std::vector<Status> aborted =
      EachInParallel(hosts.size(), [&](size_t i) { return hosts[i]->Abort(snapshot_id); });
  std::string failed;
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (aborted[i].ok()) continue;
    failed += "; aborting its part on " + hosts[i]->name() + " failed too: " + aborted[i].message();
  }
  return failed;
}

}  // namespace

Result<HostLease> LocalCutHost::Pause(const std::string& snapshot_id, Duration lease, bool cut) {
  return LeaseOf(cuts_->Pause(snapshot_id, lease, cut));
}

Result<HostLease> LocalCutHost::Resume(const std::string& snapshot_id) {
  return LeaseOf(cuts_->Resume(snapshot_id));
}

Result<BackupSession> LocalCutHost::BeginBackup(const HostBackupRequest& request) {
  VMG_ASSIGN_OR_RETURN(BackupSession s,
                       backups_->Begin({.collection_id = request.collection_id,
                                        .snapshot_id = request.snapshot_id,
                                        .incremental_from = request.incremental_from,
                                        .transport = request.transport}));
  backups_->ServeInBackground(s.id, request.idle_timeout);
  return s;
}

Status LocalCutHost::EndBackup(const std::string& session_id) {
  auto ended = backups_->End({.id = session_id});
  if (ended.status().code() == Code::kNotFound) return Status::Ok();
  return ended.status();
}

Status LocalCutHost::Export(const std::string& snapshot_id, const std::string& directory,
                            bool copy_storage, const std::string& base) {
  return cuts_
      ->ExportPart({.snapshot_id = snapshot_id,
                    .directory = directory,
                    .copy_storage = copy_storage,
                    .base = base})
      .status();
}

Result<SpanningCutReport> TakeSpanningCut(Env* env, const std::vector<CutHost*>& hosts,
                                          const SpanningCutRequest& request) {
  if (hosts.empty()) return Status::InvalidArgument("a snapshot across hosts needs hosts");
  SpanningCutReport report;
  report.hosts.resize(hosts.size());
  for (size_t i = 0; i < hosts.size(); ++i) report.hosts[i].name = hosts[i]->name();
  const HostCutRequest part{.collection_id = request.collection_id,
                            .snapshot_id = request.snapshot_id,
                            .name = request.name,
                            .type = request.type,
                            .consistency = request.consistency,
                            .fallback = request.fallback,
                            .step_timeout = request.step_timeout};
  // One step on every host; on any failure, every part is taken back.
  const auto step = [&](const char* what, auto call) -> Status {
    const std::vector<Status> done = EachInParallel(hosts.size(), call);
    for (size_t i = 0; i < hosts.size(); ++i) {
      if (done[i].ok()) continue;
      const std::string aborts = AbortAll(hosts, request.snapshot_id);
      return Status(done[i].code(), std::string(what) + " on " + hosts[i]->name() + ": " +
                                        done[i].message() + aborts);
    }
    return Status::Ok();
  };
  // A step that answers a lease, into `exchange` of each host, timed on
  // our clock.
  const auto leased = [&](LeaseExchange SpannedHost::*exchange, auto answer) {
    return [&, exchange, answer](size_t i) -> Status {
      LeaseExchange& x = report.hosts[i].*exchange;
      x.sent_us = env->NowMicros();
      Result<HostLease> r = answer(*hosts[i]);
      x.answered_us = env->NowMicros();
      if (!r.ok()) return r.status();
      x.answer = std::move(*r);
      return Status::Ok();
    };
  };

  // A fault point once every host took a step (fault_points.h): a failure
  // there is the coordinator's own, and takes every part back too.
  const auto reached = [&](std::string_view point) -> Status {
    Status hit = env->Hit(point, request.snapshot_id);
    if (hit.ok()) return hit;
    return Status(hit.code(), hit.message() + AbortAll(hosts, request.snapshot_id));
  };

  VMG_RETURN_IF_ERROR(step("preparing", [&](size_t i) { return hosts[i]->Prepare(part); }));
  VMG_RETURN_IF_ERROR(reached(fault::kSpanPrepared));
  if (request.cancelled && request.cancelled()) {
    return Status::Cancelled("cancelled before the cut; nothing was kept" +
                             AbortAll(hosts, request.snapshot_id));
  }
  VMG_RETURN_IF_ERROR(step("pausing", leased(&SpannedHost::pause, [&](CutHost& h) {
                             return h.Pause(request.snapshot_id, request.lease,
                                            request.cut_with_pause);
                           })));
  if (!request.cut_with_pause) {
    VMG_RETURN_IF_ERROR(
        step("cutting", [&](size_t i) { return hosts[i]->Cut(request.snapshot_id); }));
  }
  VMG_RETURN_IF_ERROR(reached(fault::kSpanPaused));
  VMG_RETURN_IF_ERROR(
      step("resuming", leased(&SpannedHost::resume, [&](CutHost& h) -> Result<HostLease> {
             VMG_ASSIGN_OR_RETURN(HostLease l, h.Resume(request.snapshot_id));
             // A host whose lease ran out resumed by itself,
             // perhaps before another host cut: the cuts may
             // not be of one instant.
             if (l.lease_state != LeaseStateName(LeaseState::kResumed)) {
               return Status::Timeout("its pause lease ran out (" + l.lease_state +
                                      ") before every host had cut: the cut may not be of one "
                                      "instant; take it with a longer lease");
             }
             return l;
           })));
  VMG_RETURN_IF_ERROR(reached(fault::kSpanResumed));
  VMG_RETURN_IF_ERROR(step("committing", [&](size_t i) {
    Status committed = hosts[i]->Commit(request.snapshot_id);
    return committed.ok() ? env->Hit(fault::kSpanHostCommitted, hosts[i]->name()) : committed;
  }));
  VMG_RETURN_IF_ERROR(reached(fault::kSpanAllCommitted));

  int64_t first_pause = std::numeric_limits<int64_t>::max(), last_resume = 0;
  int64_t earliest = std::numeric_limits<int64_t>::max(), latest = 0;
  for (SpannedHost& h : report.hosts) {
    first_pause = std::min(first_pause, h.pause.sent_us);
    last_resume = std::max(last_resume, h.resume.answered_us);
    // The host answered Resume at host_time_us on its clock, somewhere
    // between our send and our receipt: its clock minus ours lies in
    // [host_time - answered, host_time - sent].
    int64_t first_cut = std::numeric_limits<int64_t>::max(), last_cut = 0;
    for (const LeasedTiming& t : h.resume.answer.members) {
      if (t.cut_time_us == 0) continue;
      first_cut = std::min(first_cut, t.cut_time_us);
      last_cut = std::max(last_cut, t.cut_time_us);
    }
    if (last_cut == 0) continue;  // no member of its runs: its commit was its cut
    const int64_t host_time = h.resume.answer.host_time_us;
    h.earliest_cut_us = first_cut - (host_time - h.resume.sent_us);
    h.latest_cut_us = last_cut - (host_time - h.resume.answered_us);
    earliest = std::min(earliest, h.earliest_cut_us);
    latest = std::max(latest, h.latest_cut_us);
  }
  report.window_us = last_resume - first_pause;
  if (latest > 0) report.cut_spread_us = latest - earliest;
  return report;
}

}  // namespace vmgroup::engine
