// The backup-session half of Invariants (invariants.h): what a serving
// session must offer, and what a restart must leave of the sessions of the
// daemon it replaced: nothing.
#include <filesystem>
#include <fstream>

#include "backup_listing.h"
#include "invariants.h"

namespace vmgroup::campaign {

namespace {

// OK when a reader connects to `uri` and learns the export's size.
Status Connects(const std::string& uri) {
  auto r = Env::Default()->Run({"nbdinfo", "--size", uri}, std::chrono::seconds(30));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) return Status::Failed(r->err);
  return Status::Ok();
}

// True when some process still has a unix socket bound to `path` (even
// unlinked: /proc/net/unix keeps the name it was bound to).
bool Listened(const std::string& path) {
  std::ifstream f("/proc/net/unix");
  std::string line;
  while (std::getline(f, line)) {
    if (line.size() >= path.size() &&
        line.compare(line.size() - path.size(), path.size(), path) == 0) {
      return true;
    }
  }
  return false;
}

bool Listed(const std::vector<ListedSession>& sessions, const std::string& id) {
  return std::any_of(sessions.begin(), sessions.end(), [&](const auto& s) { return s.id == id; });
}

// Listed as serving: an idle timeout may end a session while it is looked at.
bool Serving(const std::vector<ListedSession>& sessions, const std::string& id) {
  return std::any_of(sessions.begin(), sessions.end(),
                     [&](const auto& s) { return s.id == id && s.state == "Serving"; });
}

}  // namespace

Violations Invariants::Sessions(catalog::Catalog& catalog) {
  auto sessions = ListSessions(daemon_);
  if (!sessions.ok()) return {{"daemon-unanswering", sessions.status().ToString()}};
  std::vector<std::pair<std::string, Violation>> found;  // by session id
  for (const auto& s : *sessions) {
    auto snapshot = catalog.GetSnapshot(s.snapshot_id);
    if (!snapshot.ok() || snapshot->state != catalog::SnapshotState::kComplete) {
      found.push_back({s.id,
                       {"backup-snapshot-not-complete",
                        "session " + s.id + " serves snapshot " + s.snapshot_id + ", which is " +
                            (snapshot.ok() ? "not Complete" : snapshot.status().ToString())}});
    }
    if (s.state != "Serving") continue;  // being ended, or to be ended again
    for (const auto& d : s.disks) {
      const std::string what = "session " + s.id + ", VM " + d.vm_id + " (" + d.uri + ")";
      if (!Env::Default()->FileExists(d.socket)) {
        found.push_back(
            {s.id, {"backup-socket-missing", what + ": " + d.socket + " is gone", d.vm_id}});
      } else if (Status c = Connects(d.uri); !c.ok()) {
        found.push_back(
            {s.id, {"backup-unreadable", what + ": nbdinfo --size: " + c.ToString(), d.vm_id}});
      }
      if (!s.incremental_from.empty() && d.context.empty() && !tracking_lost_.count(d.vm_id)) {
        found.push_back({s.id,
                         {"incremental-full-read",
                          what + ": incremental from " + s.incremental_from +
                              " offers a full read, though nothing lost the VM's tracking: " +
                              d.full_read_reason,
                          d.vm_id}});
      }
    }
  }
  // A session that began its end (its idle timeout) while it was looked at
  // is no violation: only what still holds for one serving afterwards.
  Violations v;
  if (!found.empty()) {
    auto again = ListSessions(daemon_);
    for (auto& [id, f] : found) {
      if (!again.ok() || Serving(*again, id)) v.push_back(std::move(f));
    }
  }
  auto intents = catalog.ListBackupIntents();
  auto snapshots = catalog.ListSnapshots();
  if (!intents.ok() || !snapshots.ok())
    return {{"catalog-unreadable", "backup intents, snapshots"}};
  auto now = ListSessions(daemon_);
  if (!now.ok()) return v;
  for (const auto& i : *intents) {
    if (!Listed(*now, i.id)) {
      v.push_back({"backup-intent-left", "the catalog records session " + i.id + " (" +
                                             i.directory + "), which the daemon does not list"});
    }
  }
  for (const auto& s : *snapshots) {
    const std::string prefix = SessionSnapshotName("");
    if (s.name.rfind(prefix, 0) != 0) continue;
    const std::string id = s.name.substr(prefix.size());
    if (!Listed(*now, id)) {
      v.push_back({"backup-snapshot-left",
                   "snapshot " + s.id + " (" + s.name + ") outlives the session that took it"});
    }
  }
  return v;
}

Invariants::DeadSessions Invariants::NoteDeadSessions(catalog::Catalog& catalog) {
  namespace fs = std::filesystem;
  DeadSessions dead;
  if (auto intents = catalog.ListBackupIntents(); intents.ok()) dead.intents = std::move(*intents);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(state_dir_ + "/backups", ec);
       !ec && it != fs::end(it); it.increment(ec)) {
    if (it->is_socket(ec)) dead.sockets.push_back(it->path());
  }
  return dead;
}

Violations Invariants::SessionsEnded(catalog::Catalog& catalog, const DeadSessions& dead) {
  Violations v;
  auto sessions = ListSessions(daemon_);
  if (!sessions.ok()) {
    v.push_back({"daemon-unanswering", sessions.status().ToString()});
  } else {
    for (const auto& s : *sessions) {
      v.push_back({"backup-session-survived", "session " + s.id + " is listed after a restart"});
    }
  }
  if (auto intents = catalog.ListBackupIntents(); !intents.ok() || !intents->empty()) {
    v.push_back({"backup-intent-left", intents.ok() ? "the catalog still records session " +
                                                          (*intents)[0].id + " after a restart"
                                                    : intents.status().ToString()});
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir_ + "/backups", ec)) {
    v.push_back({"backup-dir-left", entry.path().string() + " is left after a restart"});
  }
  for (const auto& i : dead.intents) {
    if (!i.took_snapshot) continue;
    if (auto s = catalog.GetSnapshot(i.snapshot_id); s.ok()) {
      v.push_back({"backup-snapshot-left", "snapshot " + s->id + " (" + s->name + ") of session " +
                                               i.id + " is left after a restart"});
    }
  }
  for (const auto& socket : dead.sockets) {
    const std::string uri = "nbd+unix:///disk0?socket=" + socket;
    if (Connects(uri).ok()) {
      v.push_back({"backup-still-served", uri + " is still read after a restart"});
    } else if (Listened(socket)) {
      v.push_back({"backup-still-served",
                   "a process still listens on " + socket + " after a restart (/proc/net/unix)"});
    }
  }
  return v;
}

}  // namespace vmgroup::campaign
