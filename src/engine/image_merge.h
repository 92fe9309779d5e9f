// Taking a destroyed snapshot's images out of each VM's image tree: the path
// shared by DestroySnapshot and by start-up recovery, which finishes a
// destroy that a crash cut short.
//
// Per VM disk the images form a tree (DESIGN §5): each snapshot's frozen
// image is a node, the images based on it are its children. A frozen image
// with one child is merged with it — the child is committed into the frozen
// image, which takes the child's place (cheap: the child holds only what
// changed since the cut, and a live VM never stops). Extra children (branches
// made by applying the snapshot) first copy what they read through the frozen
// image and stop depending on it. A frozen image with no child is dropped.
#pragma once

#include <vector>

#include "catalog/catalog.h"
#include "engine/vm_registry.h"
#include "storage/qemu_img.h"

namespace vmgroup::engine {

// How destroying `s` will take each member disk's frozen image out of the
// tree. The child kept is the one the VM runs through, if any. Reads image
// headers; changes nothing.
Result<std::vector<catalog::DiskMerge>> PlanMerges(catalog::Catalog& catalog, storage::QemuImg& img,
                                                   const catalog::SnapshotRecord& s);

// The undoable half, for every merge: each of `others` stops depending on the
// frozen image. Every image reads the same before, during and after, so a
// destroy stopped here can still be cancelled. Idempotent.
Status DetachOthers(storage::QemuImg& img, const std::vector<catalog::DiskMerge>& merges);

// The rest, past which the snapshot is gone: each child is merged into its
// frozen image (live through the hypervisor when the VM runs through it,
// with qemu-img otherwise), the child's own children are re-pointed at the
// frozen image, a VM merged offline is defined on the images that remain
// (VmRegistry::DefineDisks: a libvirt domain's definition), the catalog
// forgets the snapshot (Catalog::FinishDestroy),
// then the files no longer used (memory states too) are deleted.
// Idempotent: recovery runs it again from the stored merges after a crash.
Status MergeAndFinish(Env* env, VmRegistry& vms, catalog::Catalog& catalog, storage::QemuImg& img,
                      const std::string& snapshot_id,
                      const std::vector<catalog::DiskMerge>& merges);

}  // namespace vmgroup::engine
