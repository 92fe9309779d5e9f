#include "fault_injection.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vmgroup::campaign {

namespace {

Status Errno(const std::string& what) {
  return Status::IoError(what + ": " + std::strerror(errno));
}

}  // namespace

Status EnterPrivateMountNamespace() {
  if (::unshare(CLONE_NEWNS) != 0) return Errno("unshare(CLONE_NEWNS)");
  // Without this a mount made here would show in the host's namespace too
  // (systemd makes / shared).
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return Errno("making / private");
  }
  return Status::Ok();
}

Status MountTmpfs(const std::string& dir, uint64_t bytes) {
  const std::string data = "size=" + std::to_string(bytes) + ",mode=0711";
  if (::mount("campaign", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, data.c_str()) != 0) {
    return Errno("mounting a tmpfs on " + dir);
  }
  return Status::Ok();
}

void Unmount(const std::string& dir) { (void)::umount2(dir.c_str(), MNT_DETACH); }

Status DiskFiller::Fill(uint64_t headroom) {
  VMG_RETURN_IF_ERROR(Release());
  struct statvfs st {};
  if (::statvfs(mount_.c_str(), &st) != 0) return Errno("statvfs " + mount_);
  const uint64_t free = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  if (free <= headroom) return Status::Ok();
  const int fd = ::open(path().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("creating " + path());
  // tmpfs allocates its pages on fallocate: the space is gone at once.
  const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(free - headroom));
  ::close(fd);
  if (rc != 0) {
    errno = rc;
    return Errno("filling " + mount_);
  }
  return Status::Ok();
}

Status DiskFiller::Release() {
  if (::unlink(path().c_str()) != 0 && errno != ENOENT) return Errno("removing " + path());
  return Status::Ok();
}

}  // namespace vmgroup::campaign
