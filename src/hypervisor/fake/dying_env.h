// DyingEnv (tests only): vmgroupd killed at a fault point, inside one test
// process, so that recovery at every point runs as a fast unit test.
//
// When a thread reaches the point it was told (Env::Hit), the "process"
// dies: that thread stops there for good, and so does every thread that
// later calls into this Env or comes back from a call into it — nothing the
// dead engine would do after the point reaches a file, a process, or a
// FakeVm (whose calls reach their own fault points first) through it.
// Returning a status from Hit instead would run the engine's undo: a failure,
// not a crash. What a FakeDriver runs (its fake QEMUs) lives on, as QEMUs
// outlive a vmgroupd killed with SIGKILL.
//
//   DyingEnv env(Env::Default());
//   hypervisor::fake::FakeDriver driver(&env);
//   env.DieAt(engine::fault::kCutDone);
//   ... run the operation on a thread of its own ...
//   ASSERT_TRUE(env.AwaitDeath(std::chrono::seconds(10)));
//   // leave that thread and the engine as they are (never destroy them:
//   // their threads stay stopped inside them), then
//   env.Revive();
//   ... open a new engine on the same state directory: recovery runs ...
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>

#include "base/env.h"

namespace vmgroup::hypervisor::fake {

class DyingEnv final : public EnvWrapper {
 public:
  explicit DyingEnv(Env* target) : EnvWrapper(target) {}

  // The next Hit of `point` (for `subject`, when not empty) kills.
  void DieAt(std::string point, std::string subject = "");
  // Waits until the death happened and every thread still running has
  // stopped at this Env (no call in flight, none made for a while): true
  // then; false when the point was not reached within `timeout`.
  bool AwaitDeath(Duration timeout);
  // Calls go through again, as in a new process; the threads stopped stay so.
  void Revive();

  int64_t NowMicros() override;
  Clock::time_point Now() override;
  void SleepFor(Duration d) override;
  bool FileExists(const std::string& p) override;
  Status RemoveFile(const std::string& p) override;
  Status SyncFile(const std::string& p) override;
  Status StartWriteback(const std::string& p) override;
  Status CreateDirs(const std::string& p) override;
  Result<UniqueFd> OpenFile(const std::string& p, int flags, int mode) override;
  Result<std::string> ReadFile(const std::string& p) override;
  Status WriteFile(const std::string& p, std::string_view data) override;
  Status RemoveDir(const std::string& p) override;
  Result<std::vector<std::string>> ListDir(const std::string& p) override;
  Result<CommandOutput> Run(const std::vector<std::string>& argv, Duration timeout) override;
  Result<int> Spawn(const std::vector<std::string>& argv, const SpawnOptions& o) override;
  bool IsAlive(int pid) override;
  Status Kill(int pid, int signal) override;
  Status WaitGone(int pid, Duration timeout) override;
  Result<int64_t> ProcessStartTime(int pid) override;
  Result<std::vector<ThreadInfo>> Threads(int pid) override;
  Result<Scheduling> GetScheduling(int tid) override;
  Status SetScheduling(int tid, const Scheduling& s) override;
  Status Hit(std::string_view point, std::string_view subject) override;

 private:
  // Runs `call` unless the process is dead, before or after it.
  template <typename F>
  auto Gate(F call) -> decltype(call());
  [[noreturn]] void StopForGood(std::unique_lock<std::mutex>& lock);

  std::mutex mu_;
  std::condition_variable changed_;
  std::string point_, subject_;  // guarded by mu_
  bool dead_ = false;            // guarded by mu_
  bool died_ = false;            // guarded by mu_: the death happened
  int in_flight_ = 0;            // guarded by mu_: calls under way
};

}  // namespace vmgroup::hypervisor::fake
