#include "engine/operation_metrics.h"

#include <map>

#include "engine/snapshot_plan.h"

namespace vmgroup::engine {
namespace {

// The families of the snapshots taken (docs/metrics.md).
constexpr char kPauseWindowMetric[] = "vmgroup_group_pause_window_seconds";
constexpr char kMemberPauseMetric[] = "vmgroup_member_pause_seconds";
constexpr char kFreezeWindowMetric[] = "vmgroup_freeze_window_seconds";
constexpr char kSnapshotDurationMetric[] = "vmgroup_snapshot_duration_seconds";
// Read from the catalog at each scrape.
constexpr char kJobsMetric[] = "vmgroup_jobs";
// Per operation, as OperationRunner ends them.
constexpr char kOperationsMetric[] = "vmgroup_operations_total";
constexpr char kFailedMetric[] = "vmgroup_operations_failed_total";
constexpr char kRolledBackMetric[] = "vmgroup_operations_rolled_back_total";

// A pause is milliseconds where the cut goes well and a few seconds at its
// deadline; a freeze lasts up to --freeze-bound (10 s by default, 300 at
// most); a snapshot with memory takes as long as its RAM takes to write.
const std::vector<double> kPauseBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,    0.25,  0.5,    1,     2.5,  5};
const std::vector<double> kFreezeBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                            2.5,  5,     10,   30,  60,   300};
const std::vector<double> kDurationBuckets = {0.1, 0.25, 0.5, 1,   2.5, 5,   10,
                                              30,  60,   120, 300, 600, 1800};

std::string TypeName(int type) {
  switch (type) {
    case kSnapshotStandard:
      return "standard";
    case kSnapshotRecovery:
      return "recovery";
    case kSnapshotDiskOnly:
      return "disk_only";
  }
  return std::to_string(type);
}

const std::map<catalog::JobState, const char*>& JobStateNames() {
  using catalog::JobState;
  static const std::map<JobState, const char*> names = {
      {JobState::kNew, "new"},
      {JobState::kStarting, "starting"},
      {JobState::kRunning, "running"},
      {JobState::kCompleted, "completed"},
      {JobState::kTerminated, "terminated"},
      {JobState::kKilled, "killed"},
      {JobState::kException, "exception"},
      {JobState::kCompletedWithWarnings, "completed_with_warnings"}};
  return names;
}

double Seconds(int64_t us) { return static_cast<double>(us) / 1e6; }

}  // namespace

OperationMetrics::OperationMetrics(MetricsRegistry* registry) : registry_(registry) {
  registry->DeclareHistogram(kPauseWindowMetric,
                             "Group pause window of a snapshot's cut: first member paused to "
                             "last member resumed.",
                             kPauseBuckets);
  registry->DeclareHistogram(kMemberPauseMetric,
                             "How long a snapshot's cut kept one member paused.", kPauseBuckets);
  registry->DeclareHistogram(kFreezeWindowMetric,
                             "Freeze window of an application-consistent snapshot: first freeze "
                             "sent to last thaw answered.",
                             kFreezeBuckets);
  registry->DeclareHistogram(kSnapshotDurationMetric,
                             "Duration of a whole snapshot operation, check to commit.",
                             kDurationBuckets);
  registry->DeclareGauge(kJobsMetric, "Jobs the daemon keeps, by state.");
  registry->DeclareCounter(
      kOperationsMetric,
      "Group operations that ran (their members claimed), whatever their outcome.");
  registry->DeclareCounter(kFailedMetric, "Group operations that ran and ended in an error.");
  registry->DeclareCounter(kRolledBackMetric, "Group operations whose work failed and was undone.");
}

void OperationMetrics::Ended(std::string_view operation, const Status& outcome, bool rolled_back) {
  const MetricLabels labels = {{"operation", std::string(operation)}};
  registry_->Add(kOperationsMetric, labels);
  if (!outcome.ok()) registry_->Add(kFailedMetric, labels);
  if (rolled_back) registry_->Add(kRolledBackMetric, labels);
}

void OperationMetrics::SnapshotTaken(const std::string& group, const catalog::SnapshotRecord& s,
                                     const std::vector<catalog::VmRecord>& members) {
  const MetricLabels labels = {{"group", group}, {"type", TypeName(s.type)}};
  bool paused = false;
  for (size_t i = 0; i < s.members.size() && i < members.size(); ++i) {
    if (s.members[i].power_at_cut != catalog::Power::kRunning) continue;
    paused = true;
    MetricLabels vm = labels;
    vm.emplace_back("vm", members[i].name);
    registry_->Observe(kMemberPauseMetric, vm, Seconds(s.members[i].pause_us));
  }
  if (paused) registry_->Observe(kPauseWindowMetric, labels, Seconds(s.pause_window_us));
  if (s.consistency == catalog::Consistency::kApplication) {
    registry_->Observe(kFreezeWindowMetric, labels, Seconds(s.freeze_window_us));
  }
  registry_->Observe(kSnapshotDurationMetric, labels, Seconds(s.duration_us));
}

void OperationMetrics::SetJobs(const std::vector<catalog::JobRecord>& jobs) {
  std::map<catalog::JobState, int> count;
  for (const auto& j : jobs) ++count[j.state];
  for (const auto& [state, name] : JobStateNames()) {
    registry_->Set(kJobsMetric, {{"state", name}}, count[state]);
  }
}

}  // namespace vmgroup::engine
