#include "hypervisor/libvirt/frozen_serving.h"

#include "hypervisor/qemu/storage_daemon.h"

namespace vmgroup::hypervisor::libvirt {

Result<std::vector<ServedExport>> ServeFrozen(Env* env, const std::string& run_dir,
                                              const std::string& uuid, const std::string& name,
                                              const NbdListen& at,
                                              const std::vector<ServedImage>& images) {
  // Each disk opened at its frozen image, never at the image the domain
  // writes now: a frozen image and its backing chain are the only files
  // that do not change under the daemon.
  VmSpec frozen{.uuid = uuid, .name = name, .run_dir = run_dir};
  for (const auto& i : images) {
    if (i.disk < 0) return Status::InvalidArgument("no disk " + std::to_string(i.disk));
    if (frozen.disks.size() <= static_cast<size_t>(i.disk)) frozen.disks.resize(i.disk + 1);
    frozen.disks[i.disk] = i.image;
  }
  // Run as this process, as frozen_copy's daemon is: libvirt's images are
  // its QEMU user's or root's, and root reads both.
  auto served = qemu::ServeOffline(env, "qemu-storage-daemon", std::nullopt, frozen, at, images);
  if (!served.ok()) return served.status().Annotate("domain " + name);
  return served;
}

Status StopServingFrozen(Env* env, const std::string& socket) {
  return qemu::StopServingOffline(env, socket);
}

}  // namespace vmgroup::hypervisor::libvirt
