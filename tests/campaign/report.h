// The campaign's figures: what it did and what broke, printed as it goes
// (each violation at once, with the seed and step that replay it) and as a
// summary at the end.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "invariants.h"

namespace vmgroup::campaign {

class Report {
 public:
  explicit Report(uint64_t seed) : seed_(seed), start_(std::chrono::steady_clock::now()) {}

  // `refusal`: empty when the daemon accepted the operation, else what it
  // answered (the summary counts each distinct answer per kind, so that a
  // check refusing what the campaign meant to exercise shows).
  void Operation(const std::string& kind, const std::string& refusal);
  void Kill() { ++kills_; }
  void FullDisk(const std::string& where) { ++full_disk_[where]; }
  // Prints each violation at once: "VIOLATION seed=S step=N kind: detail".
  // One that persists (the same kind and detail at a later step) is
  // counted and printed once.
  void Add(int step, const Violations& violations);

  int kills() const { return kills_; }
  int full_disks() const;
  int violations() const;
  // The summary: kills, operations by kind (and how many the daemon
  // refused or failed, and why), full-disk faults, violations by kind, time
  // taken.
  void Print() const;

 private:
  uint64_t seed_;
  std::chrono::steady_clock::time_point start_;
  int kills_ = 0;
  std::map<std::string, int> operations_, refused_, full_disk_, violations_;
  std::map<std::string, std::map<std::string, int>> refusals_;  // kind -> answer -> count
  std::set<std::string> seen_;  // kind + detail of every violation counted
};

}  // namespace vmgroup::campaign
