// One function per QMP command vmgroup uses, so the JSON shapes live in one
// place (as libvirt's qemu_monitor_json.c). Transaction actions are built by
// helpers and sent together by Transaction().
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hypervisor/qemu/qmp_client.h"

namespace vmgroup::hypervisor::qemu::qmp {

// A command's name and arguments, for QmpClient::Send (several commands in
// one write, their replies collected after).
using Command = std::pair<std::string, Json>;

Status Stop(QmpClient& c, Deadline d);
Command StopCommand();
Status Cont(QmpClient& c, Deadline d);
Command ContCommand();
Status Quit(QmpClient& c, Deadline d);
// Presses the guest's ACPI power button; the guest decides what follows.
Status SystemPowerdown(QmpClient& c, Deadline d);
// "running", "paused", "shutdown", "postmigrate", ... as QEMU names it.
Result<std::string> QueryStatus(QmpClient& c, Deadline d);

// A guest block device: its qdev id path and the node at the top of its graph.
struct BlockDevice {
  std::string qdev;  // "/machine/peripheral/vd0/virtio-backend"
  std::string node;  // node-name of the active (top) format node
  std::string file;  // the active image's file name
  // "ok", or why the device stopped the VM: "nospace" (ENOSPC), "failed"
  // (any other error); "" for a device that keeps no I/O status.
  std::string io_status;
};
Result<std::vector<BlockDevice>> QueryBlock(QmpClient& c, Deadline d);
// Node names present in the block graph.
Result<std::vector<std::string>> QueryNodeNames(QmpClient& c, Deadline d);
// The qcow2 nodes of the block graph: image file -> node name.
Result<std::map<std::string, std::string>> QueryFormatNodes(QmpClient& c, Deadline d);
// A qcow2 node with what lies below it in the block graph as QEMU has it
// now (not as the image's header names it).
struct BitmapInfo {
  std::string name;
  uint64_t count = 0;         // bytes marked
  bool inconsistent = false;  // QEMU will not trust it (stored unsaved by a QEMU that died)
  bool persistent = false;    // stored in the image (else it lives in QEMU's memory only)
  bool recording = false;     // marks writes
  uint64_t granularity = 0;   // bytes per bit
};
struct FormatNode {
  std::string node;     // node-name
  std::string file;     // its image file
  std::string backing;  // the file of the image right below it, or "" for none
  bool read_only = false;
  uint64_t size = 0;                // its virtual size in bytes
  std::string file_node;            // the node-name of its protocol node ("file" child)
  std::vector<BitmapInfo> bitmaps;  // its dirty bitmaps
};
// Every qcow2 node of the block graph.
Result<std::vector<FormatNode>> QueryFormatNodeGraph(QmpClient& c, Deadline d);
// The same without `backing` (left ""): QueryFormatNodeGraph's answer nests
// each node's whole chain below it, so its size grows with the square of a
// chain's depth (about a megabyte at 63 images); this one grows with the
// number of nodes.
Result<std::vector<FormatNode>> QueryFormatNodesShallow(QmpClient& c, Deadline d);

// Opens the qcow2 file at `path` as node `node` (its protocol node is
// `file_node`) with no backing: ready to be put on top of a disk by a
// blockdev-snapshot action.
Status BlockdevAddOverlay(QmpClient& c, const std::string& node, const std::string& file_node,
                          const std::string& path, Deadline d);
// Opens the qcow2 file at `path` as node `node`, with no backing, for a job
// to write into: QEMU never flushes it (the caller syncs the file).
Status BlockdevAddTarget(QmpClient& c, const std::string& node, const std::string& path,
                         Deadline d);
Status BlockdevDel(QmpClient& c, const std::string& node, Deadline d);
// Reopens qcow2 nodes read-only or read-write, all or none, keeping their
// children (blockdev-reopen resets every option it is not given, and wants
// each child named). A node opened from an image header has a generated
// name ("#block...") that blockdev-reopen refuses: name only nodes opened
// by name.
struct ReopenNode {
  std::string node, file_node;
  std::string backing_node;  // "" when it has no backing
};
Status BlockdevReopen(QmpClient& c, const std::vector<ReopenNode>& nodes, bool read_only,
                      Deadline d);

Json SnapshotAction(const std::string& node, const std::string& overlay);
// Adds dirty bitmap `bitmap` to `node`: stored in the image when
// `persistent`, else in QEMU's memory only; of `granularity` bytes per bit,
// or QEMU's default (the image's cluster size) for 0.
Json BitmapAddAction(const std::string& node, const std::string& bitmap, bool persistent = true,
                     uint64_t granularity = 0);
// Marks in `target` whatever `source` (of the same node) marks.
Json BitmapMergeAction(const std::string& node, const std::string& target,
                       const std::string& source);
Json BitmapRemoveAction(const std::string& node, const std::string& bitmap);
// Runs the actions atomically: all take effect or none.
Status Transaction(QmpClient& c, const std::vector<Json>& actions, Deadline d);
// The transaction, for QmpClient::Send.
Command TransactionCommand(const std::vector<Json>& actions);

// Persistent dirty bitmaps on a node.
Status BitmapAdd(QmpClient& c, const std::string& node, const std::string& bitmap, Deadline d);
Status BitmapRemove(QmpClient& c, const std::string& node, const std::string& bitmap, Deadline d);
Result<std::vector<BitmapInfo>> QueryBitmaps(QmpClient& c, const std::string& node, Deadline d);
// Starts a copy of what `bitmap` marks in node `device` into node `target`
// (blockdev-backup, sync "bitmap", the bitmap left as it is), as job
// `job_id`, not auto-dismissed.
Status BackupMarked(QmpClient& c, const std::string& job_id, const std::string& device,
                    const std::string& target, const std::string& bitmap, Deadline d);

// Serving nodes over NBD (backup sessions). NbdServerStart: QEMU's NBD
// server accepts on the listening socket passed with getfd as `fd_name`
// (QEMU takes the descriptor once the server runs). AlreadyExists when a
// server runs already (the descriptor then stays QEMU's under its name).
// With `tls_creds` set, the server speaks only TLS, with the credentials
// object of that id (TlsCredsX509Add).
Status NbdServerStart(QmpClient& c, const std::string& fd_name, const std::string& tls_creds,
                      Deadline d);
// Adds a tls-creds-x509 object `id`, a server's, from the QEMU-format files
// in `dir`, requiring clients to present a certificate its CA signed
// (verify-peer). AlreadyExists when an object of that id exists.
Status TlsCredsX509Add(QmpClient& c, const std::string& id, const std::string& dir, Deadline d);
// Deletes object `id`. NotFound when there is none.
Status ObjectDel(QmpClient& c, const std::string& id, Deadline d);
// Stops the server, closing whatever exports are left. NotFound when none runs.
Status NbdServerStop(QmpClient& c, Deadline d);
// Exports node `node` read-only as NBD export `name`, as block export `id`,
// publishing dirty bitmap `bitmap` (of the node or an image below it) as
// metadata context "qemu:dirty-bitmap:<bitmap>" unless `bitmap` is "".
Status BlockExportAddNbd(QmpClient& c, const std::string& id, const std::string& node,
                         const std::string& name, const std::string& bitmap, Deadline d);
// Deletes export `id`, cutting its clients off (mode "hard"). It goes once
// its requests in flight are done: QueryBlockExports lists it until then.
Status BlockExportDel(QmpClient& c, const std::string& id, Deadline d);
struct BlockExport {
  std::string id;
  bool shutting_down = false;  // deleted, going once its requests are done
};
Result<std::vector<BlockExport>> QueryBlockExports(QmpClient& c, Deadline d);

// Starts a commit of node `top` into node `base` in the chain of `device`
// (its active node), as job `job_id`, not auto-dismissed. With `top` the
// active node this is an active commit, which needs completing. Both nodes
// are always named: without `base`, QEMU would merge into the bottom of the
// chain.
Status BlockCommit(QmpClient& c, const std::string& job_id, const std::string& device,
                   const std::string& top, const std::string& base, Deadline d);
// Descriptors handed to QEMU over the monitor (QmpClient passes a copy with
// the command). getfd: QEMU keeps it under `name` until a command uses it
// (migrate or migrate-incoming with "fd:<name>") or closefd drops it.
Command GetFdCommand(const std::string& name);
Status GetFd(QmpClient& c, const std::string& name, int fd, Deadline d);
Status CloseFd(QmpClient& c, const std::string& name, Deadline d);
// add-fd: `fd` joins a new descriptor set, whose id is returned; QEMU then
// opens "/dev/fdset/<id>" by taking a copy (for a block node's file).
// RemoveFdSet drops the set once nothing uses it any more.
Result<int> AddFd(QmpClient& c, int fd, Deadline d);
Status RemoveFdSet(QmpClient& c, int fdset, Deadline d);
// The file name QEMU opens set `fdset`'s descriptor by.
std::string FdSetPath(int fdset);

// Memory state, streamed through a descriptor passed with getfd (QEMU 7.2
// has no "file:" URI, and "exec:" would have QEMU spawn a shell, which
// -sandbox forbids). background-snapshot: the next migration saves RAM as
// it is when the migration starts while the guest runs on (QEMU resumes it
// by itself once the device state is saved).
Status SetBackgroundSnapshot(QmpClient& c, bool on, Deadline d);
// A migration into the descriptor named `fd_name`, for QmpClient::Send.
Command MigrateCommand(const std::string& fd_name);
// Starts loading a migration stream from the descriptor named `fd_name`
// (QEMU started with -incoming defer).
Status MigrateIncoming(QmpClient& c, const std::string& fd_name, Deadline d);
// query-migrate's status ("active", "completed", "failed", ... or "" before
// any migration) and, once failed, QEMU's reason.
struct MigrationInfo {
  std::string status;
  std::string error;
  bool failed() const { return status == "failed" || status == "cancelled"; }
};
Result<MigrationInfo> QueryMigrate(QmpClient& c, Deadline d);
// Polls until the migration completed; Failed with QEMU's reason if it failed,
// Timeout once `d` passed on the client's Env clock (sleeping through it).
Status AwaitMigration(QmpClient& c, Deadline d);

// A job as query-jobs reports it.
struct JobInfo {
  std::string status;  // "running", "ready", "concluded", ...
  std::string error;   // set when it concluded with an error
};
// The job `job_id`, or nullopt when QEMU has no such job.
Result<std::optional<JobInfo>> QueryJob(QmpClient& c, const std::string& job_id, Deadline d);
// Drives job `job_id` to its end from whatever stage it is in: completes it
// once ready, waits for it to conclude, dismisses it. Failed with the job's
// own error if it concluded with one (a command's empty reply says nothing
// about how its job ends); NotFound if QEMU has no such job. Polls as
// AwaitMigration does.
Status CompleteJob(QmpClient& c, const std::string& job_id, Deadline d);

}  // namespace vmgroup::hypervisor::qemu::qmp
