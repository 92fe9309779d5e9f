#include "hypervisor/qemu/qemu_user.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"

namespace vmgroup::hypervisor::qemu {

Result<std::optional<QemuUser>> QemuUser::LookUp(const std::string& name) {
  if (name.empty()) return std::optional<QemuUser>();
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  const int rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0 || found == nullptr) {
    return Status::NotFound("no user " + name +
                            " to run QEMU as: create it (scripts/install-deps.sh does, from "
                            "dist/sysusers.d/vmgroup.conf), or name another one");
  }
  if (pw.pw_uid == ::geteuid()) return std::optional<QemuUser>();
  if (::geteuid() != 0) {
    return Status::InvalidArgument("only root can run QEMU as user " + name +
                                   "; this process runs as uid " + std::to_string(::geteuid()));
  }
  return std::optional<QemuUser>(QemuUser(name, pw.pw_uid, pw.pw_gid));
}

std::vector<std::string> QemuUser::RunAs() const {
  return {"setpriv",
          "--reuid=" + std::to_string(uid_),
          "--regid=" + std::to_string(gid_),
          "--init-groups",
          "--inh-caps=-all",
          "--bounding-set=-all",
          "--"};
}

Status QemuUser::HandOver(const std::string& path) const {
  if (::chown(path.c_str(), uid_, gid_) != 0 || ::chmod(path.c_str(), 0600) != 0) {
    return Status::IoError("cannot hand " + path + " to user " + name_ +
                           " (who runs QEMU): " + std::strerror(errno));
  }
  return Status::Ok();
}

Status QemuUser::HandOverImagesIn(const std::string& dir) const {
  // Not Env::OpenFile: this descriptor anchors fstatat(AT_SYMLINK_NOFOLLOW)
  // and the listing below, and the hand-over itself is chown/chmod, which
  // Env does not offer; a test Env could control the open and nothing after.
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) return Status::IoError("cannot open " + dir + ": " + std::strerror(errno));
  DIR* d = ::fdopendir(::dup(dfd.get()));
  if (d == nullptr) return Status::IoError("cannot list " + dir + ": " + std::strerror(errno));
  Status first;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() <= 6 || name.compare(name.size() - 6, 6, ".qcow2") != 0) continue;
    struct stat st;
    // Only files vmgroup made: never through a symlink, never a device.
    if (::fstatat(dfd.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      continue;
    }
    if (st.st_uid == uid_ && (st.st_mode & 07777) == 0600) continue;
    Status s = HandOver(dir + "/" + name);
    if (first.ok()) first = s;
  }
  ::closedir(d);
  return first;
}

Status QemuUser::ShareForReading(const std::string& path) const {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::InvalidArgument(path + " is not a regular file to hand QEMU");
  }
  if (::chown(path.c_str(), static_cast<uid_t>(-1), gid_) != 0 ||
      ::chmod(path.c_str(), 0640) != 0) {
    return Status::IoError("cannot let user " + name_ + " (who runs QEMU) read " + path + ": " +
                           std::strerror(errno));
  }
  return Status::Ok();
}

Status QemuUser::ShareRunDir(const std::string& dir) const {
  if (::chown(dir.c_str(), 0, gid_) != 0 || ::chmod(dir.c_str(), 0710) != 0) {
    return Status::IoError("cannot open " + dir + " to user " + name_ +
                           " (who runs QEMU): " + std::strerror(errno));
  }
  return Status::Ok();
}

std::string QemuUser::Hint() const {
  return "QEMU runs as user " + name_ + ": every file it opens must be readable by " + name_ +
         " (its disks and their backing files, kernel and initrd) and each directory above it "
         "searchable";
}

}  // namespace vmgroup::hypervisor::qemu
