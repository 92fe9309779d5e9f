// Copies what a persistent dirty bitmap marks in a frozen image, read
// offline: an incremental export of a libvirt domain's disk without asking
// libvirt anything. A frozen image (below the overlay a cut switched the
// disk to) is never written again, and QEMU stored its bitmaps in the file
// when the switch made it read-only, so the bitmap in the file is the one
// libvirt's checkpoint kept up to the cut, and stays so.
#pragma once

#include <string>

#include "base/env.h"
#include "base/status.h"

namespace vmgroup::hypervisor::libvirt {

// Copies every cluster bitmap `bitmap` of qcow2 file `image` marks (as
// `image` reads, through its backing chain) into `target`, a qcow2 file
// open nowhere; the rest of `target` is left unwritten. Runs a
// qemu-storage-daemon of its own (image read-only and shared, target
// written, a backup job with the bitmap left as it is), ended before it
// returns. NotFound when `image` has no such bitmap, InvalidState when QEMU
// does not trust it (stored by a QEMU that died), Timeout past `deadline`.
Status CopyMarkedOffline(Env* env, const std::string& image, const std::string& bitmap,
                         const std::string& target, Deadline deadline);

}  // namespace vmgroup::hypervisor::libvirt
