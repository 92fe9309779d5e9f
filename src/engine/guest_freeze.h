// The application-consistent part of a group snapshot (DESIGN §4, ConsistencyLevel
// 1): every running member's guest flushes and freezes its filesystems
// through its agent before the cut, and thaws them after it, so that each
// frozen image holds filesystems at rest rather than mid-write.
//
// Each guest's agent channel is opened first, then a guard process
// (hypervisor::ThawGuard) is armed over those channels, then the freezes go
// out in parallel: the group's freeze window is the slowest guest's, not
// the sum, and holds no connecting. The guard thaws every guest by itself
// if the caller stalls or dies; GuestFreeze disarms it once its own thaws
// are answered, or has it thaw again at once when one of them failed.
// Whatever path the caller takes, a GuestFreeze going out of scope thaws
// what it froze.
//
// A member that cannot freeze (no agent, an agent that misses the deadline
// or refuses) is not fatal here: the caller decides between failing the
// snapshot and cutting that member crash-consistent.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/env.h"
#include "hypervisor/driver.h"

namespace vmgroup::engine {

struct FreezeMember {
  std::string name;  // for messages
  std::shared_ptr<hypervisor::Vm> vm;
  // False for a member paused by the operator: its guest cannot run its
  // agent, so it is not asked.
  bool running = true;
};

// When one member's freeze and thaw were sent and answered: wall-clock
// microseconds (Env::NowMicros, the clock of CutTiming::cut_time_us), 0 for
// what did not happen. For benchmarks that explain a freeze window.
struct FreezeTiming {
  int64_t freeze_sent_us = 0, freeze_answered_us = 0;
  int64_t thaw_sent_us = 0, thaw_answered_us = 0;
};

// Arms the thaw guard over the VMs whose agent channel is open.
using ArmGuard = std::function<Result<std::unique_ptr<hypervisor::ThawGuard>>(
    const std::vector<std::shared_ptr<hypervisor::Vm>>&)>;

class GuestFreeze {
 public:
  // Opens every member's agent channel, arms the guard with `arm` over
  // those that opened (no guard, no freeze: if it cannot start, every
  // member fails with its error), then freezes them in parallel, each by
  // `deadline`.
  GuestFreeze(Env* env, std::vector<FreezeMember> members, const ArmGuard& arm, Deadline deadline);
  ~GuestFreeze();
  GuestFreeze(const GuestFreeze&) = delete;
  GuestFreeze& operator=(const GuestFreeze&) = delete;

  // Per member, by index: OK when its filesystems are frozen, else why not,
  // naming the member.
  const std::vector<Status>& results() const { return results_; }
  bool Frozen(size_t i) const { return results_[i].ok(); }

  // Thaws every frozen member in parallel by `deadline` (once; later calls
  // do nothing) and returns a message per member whose thaw failed; the
  // guard was then told to thaw every guest again.
  std::vector<std::string> Thaw(Deadline deadline);

  // First freeze sent -> last thaw answered, once thawed; 0 before, and
  // when no member froze.
  int64_t window_us() const { return window_us_; }
  // Per member, by index: when its freeze and thaw were sent and answered
  // (a failed call counts as answered when it returned).
  const std::vector<FreezeTiming>& timings() const { return timings_; }

 private:
  Env* env_;
  std::vector<FreezeMember> members_;
  std::unique_ptr<hypervisor::ThawGuard> guard_;
  std::vector<Status> results_;
  std::vector<FreezeTiming> timings_;
  Clock::time_point first_freeze_;
  bool thawed_ = false;
  int64_t window_us_ = 0;
};

}  // namespace vmgroup::engine
