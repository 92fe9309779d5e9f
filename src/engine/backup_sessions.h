// BackupSessions: backup products read a group's disks themselves (issue
// 17). A session takes a recovery snapshot of the group (or uses one that
// exists), then serves every member disk's frozen image, read-only, over
// NBD from the member's own QEMU, or for a member that is off from a
// qemu-storage-daemon (backup_serve.h): standard clients
// (nbdcopy, qemu-img, virtnbdbackup) read the disks as of the cut while
// the VMs run on, and, since a reference point, the metadata context
// `qemu:dirty-bitmap:<tracking>` marks exactly the clusters changed since
// its cut. The session lasts until End (which can turn its snapshot into
// the next reference point), Serve's idle timeout, or the daemon's next
// start (Recover); then nothing of it is left: no export, no socket, no
// snapshot it took.
//
// While a session serves, operations that would change the served images
// are refused (ServedImages); new snapshots, exports and other sessions of
// other VMs go on: no reader, however slow, holds them up.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/records.h"
#include "engine/backup_serve.h"
#include "engine/group_operation.h"
#include "storage/nbd_reader.h"

namespace vmgroup::engine {

struct BackupRequest {
  std::string collection_id;
  // Serve this snapshot of the group (Complete) instead of taking one; it
  // stays when the session ends.
  std::string snapshot_id;
  // A reference point of the group: publish, per disk, the changes since it.
  std::string incremental_from;
  // Unix sockets, or TCP with TLS (refused unless the daemon has its
  // options: CheckTransport).
  BackupTransport transport = BackupTransport::kUnix;
  // For the recovery snapshot the session takes (SnapshotRequest's).
  catalog::Consistency consistency = catalog::Consistency::kCrash;
  bool fallback = false;
  std::function<void(const std::string&)> warning;
  // The session's id, when the caller must name it first; a new GUID when empty.
  std::string id;
};

// Where a session is in its life.
enum class BackupState {
  kServing,  // readers read its disks
  kEnding,   // End runs: serving stops, then its snapshot goes or is converted
  kStopped,  // serving stopped, but what End does after failed: to be ended again
};

// A session as it serves.
struct BackupSession {
  std::string id;
  std::string collection_id;
  std::string snapshot_id;
  bool took_snapshot = false;
  std::string incremental_from;  // reference point id, or ""
  int64_t began_us = 0;          // wall clock
  BackupState state = BackupState::kServing;
  std::vector<BackupMember> members;
};

// What BackupSessions and SpanningBackups keep of the sessions they serve:
// each by id, a Live that holds it as `session` (the caller's lock held).
template <typename Live>
using SessionTable = std::map<std::string, std::shared_ptr<Live>>;
template <typename Live>
std::vector<BackupSession> SessionsOf(const SessionTable<Live>& table) {
  std::vector<BackupSession> out;
  for (const auto& [id, live] : table) out.push_back(live->session);
  return out;
}
// NotFound for an id `table` does not hold.
template <typename Live>
Result<std::shared_ptr<Live>> FindSession(const SessionTable<Live>& table, const std::string& id) {
  auto it = table.find(id);
  if (it == table.end()) return Status::NotFound("no backup session has id " + id);
  return it->second;
}
// Marks session `id` of `table` kEnding and answers it, for one End;
// InvalidState while another End has it, NotFound as FindSession.
template <typename Live>
Result<std::shared_ptr<Live>> StartEnding(const SessionTable<Live>& table, const std::string& id) {
  VMG_ASSIGN_OR_RETURN(std::shared_ptr<Live> live, FindSession(table, id));
  if (live->session.state == BackupState::kEnding) {
    return Status::InvalidState("backup session " + id + " is being ended already");
  }
  live->session.state = BackupState::kEnding;
  return live;
}
// The member of `s` that is VM `vm_id` (its id or name); NotFound if none.
Result<const BackupMember*> FindMember(const BackupSession& s, const std::string& vm_id);

struct BackupEndRequest {
  std::string id;
  // Turn the session's snapshot into a reference point (the base of the
  // next incremental) instead of destroying it (or, for a snapshot the
  // session did not take, leaving it).
  bool to_reference_point = false;
  std::string reference_point_id;  // its id when the caller must name it first
};

// How a session ended (Serve).
enum class BackupEnding { kEnded, kIdle, kStopped };

class BackupSessions {
 public:
  // Sockets live in `directory`/<session id>/.
  BackupSessions(GroupParts& parts, OperationRunner& runner, std::string directory);
  // Ends the sessions ServeInBackground serves (as EndAll), and waits for
  // its threads.
  ~BackupSessions();

