// HugePagePool (tests and benchmarks only): 2 MiB huge pages reserved on
// the host for as long as it lives, for guests whose RAM is on them. The
// pool size it found is written back when it ends, so a run leaves the
// host as it was (pages still in use then are freed as their QEMUs end).
// Needs root; a test without it skips.
#pragma once

#include <cstdint>
#include <memory>

#include "base/result.h"

namespace vmgroup::testing {

class HugePagePool {
 public:
  // Grows the host's pool until at least `free_pages` are free.
  // Unavailable, saying why (a reason to skip), when this process is not
  // root or the kernel could not find that many (fragmented memory); the
  // pool is as it was then.
  static Result<std::unique_ptr<HugePagePool>> Reserve(int64_t free_pages);
  ~HugePagePool();

  HugePagePool(const HugePagePool&) = delete;
  HugePagePool& operator=(const HugePagePool&) = delete;

  // Shrinks the pool back to what it was, now (the destructor then does
  // nothing more): a test of what a VM meets when the pages went.
  void Restore();

 private:
  explicit HugePagePool(int64_t before) : before_(before) {}
  int64_t before_;
  bool restored_ = false;
};

}  // namespace vmgroup::testing
