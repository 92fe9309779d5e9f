#include "backup_listing.h"

#include <nlohmann/json.hpp>

namespace vmgroup::campaign {

namespace {

std::string Text(const nlohmann::json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

Result<std::vector<ListedSession>> ListSessions(const DaemonProcess& daemon) {
  auto listed = daemon.Cli({"--json", "backup", "list"});
  if (!listed.ok()) return listed.status().Annotate("backup list");
  if (listed->exit_code != 0) return Status::Failed("backup list: " + listed->err);
  auto all = nlohmann::json::parse(listed->out, nullptr, false);
  if (!all.is_array()) return Status::Failed("backup list printed no JSON array: " + listed->out);
  std::vector<ListedSession> sessions;
  for (const auto& s : all) {
    if (!s.is_object()) continue;
    ListedSession session{.id = Text(s, "session"),
                          .snapshot_id = Text(s, "snapshot_id"),
                          .incremental_from = Text(s, "incremental_from"),
                          .state = Text(s, "state")};
    for (const auto& d : s.value("disks", nlohmann::json::array())) {
      if (!d.is_object()) continue;
      session.disks.push_back({.vm_id = Text(d, "vm_id"),
                               .socket = Text(d, "socket"),
                               .uri = Text(d, "uri"),
                               .context = Text(d, "context"),
                               .full_read_reason = Text(d, "full_read_reason")});
    }
    sessions.push_back(std::move(session));
  }
  return sessions;
}

std::string SessionSnapshotName(const std::string& session_id) {
  return "Backup session " + session_id;  // BackupSessions::Begin
}

}  // namespace vmgroup::campaign
