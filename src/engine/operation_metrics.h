// OperationMetrics: what vmgroupd tells Prometheus of its group operations
// (docs/metrics.md), kept in a MetricsRegistry: the pauses, freezes and
// durations of the snapshots taken, per group and snapshot type; the
// operations that ended, failed and were rolled back; the jobs by state.
// Fed by OperationRunner where an operation ends. Thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "catalog/records.h"
#include "engine/metrics.h"

namespace vmgroup::engine {

class OperationMetrics {
 public:
  // Declares the families on `registry`. REQUIRES: it outlives this.
  explicit OperationMetrics(MetricsRegistry* registry);

  // An operation that claimed its members ended with `outcome`;
  // `rolled_back`: its work failed and was undone.
  void Ended(std::string_view operation, const Status& outcome, bool rolled_back);
  // Snapshot `s` of group `group` was taken; `members` are its members'
  // VMs, index by index. Members the cut did not pause (off, or paused
  // already) add no pause; a group none of whose members ran, no window.
  void SnapshotTaken(const std::string& group, const catalog::SnapshotRecord& s,
                     const std::vector<catalog::VmRecord>& members);
  // The jobs the catalog holds now, counted by state (every state, 0 too).
  void SetJobs(const std::vector<catalog::JobRecord>& jobs);

  const MetricsRegistry& registry() const { return *registry_; }

 private:
  MetricsRegistry* registry_;
};

}  // namespace vmgroup::engine
