// What the benchmarks share besides statistics: comma lists on the command
// line and samples as JSON (the libvirt worker hands its samples back so).
#pragma once

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "stats.h"

namespace vmgroup::bench {

// Microseconds as milliseconds, for printing.
inline double Ms(double us) { return us / 1000.0; }

// The columns PrintRow fills.
inline constexpr const char* kRowHeader =
    "who        N | window median   p95 | 1-VM pause med  p95 | total median     p95\n";

// One row: medians and p95 of each quantity of `s`, in ms.
inline void PrintRow(const char* who, int n, const Samples& s) {
  std::printf("%-8s %3d | %8.2f %8.2f | %8.2f %8.2f | %8.1f %8.1f\n", who, n,
              Ms(Median(s.window_us)), Ms(P95(s.window_us)), Ms(Median(s.max_pause_us)),
              Ms(P95(s.max_pause_us)), Ms(Median(s.total_us)), Ms(P95(s.total_us)));
}

inline std::vector<int> ParseList(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoi(item));
  return out;
}

inline std::string Join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

inline nlohmann::json ToJson(const Samples& s) {
  return {{"window_us", s.window_us}, {"max_pause_us", s.max_pause_us}, {"total_us", s.total_us}};
}

inline Samples FromJson(const nlohmann::json& j) {
  return {j.at("window_us").get<std::vector<int64_t>>(),
          j.at("max_pause_us").get<std::vector<int64_t>>(),
          j.at("total_us").get<std::vector<int64_t>>()};
}

}  // namespace vmgroup::bench
