#include "engine/backup_sessions.h"

#include <algorithm>

#include "base/ids.h"
#include "base/log.h"
#include "base/tcp_peers.h"
#include "base/unix_peers.h"
#include "engine/fault_points.h"
#include "engine/member_checks.h"
#include "engine/reference_point_convert.h"
#include "engine/snapshot_create.h"
#include "engine/snapshot_destroy.h"
#include "engine/snapshot_plan.h"

namespace vmgroup::engine {
namespace {

// How long reading a disk's changed ranges may take.
constexpr auto kChangesTimeout = std::chrono::seconds(30);
// The most ranges one answer carries; ProcessedByteLength says how far it got.
constexpr size_t kMaxRanges = 100000;

// Destroys snapshot `s`, taken for a session; the error says it remains.
Status DestroyTaken(GroupParts& parts, OperationRunner& runner, const catalog::SnapshotRecord& s) {
  const DestroyRequest request{s.id};
  SnapshotDestroy destroy(parts, request);
  Status d = runner.Run(destroy);
  if (d.ok()) return d;
  return Status(d.code(), "the snapshot " + s.name + " taken for the session remains (" +
                              d.message() + "); destroy it");
}

// OK when the daemon's TLS directory lets it connect to its own TCP
// servers as a client (storage::CheckNbdClientTlsDir); NotSupported, naming
// the files to add, otherwise.
Status ClientTlsDir(GroupParts& parts) {
  const Status client = storage::CheckNbdClientTlsDir(parts.env, parts.options.nbd_tls_dir);
  if (client.ok()) return client;
  return Status::NotSupported("--nbd-tls-dir " + client.message() +
                              ": add the daemon's own client certificate and key, signed by "
                              "the CA of its ca-cert.pem");
}

}  // namespace

BackupSessions::BackupSessions(GroupParts& parts, OperationRunner& runner, std::string directory)
    : parts_(parts), runner_(runner), directory_(std::move(directory)) {
  // Said once at start, as Changes finds it on each call (files added
  // later are used then).
  if (!parts_.options.nbd_tls_dir.empty()) {
    const Status client = ClientTlsDir(parts_);
    Log(LogLevel::kInfo,
        client.ok() ? "changes of backup sessions over TCP (GetVirtualDiskChanges): read with " +
                          parts_.options.nbd_tls_dir + "/client-cert.pem"
                    : "changes of backup sessions over TCP (GetVirtualDiskChanges) refused: " +
                          client.message());
  }
}

Status BackupSessions::Validate(const BackupRequest& request) {
  VMG_RETURN_IF_ERROR(CheckTransport(parts_.options, request.transport));
  VMG_ASSIGN_OR_RETURN(auto group, parts_.catalog->GetCollection(request.collection_id));
  // This host's part of a snapshot across hosts is served as any snapshot
  // (SpanningBackups has each host serve its part); a cut of this host's
  // members alone would be no snapshot of the group.
  if (!group.remote_members.empty() && request.snapshot_id.empty()) {
    return Status::NotSupported("group " + group.name +
                                " has members on other hosts: its sessions are begun across "
                                "hosts (SpanningBackups), not on this host alone");
  }
  std::optional<catalog::ReferencePointRecord> base;
  if (!request.incremental_from.empty()) {
    VMG_ASSIGN_OR_RETURN(base, parts_.catalog->GetReferencePoint(request.incremental_from));
    if (base->collection_id != group.id) {
      return Status::InvalidArgument("reference point " + base->name +
                                     " belongs to another group than " + group.name);
    }
  }
  if (!request.snapshot_id.empty()) {
    VMG_ASSIGN_OR_RETURN(catalog::SnapshotRecord s,
                         parts_.catalog->GetSnapshot(request.snapshot_id));
    if (s.collection_id != group.id) {
      return Status::InvalidArgument("snapshot " + s.name + " belongs to another group than " +
                                     group.name);
    }
    BackupServing serving{.directory = directory_ + "/" + NewGuid(),
                          .transport = request.transport,
                          .snapshot = s,
                          .base = base};
    return runner_.Validate(BackupServe(parts_, serving));
  }
  const SnapshotRequest snapshot_request{.collection_id = group.id,
                                         .type = kSnapshotRecovery,
                                         .consistency = request.consistency,
                                         .fallback = request.fallback};
  SnapshotCreate create(parts_, snapshot_request);
  VMG_RETURN_IF_ERROR(runner_.Validate(create));
  // The images the cut will freeze are the members' active images now.
  std::vector<std::vector<std::string>> frozen;
  for (const auto& vm : create.members()) frozen.push_back(vm.disks);
  return CheckServable(parts_, create.members(), frozen, base ? &*base : nullptr);
}

Result<BackupSession> BackupSessions::Begin(const BackupRequest& request) {
  {
    std::lock_guard lock(mu_);
    if (closing_) return Status::Unavailable("the service is stopping: no new backup session");
  }
  VMG_RETURN_IF_ERROR(Validate(request));
  BackupServing serving{.session_id = request.id.empty() ? NewGuid() : request.id};
  serving.directory = directory_ + "/" + serving.session_id;
  serving.transport = request.transport;
  if (!request.incremental_from.empty()) {
    VMG_ASSIGN_OR_RETURN(serving.base, parts_.catalog->GetReferencePoint(request.incremental_from));
  }
  if (request.snapshot_id.empty()) {
    // The intent comes before the snapshot: a daemon killed once the
    // snapshot is complete, before the session serves, leaves recovery the
    // record to destroy it by. BackupServe adds the members it serves.
    const catalog::BackupIntent intent{.id = serving.session_id,
                                       .collection_id = request.collection_id,
                                       .snapshot_id = NewGuid(),
                                       .took_snapshot = true,
                                       .directory = serving.directory};
    VMG_RETURN_IF_ERROR(parts_.catalog->InsertBackupIntent(intent));
    const SnapshotRequest snapshot_request{.collection_id = request.collection_id,
                                           .type = kSnapshotRecovery,
                                           .name = "Backup session " + serving.session_id,
                                           .id = intent.snapshot_id,
                                           .consistency = request.consistency,
                                           .fallback = request.fallback,
                                           .warning = request.warning};
    SnapshotCreate create(parts_, snapshot_request, parts_.env->Now());
    if (Status made = runner_.Run(create); !made.ok()) {
      (void)parts_.catalog->DeleteBackupIntent(intent.id);
      return made;
    }
    serving.snapshot = create.snapshot();
    serving.took_snapshot = true;
    VMG_RETURN_IF_ERROR(parts_.env->Hit(fault::kBackupSnapshotTaken, serving.session_id));
  } else {
    VMG_ASSIGN_OR_RETURN(serving.snapshot, parts_.catalog->GetSnapshot(request.snapshot_id));
  }
  BackupServe serve(parts_, serving);
  if (Status served = runner_.Run(serve); !served.ok()) {
    if (!serving.took_snapshot) return served;
    Status d = DestroyTaken(parts_, runner_, serving.snapshot);
    // A snapshot that remains keeps its record, for the next start.
    if (d.ok()) (void)parts_.catalog->DeleteBackupIntent(serving.session_id);
    return d.ok() ? served : Status(served.code(), served.message() + "; and " + d.message());
  }
  auto live = std::make_shared<Live>();
  live->session = {.id = serving.session_id,
                   .collection_id = serving.snapshot.collection_id,
                   .snapshot_id = serving.snapshot.id,
                   .took_snapshot = serving.took_snapshot,
                   .incremental_from = request.incremental_from,
                   .began_us = parts_.env->NowMicros(),
                   .members = std::move(serving.members)};
  live->directory = serving.directory;
  std::lock_guard lock(mu_);
  sessions_[live->session.id] = live;
  return live->session;
}

Result<std::optional<catalog::ReferencePointRecord>> BackupSessions::End(
    const BackupEndRequest& request) {
  std::shared_ptr<Live> live;
  {
    std::lock_guard lock(mu_);
    VMG_ASSIGN_OR_RETURN(live, StartEnding(sessions_, request.id));
  }
  auto ended = Finish(*live, request);
  std::lock_guard lock(mu_);
  if (ended.ok()) {
    sessions_.erase(request.id);
  } else {
    live->session.state = live->serving_stopped ? BackupState::kStopped : BackupState::kServing;
  }
  return ended;
}

Result<std::optional<catalog::ReferencePointRecord>> BackupSessions::Finish(
    Live& live, const BackupEndRequest& request) {
  const BackupSession& s = live.session;
  std::vector<std::string> ids;
  for (const auto& m : s.members) ids.push_back(m.vm_id);
  VMG_RETURN_IF_ERROR(
      StopServing(parts_, live.directory, ids).Annotate("ending backup session " + s.id));
  live.serving_stopped = true;
  parts_.served.Remove(s.id);
  VMG_RETURN_IF_ERROR(parts_.env->Hit(fault::kBackupStopped, s.id));
  std::optional<catalog::ReferencePointRecord> made;
  Status outcome;
  if (request.to_reference_point) {
    ReferencePointConvert convert(parts_, s.snapshot_id, request.reference_point_id);
    outcome = runner_.Run(convert);
    if (outcome.ok()) made = convert.reference_point();
  }
  if (!made && s.took_snapshot) {
    VMG_ASSIGN_OR_RETURN(catalog::SnapshotRecord snapshot,
                         parts_.catalog->GetSnapshot(s.snapshot_id));
    Status d = DestroyTaken(parts_, runner_, snapshot);
    if (!d.ok()) {
      return outcome.ok() ? d
                          : Status(outcome.code(), "no reference point made (" + outcome.message() +
                                                       "); and " + d.message());
    }
  }
  if (!outcome.ok()) {
    return Status(outcome.code(), "backup session " + s.id +
                                      " ended, but no reference point was "
                                      "made: " +
                                      outcome.message());
  }
  VMG_RETURN_IF_ERROR(parts_.catalog->DeleteBackupIntent(s.id));
  return made;
}

int BackupSessions::Clients(const Live& live) {
  int clients = 0;
  for (size_t i = 0; i < live.session.members.size(); ++i) {
    const int port = live.session.members[i].port;
    auto peers = port ? ConnectedTcpPeers(parts_.env, port)
                      : ConnectedPeers(parts_.env, BackupSocketPath(live.directory, i));
    // Unreadable: counted as a client, so that a session is never ended
    // for idleness nobody measured.
    clients += peers.ok() ? *peers : 1;
  }
  return clients;
}

Result<BackupEnding> BackupSessions::Serve(const std::string& id, Duration idle_timeout,
                                           const std::function<bool()>& stop, Duration poll) {
  Clock::time_point last_seen = parts_.env->Now();
  while (true) {
    std::shared_ptr<Live> live;
    bool closing = false;
    BackupState state;
    {
      std::lock_guard lock(mu_);
      auto it = sessions_.find(id);
      if (it == sessions_.end()) return BackupEnding::kEnded;
      live = it->second;
      closing = closing_;
      state = live->session.state;
    }
    std::optional<BackupEnding> ending;
    if (closing || (stop && stop())) {
      ending = BackupEnding::kStopped;
    } else if (state != BackupState::kEnding) {
      if (Clients(*live) > 0) last_seen = parts_.env->Now();
      if (parts_.env->Now() - last_seen >= idle_timeout) ending = BackupEnding::kIdle;
    }
    if (ending) {
      auto ended = End({.id = id});
      if (ended.ok()) return *ending;
      // Ended meanwhile by someone else: that end stands (NotFound next
      // time round). Busy: another operation holds the members for now (a
      // snapshot of the group): the end is tried again.
      const Code code = ended.status().code();
      if (code != Code::kNotFound && code != Code::kInvalidState && code != Code::kBusy) {
        return ended.status();
      }
    }
    parts_.env->SleepFor(poll);
  }
}

BackupSessions::~BackupSessions() {
  std::vector<Background> threads;
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    threads.swap(background_);
  }
  for (auto& b : threads) b.thread.join();
}

