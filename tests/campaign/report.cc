#include "report.h"

#include <cstdio>

namespace vmgroup::campaign {

void Report::Add(int step, const Violations& violations) {
  for (const auto& v : violations) {
    if (!seen_.insert(v.kind + "\n" + v.detail).second) continue;
    ++violations_[v.kind];
    std::printf("VIOLATION seed=%llu step=%d %s: %s\n", static_cast<unsigned long long>(seed_),
                step, v.kind.c_str(), v.detail.c_str());
  }
  std::fflush(stdout);
}

void Report::Operation(const std::string& kind, const std::string& refusal) {
  ++operations_[kind];
  if (refusal.empty()) return;
  ++refused_[kind];
  // Names and ids differ from one answer to the next; the first line,
  // shortened, says enough to group them.
  std::string line = refusal.substr(0, refusal.find('\n'));
  if (line.size() > 110) line = line.substr(0, 110) + "...";
  ++refusals_[kind][line];
}

int Report::full_disks() const {
  int n = 0;
  for (const auto& [where, count] : full_disk_) n += count;
  return n;
}

int Report::violations() const {
  int n = 0;
  for (const auto& [kind, count] : violations_) n += count;
  return n;
}

void Report::Print() const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::printf("\ncampaign seed=%llu: %d kills, %d full-disk faults, %d violations, %.0f s\n",
              static_cast<unsigned long long>(seed_), kills_, full_disks(), violations(), seconds);
  std::printf("operations (sent / refused or failed):\n");
  for (const auto& [kind, n] : operations_) {
    const auto r = refused_.find(kind);
    std::printf("  %-22s %5d / %d\n", kind.c_str(), n, r == refused_.end() ? 0 : r->second);
    const auto why = refusals_.find(kind);
    if (why == refusals_.end()) continue;
    for (const auto& [answer, count] : why->second) {
      std::printf("      %3d x %s\n", count, answer.c_str());
    }
  }
  std::printf("full-disk faults:\n");
  for (const auto& [where, n] : full_disk_) std::printf("  %-22s %5d\n", where.c_str(), n);
  std::printf("violations by kind:\n");
  if (violations_.empty()) std::printf("  none\n");
  for (const auto& [kind, n] : violations_) std::printf("  %-22s %5d\n", kind.c_str(), n);
  std::fflush(stdout);
}

}  // namespace vmgroup::campaign
