// Removing every trace of a group snapshot that did not complete: the one
// undo path shared by a failed CreateSnapshot and by start-up recovery.
#pragma once

#include "catalog/catalog.h"
#include "engine/vm_registry.h"
#include "storage/qemu_img.h"

namespace vmgroup::engine {

// For each member: a live VM has any switched overlay merged back into the
// image below (guest writes since the switch are kept) and every overlay
// node closed; a VM that ran at the cut but is gone now (or dies during the
// undo) has its overlay files committed offline, for the same reason; then
// the overlay files are deleted. An overlay is merged only into the image
// the snapshot froze below it (Vm::RevertOverlays checks the running graph
// before and after; the offline commit goes to the overlay's own backing
// file), so no older frozen image and no shared base below ever changes.
// When every member is clean, the snapshot's record is deleted.
// If any member cannot be cleaned, the others still are, the record stays
// (recovery tries again at the next start) and the first error is returned.
// Logs, as a warning, that the snapshot is undone and `why`.
Status UndoSnapshot(Env* env, VmRegistry& vms, catalog::Catalog& catalog, storage::QemuImg& img,
                    const catalog::SnapshotRecord& snapshot, const std::string& why);

}  // namespace vmgroup::engine