void BackupSessions::ServeInBackground(const std::string& id, Duration idle_timeout) {
  std::lock_guard lock(mu_);
  // Those done are joined now: a daemon serving sessions for months keeps
  // no thread of an ended one.
  std::erase_if(background_, [](Background& b) {
    if (!*b.done) return false;
    b.thread.join();
    return true;
  });
  auto done = std::make_shared<std::atomic<bool>>(false);
  background_.push_back({.done = done});
  background_.back().thread = std::thread([this, id, idle_timeout, done] {
    auto how = Serve(id, idle_timeout, {});
    if (!how.ok()) {
      Log(LogLevel::kWarning, "backup session " + id + ": " + how.status().ToString());
    } else if (*how == BackupEnding::kIdle) {
      Log(LogLevel::kInfo,
          "backup session " + id + " ended by itself: no reader for " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::seconds>(idle_timeout).count()) +
              " s");
    }
    *done = true;
  });
}

Result<const BackupMember*> FindMember(const BackupSession& s, const std::string& vm_id) {
  for (const auto& m : s.members) {
    if (m.vm_id == vm_id || m.vm_name == vm_id) return &m;
  }
  return Status::NotFound("backup session " + s.id + " serves no VM " + vm_id);
}

std::vector<BackupSession> BackupSessions::List() {
  std::lock_guard lock(mu_);
  return SessionsOf(sessions_);
}

