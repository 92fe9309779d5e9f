// OperationMetrics: a snapshot's pauses, freeze and duration land in the
// families docs/metrics.md names, under its group and type; jobs by state.
#include "engine/operation_metrics.h"

#include <gtest/gtest.h>

namespace vmgroup::engine {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(OperationMetricsTest, ASnapshotAddsItsPausesFreezeAndDuration) {
  MetricsRegistry registry;
  OperationMetrics metrics(&registry);
  catalog::SnapshotRecord s;
  s.type = 2;
  s.consistency = catalog::Consistency::kApplication;
  s.pause_window_us = 3'000;
  s.freeze_window_us = 200'000;
  s.duration_us = 1'500'000;
  s.members = {{.power_at_cut = catalog::Power::kRunning, .pause_us = 2'000},
               {.power_at_cut = catalog::Power::kOff}};
  metrics.SnapshotTaken("web", s, {{.name = "a"}, {.name = "b"}});
  const std::string text = registry.Render();
  EXPECT_TRUE(Has(text,
                  "vmgroup_group_pause_window_seconds_bucket{group=\"web\",type=\"recovery\","
                  "le=\"0.0025\"} 0"))
      << text;
  EXPECT_TRUE(Has(text,
                  "vmgroup_group_pause_window_seconds_bucket{group=\"web\",type=\"recovery\","
                  "le=\"0.005\"} 1"));
  EXPECT_TRUE(
      Has(text, "vmgroup_group_pause_window_seconds_sum{group=\"web\",type=\"recovery\"} 0.003"));
  EXPECT_TRUE(
      Has(text, "vmgroup_member_pause_seconds_count{group=\"web\",type=\"recovery\",vm=\"a\"} 1"));
  EXPECT_EQ(text.find("vm=\"b\""), std::string::npos) << "an off member was never paused";
  EXPECT_TRUE(Has(text, "vmgroup_freeze_window_seconds_sum{group=\"web\",type=\"recovery\"} 0.2"));
  EXPECT_TRUE(
      Has(text, "vmgroup_snapshot_duration_seconds_sum{group=\"web\",type=\"recovery\"} 1.5"));
}

TEST(OperationMetricsTest, ACrashConsistentSnapshotOfStoppedVmsHasNoPauseNorFreeze) {
  MetricsRegistry registry;
  OperationMetrics metrics(&registry);
  catalog::SnapshotRecord s;
  s.type = 32768;
  s.members = {{.power_at_cut = catalog::Power::kOff}};
  metrics.SnapshotTaken("db", s, {{.name = "a"}});
  const std::string text = registry.Render();
  EXPECT_EQ(text.find("vmgroup_group_pause_window_seconds_count"), std::string::npos) << text;
  EXPECT_EQ(text.find("vmgroup_freeze_window_seconds_count"), std::string::npos);
  EXPECT_TRUE(
      Has(text, "vmgroup_snapshot_duration_seconds_count{group=\"db\",type=\"disk_only\"} 1"));
}

TEST(OperationMetricsTest, EndsCountFailuresAndRollbacksAndJobsCountEveryState) {
  MetricsRegistry registry;
  OperationMetrics metrics(&registry);
  metrics.Ended("create_snapshot", Status::Ok(), false);
  metrics.Ended("create_snapshot", Status::Failed("x"), true);
  metrics.Ended("destroy_snapshot", Status::Failed("x"), false);
  metrics.SetJobs({{.state = catalog::JobState::kRunning},
                   {.state = catalog::JobState::kException},
                   {.state = catalog::JobState::kException}});
  const std::string text = registry.Render();
  EXPECT_TRUE(Has(text, "vmgroup_operations_total{operation=\"create_snapshot\"} 2")) << text;
  EXPECT_TRUE(Has(text, "vmgroup_operations_failed_total{operation=\"create_snapshot\"} 1"));
  EXPECT_TRUE(Has(text, "vmgroup_operations_failed_total{operation=\"destroy_snapshot\"} 1"));
  EXPECT_TRUE(Has(text, "vmgroup_operations_rolled_back_total{operation=\"create_snapshot\"} 1"));
  EXPECT_EQ(text.find("rolled_back_total{operation=\"destroy_snapshot\"}"), std::string::npos);
  EXPECT_TRUE(Has(text, "vmgroup_jobs{state=\"running\"} 1"));
  EXPECT_TRUE(Has(text, "vmgroup_jobs{state=\"exception\"} 2"));
  EXPECT_TRUE(Has(text, "vmgroup_jobs{state=\"completed\"} 0"));
}

}  // namespace
}  // namespace vmgroup::engine
