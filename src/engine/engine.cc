#include "engine/engine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "base/unique_fd.h"

namespace vmgroup::engine {
namespace {

Status SetMode(const std::string& path, mode_t mode) {
  if (::chmod(path.c_str(), mode) != 0) {
    return Status::IoError("cannot set the mode of " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

// The catalog and SQLite's files beside it readable by the admin group
// only. The database is made before SQLite opens it: SQLite gives the files
// it creates beside a database the database's mode.
Status ProtectCatalog(Env* env, const std::string& path, int admin_gid) {
  const gid_t gid = admin_gid < 0 ? ::getegid() : static_cast<gid_t>(admin_gid);
  VMG_ASSIGN_OR_RETURN(UniqueFd db, env->OpenFile(path, O_RDWR | O_CREAT, 0640));
  for (const std::string& file : {path, path + "-wal", path + "-shm"}) {
    if (::chown(file.c_str(), static_cast<uid_t>(-1), gid) != 0 && errno != ENOENT) {
      return Status::IoError("cannot give " + file + " group " + std::to_string(gid) + ": " +
                             std::strerror(errno));
    }
    if (::chmod(file.c_str(), 0640) != 0 && errno != ENOENT) {
      return Status::IoError("cannot set the mode of " + file + ": " + std::strerror(errno));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  if (options.state_dir.empty() || options.state_dir[0] != '/') {
    return Status::InvalidArgument("state directory must be an absolute path, got '" +
                                   options.state_dir + "'");
  }
  Env* env = options.env ? options.env : Env::Default();
  std::unique_ptr<Engine> e(new Engine);
  e->state_dir_ = options.state_dir;
  hypervisor::Driver* driver = options.driver;
  if (!driver) {  // first: options it refuses change nothing
    VMG_ASSIGN_OR_RETURN(e->owned_driver_, hypervisor::qemu::QemuDriver::Create(env, options.qemu));
    driver = e->owned_driver_.get();
  }
  VMG_RETURN_IF_ERROR(env->CreateDirs(e->state_dir_ + "/vms"));
  VMG_RETURN_IF_ERROR(SetMode(e->state_dir_, 0711));
  VMG_RETURN_IF_ERROR(SetMode(e->state_dir_ + "/vms", 0711));
  VMG_RETURN_IF_ERROR(ProtectCatalog(env, e->state_dir_ + "/catalog.db", options.admin_gid));
  VMG_ASSIGN_OR_RETURN(e->catalog_, catalog::Catalog::Open(e->state_dir_ + "/catalog.db"));
  e->vms_ = std::make_unique<VmRegistry>(env, e->catalog_.get(), driver, e->state_dir_);
  e->collections_ = std::make_unique<CollectionManager>(env, e->catalog_.get(), options.peers);
  SnapshotOptions snapshot = options.snapshot;
  snapshot.admin_gid = options.admin_gid;
  e->snapshots_ = std::make_unique<SnapshotEngine>(env, e->catalog_.get(), e->vms_.get(),
                                                   e->collections_.get(), snapshot, options.peers);
  e->restorer_ = std::make_unique<ExportRestorer>(env, e->vms_.get(), e->collections_.get(),
                                                  e->catalog_.get());
  for (const auto& [uri, libvirt] : options.libvirt) e->vms_->AddConnection(uri, libvirt);
  VMG_ASSIGN_OR_RETURN(e->recovery_, Recover(env, *e->vms_, *e->catalog_));
  // The sessions the last run served are ended: their QEMUs serve on.
  VMG_ASSIGN_OR_RETURN(e->recovery_.backup_sessions, e->snapshots_->backups().Recover());
  // This host's parts of applies across hosts that recovery left held wait
  // for their coordinator again (this host's own part too, before the
  // recovery below tells it).
  e->snapshots_->host_applies().TakeUpHeld();
  // Snapshots across hosts this host coordinated and left unfinished are
  // taken back on every host, in the background: a host that cannot be
  // reached does not hold the start up.
  e->snapshots_->spanning().RecoverInBackground();
  // After recovery: an operation the last run left unfinished is settled
  // (its undo knows the disks it changed) before libvirt's view of the
  // disks is recorded.
  e->domains_ = std::make_unique<DomainSync>(e->catalog_.get(), e->vms_.get(), e->snapshots_.get());
  for (const auto& [uri, libvirt] : options.libvirt) {
    Status s = e->domains_->Sync(uri).Annotate("libvirt at " + uri);
    // One domain vmgroupd could not take in does not keep the others out.
    if (s.code() == Code::kUnavailable) return s;
    if (!s.ok()) Log(LogLevel::kWarning, s.ToString());
  }
  e->domains_->Follow();
  return e;
}

}  // namespace vmgroup::engine
