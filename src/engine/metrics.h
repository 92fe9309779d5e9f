// MetricsRegistry: counters, gauges and histograms of fixed buckets, each
// series named by its labels, kept in memory and rendered in Prometheus's
// text exposition format 0.0.4 (docs/metrics.md says what vmgroupd keeps).
// Thread-safe: operations record on their threads while a scrape renders.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vmgroup::engine {

// A series' labels, in the order they render: name, value.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class MetricsRegistry {
 public:
  // Declare a family; families render in the order declared. REQUIRES:
  // `name` and the label names used with it are Prometheus names
  // ([a-zA-Z_:][a-zA-Z0-9_:]*), each declared once; `bounds` ascend (the
  // buckets' upper bounds; +Inf is added).
  void DeclareCounter(std::string name, std::string help);
  void DeclareGauge(std::string name, std::string help);
  void DeclareHistogram(std::string name, std::string help, std::vector<double> bounds);

  // REQUIRES: `name` was declared as that kind (anything else is ignored).
  void Add(std::string_view counter, const MetricLabels& labels, double amount = 1);
  void Set(std::string_view gauge, const MetricLabels& labels, double value);
  void Observe(std::string_view histogram, const MetricLabels& labels, double value);

  // Every family: # HELP and # TYPE, then its series sorted by labels; a
  // histogram's as cumulative _bucket{le=...} lines up to +Inf, _sum and
  // _count. Label values are escaped (\\, \", \n).
  std::string Render() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Series {
    double value = 0;             // counter, gauge; a histogram's sum
    std::vector<uint64_t> count;  // a histogram's, per bucket (not cumulative), +Inf last
  };
  struct Family {
    std::string name, help;
    Kind kind;
    std::vector<double> bounds;
    std::map<MetricLabels, Series> series;
  };
  // The series of `labels` in family `name` of `kind`, made on first use;
  // null for a family not declared so. REQUIRES: mu_ held.
  Series* Find(std::string_view name, Kind kind, const MetricLabels& labels);

  mutable std::mutex mu_;
  std::vector<Family> families_;
};

}  // namespace vmgroup::engine
