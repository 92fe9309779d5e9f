// QemuUser: the unprivileged user QEMU runs as when vmgroup runs as root,
// and the files handed over to it. QEMU is started as that user from the
// start (setpriv execs it: no code of ours runs between fork and exec, and
// the PID stays QEMU's) rather than by QEMU's -runas, which switches the
// user only after -sandbox's filter forbids it (QEMU 7.2 dies of SIGSYS).
//
// What QEMU may touch, and how it gets it:
//   - its monitor and agent sockets, its serial log: opened by the driver
//     and passed as descriptors; the run directory stays root's, so QEMU
//     can neither create nor replace a file the daemon later opens there;
//   - the images it runs on and writes to (each disk's active image, the
//     images of the VM's run directory, an image it merges into): owned by
//     the user, mode 0600 (HandOver);
//   - files outside the state directory it writes (export targets) and
//     memory states: descriptors passed over QMP, never ownership;
//   - the kernel and initrd copies in the run directory: readable by the
//     user's group (ShareForReading);
//   - images below those (an operator's template), an operator's kernel:
//     read as they are; one it cannot read fails the start with the file
//     and the user named.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace vmgroup::hypervisor::qemu {

class QemuUser {
 public:
  // The user named `name` from the system's user database; nullopt for an
  // empty name or when `name` is who this process runs as (QEMU then runs
  // as this process does). NotFound with what to do when no such user
  // exists; InvalidArgument when this process cannot switch to it (only
  // root can).
  static Result<std::optional<QemuUser>> LookUp(const std::string& name);

  const std::string& name() const { return name_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }

  // The words that run the command after them as this user, with its
  // groups (kvm for /dev/kvm) and no capabilities.
  std::vector<std::string> RunAs() const;

  // Makes the file at `path` this user's, mode 0600, so that QEMU can open
  // it for writing. IoError naming the file and the user otherwise.
  Status HandOver(const std::string& path) const;
  // Every regular qcow2 file right in `dir` (not below, no symlinks), by
  // HandOver. IoError for a directory that cannot be read.
  Status HandOverImagesIn(const std::string& dir) const;
  // Lets QEMU read the regular file at `path` (not through a symlink): group
  // this user's, mode 0640, its owner kept. For the kernel and initrd
  // vmgroup keeps in a run directory (a restored VM's copies).
  Status ShareForReading(const std::string& path) const;
  // Makes `dir` (a VM's run directory) root's, group this user's, mode
  // 0710: QEMU may reach the files in it but not list, create or remove
  // any; nobody else may enter.
  Status ShareRunDir(const std::string& dir) const;

  // Appended to an error when QEMU, as this user, could not open a file.
  std::string Hint() const;

 private:
  QemuUser(std::string name, uid_t uid, gid_t gid) : name_(std::move(name)), uid_(uid), gid_(gid) {}

  std::string name_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

}  // namespace vmgroup::hypervisor::qemu
