#include "engine/spanning_backups.h"

#include <algorithm>

#include "base/ids.h"
#include "base/log.h"
#include "engine/parallel.h"
#include "engine/snapshot_plan.h"

namespace vmgroup::engine {
namespace {

std::string HostName(const std::string& host) { return host.empty() ? "this host" : host; }

// `failures` joined, each "<host>: <why>"; "" when every status is OK.
std::string Failures(const std::vector<catalog::SpanningPart>& hosts,
                     const std::vector<Status>& done) {
  std::string out;
  for (size_t i = 0; i < done.size(); ++i) {
    if (done[i].ok()) continue;
    out += (out.empty() ? "" : "; ") + HostName(hosts[i].host) + ": " + done[i].message();
  }
  return out;
}

std::vector<catalog::SpanningPart> PartsOf(const catalog::SpanningBackupIntent& intent) {
  std::vector<catalog::SpanningPart> out;
  for (const auto& h : intent.hosts) out.push_back({.host = h});
  return out;
}

}  // namespace

Status SpanningBackups::Validate(const BackupRequest& request) {
  VMG_RETURN_IF_ERROR(CheckTransport(parts_.options, request.transport));
  VMG_ASSIGN_OR_RETURN(auto group, parts_.catalog->GetCollection(request.collection_id));
  if (group.remote_members.empty()) {
    return Status::InvalidArgument("group " + group.name + " has no member on another host");
  }
  if (!request.incremental_from.empty()) {
    auto rp = parts_.catalog->GetSpanningReferencePoint(request.incremental_from);
    if (rp.status().code() == Code::kNotFound) {
      return Status::NotSupported("reference point " + request.incremental_from +
                                  " is not one across hosts: an incremental session of group " +
                                  group.name + " starts from one of its reference points");
    }
    VMG_RETURN_IF_ERROR(rp.status());
    if (rp->collection_id != group.id) {
      return Status::InvalidArgument("reference point " + rp->name +
                                     " belongs to another group than " + group.name);
    }
    if (rp->state != catalog::SpanningState::kReferencePoint) {
      return Status::InvalidState("reference point " + rp->name +
                                  " is being converted or destroyed");
    }
  }
  if (request.snapshot_id.empty()) {
    return spanning_.Validate({.collection_id = group.id,
                               .type = kSnapshotRecovery,
                               .consistency = request.consistency,
                               .fallback = request.fallback});
  }
  auto s = parts_.catalog->GetSpanning(request.snapshot_id);
  if (s.status().code() == Code::kNotFound || (s.ok() && !IsSnapshot(*s))) {
    return Status::NotSupported("snapshot " + request.snapshot_id +
                                " is no snapshot across hosts of group " + group.name);
  }
  VMG_RETURN_IF_ERROR(s.status());
  if (s->collection_id != group.id) {
    return Status::InvalidArgument("snapshot " + s->name + " belongs to another group than " +
                                   group.name);
  }
  if (s->state != catalog::SpanningState::kComplete) {
    return Status::InvalidState("snapshot " + s->name +
                                " is not complete: only a complete "
                                "snapshot is served");
  }
  return Status::Ok();
}

catalog::SpanningBackupIntent SpanningBackups::IntentOf(const Live& live, bool took_snapshot) {
  catalog::SpanningBackupIntent intent{.id = live.session.id,
                                       .collection_id = live.session.collection_id,
                                       .snapshot_id = live.session.snapshot_id,
                                       .took_snapshot = took_snapshot,
                                       .sessions = live.host_sessions};
  for (const auto& h : live.hosts) intent.hosts.push_back(h.host);
  return intent;
}

Result<BackupSession> SpanningBackups::Begin(const BackupRequest& request, Duration idle_timeout) {
  VMG_RETURN_IF_ERROR(Validate(request));
  auto live = std::make_shared<Live>();
  BackupSession& session = live->session;
  session = {.id = request.id.empty() ? NewGuid() : request.id,
             .collection_id = request.collection_id,
             .snapshot_id = request.snapshot_id.empty() ? NewGuid() : request.snapshot_id,
             .took_snapshot = request.snapshot_id.empty(),
             .incremental_from = request.incremental_from,
             .began_us = parts_.env->NowMicros()};
  {
    std::lock_guard lock(mu_);
    if (sessions_.count(session.id) > 0 || !beginning_.insert(session.id).second) {
      return Status::AlreadyExists("backup session " + session.id + " exists already");
    }
  }
  struct Release {
    SpanningBackups* self;
    std::string id;
    ~Release() {
      std::lock_guard lock(self->mu_);
      self->beginning_.erase(id);
    }
  } release{this, session.id};

  // Recorded before the snapshot: a coordinator killed from here on leaves
  // Recover the record to end it by.
  const catalog::SpanningBackupIntent recorded = IntentOf(*live, session.took_snapshot);
  VMG_RETURN_IF_ERROR(parts_.catalog->InsertSpanningBackup(recorded));
  if (session.took_snapshot) {
    auto taken = spanning_.Take({.collection_id = session.collection_id,
                                 .type = kSnapshotRecovery,
                                 .name = "Backup session " + session.id,
                                 .id = session.snapshot_id,
                                 .consistency = request.consistency,
                                 .fallback = request.fallback,
                                 .warning = request.warning});
    if (!taken.ok()) {
      // Take took back what it made (or left its own record to Recover).
      (void)parts_.catalog->DeleteSpanningBackup(session.id);
      return taken.status();
    }
  }
  VMG_ASSIGN_OR_RETURN(catalog::SpanningSnapshotRecord s,
                       parts_.catalog->GetSpanning(session.snapshot_id));
  live->hosts = s.parts;
  live->host_sessions.assign(s.parts.size(), "");
  std::vector<std::vector<BackupMember>> members(s.parts.size());
  const std::vector<Status> begun = EachInParallel(s.parts.size(), [&](size_t i) -> Status {
    VMG_ASSIGN_OR_RETURN(auto host, spanning_.HostOf(s.parts[i]));
    VMG_ASSIGN_OR_RETURN(BackupSession part,
                         host->BeginBackup({.collection_id = session.collection_id,
                                            .snapshot_id = session.snapshot_id,
                                            .incremental_from = session.incremental_from,
                                            .transport = request.transport,
                                            .idle_timeout = idle_timeout}));
    live->host_sessions[i] = part.id;
    members[i] = std::move(part.members);
    for (auto& m : members[i]) m.host = s.parts[i].host;
    return Status::Ok();
  });
  Status served = Status::Ok();
  if (std::string failed = Failures(s.parts, begun); !failed.empty()) {
    served = Status::Failed("backup session " + session.id + " not begun: " + failed);
  }
  if (served.ok()) served = parts_.catalog->SetSpanningBackupSessions(IntentOf(*live, false));
  if (!served.ok()) {
    // What began is ended again, and the snapshot taken destroyed.
    auto undone = Settle(IntentOf(*live, session.took_snapshot), {.id = session.id});
    if (!undone.ok()) {
      return Status(served.code(), served.message() + "; and " + undone.status().message());
    }
    return served;
  }
  for (auto& part : members) {
    for (auto& m : part) session.members.push_back(std::move(m));
  }
  std::lock_guard lock(mu_);
  sessions_[session.id] = live;
  return session;
}

Status SpanningBackups::EndOnHosts(const catalog::SpanningBackupIntent& intent) {
  const std::vector<catalog::SpanningPart> hosts = PartsOf(intent);
  const std::vector<Status> ended = EachInParallel(hosts.size(), [&](size_t i) -> Status {
    if (i >= intent.sessions.size() || intent.sessions[i].empty()) return Status::Ok();
    VMG_ASSIGN_OR_RETURN(auto host, spanning_.HostOf(hosts[i]));
    return host->EndBackup(intent.sessions[i]);
  });
  if (std::string failed = Failures(hosts, ended); !failed.empty()) {
    return Status::Unavailable("backup session " + intent.id + " still serves on " + failed);
  }
  return Status::Ok();
}

Result<std::optional<catalog::ReferencePointRecord>> SpanningBackups::Settle(
    const catalog::SpanningBackupIntent& intent, const BackupEndRequest& request) {
  VMG_RETURN_IF_ERROR(EndOnHosts(intent));
  return Finish(intent, request);
}

Result<std::optional<catalog::ReferencePointRecord>> SpanningBackups::Finish(
    const catalog::SpanningBackupIntent& intent, const BackupEndRequest& request) {
  std::optional<catalog::ReferencePointRecord> made;
  Status outcome;
  if (request.to_reference_point) {
    auto converted = spanning_.Convert(intent.snapshot_id, request.reference_point_id);
    if (converted.ok()) made = SpanningSnapshots::AsGroupReferencePoint(*converted);
    outcome = converted.status();
  }
  // A conversion decided is finished by SpanningSnapshots::Recover; one a
  // host refused leaves the snapshot, destroyed here if the session took it.
  auto s = parts_.catalog->GetSpanning(intent.snapshot_id);
  if (!made && intent.took_snapshot && s.ok() && IsSnapshot(*s)) {
    Status d = spanning_.Destroy(intent.snapshot_id);
    if (!d.ok()) {
      outcome =
          outcome.ok() ? d : Status(outcome.code(), outcome.message() + "; and " + d.message());
    }
  }
  // Whatever is left to do, Recover of the snapshot across hosts does it.
  VMG_RETURN_IF_ERROR(parts_.catalog->DeleteSpanningBackup(intent.id));
  if (!outcome.ok()) {
    return Status(outcome.code(),
                  "backup session " + intent.id + " ended" +
                      (request.to_reference_point ? ", but no reference point was made: " : ": ") +
                      outcome.message());
  }
  return made;
}

Result<std::optional<catalog::ReferencePointRecord>> SpanningBackups::End(
    const BackupEndRequest& request) {
  std::shared_ptr<Live> live;
  {
    std::lock_guard lock(mu_);
    VMG_ASSIGN_OR_RETURN(live, StartEnding(sessions_, request.id));
  }
  const catalog::SpanningBackupIntent intent = IntentOf(*live, live->session.took_snapshot);
  if (Status stopped = EndOnHosts(intent); !stopped.ok()) {
    // The session stays, to be ended again.
    std::lock_guard lock(mu_);
    live->session.state = BackupState::kServing;
    return stopped;
  }
  auto ended = Finish(intent, request);
  std::lock_guard lock(mu_);
  sessions_.erase(request.id);
  return ended;
}

Result<BackupEnding> SpanningBackups::Serve(const std::string& id,
                                            const std::function<bool()>& stop, Duration poll) {
  std::vector<std::unique_ptr<CutHost>> watch;  // this thread's own, one per host
  while (true) {
    std::shared_ptr<Live> live;
    BackupState state;
    {
      std::lock_guard lock(mu_);
      auto it = sessions_.find(id);
      if (it == sessions_.end()) return BackupEnding::kEnded;
      live = it->second;
      state = live->session.state;  // End changes it, under mu_
    }
    std::optional<BackupEnding> ending;
    if (stop && stop()) {
      ending = BackupEnding::kStopped;
    } else if (state != BackupState::kEnding) {
      bool serving = false;
      for (size_t i = 0; i < live->hosts.size() && !serving; ++i) {
        if (watch.size() <= i) {
          auto host = spanning_.HostOf(live->hosts[i]);
          watch.push_back(host.ok() ? std::move(*host) : nullptr);
        }
        auto still = watch[i] ? watch[i]->BackupServing(live->host_sessions[i])
                              : Result<bool>(Status::Unavailable("no way to the host"));
        // Not known: counted as serving, so that no session ends for
        // idleness nobody measured.
        serving = !still.ok() || *still;
      }
      if (!serving) ending = BackupEnding::kIdle;
    }
    if (ending) {
      auto ended = End({.id = id});
      if (ended.ok()) return *ending;
      const Code code = ended.status().code();
      if (code != Code::kNotFound && code != Code::kInvalidState && code != Code::kUnavailable) {
        return ended.status();
      }
    }
    parts_.env->SleepFor(poll);
  }
}

bool SpanningBackups::Has(const std::string& id) {
  std::lock_guard lock(mu_);
  return sessions_.count(id) > 0;
}

std::vector<BackupSession> SpanningBackups::List() {
  std::lock_guard lock(mu_);
  return SessionsOf(sessions_);
}

Result<BackupSession> SpanningBackups::Get(const std::string& id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(auto live, FindSession(sessions_, id));
  return live->session;
}

Result<storage::MarkedRanges> SpanningBackups::Changes(const std::string& id,
                                                       const std::string& vm_id, int disk,
                                                       uint64_t offset, uint64_t length) {
  std::shared_ptr<Live> live;
  {
    std::lock_guard lock(mu_);
    VMG_ASSIGN_OR_RETURN(live, FindSession(sessions_, id));
  }
  VMG_ASSIGN_OR_RETURN(const BackupMember* m, FindMember(live->session, vm_id));
  for (size_t i = 0; i < live->hosts.size(); ++i) {
    if (live->hosts[i].host != m->host) continue;
    VMG_ASSIGN_OR_RETURN(auto host, spanning_.HostOf(live->hosts[i]));
    auto changes = host->BackupChanges(live->host_sessions[i], m->vm_id, disk, offset, length);
    if (!changes.ok()) return changes.status().Annotate(host->name());
    return changes;
  }
  return Status::NotFound("backup session " + id + " has no host " + HostName(m->host));
}

int SpanningBackups::Recover() {
  auto all = parts_.catalog->ListSpanningBackups();
  if (!all.ok()) {
    Log(LogLevel::kWarning, "backup sessions across hosts: " + all.status().ToString());
    return 1;
  }
  int left = 0;
  for (const auto& intent : *all) {
    {
      std::lock_guard lock(mu_);
      if (sessions_.count(intent.id) > 0 || beginning_.count(intent.id) > 0) continue;
    }
    auto settled = Settle(intent, {.id = intent.id});
    if (settled.ok()) {
      Log(LogLevel::kInfo, "backup session " + intent.id +
                               " across hosts, left by the last run, is ended on every host" +
                               (intent.took_snapshot ? " and its snapshot destroyed" : ""));
    } else {
      Log(LogLevel::kWarning, settled.status().message() + " (vmgroupd tries again)");
      ++left;
    }
  }
  return left;
}

}  // namespace vmgroup::engine
