// Serving a libvirt domain's frozen images to readers (backup sessions),
// offline as frozen_copy.h reads them: a qemu-storage-daemon of vmgroup's
// own opens each frozen image read-only (shared) and serves it over NBD,
// with the checkpoint's bitmap QEMU stored in it when the cut made it
// read-only. Whether the domain runs or not, libvirt is left out.
//
// Not libvirt's pull-mode backup (virDomainBackupBegin): its point in time
// is when its job starts, a second cut rather than the group's, and while
// the job runs it holds the domain's one job slot, so that every snapshot
// of the domain is refused (docs/libvirt.md) — a slow reader would hold up
// the next cut, which a session must never do.
#pragma once

#include <string>
#include <vector>

#include "base/env.h"
#include "hypervisor/driver.h"

namespace vmgroup::hypervisor::libvirt {

// Serves `images` (each a frozen image of disk `disk` of domain `uuid`,
// named `name`) at `at`, as Vm::ServeImages says; the daemon's monitor
// and log live in `run_dir`. It outlives this process (qemu/storage_daemon.h)
// until StopServingFrozen. REQUIRES: no two images of one disk.
Result<std::vector<ServedExport>> ServeFrozen(Env* env, const std::string& run_dir,
                                              const std::string& uuid, const std::string& name,
                                              const NbdListen& at,
                                              const std::vector<ServedImage>& images);

// Ends what ServeFrozen started at `socket` (NbdListen's path), also by an earlier process: OK
// when nothing serves there.
Status StopServingFrozen(Env* env, const std::string& socket);

}  // namespace vmgroup::hypervisor::libvirt
