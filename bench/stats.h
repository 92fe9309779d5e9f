// Small statistics for benchmark samples.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace vmgroup::bench {

// The q-quantile (0..1) of `v` by nearest rank; 0 for no samples.
template <typename T>
double Quantile(std::vector<T> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(q * static_cast<double>(v.size()) + 0.999999);
  rank = std::clamp<size_t>(rank, 1, v.size());
  return static_cast<double>(v[rank - 1]);
}
template <typename T>
double Median(const std::vector<T>& v) {
  return Quantile(v, 0.5);
}
template <typename T>
double P95(const std::vector<T>& v) {
  return Quantile(v, 0.95);
}

// One measured configuration: microsecond samples of each quantity.
struct Samples {
  std::vector<int64_t> window_us;     // group pause window
  std::vector<int64_t> max_pause_us;  // longest single-VM pause
  std::vector<int64_t> total_us;      // end to end
};

}  // namespace vmgroup::bench
