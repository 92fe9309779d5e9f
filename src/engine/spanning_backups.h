// Backup sessions of groups that span hosts, this vmgroupd coordinating
// (issue 20; docs/multihost.md). A session across hosts serves a snapshot
// across hosts (one it takes for the session, or one that exists) through
// a backup session of each host's own on its part (CutHost::BeginBackup):
// every host serves its members' disks over NBD as on one host
// (backup_sessions.h), and the coordinator's session lists them all, each
// member with the host that serves it. A backup product reads each disk
// from the host that serves it.
//
// Each host's session ends by itself once idle, whatever the coordinator
// does; the coordinator's session ends when every host's has (idle), when
// End ends them all, or when its Serve is stopped. Its end destroys the
// snapshot it took (or converts it into a reference point across hosts,
// the base of the next incremental session). The session is recorded
// before its snapshot is taken and with every host's session once all
// serve: a coordinator that dies leaves the record, which Recover ends on
// every host (SpanningSnapshots::Recover's last pass, retried until every
// host answered).
//
// Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/backup_sessions.h"
#include "engine/spanning_snapshots.h"

namespace vmgroup::engine {

class SpanningBackups {
 public:
  // REQUIRES: `parts` and `spanning` outlive this.
  SpanningBackups(GroupParts& parts, SpanningSnapshots& spanning)
      : parts_(parts), spanning_(spanning) {}

  // Begin's checks, asking no host: NotFound for an unknown group;
  // InvalidArgument for a group with no member on another host; a
  // reference point (incremental_from) or snapshot (snapshot_id) that is
  // none across hosts: NotSupported, of another group: InvalidArgument;
  // InvalidState for a snapshot not Complete; the snapshot's own checks
  // (SpanningSnapshots::Validate), and the transport's (CheckTransport: each
  // host checks its own again).
  Status Validate(const BackupRequest& request);
  // Takes the snapshot across hosts (unless request.snapshot_id names one),
  // then has every host serve its part, each host's session ending by
  // itself after `idle_timeout` without a reader. Answers the session: its
  // members those of every host, each named with its host. On any error
  // nothing is left: the hosts that serve stop, the snapshot taken is
  // destroyed (or, should that fail, its record stays for Recover).
  Result<BackupSession> Begin(const BackupRequest& request, Duration idle_timeout);

  // Waits while session `id` serves, until it is ended (kEnded), every
  // host's session has ended by itself (the session is ended then: kIdle),
  // or `stop` returns true (ended: kStopped). Asks the hosts every `poll`; a
  // host that cannot be asked counts as serving. Errors as End's.
  Result<BackupEnding> Serve(const std::string& id, const std::function<bool()>& stop,
                             Duration poll = std::chrono::seconds(1));

  // Ends every host's session (in parallel), then destroys the snapshot
  // the session took, or converts it into reference point
  // request.reference_point_id across hosts (to_reference_point), which it
  // answers as the group's. NotFound for an unknown session; InvalidState
  // while it is being ended; Unavailable naming the hosts whose session did
  // not end (the session stays, to be ended again). A conversion refused
  // by a host: the snapshot destroyed, the session ended, the refusal
  // returned; a destroy or conversion that did not reach every host is
  // finished by SpanningSnapshots::Recover, and its error returned.
  Result<std::optional<catalog::ReferencePointRecord>> End(const BackupEndRequest& request);

  // True when `id` is a session across hosts this host coordinates.
  bool Has(const std::string& id);
  // The sessions serving now; NotFound for an unknown one.
  std::vector<BackupSession> List();
  Result<BackupSession> Get(const std::string& id);

  // The changed ranges of a disk of the session, as the host that serves
  // it answers them (BackupSessions::Changes there), named after it.
  Result<storage::MarkedRanges> Changes(const std::string& id, const std::string& vm_id, int disk,
                                        uint64_t offset, uint64_t length);

  // Ends each session a previous run recorded and no Begin has in hand:
  // every host's session it recorded, then the snapshot it took, then its
  // record. Returns how many remain (a host not reached, a part still
  // served by a session the record did not name yet: it idles out).
  int Recover();

 private:
  struct Live {
    BackupSession session;
    std::vector<catalog::SpanningPart> hosts;  // by host: where each serves
    std::vector<std::string> host_sessions;    // by host: its own session's id
  };
  // Every host's session of `intent` ended (OK when ended already):
  // Unavailable naming the hosts that did not answer.
  Status EndOnHosts(const catalog::SpanningBackupIntent& intent);
  // What session `live` recorded.
  static catalog::SpanningBackupIntent IntentOf(const Live& live, bool took_snapshot);
  // Ends `intent`: EndOnHosts, then Finish.
  Result<std::optional<catalog::ReferencePointRecord>> Settle(
      const catalog::SpanningBackupIntent& intent, const BackupEndRequest& request);
  // Ends `intent` after its hosts' sessions ended: its snapshot converted
  // or destroyed as `request` says, then its record forgotten (what is left
  // of the snapshot, SpanningSnapshots::Recover finishes).
  Result<std::optional<catalog::ReferencePointRecord>> Finish(
      const catalog::SpanningBackupIntent& intent, const BackupEndRequest& request);

  GroupParts& parts_;
  SpanningSnapshots& spanning_;
  std::mutex mu_;
  SessionTable<Live> sessions_;      // guarded by mu_
  std::set<std::string> beginning_;  // ids Begin has in hand; mu_
};

}  // namespace vmgroup::engine
