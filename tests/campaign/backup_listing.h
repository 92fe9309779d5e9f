// The backup sessions vmgroupd lists (`vmgroup --json backup list`), as the
// campaign's workload draws from them and its checks look at them.
#pragma once

#include <string>
#include <vector>

#include "daemon_process.h"

namespace vmgroup::campaign {

struct ServedDisk {
  std::string vm_id;
  std::string socket;
  std::string uri;
  std::string context;           // "" when served for a full read
  std::string full_read_reason;  // why not incremental, on a fallback
};

struct ListedSession {
  std::string id;
  std::string snapshot_id;
  std::string incremental_from;  // reference point id, or ""
  std::string state;             // "Serving", "Ending" or "Stopped"
  std::vector<ServedDisk> disks;
};

// Failed with what the CLI said when the daemon does not answer.
Result<std::vector<ListedSession>> ListSessions(const DaemonProcess& daemon);

// The name vmgroupd gives the snapshot a session takes.
std::string SessionSnapshotName(const std::string& session_id);

}  // namespace vmgroup::campaign
