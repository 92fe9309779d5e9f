#include "engine/tracking_sweep.h"

#include <set>

#include "engine/snapshot_plan.h"

namespace vmgroup::engine {
namespace {

constexpr auto kTrackingTimeout = std::chrono::seconds(30);

Result<std::set<std::string>> RecordedTrackings(catalog::Catalog& catalog) {
  std::set<std::string> names;
  VMG_ASSIGN_OR_RETURN(auto snapshots, catalog.ListSnapshots());
  for (const auto& s : snapshots) {
    if (std::string t = BitmapFor(s.type, s.tag); !t.empty()) names.insert(t);
  }
  VMG_ASSIGN_OR_RETURN(auto rps, catalog.ListReferencePoints());
  for (const auto& rp : rps) names.insert(rp.bitmap);
  return names;
}

}  // namespace

Status SweepTrackings(VmRegistry& vms, catalog::Catalog& catalog,
                      const std::vector<std::string>& vm_ids) {
  Status first;
  for (const auto& id : vm_ids) {
    auto live = vms.Live(id);
    if (!live) {
      auto vm = catalog.GetVm(id);
      if (!vm.ok() || vm->power != catalog::Power::kOff) continue;
    }
    // Listed before the records are read: a tracking made meanwhile has its
    // record already (a cut records its intent first), so it is never taken
    // for a stray one.
    auto found = live ? live->Trackings(vms.env()->Now() + kTrackingTimeout) : vms.OffTrackings(id);
    if (!found.ok()) {
      // Off and out of reach now (no connection, undefined, started
      // meanwhile): a later sweep meets it.
      const Code c = found.status().code();
      const bool later =
          !live && (c == Code::kUnavailable || c == Code::kNotFound || c == Code::kInvalidState);
      if (!later && first.ok()) first = found.status().Annotate("VM " + id);
      continue;
    }
    if (found->empty()) continue;
    auto recorded = RecordedTrackings(catalog);
    if (!recorded.ok()) return recorded.status();
    for (const auto& name : *found) {
      if (recorded->count(name)) continue;
      Status s = live ? live->DropTracking(0, "", name, vms.env()->Now() + kTrackingTimeout)
                      : vms.DropOffTracking(id, name);
      if (!s.ok() && first.ok()) first = s.Annotate("VM " + id + ": tracking " + name);
    }
  }
  return first;
}

}  // namespace vmgroup::engine
