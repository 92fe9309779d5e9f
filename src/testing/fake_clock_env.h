// FakeClockEnv (tests only): an Env whose monotonic clock stands still until
// SleepFor or Advance moves it, so sleeping takes no real time and a test
// decides when a deadline has passed. It counts the sleeps, so a test can
// tell that a wait went through the Env. Everything else goes to the Env it
// wraps (the wall clock, NowMicros, too).
//
// Thread-safe, as every Env.
#pragma once

#include <mutex>

#include "base/env.h"

namespace vmgroup::testing {

class FakeClockEnv final : public EnvWrapper {
 public:
  explicit FakeClockEnv(Env* target = Env::Default()) : EnvWrapper(target), now_(Clock::now()) {}

  Clock::time_point Now() override {
    std::lock_guard l(mu_);
    return now_;
  }
  void SleepFor(Duration d) override {
    std::lock_guard l(mu_);
    now_ += d;
    ++sleeps_;
  }

  // Moves the clock on by `d` without counting a sleep.
  void Advance(Duration d) {
    std::lock_guard l(mu_);
    now_ += d;
  }
  int sleeps() {
    std::lock_guard l(mu_);
    return sleeps_;
  }

 private:
  std::mutex mu_;
  Clock::time_point now_;  // guarded by mu_
  int sleeps_ = 0;         // guarded by mu_
};

}  // namespace vmgroup::testing
