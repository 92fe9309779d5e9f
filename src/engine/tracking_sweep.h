// Change tracking that no record names any more is dropped: a libvirt
// checkpoint lives in the domain's own metadata (and bitmaps in its
// images), not in an image vmgroup removes, so whatever ends a recovery
// snapshot or a reference point (an undo, a destroy, an apply that discards
// images, a crash and the recovery after it) ends with a sweep.
#pragma once

#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "engine/vm_registry.h"

namespace vmgroup::engine {

// On each VM of `vm_ids` that runs (Vm::Trackings) or is recorded off
// (Driver::Trackings, through VmRegistry; one out of reach is left for a
// later sweep), drops every tracking in vmgroup's namespace the hypervisor
// keeps of its own that neither a group snapshot of type Recovery (any
// state: one being taken has recorded its intent before its tracking
// exists) nor a reference point names. Another tool's tracking is never
// listed, hence never touched. Returns the first failure; the rest are
// still tried.
Status SweepTrackings(VmRegistry& vms, catalog::Catalog& catalog,
                      const std::vector<std::string>& vm_ids);

}  // namespace vmgroup::engine