Result<BackupSession> BackupSessions::Get(const std::string& id) {
  std::lock_guard lock(mu_);
  VMG_ASSIGN_OR_RETURN(auto live, FindSession(sessions_, id));
  return live->session;
}

Result<storage::MarkedRanges> BackupSessions::Changes(const std::string& id,
                                                      const std::string& vm_id, int disk,
                                                      uint64_t offset, uint64_t length) {
  VMG_ASSIGN_OR_RETURN(BackupSession s, Get(id));
  VMG_ASSIGN_OR_RETURN(const BackupMember* m, FindMember(s, vm_id));
  auto d = std::find_if(m->disks.begin(), m->disks.end(),
                        [&](const BackupDisk& bd) { return bd.index == disk; });
  if (d == m->disks.end()) {
    return Status::NotFound("VM " + m->vm_name + " has no disk " + std::to_string(disk));
  }
  if (offset >= d->size || length > d->size - offset) {
    return Status::InvalidArgument("the range from byte " + std::to_string(offset) + " (" +
                                   std::to_string(length) + " bytes) goes beyond disk " +
                                   std::to_string(disk) + " of VM " + m->vm_name + " (" +
                                   std::to_string(d->size) + " bytes)");
  }
  if (length == 0) length = d->size - offset;
  if (d->context.empty()) {
    return storage::MarkedRanges{.ranges = {{offset, length}}, .processed = length};
  }
  const Deadline deadline = parts_.env->Now() + kChangesTimeout;
  std::unique_ptr<storage::NbdReader> reader;
  if (d->socket.empty()) {
    // Its server admits only clients with a certificate its CA signed: the
    // daemon's own, if its TLS directory holds one.
    if (Status client = ClientTlsDir(parts_); !client.ok()) {
      return Status::NotSupported("backup session " + id + " serves over TCP, and " +
                                  client.message() +
                                  "; or read the changed ranges with nbdinfo --map=" + d->context +
                                  " '" + d->uri + "?tls-certificates=DIR'");
    }
    // The address the session serves on, which the server's certificate names.
    const storage::NbdTlsServer server{
        .host = parts_.options.nbd_listen, .port = m->port, .tls_dir = parts_.options.nbd_tls_dir};
    VMG_ASSIGN_OR_RETURN(reader, storage::NbdReader::OpenTls(parts_.env, server, d->export_name,
                                                             d->context, deadline));
  } else {
    VMG_ASSIGN_OR_RETURN(reader, storage::NbdReader::Open(parts_.env, d->socket, d->export_name,
                                                          d->context, deadline));
  }
  return reader->Marked(offset, length, kMaxRanges, deadline);
}

