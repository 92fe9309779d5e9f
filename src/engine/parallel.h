// Work on every member of a group at once: members are separate VMs, so the
// group takes as long as its slowest member, not the sum of them.
#pragma once

#include <thread>
#include <vector>

#include "base/status.h"

namespace vmgroup::engine {

// Runs fn(i) for i in [0, n) on one thread each; returns each one's Status.
template <typename Fn>
std::vector<Status> EachInParallel(size_t n, Fn fn) {
  std::vector<Status> results(n);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (size_t i = 0; i < n; ++i) threads.emplace_back([&, i] { results[i] = fn(i); });
  for (auto& t : threads) t.join();
  return results;
}

// The same, returning the first error by index.
template <typename Fn>
Status ParallelFor(size_t n, Fn fn) {
  for (auto& s : EachInParallel(n, fn)) VMG_RETURN_IF_ERROR(s);
  return Status::Ok();
}

}  // namespace vmgroup::engine
