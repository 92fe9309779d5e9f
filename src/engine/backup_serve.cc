#include "engine/backup_serve.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/ids.h"
#include "engine/fault_points.h"
#include "engine/member_checks.h"
#include "storage/untrusted_files.h"

namespace vmgroup::engine {
namespace {

// Who may reach a session's sockets: root and the admin group, as for
// exports; nobody may list the directory but them.
constexpr unsigned kSessionDirMode = 0750;
constexpr unsigned kSocketMode = 0660;
// How long serving or ending a member's serving may take: a few QMP commands,
// and for an end, the clients cut off.
constexpr auto kServeTimeout = std::chrono::seconds(30);
// sun_path holds 108 bytes, the terminating NUL among them.
constexpr size_t kMaxSocketPath = 107;

std::string ExportName(int index) { return "disk" + std::to_string(index); }

// Socket `path`, which the driver just bound in the session's own
// directory (no name of a client's: no link to fear), made reachable by the
// admin group (storage::SetAccess opens what it changes; a socket opens not).
Status OpenToAdmins(const std::string& path, int gid) {
  if (::chmod(path.c_str(), kSocketMode) != 0 ||
      (gid >= 0 && ::lchown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0)) {
    return Status::IoError("cannot give the admin group access to " + path + ": " +
                           std::strerror(errno));
  }
  return Status::Ok();
}

// Where member `position` of `serving` listens.
hypervisor::NbdListen ListenOf(const BackupServing& serving, const SnapshotOptions& options,
                               size_t position) {
  hypervisor::NbdListen at{.path = BackupSocketPath(serving.directory, position)};
  if (serving.transport == BackupTransport::kTcp) {
    at.tcp_host = options.nbd_listen;
    at.tls_dir = options.nbd_tls_dir;
  }
  return at;
}

// How a reader names export `name` served at `at` (on TCP `port`), in
// libnbd's URI forms.
std::string UriOf(const hypervisor::NbdListen& at, int port, const std::string& name) {
  if (at.tcp_host.empty()) return "nbd+unix:///" + name + "?socket=" + at.path;
  const bool v6 = at.tcp_host.find(':') != std::string::npos;
  return "nbds://" + (v6 ? "[" + at.tcp_host + "]" : at.tcp_host) + ":" + std::to_string(port) +
         "/" + name;
}

// The reference point's member for `vm`, or null.
const catalog::ReferencePointMember* MemberOf(const catalog::ReferencePointRecord& rp,
                                              const std::string& vm_id) {
  auto it = std::find_if(rp.members.begin(), rp.members.end(),
                         [&](const auto& m) { return m.vm_id == vm_id; });
  return it == rp.members.end() ? nullptr : &*it;
}

}  // namespace

std::string BackupSocketPath(const std::string& directory, size_t position) {
  return directory + "/vm" + std::to_string(position) + ".sock";
}

Status CheckTransport(const SnapshotOptions& options, BackupTransport transport) {
  if (transport == BackupTransport::kTcp &&
      (options.nbd_tls_dir.empty() || options.nbd_listen.empty())) {
    return Status::NotSupported(
        "this vmgroupd serves backup sessions on unix sockets only: TCP is served with TLS "
        "alone, so start vmgroupd with --nbd-tls-dir DIR and --nbd-listen HOST");
  }
  return Status::Ok();
}

Status CheckServable(GroupParts& parts, const std::vector<catalog::VmRecord>& vms,
                     const std::vector<std::vector<std::string>>& frozen,
                     const catalog::ReferencePointRecord* base) {
  VMG_RETURN_IF_ERROR(parts.served.CheckVms(vms, "a backup session"));
  for (size_t i = 0; i < vms.size(); ++i) {
    const catalog::VmRecord& vm = vms[i];
    if (!base) continue;
    const catalog::ReferencePointMember* m = MemberOf(*base, vm.id);
    if (!m || m->images != frozen[i]) {
      return Status::Failed("reference point " + base->name + " does not lead up to VM " + vm.name +
                            "'s images at this cut (" +
                            (m ? "a snapshot came after it" : "the VM joined the group later") +
                            "); read in full (no --incremental-from)");
    }
  }
  return Status::Ok();
}

Status BackupServe::Check() {
  const catalog::SnapshotRecord& s = serving_.snapshot;
  VMG_RETURN_IF_ERROR(CheckTransport(parts_.options, serving_.transport));
  VMG_RETURN_IF_ERROR(RequireComplete(s));
  VMG_ASSIGN_OR_RETURN(members_, MembersOf(parts_, s));
  std::vector<std::vector<std::string>> frozen;
  for (const auto& m : s.members) {
    frozen.emplace_back();
    for (const auto& d : m.disks) frozen.back().push_back(d.frozen_image);
  }
  VMG_RETURN_IF_ERROR(
      CheckServable(parts_, members_, frozen, serving_.base ? &*serving_.base : nullptr));
  if (BackupSocketPath(serving_.directory, members_.size()).size() > kMaxSocketPath) {
    return Status::InvalidArgument(
        "the state directory's path is too long for the sockets of a "
        "backup session (" +
        BackupSocketPath(serving_.directory, 0) + "); use a shorter one");
  }
  for (const auto& vm : members_) live_.push_back(parts_.vms->Live(vm.id));
  return Status::Ok();
}

Status BackupServe::RecordIntent() {
  VMG_RETURN_IF_ERROR(parts_.env->CreateDirs(serving_.directory));
  VMG_RETURN_IF_ERROR(
      storage::SetAccess(serving_.directory, kSessionDirMode, parts_.options.admin_gid));
  catalog::BackupIntent intent{.id = serving_.session_id,
                               .collection_id = serving_.snapshot.collection_id,
                               .snapshot_id = serving_.snapshot.id,
                               .took_snapshot = serving_.took_snapshot,
                               .directory = serving_.directory};
  for (const auto& vm : members_) intent.vm_ids.push_back(vm.id);
  // A session that took its snapshot recorded its intent before taking it.
  Status recorded = serving_.took_snapshot ? parts_.catalog->SetBackupIntentVms(intent)
                                           : parts_.catalog->InsertBackupIntent(intent);
  if (!recorded.ok()) (void)parts_.env->RemoveDir(serving_.directory);
  return recorded;
}

Status BackupServe::Work() {
  const catalog::SnapshotRecord& s = serving_.snapshot;
  ServedImages::Hold hold{.reference_point = serving_.base ? serving_.base->id : ""};
  serving_.members.clear();
  for (size_t i = 0; i < members_.size(); ++i) {
    const catalog::VmRecord& vm = members_[i];
    const hypervisor::NbdListen at = ListenOf(serving_, parts_.options, i);
    const bool tcp = !at.tcp_host.empty();
    std::vector<hypervisor::ServedImage> images;
    for (const auto& d : s.members[i].disks) {
      images.push_back({.disk = d.index,
                        .image = d.frozen_image,
                        .export_name = ExportName(d.index),
                        .tracking = serving_.base ? serving_.base->bitmap : ""});
      hold.images.push_back(d.frozen_image);
    }
    // A member that runs serves from its QEMU, one that is off from the
    // driver's own server (qemu-storage-daemon).
    auto serve = [&] {
      return live_[i] ? live_[i]->ServeImages(at, images, parts_.env->Now() + kServeTimeout)
                      : parts_.vms->ServeOff(vm.id, at, images);
    };
    auto served = serve();
    std::string full_read_reason;
    if (!served.ok() && serving_.base &&
        (served.status().code() == Code::kNotFound ||
         served.status().code() == Code::kInvalidState)) {
      // The point's tracking is gone or not trusted on this VM: a full read
      // is right, an incremental from it could miss changes.
      full_read_reason = "the change tracking of reference point " + serving_.base->name +
                         " cannot be trusted on VM " + vm.name + " (" + served.status().message() +
                         "): read its disks in full";
      for (auto& image : images) image.tracking.clear();
      served = serve();
    }
    if (!served.ok()) return served.status().Annotate("serving the disks of VM " + vm.name);
    hold.vm_ids.push_back(vm.id);
    // Over TCP, the CA's signature on a client's certificate decides who
    // may read.
    if (!tcp) VMG_RETURN_IF_ERROR(OpenToAdmins(at.path, parts_.options.admin_gid));
    const int port = served->empty() ? 0 : served->front().port;
    BackupMember member{.vm_id = vm.id, .vm_name = vm.name, .port = port, .disks = {}};
    for (size_t d = 0; d < images.size(); ++d) {
      member.disks.push_back({.index = images[d].disk,
                              .export_name = images[d].export_name,
                              .socket = tcp ? "" : at.path,
                              .uri = UriOf(at, port, images[d].export_name),
                              .size = (*served)[d].size,
                              .context = (*served)[d].context,
                              .full_read_reason = full_read_reason});
    }
    serving_.members.push_back(std::move(member));
    VMG_RETURN_IF_ERROR(parts_.env->Hit(fault::kBackupMemberServed, vm.name));
  }
  parts_.served.Add(serving_.session_id, std::move(hold));
  return Status::Ok();
}

Status BackupServe::Undo(const Status& cause) {
  std::vector<std::string> ids;
  for (const auto& vm : members_) ids.push_back(vm.id);
  Status stopped = StopServing(parts_, serving_.directory, ids);
  if (!stopped.ok()) {
    // The intent stays: recovery stops what is still served.
    return Status(cause.code(), cause.message() + "; and serving could not be stopped (" +
                                    stopped.message() + "); restart the service to end it");
  }
  // One that took its snapshot keeps its intent until the snapshot is gone.
  if (!serving_.took_snapshot) (void)parts_.catalog->DeleteBackupIntent(serving_.session_id);
  return cause;
}

Status StopServing(GroupParts& parts, const std::string& directory,
                   const std::vector<std::string>& vm_ids) {
  Status first;
  for (size_t i = 0; i < vm_ids.size(); ++i) {
    const std::string socket = BackupSocketPath(directory, i);
    Status st;
    if (auto live = parts.vms->Live(vm_ids[i])) {
      st = live->StopServing(socket, parts.env->Now() + kServeTimeout);
    }
    // Served while it was off (it may have been started since): the
    // driver's server; OK when there is none.
    if (st.ok()) st = parts.vms->StopServingOff(vm_ids[i], socket);
    // A VM that stopped serving with its QEMU (off) may have left the file.
    if (st.ok()) st = parts.env->RemoveFile(socket);
    if (!st.ok() && first.ok()) first = st.Annotate("VM " + vm_ids[i]);
  }
  if (!first.ok()) return first;
  return parts.env->RemoveDir(directory);
}

}  // namespace vmgroup::engine