Status BackupSessions::EndAll() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  Status first;
  for (const auto& s : List()) {
    auto ended = End({.id = s.id});
    if (!ended.ok() && ended.status().code() != Code::kNotFound && first.ok()) {
      first = ended.status();
    }
  }
  return first;
}

Result<std::vector<std::string>> BackupSessions::Recover() {
  VMG_ASSIGN_OR_RETURN(auto intents, parts_.catalog->ListBackupIntents());
  std::vector<std::string> done;
  for (const auto& intent : intents) {
    Status st = StopServing(parts_, intent.directory, intent.vm_ids);
    std::string what = "backup session " + intent.id + ": serving stopped";
    if (st.ok() && intent.took_snapshot) {
      auto s = parts_.catalog->GetSnapshot(intent.snapshot_id);
      if (s.ok()) {
        st = DestroyTaken(parts_, runner_, *s);
        what += ", its snapshot " + s->name + " destroyed";
      }
    }
    if (st.ok()) st = parts_.catalog->DeleteBackupIntent(intent.id);
    if (!st.ok()) {
      Log(LogLevel::kWarning, "backup session " + intent.id +
                                  " left by the last run could not be "
                                  "ended: " +
                                  st.ToString() + "; the next start tries again");
      continue;
    }
    Log(LogLevel::kInfo, what);
    done.push_back(what);
  }
  return done;
}

}  // namespace vmgroup::engine
