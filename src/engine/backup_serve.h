// BackupServe: the step of a backup session (backup_sessions.h) that serves
// a group snapshot's frozen images to readers over NBD, from each member's
// own QEMU, or for a member that is off from its driver's own server
// (hypervisor::Driver::ServeImages: a qemu-storage-daemon), with the
// changes since a reference point as metadata contexts where that point's
// tracking still holds.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "catalog/records.h"
#include "engine/group_operation.h"
#include "hypervisor/driver.h"

namespace vmgroup::engine {

// How a session's readers reach it.
enum class BackupTransport {
  kUnix,  // a unix socket per VM under the state directory
  kTcp,   // TCP with TLS (x509), a port per VM (SnapshotOptions::nbd_listen)
};

// One disk as a session serves it.
struct BackupDisk {
  int index = 0;
  std::string export_name;  // "disk<index>"
  std::string socket;       // the unix socket of the VM's NBD server; "" over TCP
  // nbd+unix:///<export_name>?socket=<socket>, or over TCP
  // nbds://<host>:<port>/<export_name>
  std::string uri;
  uint64_t size = 0;  // virtual size in bytes
  // The NBD metadata context marking every cluster changed since the
  // session's reference point; "" for a full read.
  std::string context;
  // Why a full read although one since a reference point was asked for
  // (its tracking lost or not trusted); "" otherwise.
  std::string full_read_reason;
};

struct BackupMember {
  std::string vm_id, vm_name;
  // The peer that serves it, in a session across hosts; "" for this host.
  std::string host;
  int port = 0;  // the TCP port of the VM's NBD server; 0 on a unix socket
  std::vector<BackupDisk> disks;
};

// What a session serves. A frozen image carries its tracking unchanged, so
// what is served is exactly the group as of the cut.
struct BackupServing {
  std::string session_id;
  std::string directory;  // the sockets' directory
  BackupTransport transport = BackupTransport::kUnix;
  catalog::SnapshotRecord snapshot;
  bool took_snapshot = false;
  // The reference point the contexts mark changes since, if any.
  std::optional<catalog::ReferencePointRecord> base;
  std::vector<BackupMember> members;
};

// The checks that say whether `vms`, frozen on `frozen[i]` (the images a
// snapshot froze or will freeze, by disk index), can be served (running or
// off, vmgroupd's own or libvirt's): none is served already (Busy), and
// `base`, if any, leads right up to those images (Failed otherwise: "read
// in full").
Status CheckServable(GroupParts& parts, const std::vector<catalog::VmRecord>& vms,
                     const std::vector<std::vector<std::string>>& frozen,
                     const catalog::ReferencePointRecord* base);

class BackupServe final : public GroupOperation {
 public:
  // `serving` names the session, its directory, snapshot and base; Run
  // fills its members.
  BackupServe(GroupParts& parts, BackupServing& serving) : parts_(parts), serving_(serving) {}

  std::string_view Name() const override { return "serve_backup"; }
  Status Check() override;
  // Makes the directory and records the session's intent.
  Status RecordIntent() override;
  // Serves every member; holds the images served (ServedImages).
  Status Work() override;
  // Stops what was served, removes the directory and the intent.
  Status Undo(const Status& cause) override;

 private:
  GroupParts& parts_;
  BackupServing& serving_;
  std::vector<std::shared_ptr<hypervisor::Vm>> live_;
};

// Where member `position`'s socket of a session lives; over TCP, the path
// its serving is known by (hypervisor::NbdListen), with no socket there.
std::string BackupSocketPath(const std::string& directory, size_t position);

// NotSupported, naming the daemon's options to set, when `options` cannot
// serve over `transport` (TCP needs a TLS directory and an address).
Status CheckTransport(const SnapshotOptions& options, BackupTransport transport);

// Stops serving every member of `vm_ids` (sockets by position in
// `directory`), from its QEMU and from its driver's server alike (it may
// have been started or stopped since), and removes the directory.
// The first error, naming the VM, after trying them all.
Status StopServing(GroupParts& parts, const std::string& directory,
                   const std::vector<std::string>& vm_ids);

}  // namespace vmgroup::engine
