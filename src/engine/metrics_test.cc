// MetricsRegistry: the exact exposition text for given observations.
#include "engine/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace vmgroup::engine {
namespace {

TEST(MetricsRegistryTest, RendersEveryKindInTheTextFormat) {
  MetricsRegistry r;
  r.DeclareHistogram("x_seconds", "How long x took.", {0.001, 0.5});
  r.DeclareCounter("x_failed_total", "Failed x, by\nwhy \\ how.");
  r.DeclareGauge("x_jobs", "Jobs.");
  r.Observe("x_seconds", {{"group", "b"}}, 0.001);  // on a bound: counted in it (le)
  r.Observe("x_seconds", {{"group", "b"}}, 0.25);
  r.Observe("x_seconds", {{"group", "b"}}, 7);
  r.Observe("x_seconds", {{"group", "a\"q\\\n"}}, 0.0002);
  r.Add("x_failed_total", {{"operation", "create"}});
  r.Add("x_failed_total", {{"operation", "create"}}, 2);
  r.Set("x_jobs", {}, 4);
  r.Set("x_jobs", {}, 3);
  EXPECT_EQ(r.Render(),
            "# HELP x_seconds How long x took.\n"
            "# TYPE x_seconds histogram\n"
            "x_seconds_bucket{group=\"a\\\"q\\\\\\n\",le=\"0.001\"} 1\n"
            "x_seconds_bucket{group=\"a\\\"q\\\\\\n\",le=\"0.5\"} 1\n"
            "x_seconds_bucket{group=\"a\\\"q\\\\\\n\",le=\"+Inf\"} 1\n"
            "x_seconds_sum{group=\"a\\\"q\\\\\\n\"} 0.0002\n"
            "x_seconds_count{group=\"a\\\"q\\\\\\n\"} 1\n"
            "x_seconds_bucket{group=\"b\",le=\"0.001\"} 1\n"
            "x_seconds_bucket{group=\"b\",le=\"0.5\"} 2\n"
            "x_seconds_bucket{group=\"b\",le=\"+Inf\"} 3\n"
            "x_seconds_sum{group=\"b\"} 7.251\n"
            "x_seconds_count{group=\"b\"} 3\n"
            "# HELP x_failed_total Failed x, by\\nwhy \\\\ how.\n"
            "# TYPE x_failed_total counter\n"
            "x_failed_total{operation=\"create\"} 3\n"
            "# HELP x_jobs Jobs.\n"
            "# TYPE x_jobs gauge\n"
            "x_jobs 3\n");
}

TEST(MetricsRegistryTest, AFamilyWithoutSeriesRendersItsHeaderAlone) {
  MetricsRegistry r;
  r.DeclareCounter("y_total", "Y.");
  r.Add("y_other_total", {}, 1);  // not declared: ignored
  r.Set("y_total", {}, 5);        // not a gauge: ignored
  EXPECT_EQ(r.Render(), "# HELP y_total Y.\n# TYPE y_total counter\n");
}

TEST(MetricsRegistryTest, ObservationsFromManyThreadsAreAllCounted) {
  MetricsRegistry r;
  r.DeclareHistogram("z_seconds", "Z.", {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) r.Observe("z_seconds", {{"t", "x"}}, 0.5);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_NE(r.Render().find("z_seconds_count{t=\"x\"} 4000\n"), std::string::npos) << r.Render();
}

}  // namespace
}  // namespace vmgroup::engine