  // The checks Begin makes before it changes anything: NotSupported for
  // TCP without the daemon's TLS options (CheckTransport); NotFound for an
  // unknown group, snapshot or reference point; InvalidArgument for a
  // snapshot or reference point of another group; InvalidState for a
  // snapshot not Complete; Begin's refusals of members (CheckServable);
  // a snapshot's own (SnapshotEngine::Validate).
  Status Validate(const BackupRequest& request);
  // Starts a session and returns what it serves. Errors as Validate's, then
  // as taking the snapshot and serving it; on any error nothing is left
  // (the snapshot it took is destroyed again).
  Result<BackupSession> Begin(const BackupRequest& request);

  // Ends a session: every member's serving stopped (clients cut off), its
  // directory removed, then its snapshot destroyed (if it took it) or
  // converted into a reference point (to_reference_point), which it
  // returns. NotFound for an unknown session; InvalidState while it is
  // being ended. When the destroy or conversion fails, serving has stopped
  // and the session stays, to be ended again.
  Result<std::optional<catalog::ReferencePointRecord>> End(const BackupEndRequest& request);

  // Waits while session `id` serves, until it is ended (End from
  // elsewhere: kEnded), no NBD client has been connected to it for
  // `idle_timeout` (it is ended then: kIdle), or `stop` returns true (ended:
  // kStopped). Checks every `poll` on the Env's clock. An end that finds
  // the members held by another operation (Busy) is tried again; an error
  // when the end it makes fails otherwise.
  Result<BackupEnding> Serve(const std::string& id, Duration idle_timeout,
                             const std::function<bool()>& stop,
                             Duration poll = std::chrono::seconds(1));

  // Serve of session `id` in a thread of its own, with no stop but EndAll's
  // and the destructor's: for a session that is a host's part of a backup
  // session across hosts (CutHost::BeginBackup), which ends by itself
  // after `idle_timeout` without a reader, whatever its coordinator does.
  void ServeInBackground(const std::string& id, Duration idle_timeout);

  // The sessions serving now.
  std::vector<BackupSession> List();
  // NotFound for an unknown session.
  Result<BackupSession> Get(const std::string& id);

  // The ranges of disk `disk` of VM `vm_id` (id or name) changed since the
  // session's reference point, within [offset, offset + length), read from
  // the served context (as Hyper-V's GetVirtualDiskChanges answers: at most
  // a bound of ranges, and how far they account for); `length` 0: to the
  // end of the disk. A disk served for a full read changed everywhere: the
  // whole range. NotFound for an unknown session, VM or disk;
  // InvalidArgument for a range beyond the disk; NotSupported for a disk
  // with a context served over TCP while --nbd-tls-dir has no client
  // certificate for the daemon (only a client with one may read it: the
  // message names the files to add); NbdReader's errors.
  Result<storage::MarkedRanges> Changes(const std::string& id, const std::string& vm_id, int disk,
                                        uint64_t offset, uint64_t length);

  // Ends every session (no reference point made), for a daemon that stops:
  // its QEMUs would serve on. From then on Begin is refused (Unavailable)
  // and a session a Begin under way adds is ended by its Serve at once
  // (kStopped). The first error, after trying them all.
  Status EndAll();

  // At start-up, after recovery: ends every session a previous daemon left
  // (its QEMUs still serve): stops serving, removes its directory, destroys
  // the snapshot it took. Returns what it did, one line per session.
  Result<std::vector<std::string>> Recover();

 private:
  struct Live {
    BackupSession session;
    std::string directory;
    bool serving_stopped = false;  // by the End under way (only its thread)
  };
  // The end of a session whose state the caller set to kEnding.
  Result<std::optional<catalog::ReferencePointRecord>> Finish(Live& live,
                                                              const BackupEndRequest& request);
  // Connected NBD clients of session `live`.
  int Clients(const Live& live);

  GroupParts& parts_;
  OperationRunner& runner_;
  const std::string directory_;
  std::mutex mu_;
  SessionTable<Live> sessions_;  // guarded by mu_
  bool closing_ = false;         // guarded by mu_: EndAll ran
  // ServeInBackground's threads, each with its flag set once it is done
  // (joined at the next call, or by the destructor); guarded by mu_.
  struct Background {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Background> background_;
};

}  // namespace vmgroup::engine
