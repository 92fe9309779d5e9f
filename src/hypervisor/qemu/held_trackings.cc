#include "hypervisor/qemu/held_trackings.h"

#include <algorithm>
#include <map>

#include "hypervisor/driver.h"
#include "hypervisor/qemu/qmp_commands.h"

namespace vmgroup::hypervisor::qemu {
namespace {

bool GeneratedName(const std::string& node) { return node.starts_with('#'); }

bool Held(const std::string& bitmap) { return bitmap.ends_with(kHeldSuffix); }

// A held twin of one of vmgroup's trackings (another tool's bitmaps are
// never held, so never stored either).
bool HeldTracking(const qmp::BitmapInfo& b) {
  return b.name.starts_with(kTrackingPrefix) && Held(b.name);
}

}  // namespace

Status HoldTrackings(QmpClient& c, const std::vector<std::string>& nodes, Deadline d) {
  VMG_ASSIGN_OR_RETURN(auto graph, qmp::QueryFormatNodesShallow(c, d));
  std::vector<Json> actions;
  for (const auto& n : graph) {
    if (GeneratedName(n.node) || GeneratedName(n.file_node)) continue;
    if (std::find(nodes.begin(), nodes.end(), n.node) == nodes.end()) continue;
    for (const auto& b : n.bitmaps) {
      // An untrusted bitmap cannot be merged from; one that does not record
      // is not a tracking of ours. Both stay as they are.
      if (!b.name.starts_with(kTrackingPrefix) || Held(b.name) || !b.persistent || !b.recording ||
          b.inconsistent) {
        continue;
      }
      const std::string twin = b.name + std::string(kHeldSuffix);
      actions.push_back(qmp::BitmapAddAction(n.node, twin, /*persistent=*/false, b.granularity));
      actions.push_back(qmp::BitmapMergeAction(n.node, twin, b.name));
      actions.push_back(qmp::BitmapRemoveAction(n.node, b.name));
    }
  }
  if (actions.empty()) return Status::Ok();
  return qmp::Transaction(c, actions, d).Annotate("holding the trackings in memory");
}

Status StoreHeldTrackings(QmpClient& c, Deadline d) {
  // Shallow first: most calls find nothing held, and the full graph (for
  // the backing nodes a reopen must name) costs as much as a chain is deep.
  VMG_ASSIGN_OR_RETURN(auto shallow, qmp::QueryFormatNodesShallow(c, d));
  if (std::none_of(shallow.begin(), shallow.end(), [](const qmp::FormatNode& n) {
        return std::any_of(n.bitmaps.begin(), n.bitmaps.end(), HeldTracking);
      })) {
    return Status::Ok();
  }
  VMG_ASSIGN_OR_RETURN(auto graph, qmp::QueryFormatNodeGraph(c, d));
  std::map<std::string, std::string> node_of;  // image file -> node
  for (const auto& n : graph) node_of[n.file] = n.node;
  std::vector<Json> actions;
  std::vector<qmp::ReopenNode> read_only;  // reopened read-write for the store
  for (const auto& n : graph) {
    bool any = false;
    for (const auto& b : n.bitmaps) {
      if (!HeldTracking(b)) continue;
      const std::string tracking = b.name.substr(0, b.name.size() - kHeldSuffix.size());
      actions.push_back(qmp::BitmapAddAction(n.node, tracking, /*persistent=*/true, b.granularity));
      actions.push_back(qmp::BitmapMergeAction(n.node, tracking, b.name));
      actions.push_back(qmp::BitmapRemoveAction(n.node, b.name));
      any = true;
    }
    if (any && n.read_only) {
      read_only.push_back({n.node, n.file_node, n.backing.empty() ? "" : node_of[n.backing]});
    }
  }
  if (actions.empty()) return Status::Ok();
  if (!read_only.empty()) {
    VMG_RETURN_IF_ERROR(qmp::BlockdevReopen(c, read_only, /*read_only=*/false, d)
                            .Annotate("reopening frozen images to store their trackings"));
  }
  Status stored = qmp::Transaction(c, actions, d).Annotate("storing the held trackings");
  // Read-only again whatever happened: the frozen images must not stay
  // writable. Going read-only writes the new persistent bitmaps out.
  Status back = read_only.empty() ? Status::Ok()
                                  : qmp::BlockdevReopen(c, read_only, /*read_only=*/true, d)
                                        .Annotate("making the frozen images read-only again");
  return stored.ok() ? back : stored;
}

}  // namespace vmgroup::hypervisor::qemu
