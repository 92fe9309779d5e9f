// Full disks for the campaign. The state directory and the export targets
// sit on small tmpfs mounts in a mount namespace of the campaign's own: the
// campaign, the vmgroupd it starts and that daemon's QEMUs see them; the
// host does not, and they vanish when the last of those processes ends.
// A DiskFiller then leaves a chosen number of bytes free on one of them, so
// whatever writes there next (a memory state, an overlay, an export, a
// guest's disk) meets ENOSPC at a moment nobody chose.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace vmgroup::campaign {

// Moves this process into a new mount namespace whose mounts propagate
// nowhere. REQUIRES: root (CAP_SYS_ADMIN) and a single thread (unshare
// refuses CLONE_NEWNS to a process with several).
Status EnterPrivateMountNamespace();

// Mounts a tmpfs of `bytes` on the existing directory `dir`, mode 0711
// (QEMU's unprivileged user passes through to its images).
Status MountTmpfs(const std::string& dir, uint64_t bytes);

// Unmounts what MountTmpfs mounted (lazily: a QEMU may still hold a file).
void Unmount(const std::string& dir);

// One filler file on one mount. Not thread-safe.
class DiskFiller {
 public:
  explicit DiskFiller(std::string mount) : mount_(std::move(mount)) {}
  ~DiskFiller() { (void)Release(); }
  DiskFiller(const DiskFiller&) = delete;
  DiskFiller& operator=(const DiskFiller&) = delete;

  // Takes all but `headroom` of the mount's free bytes (none if fewer are
  // free). IoError when the filler cannot be made.
  Status Fill(uint64_t headroom);
  // Frees what Fill took; OK when there was nothing.
  Status Release();
  // The filler's path: a file the campaign made, which the state checks skip.
  std::string path() const { return mount_ + "/.campaign-filler"; }

 private:
  std::string mount_;
};

}  // namespace vmgroup::campaign
